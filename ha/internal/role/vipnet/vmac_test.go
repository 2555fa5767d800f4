//go:build linux

package vipnet

import (
	"bytes"
	"encoding/binary"
	"net"
	"testing"
)

// Netlink is native-endian: lengths, types and the integer attributes are
// read with NativeEndian (the literals below are little-endian values), so
// the golden holds on big-endian MIPS too.
func TestMacvlanMsg(t *testing.T) {
	ne := binary.NativeEndian
	mac := net.HardwareAddr{0, 0, 0x0c, 0x07, 0xac, 7}
	b := MacvlanMsg(3, "hsrp-vmac-7", mac, 9)
	// nlmsghdr
	if ne.Uint32(b) != uint32(len(b)) || ne.Uint16(b[4:]) != 16 || ne.Uint16(b[6:]) != 0x605 || ne.Uint32(b[8:]) != 9 {
		t.Fatalf("header % x", b[:16])
	}
	if !bytes.Equal(b[16:32], make([]byte, 16)) {
		t.Fatalf("ifinfomsg % x", b[16:32])
	}
	// IFLA_IFNAME "hsrp-vmac-7\0" (12 bytes), IFLA_LINK 3, IFLA_ADDRESS mac
	// (padded), IFLA_LINKINFO{KIND "macvlan\0", DATA{MACVLAN_MODE 4}}.
	type at struct {
		off  int
		l, t uint16
		data []byte
	}
	for _, a := range []at{
		{32, 16, 3, []byte("hsrp-vmac-7\x00")},
		{48, 8, 5, []byte{3, 0, 0, 0}},
		{56, 10, 1, mac},
		{68, 28, 18 | 0x8000, nil},
		{72, 11, 1, []byte("macvlan")},
		{84, 12, 2 | 0x8000, nil},
		{88, 8, 1, []byte{4, 0, 0, 0}},
	} {
		if ne.Uint16(b[a.off:]) != a.l || ne.Uint16(b[a.off+2:]) != a.t {
			t.Fatalf("attr at %d: % x", a.off, b[a.off:a.off+4])
		}
		if a.data != nil {
			got := b[a.off+4 : a.off+4+len(a.data)]
			if len(a.data) == 4 && a.t == 5 || a.t == 1 && a.off == 88 {
				if ne.Uint32(got) != binary.LittleEndian.Uint32(a.data) {
					t.Fatalf("attr at %d: % x", a.off, got)
				}
			} else if !bytes.Equal(got, a.data) {
				t.Fatalf("attr at %d: % x, want % x", a.off, got, a.data)
			}
		}
	}
	if len(b) != 96 {
		t.Fatalf("length %d, want 96", len(b))
	}
}

func TestLinkMsg(t *testing.T) {
	ne := binary.NativeEndian
	up := LinkMsg(5, true, false, 1)
	if ne.Uint16(up[4:]) != 16 || ne.Uint16(up[6:]) != 5 || ne.Uint32(up[20:]) != 5 || ne.Uint32(up[24:]) != 1 || ne.Uint32(up[28:]) != 1 {
		t.Fatalf("up % x", up)
	}
	down := LinkMsg(5, false, false, 1)
	if ne.Uint32(down[24:]) != 0 || ne.Uint32(down[28:]) != 1 {
		t.Fatalf("down % x", down)
	}
	del := LinkMsg(5, false, true, 1)
	if ne.Uint16(del[4:]) != 17 || ne.Uint32(del[20:]) != 5 || ne.Uint32(del[28:]) != 0 {
		t.Fatalf("del % x", del)
	}
}
