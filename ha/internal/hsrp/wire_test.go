package hsrp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"
)

// Goldens computed once with python3-scapy 2.5's HSRP layer:
//
//	raw(HSRP(opcode=0,state=16,hellotime=3,holdtime=10,priority=120,group=1,virtualIP="192.0.2.1"))
//	raw(HSRP(opcode=1,state=8,hellotime=1,holdtime=3,priority=200,group=7,auth=b"hagent\0\0",virtualIP="10.0.0.100"))
var (
	golden1 = mustHex("000010030a780100636973636f000000c0000201")
	golden2 = mustHex("0001080103c80700686167656e7400000a000064")
)

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestGolden(t *testing.T) {
	auth2, _ := AuthString("hagent")
	for _, tc := range []struct {
		m      Message
		golden []byte
	}{
		{Message{OpCode: OpHello, State: Active, Hellotime: 3, Holdtime: 10, Priority: 120, Group: 1, Auth: DefaultAuth, VIP: netip.MustParseAddr("192.0.2.1")}, golden1},
		{Message{OpCode: OpCoup, State: Standby, Hellotime: 1, Holdtime: 3, Priority: 200, Group: 7, Auth: auth2, VIP: netip.MustParseAddr("10.0.0.100")}, golden2},
	} {
		b, err := tc.m.AppendBinary([]byte{0xaa})
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != 0xaa || !bytes.Equal(b[1:], tc.golden) {
			t.Fatalf("got % x\nwant   % x", b[1:], tc.golden)
		}
		var back Message
		if err := Receive(&back, b[1:], tc.m.Group, &tc.m.Auth); err != nil || back != tc.m {
			t.Fatalf("round trip %v: %+v != %+v", err, back, tc.m)
		}
	}
}

func TestReceiveErrors(t *testing.T) {
	mod := func(i int, v byte) []byte { b := append([]byte(nil), golden1...); b[i] = v; return b }
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"ok", golden1, nil},
		{"short", golden1[:19], ErrTruncated},
		{"version", mod(0, 1), ErrVersion},
		{"opcode", mod(1, 3), ErrOpCode},
		{"state", mod(2, 3), ErrState},
		{"group", mod(6, 2), ErrGroup},
		{"auth", mod(8, 'C'), ErrAuth},
	} {
		var m Message
		if err := Receive(&m, tc.b, 1, &DefaultAuth); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	var m Message
	if err := m.UnmarshalBinary(mod(16, 0)[:16:16]); !errors.Is(err, ErrTruncated) {
		t.Fatal(err)
	}
	z := append(append([]byte(nil), golden1[:16]...), 0, 0, 0, 0)
	if err := m.UnmarshalBinary(z); err != nil || m.VIP.IsValid() {
		t.Fatal("zero VIP must decode as unset", err, m.VIP)
	}
	if _, err := AuthString("123456789"); err == nil {
		t.Fatal("long auth accepted")
	}
	if mac := VirtualMAC(0x0a).String(); mac != "00:00:0c:07:ac:0a" {
		t.Fatal(mac)
	}
}

func TestWireZeroAllocs(t *testing.T) {
	var m Message
	buf := make([]byte, 0, 32)
	n := testing.AllocsPerRun(1000, func() {
		if err := Receive(&m, golden1, 1, &DefaultAuth); err != nil {
			t.Fatal(err)
		}
		buf, _ = m.AppendBinary(buf[:0])
	})
	if n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func BenchmarkReceive(b *testing.B) {
	var m Message
	b.ReportAllocs()
	for b.Loop() {
		_ = Receive(&m, golden1, 1, &DefaultAuth)
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add(golden1)
	f.Add(golden2)
	f.Add(golden1[:10])
	f.Fuzz(func(t *testing.T, b []byte) {
		var m Message
		if m.UnmarshalBinary(b) != nil {
			return
		}
		out, err := m.AppendBinary(nil)
		if err != nil || !bytes.Equal(out, b[:Len]) {
			t.Fatalf("re-encode %v: % x != % x", err, out, b[:Len])
		}
	})
}
