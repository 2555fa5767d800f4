package mip

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

// Key and goldens. The authenticators were computed independently with
// python3's hmac module:
//
//	hmac.new(b"hagent-test-key!", msg_through_spi, hashlib.md5).hexdigest()
var testKey = []byte("hagent-test-key!")

const (
	// Request: flags T|G, lifetime 1800, home 10.1.0.5, HA 192.0.2.1,
	// care-of 198.51.100.7, ID 0xe5a7a441b2f38920, NAI "mn1@example.net",
	// MH auth SPI 256.
	goldenRequestHex = "010a07080a010005c0000201c6336407e5a7a441b2f38920" +
		"830f6d6e31406578616d706c652e6e6574" +
		"2014" + "00000100" + "a023357f42e8a7e642e7d2cc3f2cd031"
	// The same without the NAI.
	goldenRequestNoNAIHex = "010a07080a010005c0000201c6336407e5a7a441b2f38920" +
		"2014" + "00000100" + "50cb3e826bd2bb0553bef9c6e98f7543"
	// Reply: accepted, lifetime 1800, home 10.1.0.5, HA 192.0.2.1, same ID
	// and NAI, MH auth SPI 256.
	goldenReplyHex = "030007080a010005c0000201e5a7a441b2f38920" +
		"830f6d6e31406578616d706c652e6e6574" +
		"2014" + "00000100" + "126b3617c7add95dfead70e2c03b82bb"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testRequest() Request {
	return Request{
		Flags:     FlagT | FlagG,
		Lifetime:  1800,
		HomeAddr:  netip.MustParseAddr("10.1.0.5"),
		HomeAgent: netip.MustParseAddr("192.0.2.1"),
		CareOf:    netip.MustParseAddr("198.51.100.7"),
		ID:        0xe5a7a441b2f38920,
		NAI:       []byte("mn1@example.net"),
	}
}

func testReply() Reply {
	return Reply{
		Code:      CodeAccepted,
		Lifetime:  1800,
		HomeAddr:  netip.MustParseAddr("10.1.0.5"),
		HomeAgent: netip.MustParseAddr("192.0.2.1"),
		ID:        0xe5a7a441b2f38920,
		NAI:       []byte("mn1@example.net"),
	}
}

func TestRequestGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		nai    bool
		golden string
	}{{"nai", true, goldenRequestHex}, {"no-nai", false, goldenRequestNoNAIHex}} {
		t.Run(tc.name, func(t *testing.T) {
			r := testRequest()
			if !tc.nai {
				r.NAI = nil
			}
			prefix := []byte("xyz")
			b, err := r.AppendBinary(append([]byte(nil), prefix...))
			if err != nil {
				t.Fatal(err)
			}
			b = AppendMHAuth(b, len(prefix), 256, NewHMACMD5(testKey))
			want := unhex(t, tc.golden)
			if !bytes.HasPrefix(b, prefix) || !bytes.Equal(b[len(prefix):], want) {
				t.Fatalf("got  %x\nwant xyz%x", b, want)
			}

			var p Request
			if err := p.UnmarshalBinary(want); err != nil {
				t.Fatal(err)
			}
			if !Verify(want, p.MHAuth, NewHMACMD5(testKey), new([64]byte)) {
				t.Fatal("golden authenticator does not verify")
			}
			if p.MHAuth.SPI != 256 || p.MHAuth.Covered != len(want)-16 || len(p.MHAuth.Authenticator) != 16 {
				t.Fatalf("MHAuth = %+v", p.MHAuth)
			}
			p.MHAuth = AuthExt{}
			if !reflect.DeepEqual(p, r) {
				t.Fatalf("parsed %+v\nwant   %+v", p, r)
			}
		})
	}
}

func TestReplyGolden(t *testing.T) { checkReplyGolden(t, testReply(), goldenReplyHex) }

// checkReplyGolden appends r after a prefix byte, seals it with the test
// key, compares it with golden, and parses the golden back into r.
func checkReplyGolden(t *testing.T, r Reply, golden string) {
	t.Helper()
	b, err := r.AppendBinary([]byte{0xee})
	if err != nil {
		t.Fatal(err)
	}
	b = AppendMHAuth(b, 1, 256, NewHMACMD5(testKey))
	want := unhex(t, golden)
	if b[0] != 0xee || !bytes.Equal(b[1:], want) {
		t.Fatalf("got  %x\nwant ee%x", b, want)
	}
	var p Reply
	if err := p.UnmarshalBinary(want); err != nil {
		t.Fatal(err)
	}
	if !Verify(want, p.MHAuth, NewHMACMD5(testKey), new([64]byte)) {
		t.Fatal("golden reply authenticator does not verify")
	}
	p.MHAuth = AuthExt{}
	if !reflect.DeepEqual(p, r) {
		t.Fatalf("parsed %+v\nwant   %+v", p, r)
	}
}

// sealedRequestGolden appends r after a prefix, seals it with the test key
// and compares it with golden; it returns the golden parsed back, its
// authenticator verified and cleared, no extension skipped. The caller
// checks (and clears) its extension's Authenticated before comparing with r.
func sealedRequestGolden(t *testing.T, r Request, golden string) Request {
	t.Helper()
	prefix := []byte("xyz")
	b, err := r.AppendBinary(append([]byte(nil), prefix...))
	if err != nil {
		t.Fatal(err)
	}
	b = AppendMHAuth(b, len(prefix), 256, NewHMACMD5(testKey))
	want := unhex(t, golden)
	if !bytes.HasPrefix(b, prefix) || !bytes.Equal(b[len(prefix):], want) {
		t.Fatalf("got  %x\nwant xyz%x", b, want)
	}
	var p Request
	if err := p.UnmarshalBinary(want); err != nil {
		t.Fatal(err)
	}
	if !Verify(want, p.MHAuth, NewHMACMD5(testKey), new([64]byte)) {
		t.Fatal("golden authenticator does not verify")
	}
	if p.IgnoredExt != 0 {
		t.Errorf("IgnoredExt %d: an extension was skipped, not parsed", p.IgnoredExt)
	}
	p.MHAuth = AuthExt{}
	return p
}

func TestVerifyRejects(t *testing.T) {
	msg := unhex(t, goldenRequestHex)
	var r Request
	if err := r.UnmarshalBinary(msg); err != nil {
		t.Fatal(err)
	}
	h := NewHMACMD5(testKey)
	var scratch [64]byte
	if Verify(msg, r.MHAuth, NewHMACMD5([]byte("wrong key")), &scratch) {
		t.Error("verified with the wrong key")
	}
	if Verify(msg, AuthExt{}, h, &scratch) {
		t.Error("verified an absent extension")
	}
	bad := r.MHAuth
	bad.Covered = len(msg) + 1
	if Verify(msg, bad, h, &scratch) {
		t.Error("verified with Covered past the end")
	}
	// Every covered byte and every authenticator byte matters.
	for i := range msg {
		m := append([]byte(nil), msg...)
		m[i] ^= 0x01
		var p Request
		if err := p.UnmarshalBinary(m); err != nil {
			continue // e.g. the NAI length or the extension type changed
		}
		if Verify(m, p.MHAuth, h, &scratch) {
			t.Errorf("flipping byte %d still verifies", i)
		}
	}
}

// ext builds an extension.
func ext(typ uint8, body ...byte) []byte { return append([]byte{typ, uint8(len(body))}, body...) }

func auth(spi byte) []byte {
	return append([]byte{0, 0, 0, spi}, bytes.Repeat([]byte{0xa5}, 16)...)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestRequestExtensions(t *testing.T) {
	fixed := unhex(t, goldenRequestNoNAIHex)[:RequestLen]
	nai := ext(ExtNAI, []byte("a@b")...)
	mh, mf, fh := ext(ExtMHAuth, auth(1)...), ext(ExtMFAuth, auth(2)...), ext(ExtFHAuth, auth(3)...)
	skip := ext(200, 1, 2, 3)
	for _, tc := range []struct {
		name string
		msg  []byte
		err  error
		chk  func(t *testing.T, r *Request)
	}{
		{"fixed only", fixed, nil, func(t *testing.T, r *Request) {
			if r.NAI != nil || r.MHAuth.Present || r.IgnoredExt != 0 {
				t.Errorf("%+v", r)
			}
		}},
		{"all", cat(fixed, nai, skip, mh, mf, fh), nil, func(t *testing.T, r *Request) {
			if string(r.NAI) != "a@b" || r.IgnoredExt != 1 {
				t.Errorf("NAI %q ignored %d", r.NAI, r.IgnoredExt)
			}
			off := RequestLen + len(nai) + len(skip)
			if !r.MHAuth.Present || r.MHAuth.SPI != 1 || r.MHAuth.Covered != off+6 {
				t.Errorf("MHAuth %+v", r.MHAuth)
			}
			off += len(mh)
			if !r.MFAuth.Present || r.MFAuth.SPI != 2 || r.MFAuth.Covered != off+6 {
				t.Errorf("MFAuth %+v", r.MFAuth)
			}
			off += len(mf)
			if !r.FHAuth.Present || r.FHAuth.SPI != 3 || r.FHAuth.Covered != off+6 {
				t.Errorf("FHAuth %+v", r.FHAuth)
			}
		}},
		{"skippable 128", cat(fixed, ext(128), mh), nil, func(t *testing.T, r *Request) {
			if r.IgnoredExt != 1 || !r.MHAuth.Present {
				t.Errorf("%+v", r)
			}
		}},
		{"skippable 255 after auth", cat(fixed, mh, ext(255, 9)), nil, func(t *testing.T, r *Request) {
			if r.IgnoredExt != 1 {
				t.Errorf("%+v", r)
			}
		}},
		{"long auth authenticator", cat(fixed, ext(ExtMHAuth, make([]byte, 4+20)...)), nil, func(t *testing.T, r *Request) {
			if len(r.MHAuth.Authenticator) != 20 {
				t.Errorf("%+v", r.MHAuth)
			}
		}},
		// Type 0 is not padding in this number space (§1.9): unknown.
		{"type 0", cat(fixed, []byte{0, 0}, mh), ErrUnknownExtension, nil},
		{"lone zero byte", cat(fixed, []byte{0}), ErrTruncated, nil},
		{"unknown 127", cat(fixed, mh, ext(127)), ErrUnknownExtension, nil},
		{"unknown 36 (generalized auth)", cat(fixed, nai, ext(36, auth(1)...)), ErrUnknownExtension, nil},
		{"empty NAI", cat(fixed, ext(ExtNAI), mh), ErrBadExtension, nil},
		{"duplicate NAI", cat(fixed, nai, nai, mh), ErrBadExtension, nil},
		{"NAI after auth", cat(fixed, mh, nai), ErrBadExtension, nil},
		{"duplicate MH", cat(fixed, mh, mh), ErrBadExtension, nil},
		{"duplicate FH", cat(fixed, mh, fh, fh), ErrBadExtension, nil},
		{"short auth", cat(fixed, ext(ExtMHAuth, make([]byte, 4+15)...)), ErrBadExtension, nil},
		{"auth no SPI", cat(fixed, ext(ExtMHAuth, 1, 2)), ErrBadExtension, nil},
		{"length past end", cat(fixed, []byte{ExtMHAuth, 20, 0, 0}), ErrTruncated, nil},
		{"short fixed", fixed[:23], ErrTruncated, nil},
		{"reply type", cat([]byte{TypeReply}, fixed[1:]), ErrType, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r Request
			err := r.UnmarshalBinary(tc.msg)
			if err != tc.err {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if tc.chk != nil {
				tc.chk(t, &r)
			}
		})
	}
}

func TestReplyExtensions(t *testing.T) {
	fixed := unhex(t, goldenReplyHex)[:ReplyLen]
	for _, tc := range []struct {
		name string
		msg  []byte
		err  error
	}{
		{"fixed", fixed, nil},
		{"skip", cat(fixed, ext(131+5, 1), ext(ExtMHAuth, auth(1)...)), nil},
		{"unknown", cat(fixed, ext(5, 1)), ErrUnknownExtension},
		{"short", fixed[:19], ErrTruncated},
		{"request type", cat([]byte{TypeRequest}, fixed[1:]), ErrType},
		{"dup MH", cat(fixed, ext(ExtMHAuth, auth(1)...), ext(ExtMHAuth, auth(1)...)), ErrBadExtension},
	} {
		var r Reply
		if err := r.UnmarshalBinary(tc.msg); err != tc.err {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.err)
		}
	}
}

// Every proper prefix of a valid message either fails to parse or (when it
// ends on an extension boundary) parses without the later extensions; none
// panics.
func TestTruncations(t *testing.T) {
	for _, g := range []string{goldenRequestHex, goldenRequestNoNAIHex} {
		msg := unhex(t, g)
		for n := 0; n < len(msg); n++ {
			var r Request
			err := r.UnmarshalBinary(msg[:n])
			if err == nil && r.MHAuth.Present {
				t.Errorf("prefix %d parsed with the MH auth extension", n)
			}
			if n < RequestLen && err != ErrTruncated {
				t.Errorf("prefix %d: err %v", n, err)
			}
		}
	}
	msg := unhex(t, goldenReplyHex)
	for n := 0; n < len(msg); n++ {
		var r Reply
		err := r.UnmarshalBinary(msg[:n])
		if err == nil && r.MHAuth.Present {
			t.Errorf("reply prefix %d parsed with the MH auth extension", n)
		}
		if err != nil && !errors.Is(err, ErrTruncated) {
			t.Errorf("reply prefix %d: err %v", n, err)
		}
	}
}

func TestAppendErrors(t *testing.T) {
	r := testRequest()
	r.CareOf = netip.MustParseAddr("2001:db8::1")
	if b, err := r.AppendBinary([]byte{1, 2}); err != ErrAddress || len(b) != 2 {
		t.Errorf("IPv6 care-of: %v, %x", err, b)
	}
	r = testRequest()
	r.HomeAgent = netip.Addr{}
	if _, err := r.AppendBinary(nil); err != ErrAddress {
		t.Errorf("zero home agent: %v", err)
	}
	r = testRequest()
	r.NAI = make([]byte, 256)
	if _, err := r.AppendBinary(nil); err != ErrNAITooLong {
		t.Errorf("long NAI: %v", err)
	}
	r.NAI = bytes.Repeat([]byte{'a'}, 255)
	b, err := r.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	var p Request
	if err := p.UnmarshalBinary(b); err != nil || len(p.NAI) != 255 {
		t.Errorf("255-byte NAI: %v %d", err, len(p.NAI))
	}
	// IPv4-mapped IPv6 is accepted and written as IPv4.
	r = testRequest()
	r.HomeAddr = netip.MustParseAddr("::ffff:10.1.0.5")
	if _, err := r.AppendBinary(nil); err != nil {
		t.Errorf("mapped address: %v", err)
	}
	rep := testReply()
	rep.NAI = make([]byte, 300)
	if _, err := rep.AppendBinary(nil); err != ErrNAITooLong {
		t.Errorf("reply long NAI: %v", err)
	}
	rep = testReply()
	rep.HomeAddr = netip.Addr{}
	if _, err := rep.AppendBinary(nil); err != ErrAddress {
		t.Errorf("reply zero address: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	h := NewHMACMD5(testKey)
	for _, flags := range []uint8{0, FlagS | FlagB | FlagD | FlagM | FlagG | FlagT, 0xff} {
		for _, nai := range [][]byte{nil, []byte("x"), []byte("user@realm.example")} {
			r := testRequest()
			r.Flags, r.NAI, r.Lifetime, r.ID = flags, nai, uint16(flags)*7, uint64(flags)<<40|12345
			b, err := r.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			b = AppendMHAuth(b, 0, 0xdeadbeef, h)
			b = AppendFHAuth(b, 0, 7, h)
			var p Request
			if err := p.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if !Verify(b, p.MHAuth, h, new([64]byte)) || !Verify(b, p.FHAuth, h, new([64]byte)) {
				t.Fatal("round-trip authenticators do not verify")
			}
			if p.MHAuth.SPI != 0xdeadbeef || p.FHAuth.SPI != 7 || p.MFAuth.Present {
				t.Fatalf("auth %+v %+v", p.MHAuth, p.FHAuth)
			}
			p.MHAuth, p.FHAuth = AuthExt{}, AuthExt{}
			if !reflect.DeepEqual(p, r) {
				t.Fatalf("parsed %+v\nwant   %+v", p, r)
			}

			rep := Reply{Code: Code(flags), Lifetime: r.Lifetime, HomeAddr: r.HomeAddr, HomeAgent: r.HomeAgent, ID: r.ID, NAI: nai}
			b, err = rep.AppendBinary(b[:0])
			if err != nil {
				t.Fatal(err)
			}
			var q Reply
			if err := q.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(q, rep) {
				t.Fatalf("reply %v: %+v want %+v", err, q, rep)
			}
		}
	}
}

func TestAllocs(t *testing.T) {
	req := unhex(t, goldenRequestHex)
	rep := unhex(t, goldenReplyHex)
	h := NewHMACMD5(testKey)
	scratch := new([64]byte)
	buf := make([]byte, 0, 512)
	var r Request
	var p Reply
	tr, tp := testRequest(), testReply()
	if err := r.UnmarshalBinary(req); err != nil { // Verify below needs r.MHAuth
		t.Fatal(err)
	}
	for name, f := range map[string]func(){
		"Request.UnmarshalBinary": func() { _ = r.UnmarshalBinary(req) },
		"Reply.UnmarshalBinary":   func() { _ = p.UnmarshalBinary(rep) },
		"Request.AppendBinary":    func() { _, _ = tr.AppendBinary(buf[:0]) },
		"Reply.AppendBinary":      func() { _, _ = tp.AppendBinary(buf[:0]) },
		"AppendMHAuth":            func() { _ = AppendMHAuth(append(buf[:0], req[:40]...), 0, 1, h) },
		"Verify": func() {
			if !Verify(req, r.MHAuth, h, scratch) {
				panic("verify")
			}
		},
		"errors": func() {
			var r Request // a failed parse must not clobber the shared r
			_ = r.UnmarshalBinary(req[:10])
			_ = r.UnmarshalBinary(rep)
			_ = p.UnmarshalBinary(req)
		},
		"Timestamp": func() { _ = TimestampTime(Timestamp(time.Now())) },
	} {
		f() // warm up (hmac saves its keyed state on the first Reset)
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
}

func TestTimestamp(t *testing.T) {
	// RFC 5905 figure: 1970-01-01 is NTP 2,208,988,800.
	if got := Timestamp(time.Unix(0, 0)); got != 2208988800<<32 {
		t.Errorf("Unix epoch: %#x", got)
	}
	if got := Timestamp(time.Unix(1, 500_000_000)); got != (2208988801<<32 | 1<<31) {
		t.Errorf("1.5s: %#x", got)
	}
	for _, tm := range []time.Time{
		time.Unix(0, 0), // a router's clock at boot
		time.Date(2025, 11, 23, 20, 0, 0, 123456789, time.UTC), // now-ish
		time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC),          // NTP era 1 starts
		time.Date(2100, 1, 1, 0, 0, 0, 999999999, time.UTC),
	} {
		if got := TimestampTime(Timestamp(tm)); !got.Equal(tm) {
			t.Errorf("round trip %v: got %v", tm, got)
		}
	}
	// Identification is monotonic in time (the order the binding table uses).
	a := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if !(Timestamp(a) < Timestamp(a.Add(time.Nanosecond*300)) && Timestamp(a) < Timestamp(a.Add(time.Second))) {
		t.Error("not monotonic")
	}
}

func TestMismatchResync(t *testing.T) {
	ha := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	mn := time.Unix(100, 0) // MN's clock never set
	req := Timestamp(mn)
	id := MismatchID(req, ha)
	if uint32(id) != uint32(req) || id>>32 != Timestamp(ha)>>32 {
		t.Fatalf("MismatchID %#x", id)
	}
	next := ResyncID(id, 2*time.Second, mn.Add(2*time.Second))
	if got := TimestampTime(next); got.Sub(ha) < 2*time.Second || got.Sub(ha) >= 3*time.Second {
		t.Errorf("resynced time %v, HA %v", got, ha)
	}
}

func TestCodeString(t *testing.T) {
	for c, want := range map[Code]string{
		CodeAccepted: "accepted", CodeIDMismatch: "identification mismatch",
		CodeMNAuthFailed: "mobile node failed authentication", CodeEncapUnavailable: "requested encapsulation unavailable",
		200: "code 200", CodeFAReverseTunnelUnavail: "FA: requested reverse tunnel unavailable",
	} {
		if got := c.String(); got != want {
			t.Errorf("%d: %q want %q", uint8(c), got, want)
		}
	}
	if !CodeAcceptedNoSimultaneous.Accepted() || CodeFAUnspecified.Accepted() {
		t.Error("Accepted")
	}
}

func FuzzRequest(f *testing.F) {
	f.Add(unhex(f, goldenRequestHex))
	f.Add(unhex(f, goldenRequestNoNAIHex))
	f.Add(unhex(f, goldenRequestHex)[:30])
	f.Add(unhex(f, goldenUDPTunnelRequestHex))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if r.UnmarshalBinary(b) != nil {
			return
		}
		// Append re-encodes the fixed part and the NAI (not the
		// authentication or skipped extensions), so compare those.
		out, err := r.AppendBinary(nil)
		if err != nil {
			t.Fatalf("append of a parsed request: %v", err)
		}
		if !bytes.Equal(out[:RequestLen], b[:RequestLen]) {
			t.Fatalf("fixed part differs: %x vs %x", out[:RequestLen], b[:RequestLen])
		}
		var p Request
		if err := p.UnmarshalBinary(out); err != nil {
			t.Fatalf("reparse: %v", err)
		}
		r.MHAuth, r.MFAuth, r.FHAuth, r.IgnoredExt = AuthExt{}, AuthExt{}, AuthExt{}, 0
		// out carries no authenticator: nothing in it is covered by one.
		r.UDPTunnel.Authenticated, r.MobileNet.Authenticated = false, false
		if !reflect.DeepEqual(p, r) {
			t.Fatalf("reparsed %+v\nwant     %+v", p, r)
		}
	})
}

func FuzzReply(f *testing.F) {
	f.Add(unhex(f, goldenReplyHex))
	f.Add(unhex(f, goldenReplyHex)[:ReplyLen])
	f.Add(unhex(f, goldenUDPTunnelReplyHex))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Reply
		if r.UnmarshalBinary(b) != nil {
			return
		}
		out, err := r.AppendBinary(nil)
		if err != nil {
			t.Fatalf("append of a parsed reply: %v", err)
		}
		if !bytes.Equal(out[:ReplyLen], b[:ReplyLen]) {
			t.Fatalf("fixed part differs: %x vs %x", out[:ReplyLen], b[:ReplyLen])
		}
		var p Reply
		if err := p.UnmarshalBinary(out); err != nil {
			t.Fatalf("reparse: %v", err)
		}
		r.MHAuth, r.MFAuth, r.FHAuth, r.IgnoredExt = AuthExt{}, AuthExt{}, AuthExt{}, 0
		if !reflect.DeepEqual(p, r) {
			t.Fatalf("reparsed %+v\nwant     %+v", p, r)
		}
	})
}

func BenchmarkParseVerify(b *testing.B) {
	msg := unhex(b, goldenRequestHex)
	h := NewHMACMD5(testKey)
	scratch := new([64]byte)
	var r Request
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := r.UnmarshalBinary(msg); err != nil {
			b.Fatal(err)
		}
		if !Verify(msg, r.MHAuth, h, scratch) {
			b.Fatal("verify")
		}
	}
}

func BenchmarkReply(b *testing.B) {
	h := NewHMACMD5(testKey)
	rep := testReply()
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		out, err := rep.AppendBinary(buf[:0])
		if err != nil {
			b.Fatal(err)
		}
		_ = AppendMHAuth(out, 0, 256, h)
	}
}
