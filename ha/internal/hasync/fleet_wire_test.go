package hasync

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/hagent/hagent/ha/internal/binding"
)

// goldenNAIExt is the NAI extension of a fleet router's record, written out
// by hand: type 0x83, length 17, "mr1@fleet.example".
const goldenNAIExt = "8311" + "6d723140666c6565742e6578616d706c65"

func fleetRecord(nai string) Record {
	r := sampleRouter()
	r.setNAI([]byte(nai))
	return r
}

func TestRecordNAIGolden(t *testing.T) {
	r := fleetRecord("mr1@fleet.example")
	plain := sampleRouter()
	want, _ := plain.AppendBinary([]byte("prefix"))
	want = append(want, mustHex(t, goldenNAIExt)...)
	got, err := r.AppendBinary([]byte("prefix"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("encode: %v\n got %x\nwant %x", err, got, want)
	}
	if r.Len() != plain.Len()+2+17 || len(got)-len("prefix") != r.Len() {
		t.Fatalf("Len %d", r.Len())
	}
	var q Record
	if err := q.UnmarshalBinary(got[len("prefix"):]); err != nil || q != r {
		t.Fatalf("decode: %v\n got %+v\nwant %+v", err, q, r)
	}
	if q.Key != binding.FleetKey([]byte("mr1@fleet.example")) || q.Key == 0 {
		t.Fatalf("key %x: every member must compute binding.FleetKey of the NAI", q.Key)
	}
	// The longest record: 8 networks, an endpoint, a NAI of MaxRecNAI.
	r.Nets = MaxRecPrefixes
	r.setNAI(bytes.Repeat([]byte{'m'}, MaxRecNAI))
	if b, _ := r.AppendBinary(nil); len(b) != MaxKnownRecord || MaxKnownRecord > MaxRecordLen {
		t.Fatalf("longest record %d bytes, MaxKnownRecord %d", len(b), MaxKnownRecord)
	}
	// A chunk of the longest records fits one datagram.
	k := testKeyring(t)
	full := TableReply{}
	for ExtSize(&r) <= ReplyRoom-len(full.Bindings) && full.NumBind < MaxBindPerReply {
		full.Bindings = AppendExt(full.Bindings, &r)
		full.NumBind++
	}
	if b := seal(t, k, TypeTableReply, full.AppendBinary); len(b) > MaxDatagram || full.NumBind != 9 {
		t.Errorf("a chunk of the longest fleet records: %d of them, %d bytes", full.NumBind, len(b))
	}
}

func TestRecordNAIMalformed(t *testing.T) {
	base := sampleRecord()
	fixed, _ := base.AppendBinary(nil)
	for _, c := range []struct {
		name string
		ext  string
		want error
	}{
		{"empty NAI", "8300", ErrMalformed},
		{"NAI longer than a binding keeps", "8339" + repeat("6d", 57), ErrMalformed},
		{"NAI cut", "8311" + "6d72", ErrMalformed},
		{"NAI before networks", "8301" + "6d" + "0205180a800100", ErrMalformed},
		{"networks, NAI", "0205180a800100" + "8301" + "6d", nil},
	} {
		var r Record
		if err := r.UnmarshalBinary(append(bytes.Clone(fixed), mustHex(t, c.ext)...)); err != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if c.want == nil && (r.NAILen != 1 || r.Key != binding.FleetKey([]byte("m")) || r.Unknown != 0) {
			t.Errorf("%s: %+v", c.name, r)
		}
	}
	// A record without the extension names no fleet router, whatever the
	// buffer held before.
	var r Record
	r.UnmarshalBinary(append(bytes.Clone(fixed), mustHex(t, goldenNAIExt)...))
	if r.UnmarshalBinary(fixed) != nil || r.NAILen != 0 || r.Key != 0 {
		t.Fatalf("stale NAI: %+v", r)
	}
}

// An Update Ack for a fleet router's record carries its key after the 20
// bytes (written out by hand: goldenAck's body, then the key).
func TestUpdateAckKey(t *testing.T) {
	key := binding.FleetKey([]byte("mr1@fleet.example"))
	a := UpdateAck{Home: 0x0a000005, ID: 0x0123456789abcdef, Origin: 0xc0a80102, Key: key}
	want := append(mustHex(t, "000000000a0000050123456789abcdefc0a80102"), byte(key>>56), byte(key>>48), byte(key>>40), byte(key>>32), byte(key>>24), byte(key>>16), byte(key>>8), byte(key))
	got, _ := a.AppendBinary(nil)
	if !bytes.Equal(got, want) {
		t.Fatalf("encode\n got %x\nwant %x", got, want)
	}
	var q UpdateAck
	if err := q.UnmarshalBinary(got); err != nil || q != a {
		t.Fatalf("decode: %v %+v", err, q)
	}
	if q.UnmarshalBinary(got[:20]) != nil || q.Key != 0 {
		t.Fatalf("a 20-byte ack after a keyed one keeps key %x", q.Key)
	}
	if q.UnmarshalBinary(append(got[:20:20], 0, 0, 0, 0, 0, 0, 0, 0)) != ErrMalformed {
		t.Fatal("a 28-byte ack with key 0 accepted")
	}
	if q.UnmarshalBinary(got[:24]) != ErrLength {
		t.Fatal("a 24-byte ack accepted")
	}
}

// A fleet write whose key is not its NAI's, or without its NAI, would be
// filed under another binding by every peer: refused before anything
// changes.
func TestRegisterNAIChecksKey(t *testing.T) {
	s := group(t, 2, nil)
	nai := []byte("mrA@fleet.example")
	e := binding.Entry{Home: fleetHome, CareOf: 1, HomeAgent: 0xc0a80101, ID: 5, Granted: 60}
	for name, c := range map[string]struct {
		key uint64
		nai []byte
	}{"no NAI": {binding.FleetKey(nai), nil}, "wrong key": {binding.FleetKey(nai) + 1, nai}, "NAI, no key": {0, nai},
		"NAI too long": {binding.FleetKey(bytes.Repeat([]byte{'m'}, 57)), bytes.Repeat([]byte{'m'}, 57)}} {
		e.Key = c.key
		if _, err := s.nodes[0].m.RegisterNAI(s.now, e, c.nai, nil); err != ErrFleetKey {
			t.Errorf("%s: %v, want ErrFleetKey", name, err)
		}
	}
	if s.nodes[0].tab.Len() != 0 {
		t.Fatal("a refused write was stored")
	}
	e.Key = binding.FleetKey(nai)
	if _, err := s.nodes[0].m.RegisterNAI(s.now, e, nai, nil); err != nil {
		t.Fatal(err)
	}
}

// A fleet router's write through replication (register, two peers receive
// and store it under its key with its NAI, two keyed acks) allocates
// nothing.
func TestMachineAllocsFleet(t *testing.T) {
	s := group(t, 3, func(c *Config) {
		c.AdmitNAI = func(home uint32, nai []byte, p netip.Prefix) string { return "" }
	})
	m := s.nodes[0].m
	out := make([]Action, 0, 16)
	nais := [][]byte{[]byte("mrA@fleet.example"), []byte("mrB@fleet.example")}
	// The update leaves m's buffer before m receives an ack: what m sends
	// then (a session challenge, say) may reuse it.
	upd := make([]byte, 0, MaxDatagram)
	id := uint64(100)
	n := testing.AllocsPerRun(500, func() {
		id++
		nai := nais[id%2]
		e := routerEntry(fleetHome, id, binding.MaxPrefixes)
		e.Key = binding.FleetKey(nai)
		var err error
		out, err = m.RegisterNAI(s.now, e, nai, out[:0])
		if err != nil || len(out) != 1 {
			panic(err)
		}
		upd = append(upd[:0], out[0].Pkt...)
		for _, p := range s.nodes[1:] {
			out = p.m.Receive(s.now, s.nodes[0].addr, 255, upd, out[:1])
			if e := p.tab.GetKey(fleetHome, e.Key); e == nil || e.ID != id || !bytes.Equal(p.tab.NAIOf(e), nai) {
				panic("not stored under its key with its NAI")
			}
			out = m.Receive(s.now, p.addr, 255, out[len(out)-1].Pkt, out[:1])
		}
	})
	if n != 0 {
		t.Errorf("fleet register + 2 peers receive + 2 keyed acks: %v allocs, want 0", n)
	}
	if got := m.Counters().UpdateAcksReceived; got == 0 {
		t.Fatal("no ack came back: the test measured the wrong path")
	}
}
