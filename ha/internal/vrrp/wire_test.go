package vrrp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"
	"time"
)

var (
	mcast = netip.MustParseAddr("224.0.0.18")
	// Goldens computed once with python3-scapy 2.5 (the VRRPv3 layer that
	// Wireshark-compatible tools use), e.g.
	//   raw(IP(src="192.0.2.1",dst="224.0.0.18",ttl=255)/VRRPv3(vrid=51,
	//       priority=100,ipcount=1,adv=100,addrlist=["192.0.2.100"]))[20:]
	// keepalived 2.2.7 with vrrp_version 3, advert_int 1 sends the same shape.
	golden1    = mustHex("3133640100640572c0000264")
	golden1Src = netip.MustParseAddr("192.0.2.1")
	golden2    = mustHex("3107fe02000ad18d0a0000640a000065")
	golden2Src = netip.MustParseAddr("10.0.0.2")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestGoldenMarshal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		a      Advertisement
		addrs  []string
		src    netip.Addr
		golden []byte
	}{
		{"vrid51", Advertisement{VRID: 51, Priority: 100, Interval: 100}, []string{"192.0.2.100"}, golden1Src, golden1},
		{"vrid7-2addrs", Advertisement{VRID: 7, Priority: 254, Interval: 10}, []string{"10.0.0.100", "10.0.0.101"}, golden2Src, golden2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var addrs []netip.Addr
			for _, s := range tc.addrs {
				addrs = append(addrs, netip.MustParseAddr(s))
			}
			if err := tc.a.SetAddresses(addrs); err != nil {
				t.Fatal(err)
			}
			prefix := []byte{0xde, 0xad}
			b, err := tc.a.AppendChecksummed(append([]byte(nil), prefix...), tc.src, mcast)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b[:2], prefix) || !bytes.Equal(b[2:], tc.golden) {
				t.Fatalf("got % x\nwant   % x", b[2:], tc.golden)
			}
			var back Advertisement
			if err := Receive(&back, b[2:], tc.src, mcast, 255, &Expect{VRID: tc.a.VRID, Addrs: addrs}); err != nil {
				t.Fatal(err)
			}
			if back != tc.a {
				t.Fatalf("round trip: %+v != %+v", back, tc.a)
			}
		})
	}
}

func TestReceiveErrors(t *testing.T) {
	want := &Expect{VRID: 51, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.100")}}
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), golden1...)) }
	resum := func(b []byte) []byte {
		b[6], b[7] = 0, 0
		c := Checksum(golden1Src, mcast, b)
		b[6], b[7] = byte(c>>8), byte(c)
		return b
	}
	for _, tc := range []struct {
		name string
		msg  []byte
		ttl  int
		want error
	}{
		{"ok", golden1, 255, nil},
		{"ttl", golden1, 64, ErrTTL},
		{"short", golden1[:7], 255, ErrTruncated},
		{"short-addrs", golden1[:10], 255, ErrTruncated},
		{"version2", mod(func(b []byte) []byte { b[0] = 0x21; return resum(b) }), 255, ErrVersion},
		{"type", mod(func(b []byte) []byte { b[0] = 0x32; return resum(b) }), 255, ErrType},
		{"checksum", mod(func(b []byte) []byte { b[7]++; return b }), 255, ErrChecksum},
		{"vrid", mod(func(b []byte) []byte { b[1] = 52; return resum(b) }), 255, ErrVRID},
		{"interval0", mod(func(b []byte) []byte { b[4], b[5] = 0xf0, 0; return resum(b) }), 255, ErrInterval},
		{"addrlist", mod(func(b []byte) []byte { b[11] = 99; return resum(b) }), 255, ErrAddrList},
		{"addrlist-owner-ok", mod(func(b []byte) []byte { b[11] = 99; b[2] = 255; return resum(b) }), 255, nil},
		{"count", mod(func(b []byte) []byte { b[3] = 40; return b }), 255, ErrTooManyAddrs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a Advertisement
			if err := Receive(&a, tc.msg, golden1Src, mcast, tc.ttl, want); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReservedBitsIgnored(t *testing.T) {
	// The 4 reserved bits before Max Adver Int are ignored on receipt.
	b := append([]byte(nil), golden1...)
	b[4] |= 0xf0
	var a Advertisement
	if err := a.UnmarshalBinary(b); err != nil || a.Interval != 100 {
		t.Fatalf("err %v interval %d", err, a.Interval)
	}
}

func TestAppendErrors(t *testing.T) {
	a := Advertisement{Interval: 0x1000}
	if _, err := a.AppendBinary(nil); !errors.Is(err, ErrIntervalBig) {
		t.Fatal(err)
	}
	if err := a.SetAddresses([]netip.Addr{netip.MustParseAddr("::1")}); !errors.Is(err, ErrAddress) {
		t.Fatal(err)
	}
	if err := a.SetAddresses(make([]netip.Addr, 33)); !errors.Is(err, ErrTooManyAddrs) {
		t.Fatal(err)
	}
}

func TestCentiseconds(t *testing.T) {
	for d, want := range map[int64]uint16{0: 1, 5e6: 1, 1e8: 10, 1e9: 100, 1e12: 4095} {
		if got := Centiseconds(time_(d)); got != want {
			t.Errorf("%d ns: %d, want %d", d, got, want)
		}
	}
}

func TestWireZeroAllocs(t *testing.T) {
	want := &Expect{VRID: 51, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.100")}}
	var a Advertisement
	buf := make([]byte, 0, 64)
	n := testing.AllocsPerRun(1000, func() {
		if err := Receive(&a, golden1, golden1Src, mcast, 255, want); err != nil {
			t.Fatal(err)
		}
		var err error
		if buf, err = a.AppendChecksummed(buf[:0], golden1Src, mcast); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocs per receive+send", n)
	}
}

func BenchmarkReceive(b *testing.B) {
	want := &Expect{VRID: 51, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.100")}}
	var a Advertisement
	b.ReportAllocs()
	for b.Loop() {
		if err := Receive(&a, golden1, golden1Src, mcast, 255, want); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendChecksummed(b *testing.B) {
	var a Advertisement
	_ = a.UnmarshalBinary(golden1)
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = a.AppendChecksummed(buf[:0], golden1Src, mcast)
	}
}

func FuzzReceive(f *testing.F) {
	f.Add(golden1, 255)
	f.Add(golden2, 255)
	f.Add(golden1[:9], 64)
	want := &Expect{VRID: 51, Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.100")}}
	f.Fuzz(func(t *testing.T, msg []byte, ttl int) {
		var a Advertisement
		err := Receive(&a, msg, golden1Src, mcast, ttl, want)
		if err != nil {
			return
		}
		// Whatever we accept must re-encode to the same bytes.
		b, err := a.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		m := append([]byte(nil), msg[:a.Len()]...)
		m[4] &= 0x0f // reserved bits are not preserved
		if !bytes.Equal(b, m) {
			t.Fatalf("re-encode % x != % x", b, m)
		}
	})
}

func time_(ns int64) time.Duration { return time.Duration(ns) }
