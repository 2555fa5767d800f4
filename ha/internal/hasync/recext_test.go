package hasync

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/hagent/hagent/ha/internal/binding"
)

// Goldens: a binding update whose record carries a NAT endpoint (UDP to
// 203.0.113.1 port 4500) and two networks (10.128.1.0/24, 10.128.2.0/28),
// and a table reply chunk with that record and a plain tombstone. The
// fixed part is the plain golden's; what follows it is written out by hand.
const (
	goldenBUExt = "0201005a07000000c0a8010211223344000000050002070800" + "1b77400a000005c0a80101c63364010123456789abcdefc0a80102" +
		"0108" + "cb007101" + "1194" + "03" + "00" + // endpoint
		"020a" + "18" + "0a800100" + "1c" + "0a800200" + // networks
		"247fd388dabdc53b7ce9b7f42c321d72"
	goldenReplyExt = "0205009207000000c0a8010211223344000000050000000200000000000000090000000" + "1" +
		"0138" + "0000" + "00020708001b77400a000005c0a80101c63364010123456789abcdefc0a80102" + "0108cb0071011194030002" + "0a180a8001001c0a800200" +
		"0122" + "0000" + "800000000036ee800a000006c0a80101c63364020000000000000010c0a80103" +
		"030cda678fd8bb9a1bd64585f1439de4"
)

func sampleRouter() Record {
	r := sampleRecord()
	r.NATAddr, r.NATPort, r.Encap = 0xcb007101, 4500, 3
	r.Nets = 2
	r.NetAddr[0], r.NetBits[0] = 0x0a800100, 24
	r.NetAddr[1], r.NetBits[1] = 0x0a800200, 28
	return r
}

func sampleTomb() Record {
	return Record{Flags: RecDereg, Remaining: 3600000, Home: 0x0a000006, HomeAgent: 0xc0a80101, CareOf: 0xc6336402, ID: 16, Origin: 0xc0a80103}
}

func TestRecordExtGoldens(t *testing.T) {
	k := testKeyring(t)
	rec := sampleRouter()
	checkGolden(t, "binding update with extensions", seal(t, k, TypeBindingUpdate, rec.AppendBinary), goldenBUExt)
	rep := TableReply{NumBind: 2, ID: 9, Chunk: 1}
	tomb := sampleTomb()
	rep.Bindings = AppendExt(AppendExt(nil, &rec), &tomb)
	checkGolden(t, "table reply with extensions", seal(t, k, TypeTableReply, rep.AppendBinary), goldenReplyExt)
	if rec.Len() != RecordLen+22 || ExtSize(&rec) != 4+RecordLen+22 {
		t.Errorf("Len %d, ExtSize %d", rec.Len(), ExtSize(&rec))
	}
}

func TestRecordExtRoundTrips(t *testing.T) {
	k := testKeyring(t)
	var got Record
	_, body := open(t, k, mustHex(t, goldenBUExt))
	if err := got.UnmarshalBinary(body); err != nil || got != sampleRouter() {
		t.Fatalf("update: %v\n got %+v\nwant %+v", err, got, sampleRouter())
	}
	var rep TableReply
	_, body = open(t, k, mustHex(t, goldenReplyExt))
	if err := rep.UnmarshalBinary(body); err != nil || rep.NumBind != 2 {
		t.Fatalf("reply: %v, %d bindings", err, rep.NumBind)
	}
	off, err := rep.Next(0, &got)
	if err != nil || got != sampleRouter() {
		t.Fatalf("reply binding 0: %v %+v", err, got)
	}
	if off, err = rep.Next(off, &got); err != nil || got != sampleTomb() || off != len(rep.Bindings) {
		t.Fatalf("reply binding 1: %v %+v at %d", err, got, off)
	}
	if err := rep.Binding(1, &got); err != nil || got != sampleTomb() {
		t.Fatalf("Binding(1): %v", err)
	}
	// Every count of networks, every encapsulation, the longest record.
	for n := range MaxRecPrefixes + 1 {
		for x := uint8(0); x <= maxEncap; x++ {
			r := sampleRecord()
			r.Encap, r.NATAddr, r.NATPort = x, 0xcb007100+uint32(n), 1024+uint16(n)
			for i := range n {
				r.NetAddr[i], r.NetBits[i] = 0x0a000000|uint32(i)<<8, uint8(24+i)
			}
			r.Nets = uint8(n)
			b, _ := r.AppendBinary(nil)
			var q Record
			if err := q.UnmarshalBinary(b); err != nil || q != r || len(b) != r.Len() {
				t.Fatalf("%d networks, encap %d: %v, %d bytes, Len %d", n, x, err, len(b), r.Len())
			}
			if n == MaxRecPrefixes && len(b) != MaxKnownRecord-recExtHdr-MaxRecNAI { // the longest without a NAI
				t.Errorf("longest record %d bytes, MaxKnownRecord %d", len(b), MaxKnownRecord)
			}
		}
	}
	// A chunk of the longest records fits one datagram.
	full := TableReply{}
	r := sampleRouter()
	r.Nets = MaxRecPrefixes
	for ExtSize(&r) <= ReplyRoom-len(full.Bindings) && full.NumBind < MaxBindPerReply {
		full.Bindings = AppendExt(full.Bindings, &r)
		full.NumBind++
	}
	if b := seal(t, k, TypeTableReply, full.AppendBinary); len(b) > MaxDatagram || full.NumBind != 16 {
		t.Errorf("a chunk of the longest records: %d of them, %d bytes", full.NumBind, len(b))
	}
	full.Bindings = AppendExt(full.Bindings, &r)
	full.NumBind++
	if _, err := full.AppendBinary(nil); err != ErrTooLong {
		t.Errorf("an overfull chunk encoded: %v", err)
	}
}

// What a receiver refuses in the extensions, and what it skips.
func TestRecordExtMalformed(t *testing.T) {
	base := sampleRecord()
	fixed, _ := base.AppendBinary(nil)
	for _, c := range []struct {
		name string
		ext  string
		want error
	}{
		{"no extensions", "", nil},
		{"skippable unknown", "7f00", nil},
		{"must-understand unknown", "8000", nil},
		{"endpoint, then an unknown type", "0108cb00710111940300" + "0300", nil},
		{"header cut", "01", ErrMalformed},
		{"value cut", "0108cb007101", ErrMalformed},
		{"endpoint too short", "0107cb007101119403", ErrMalformed},
		{"endpoint all zero", "01080000000000000000", ErrMalformed},
		{"undefined encapsulation", "0108cb00710111940400", ErrMalformed},
		{"udp without a port", "0108cb00710100000300", ErrMalformed},
		{"udp without an address", "01080000000011940300", ErrMalformed},
		{"no networks", "0200", ErrMalformed},
		{"network cut", "0204180a80", ErrMalformed},
		{"nine networks", "022d" + repeat("200a000001", 9), ErrMalformed},
		{"prefix length 33", "0205210a800100", ErrMalformed},
		{"host bits set", "0205180a800101", ErrMalformed},
		{"types out of order", "0205180a800100" + "0108cb00710111940300", ErrMalformed},
		{"a type twice", "0205180a800100" + "0205180a800200", ErrMalformed},
		{"too long", "7fff" + repeat("00", 255), ErrLength},
	} {
		b := append(bytes.Clone(fixed), mustHex(t, c.ext)...)
		var r Record
		if err := r.UnmarshalBinary(b); err != c.want {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	var r Record
	if r.UnmarshalBinary(append(bytes.Clone(fixed), 0x80, 0)) != nil || r.Unknown != 0x80 {
		t.Error("a must-understand unknown type is not noted")
	}
	// A binding extension whose length is below a plain record's, or runs
	// past the body, or a body longer than its NumBind extensions.
	rec := sampleRouter()
	one := AppendExt(nil, &rec)
	for name, mod := range map[string]func([]byte) []byte{
		"short extension": func(b []byte) []byte { b[ReplyFixed+1] = ExtLen - 3; return b },
		"long extension":  func(b []byte) []byte { b[ReplyFixed+1]++; return b },
		"trailing bytes":  func(b []byte) []byte { return append(b, 0) },
	} {
		body := append(make([]byte, ReplyFixed), one...)
		body[3] = 1
		var rep TableReply
		if rep.UnmarshalBinary(mod(body)) == nil {
			t.Errorf("%s accepted", name)
		}
	}
}

func repeat(s string, n int) string { return string(bytes.Repeat([]byte(s), n)) }

// The registration path's update, with a full set of networks and an
// endpoint: encode, seal, open, decode allocate nothing.
func TestRecordExtAllocs(t *testing.T) {
	k := testKeyring(t)
	buf := make([]byte, 0, 256)
	rec := sampleRouter()
	rec.Nets = MaxRecPrefixes
	h := testHeader(TypeBindingUpdate)
	n := testing.AllocsPerRun(200, func() {
		b, _ := h.AppendBinary(buf[:0])
		b, _ = rec.AppendBinary(b)
		b, _ = k.Seal(b, 0)
		var hh Header
		var r Record
		if hh.UnmarshalBinary(b) != nil || k.Open(b) != nil || r.UnmarshalBinary(Body(b)) != nil || r.Nets != MaxRecPrefixes {
			panic("bu")
		}
	})
	if n != 0 {
		t.Errorf("update with %d networks: %v allocs, want 0", MaxRecPrefixes, n)
	}
}

// canonicalRecord is the encoding a record parsed from b re-encodes to: the
// fixed part, then the extensions it knows with the endpoint's reserved
// byte cleared (unknown ones are skipped, so they are not re-sent).
func canonicalRecord(b []byte) []byte {
	c := bytes.Clone(b[:RecordLen])
	for p := b[RecordLen:]; len(p) >= 2; p = p[2+int(p[1]):] {
		switch v := p[:2+int(p[1])]; v[0] {
		case RecExtEndpoint:
			c = append(append(c, v[:len(v)-1]...), 0)
		case RecExtPrefixes, RecExtNAI:
			c = append(c, v...)
		}
	}
	return c
}

// FuzzRecordExt: a record with extensions never panics the parser, parses
// to the same record after re-encoding, and re-encodes canonically.
func FuzzRecordExt(f *testing.F) {
	for _, g := range []string{goldenBUExt, goldenBU} {
		b, _ := hex.DecodeString(g)
		f.Add(b[HeaderLen : len(b)-ICVLen])
	}
	f.Add(append(mustHex(f, goldenBUExt)[HeaderLen:HeaderLen+RecordLen], 0x7f, 1, 0, 0x81, 0))
	f.Add(append(mustHex(f, goldenBUExt)[HeaderLen:len(mustHex(f, goldenBUExt))-ICVLen], mustHex(f, goldenNAIExt)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		var r, q Record
		if r.UnmarshalBinary(in) != nil {
			return
		}
		out, err := r.AppendBinary(nil)
		if err != nil || len(out) != r.Len() {
			t.Fatalf("re-encode: %v, %d bytes, Len %d", err, len(out), r.Len())
		}
		if want := canonicalRecord(in); !bytes.Equal(out, want) {
			t.Fatalf("re-encode:\n got %x\nwant %x", out, want)
		}
		if err := q.UnmarshalBinary(out); err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		r.Unknown = 0 // not re-sent: this member refuses such a record
		if q != r {
			t.Fatalf("round trip:\n got %+v\nwant %+v", q, r)
		}
	})
}

// The wire's bounds are the table's: a record carries every network and
// encapsulation an entry can hold.
func TestRecordMatchesEntry(t *testing.T) {
	if MaxRecPrefixes != binding.MaxPrefixes || maxEncap != uint8(binding.EncapUDP) || !binding.Encap(maxEncap).Valid() || binding.Encap(maxEncap+1).Valid() {
		t.Fatalf("record: %d networks, encapsulations up to %d; entry: %d, %d", MaxRecPrefixes, maxEncap, binding.MaxPrefixes, binding.EncapUDP)
	}
}
