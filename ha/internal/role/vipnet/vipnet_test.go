//go:build linux

package vipnet

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"testing"
)

func TestAddrMsg(t *testing.T) {
	b := AddrMsg(true, 7, netip.MustParsePrefix("192.0.2.100/24"), 42)
	// Header fields are native-endian; the body bytes that are not are
	// checked byte by byte.
	ne := binary.NativeEndian
	if ne.Uint32(b) != 40 || ne.Uint16(b[4:]) != 20 || ne.Uint16(b[6:]) != 0x505 || ne.Uint32(b[8:]) != 42 {
		t.Fatalf("header % x", b[:16])
	}
	if !bytes.Equal(b[16:20], []byte{2, 24, 0, 0}) || ne.Uint32(b[20:]) != 7 {
		t.Fatalf("ifaddrmsg % x", b[16:24])
	}
	if ne.Uint16(b[24:]) != 8 || ne.Uint16(b[26:]) != 2 || !bytes.Equal(b[28:32], []byte{192, 0, 2, 100}) ||
		ne.Uint16(b[34:]) != 1 || !bytes.Equal(b[36:40], []byte{192, 0, 2, 100}) {
		t.Fatalf("attrs % x", b[24:])
	}
	if d := AddrMsg(false, 7, netip.MustParsePrefix("192.0.2.100/24"), 1); ne.Uint16(d[4:]) != 21 || ne.Uint16(d[6:]) != 5 {
		t.Fatalf("del header % x", d[:16])
	}
}

func TestGratuitousFrame(t *testing.T) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	got := GratuitousFrame([]byte{9}, mac, netip.MustParseAddr("192.0.2.100"))
	want, _ := hex.DecodeString("09" + "ffffffffffff" + "020000000001" + "0806" + "0001080006040001" +
		"020000000001" + "c0000264" + "000000000000" + "c0000264" + "000000000000000000000000000000000000")
	if !bytes.Equal(got, want) {
		t.Fatalf("got  % x\nwant % x", got, want)
	}
}
