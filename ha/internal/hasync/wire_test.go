package hasync

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// Goldens: hand-laid bytes per spec offsets; ICVs computed independently with
// Python's hmac module (HMAC-SHA-256 over header+body, first 16 bytes).
var testKey = []byte("hagent-test-group-key-7")

const (
	goldenBU    = "0201004407000000c0a80102112233440000000500020708001b77400a000005c0a80101c63364010123456789abcdefc0a80102" + "8135011dcc55d1a16deb380d691d3bed"
	goldenAck   = "0202003807000000c0a801021122334400000005000000000a0000050123456789abcdefc0a80102" + "9926b4e0a5c3ba5b1911a80a3abf9539"
	goldenReq   = "0203003407000000c0a8010211223344000000050102000000000009c0a80103c0a80104" + "fa8b98a8372c7b1e524c6a67a3ad6722"
	goldenList  = "0204004807000000c0a801021122334400000005020000000000000900000003c0a80102c0a8010280000000c0a80103c0a80103c0000000" + "c67f8022b15f10f50120d72d9e5ffded"
	goldenReply = "0205005807000000c0a8010211223344000000050000000100000002000000090000000101220000800000000036ee800a000006c0a80101c63364020000000000000010c0a80103" + "d4aa853077bd310447f647287e31046d"
	goldenRAck  = "0206003407000000c0a80102112233440000000500000000000000020000000900000001" + "ac7fb70a738cdb0fa25ddc34667576df"
	goldenChal  = "0209003007000000c0a801021122334400000005c0a801030102030405060708" + "808ad3f70299cbb48ad31f5578c0ccb6"
	goldenResp  = "020a003007000000c0a801021122334400000005c0a801030102030405060708" + "83a7373a8e85c91b9637f670299975a0"
	goldenDgICV = "b9a6f9b1089949b107e805fed9d7237f"
)

func goldenDigest() string {
	return "0207043007000000c0a80102112233440000000500000000"[:40] + "c0070000" + "00000003" + "00000001" +
		"0102030405060708" + strings.Repeat("00", 8*126) + strings.Repeat("ff", 8) + goldenDgICV
}

func testKeyring(t testing.TB) *Keyring {
	k, err := NewKeyring([]Key{{ID: 3, Secret: []byte("another-key-of-16-bytes")}, {ID: 7, Secret: testKey}}, 7)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testHeader(typ uint8) Header {
	return Header{Version: Version, Type: typ, Sender: 0xc0a80102, Session: 0x11223344, Seq: 5}
}

func sampleRecord() Record {
	return Record{MNFlags: 0x02, Granted: 1800, Remaining: 1800000, Home: 0x0a000005, HomeAgent: 0xc0a80101,
		CareOf: 0xc6336401, ID: 0x0123456789abcdef, Origin: 0xc0a80102}
}

// seal builds a whole message after a prefix, proving append semantics.
func seal(t testing.TB, k *Keyring, typ uint8, body func([]byte) ([]byte, error)) []byte {
	prefix := []byte("PREFIX")
	b := append([]byte(nil), prefix...)
	h := testHeader(typ)
	b, _ = h.AppendBinary(b)
	b, err := body(b)
	if err != nil {
		t.Fatal(err)
	}
	b, err = k.Seal(b, len(prefix))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, prefix) {
		t.Fatal("prefix clobbered")
	}
	return b[len(prefix):]
}

func checkGolden(t *testing.T, name string, got []byte, want string) {
	t.Helper()
	if g := hex.EncodeToString(got); g != want {
		t.Errorf("%s:\n got %s\nwant %s", name, g, want)
	}
}

func TestGoldens(t *testing.T) {
	k := testKeyring(t)
	rec := sampleRecord()
	checkGolden(t, "binding update", seal(t, k, TypeBindingUpdate, rec.AppendBinary), goldenBU)
	ack := UpdateAck{Home: 0x0a000005, ID: 0x0123456789abcdef, Origin: 0xc0a80102}
	checkGolden(t, "update ack", seal(t, k, TypeUpdateAck, ack.AppendBinary), goldenAck)
	req := TableRequest{Attempt: 1, NumExclude: 2, ID: 9, Exclude: [MaxExclude]uint32{0xc0a80103, 0xc0a80104}}
	checkGolden(t, "table request", seal(t, k, TypeTableRequest, req.AppendBinary), goldenReq)
	l := HAList{NumHA: 2, ID: 9, MoreBind: 3}
	l.HAs[0] = HAEntry{Addr: 0xc0a80102, ID: 0xc0a80102, Flags: HAInitialized}
	l.HAs[1] = HAEntry{Addr: 0xc0a80103, ID: 0xc0a80103, Flags: HAInitialized | HAAlive}
	checkGolden(t, "ha list", seal(t, k, TypeHAList, l.AppendBinary), goldenList)
	tomb := Record{Flags: RecDereg, Remaining: 3600000, Home: 0x0a000006, HomeAgent: 0xc0a80101, CareOf: 0xc6336402, ID: 16, Origin: 0xc0a80103}
	rep := TableReply{NumBind: 1, MoreBind: 2, ID: 9, Chunk: 1, Bindings: AppendExt(nil, &tomb)}
	checkGolden(t, "table reply", seal(t, k, TypeTableReply, rep.AppendBinary), goldenReply)
	ra := ReplyAck{MoreBind: 2, ID: 9, Chunk: 1}
	checkGolden(t, "reply ack", seal(t, k, TypeReplyAck, ra.AppendBinary), goldenRAck)
	d := Digest{Flags: DigestInit | DigestAnswer, Live: 3, Tombs: 1}
	d.Buckets[0] = 0x0102030405060708
	d.Buckets[127] = ^uint64(0)
	checkGolden(t, "digest", seal(t, k, TypeDigest, d.AppendBinary), goldenDigest())
	c := Challenge{Peer: 0xc0a80103, Nonce: 0x0102030405060708}
	checkGolden(t, "session challenge", seal(t, k, TypeChallenge, c.AppendBinary), goldenChal)
	checkGolden(t, "session response", seal(t, k, TypeResponse, c.AppendBinary), goldenResp)
}

func mustHex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// open authenticates and parses a whole message into its header and body.
func open(t testing.TB, k *Keyring, b []byte) (Header, []byte) {
	t.Helper()
	var h Header
	if err := h.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if err := k.Open(b); err != nil {
		t.Fatal(err)
	}
	return h, Body(b)
}

func TestRoundTrips(t *testing.T) {
	k := testKeyring(t)
	h, body := open(t, k, mustHex(t, goldenBU))
	if h != (Header{Version: 2, Type: 1, Length: 68, KeyID: 7, Sender: 0xc0a80102, Session: 0x11223344, Seq: 5}) {
		t.Errorf("header %+v", h)
	}
	var rec Record
	if err := rec.UnmarshalBinary(body); err != nil || rec != sampleRecord() {
		t.Errorf("record %+v %v", rec, err)
	}
	var ack UpdateAck
	if _, body := open(t, k, mustHex(t, goldenAck)); ack.UnmarshalBinary(body) != nil || ack != (UpdateAck{Home: 0x0a000005, ID: 0x0123456789abcdef, Origin: 0xc0a80102}) {
		t.Errorf("ack %+v", ack)
	}
	var req TableRequest
	if _, body := open(t, k, mustHex(t, goldenReq)); req.UnmarshalBinary(body) != nil || req.ID != 9 || req.Attempt != 1 || !req.Excludes(0xc0a80104) || req.Excludes(0xc0a80102) {
		t.Errorf("request %+v", req)
	}
	var l HAList
	if _, body := open(t, k, mustHex(t, goldenList)); l.UnmarshalBinary(body) != nil || l.NumHA != 2 || l.HAs[1] != (HAEntry{0xc0a80103, 0xc0a80103, 0xc0}) || l.MoreBind != 3 {
		t.Errorf("list %+v", l.HAs[:2])
	}
	var rep TableReply
	if _, body := open(t, k, mustHex(t, goldenReply)); rep.UnmarshalBinary(body) != nil || rep.NumBind != 1 || rep.Chunk != 1 || rep.MoreBind != 2 {
		t.Errorf("reply %+v", rep)
	}
	if err := rep.Binding(0, &rec); err != nil || !rec.Dereg() || rec.ID != 16 || rec.Remaining != 3600000 {
		t.Errorf("reply binding %+v %v", rec, err)
	}
	var ra ReplyAck
	if _, body := open(t, k, mustHex(t, goldenRAck)); ra.UnmarshalBinary(body) != nil || ra != (ReplyAck{MoreBind: 2, ID: 9, Chunk: 1}) {
		t.Errorf("reply ack %+v", ra)
	}
	var d Digest
	if _, body := open(t, k, mustHex(t, goldenDigest())); d.UnmarshalBinary(body) != nil || d.Live != 3 || d.Buckets[127] != ^uint64(0) || d.Flags != 0xc0 {
		t.Errorf("digest %+v", d.Flags)
	}
	var c Challenge
	if h, body := open(t, k, mustHex(t, goldenChal)); h.Type != TypeChallenge || c.UnmarshalBinary(body) != nil || c != (Challenge{Peer: 0xc0a80103, Nonce: 0x0102030405060708}) {
		t.Errorf("challenge %+v", c)
	}
	if c.UnmarshalBinary(make([]byte, ChallengeBody)) != ErrMalformed || c.UnmarshalBinary(make([]byte, 11)) != ErrTruncated {
		t.Error("challenge with agent id or nonce 0, or short, accepted")
	}
	// A full reply fits one MTU.
	full := TableReply{NumBind: MaxBindPerReply}
	for range MaxBindPerReply {
		r := sampleRecord()
		full.Bindings = AppendExt(full.Bindings, &r)
	}
	b := seal(t, k, TypeTableReply, full.AppendBinary)
	if len(b) > MaxDatagram || MaxBindPerReply != 39 {
		t.Errorf("full reply %d bytes, %d bindings", len(b), MaxBindPerReply)
	}
}

func TestAuthRejects(t *testing.T) {
	k := testKeyring(t)
	good := mustHex(t, goldenBU)
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0x10
		var h Header
		if h.UnmarshalBinary(b) == nil && k.Open(b) == nil {
			t.Fatalf("flipping byte %d still authenticates", i)
		}
	}
	other, _ := NewKeyring([]Key{{ID: 7, Secret: []byte("a-different-secret-key")}}, 7)
	if err := other.Open(good); !errors.Is(err, ErrAuth) {
		t.Errorf("wrong secret: %v", err)
	}
	nokey, _ := NewKeyring([]Key{{ID: 8, Secret: testKey}}, 8)
	if err := nokey.Open(good); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown key: %v", err)
	}
	var h Header
	if err := h.UnmarshalBinary(good[:len(good)-1]); !errors.Is(err, ErrTruncated) {
		t.Errorf("short: %v", err)
	}
	if err := h.UnmarshalBinary(append(bytes.Clone(good), 0)); !errors.Is(err, ErrLength) {
		t.Errorf("long: %v", err)
	}
	if _, err := NewKeyring([]Key{{ID: 1, Secret: []byte("short")}}, 1); err == nil {
		t.Error("short secret accepted")
	}
	if _, err := NewKeyring([]Key{{ID: 1, Secret: testKey}}, 2); err == nil {
		t.Error("missing send key accepted")
	}
}

func TestReplayWindow(t *testing.T) {
	var w ReplayWindow
	if w.Check(7, 10) {
		t.Fatal("a session never proven accepted")
	}
	w.Prove(7, 10, 0)
	if w.Check(7, 10) {
		t.Error("duplicate accepted")
	}
	// Sent before the Response that proved the session: of unknown age
	// (perhaps withheld on the path), never fresh, and stale, not a
	// duplicate.
	if w.Check(7, 9) || !w.Stale(9) || w.Stale(10) {
		t.Errorf("before the proof: fresh %v, stale %v; the proof itself stale %v", w.Check(7, 9), w.Stale(9), w.Stale(10))
	}
	for _, s := range []uint32{12, 11, 74} {
		if !w.Check(7, s) {
			t.Errorf("fresh %d rejected", s)
		}
		w.Accept(s)
	}
	// The window holds Top and the 63 below it: 74-63 = 11 is the oldest.
	if w.Check(7, 11) || w.Check(7, 10) || w.Check(7, 74) {
		t.Error("replay or too old accepted")
	}
	if w.Stale(12) || w.Stale(74) {
		t.Error("a duplicate after the proof counted as stale")
	}
	if !w.Check(7, 73) || !w.Check(7, 13) {
		t.Error("in-window fresh rejected")
	}
	if w.Check(9, 1) || w.Check(0, 5) {
		t.Error("an unproven session (a restart or an earlier one) or session 0 accepted")
	}
	w.Prove(9, 1, 0)
	if w.Check(7, 100) || !w.Check(9, 2) {
		t.Error("after proving a new session: the old one accepted or the new one refused")
	}
}

// Sequence numbers wrap (serial-number arithmetic, spec §3 step 6): a
// sender that started near 0xffffffff is heard after the wrap, and the
// window spans it.
func TestReplayWindowWrap(t *testing.T) {
	var w ReplayWindow
	w.Prove(7, 0xfffffffc, 0)
	for _, s := range []uint32{0xfffffffe, 0xffffffff, 0, 1, 2} {
		if !w.Check(7, s) {
			t.Fatalf("fresh %#x after the wrap rejected", s)
		}
		w.Accept(s)
	}
	if w.Check(7, 0xffffffff) || w.Check(7, 0xfffffffe) || w.Check(7, 1) {
		t.Error("replay across the wrap accepted")
	}
	if !w.Check(7, 0xfffffffd) {
		t.Error("unseen in-window sequence before the wrap rejected")
	}
	// Half the number space ahead is behind, not ahead.
	if w.Check(7, 2+1<<31) {
		t.Error("a sequence 2^31 ahead accepted as newer")
	}
}

func TestMalformed(t *testing.T) {
	var r Record
	bad := make([]byte, RecordLen)
	if r.UnmarshalBinary(bad) != ErrMalformed { // home address 0
		t.Error("home 0 accepted")
	}
	bad[8], bad[0] = 1, 0x01
	if r.UnmarshalBinary(bad) != ErrMalformed {
		t.Error("reserved flag accepted")
	}
	var q TableRequest
	if q.UnmarshalBinary([]byte{0, 9, 0, 0, 0, 0, 0, 1}) != ErrMalformed {
		t.Error("9 excludes accepted")
	}
	var l HAList
	if l.UnmarshalBinary(append([]byte{101}, make([]byte, 11)...)) != ErrMalformed {
		t.Error("101 HAs accepted")
	}
	var rep TableReply
	body := make([]byte, ReplyFixed+ExtLen)
	body[3] = 1
	if rep.UnmarshalBinary(body) != ErrMalformed {
		t.Error("bad extension type accepted")
	}
}

// Hot path: BU and Ack encode + seal + open + decode allocate nothing.
func TestWireAllocs(t *testing.T) {
	k := testKeyring(t)
	buf := make([]byte, 0, 256)
	rec := sampleRecord()
	h := testHeader(TypeBindingUpdate)
	ack := UpdateAck{Home: 1, ID: 2, Origin: 3}
	n := testing.AllocsPerRun(200, func() {
		b, _ := h.AppendBinary(buf[:0])
		b, _ = rec.AppendBinary(b)
		b, _ = k.Seal(b, 0)
		var hh Header
		var r Record
		if hh.UnmarshalBinary(b) != nil || k.Open(b) != nil || r.UnmarshalBinary(Body(b)) != nil {
			panic("bu")
		}
		b, _ = h.AppendBinary(buf[:0])
		b, _ = ack.AppendBinary(b)
		b, _ = k.Seal(b, 0)
		var a UpdateAck
		if hh.UnmarshalBinary(b) != nil || k.Open(b) != nil || a.UnmarshalBinary(Body(b)) != nil {
			panic("ack")
		}
	})
	if n != 0 {
		t.Errorf("BU+Ack encode/seal/open/decode: %v allocs, want 0", n)
	}
}

func BenchmarkUpdateSealOpen(b *testing.B) {
	k := testKeyring(b)
	buf := make([]byte, 0, 256)
	rec := sampleRecord()
	h := testHeader(TypeBindingUpdate)
	b.ReportAllocs()
	for b.Loop() {
		p, _ := h.AppendBinary(buf[:0])
		p, _ = rec.AppendBinary(p)
		p, _ = k.Seal(p, 0)
		var hh Header
		var r Record
		if hh.UnmarshalBinary(p) != nil || k.Open(p) != nil || r.UnmarshalBinary(Body(p)) != nil {
			b.Fatal("bad")
		}
	}
}

// Fuzz targets: one per message; each re-encodes what parsed and demands the
// same bytes (canonical encoding) and never panics.
func fuzzBody[T interface {
	UnmarshalBinary([]byte) error
	AppendBinary([]byte) ([]byte, error)
}](f *testing.F, golden string, v T, canonical func([]byte) []byte) {
	b, _ := hex.DecodeString(golden)
	f.Add(b[HeaderLen : len(b)-ICVLen])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		if v.UnmarshalBinary(in) != nil {
			return
		}
		out, err := v.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := canonical(in); !bytes.Equal(out, want) {
			t.Fatalf("re-encode:\n got %x\nwant %x", out, want)
		}
	})
}

// clearReserved zeroes the reserved bytes a parser ignores.
func clearReserved(idx ...int) func([]byte) []byte {
	return func(b []byte) []byte {
		c := bytes.Clone(b)
		for _, i := range idx {
			if i < len(c) {
				c[i] = 0
			}
		}
		return c
	}
}

func FuzzBindingUpdate(f *testing.F) {
	// A plain record re-encodes byte for byte; one with extensions drops
	// those it does not know (canonicalRecord).
	fuzzBody(f, goldenBU, &Record{}, canonicalRecord)
}
func FuzzUpdateAck(f *testing.F) {
	fuzzBody(f, goldenAck, &UpdateAck{}, clearReserved(1, 2, 3))
}
func FuzzTableRequest(f *testing.F) {
	fuzzBody(f, goldenReq, &TableRequest{}, clearReserved(2, 3))
}
func FuzzHAList(f *testing.F) {
	fuzzBody(f, goldenList, &HAList{}, func(b []byte) []byte {
		c := clearReserved(1, 2, 3)(b)
		for i := ListFixedLen; i+ListEntryLen <= len(c); i += ListEntryLen {
			c[i+9], c[i+10], c[i+11] = 0, 0, 0
		}
		return c
	})
}
func FuzzTableReply(f *testing.F) {
	// Bindings are kept raw (reserved bytes included), so only byte 1 changes.
	fuzzBody(f, goldenReply, &TableReply{}, clearReserved(1))
}
func FuzzReplyAck(f *testing.F) {
	fuzzBody(f, goldenRAck, &ReplyAck{}, clearReserved(1, 2, 3))
}
func FuzzChallenge(f *testing.F) {
	fuzzBody(f, goldenChal, &Challenge{}, clearReserved())
}
func FuzzDigest(f *testing.F) {
	fuzzBody(f, goldenDigest(), &Digest{}, clearReserved(2, 3))
}

// FuzzMessage feeds whole datagrams to header parsing and authentication.
func FuzzMessage(f *testing.F) {
	for _, g := range []string{goldenBU, goldenAck, goldenReq, goldenList, goldenReply, goldenRAck, goldenDigest(), goldenChal, goldenResp, goldenBUExt, goldenReplyExt} {
		b, _ := hex.DecodeString(g)
		f.Add(b)
	}
	k := testKeyring(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		var h Header
		if h.UnmarshalBinary(in) != nil {
			return
		}
		_ = k.Open(in)
	})
}

// An unseen sequence is fresh while the later one that passed it is
// recent (reordering); once that was at least the late limit ago it is
// withheld, not reordered: refused, and stale rather than a duplicate.
func TestReplayWindowAges(t *testing.T) {
	const late = 5 * sec
	var w ReplayWindow
	w.Prove(7, 10, 0)
	w.Age(1*sec, late)
	w.Accept(12) // 11 skipped at 1 s
	w.Age(6*sec, late)
	if !w.Check(7, 11) {
		t.Fatal("an unseen sequence passed 5 s ago, within one aging step, refused")
	}
	w.Age(11*sec, late)
	if w.Check(7, 11) || !w.Stale(11) {
		t.Errorf("sequence 11, passed 10 s ago: fresh %v, stale %v; want refused as stale", w.Check(7, 11), w.Stale(11))
	}
	if w.Check(7, 12) || w.Stale(12) {
		t.Error("a duplicate accepted or counted stale")
	}
	if !w.Check(7, 13) {
		t.Error("a later sequence refused")
	}
}

// A sequence at or before the latest anchor (a Response to a challenge of
// ours) is fresh only while the anchor before it is at most the late limit
// old: it was sent after that anchor's challenge and no later one is
// known. After the Response that proved the session, nothing before it is.
func TestReplayWindowAnchors(t *testing.T) {
	const late = 5 * sec
	var w ReplayWindow
	w.Prove(7, 10, 0)
	w.Recent(10, 0)
	w.Age(1*sec, late)
	w.Accept(12) // 11 skipped
	w.Accept(13) // the Response to a challenge first sent at 2 s
	w.Recent(13, 2*sec)
	w.Age(4*sec, late)
	if !w.Check(7, 11) || w.Check(7, 9) {
		t.Fatalf("at 4 s: 11 (sent after the challenge of 0 s) fresh %v, 9 (before the proof) fresh %v", w.Check(7, 11), w.Check(7, 9))
	}
	w.Age(5*sec+1, late)
	if w.Check(7, 11) || !w.Stale(11) {
		t.Errorf("sequence 11, known only to be sent after 0 s, at 5 s + 1 ns: fresh %v, stale %v; want refused as stale", w.Check(7, 11), w.Stale(11))
	}
	if !w.Check(7, 14) {
		t.Error("a sequence after the latest anchor refused")
	}
}
