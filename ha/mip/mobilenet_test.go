package mip

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
)

// Goldens with the RFC 5177 extensions, authenticators computed with python3's
// hmac module like the others (key testKey, SPI 256):
//
//	ext = bytes([148,6,0,24,10,9,1,0]) + bytes([148,6,0,25,10,9,2,0])
//	m = request_golden_through_NAI + ext + bytes([0x20,0x14,0,0,1,0])
//	hmac.new(b"hagent-test-key!", m, hashlib.md5).hexdigest()
const (
	// testRequest() + Mobile Network Requests for 10.9.1.0/24 and
	// 10.9.2.0/25 + MH auth.
	goldenMobileNetRequestHex = "010a07080a010005c0000201c6336407e5a7a441b2f38920" +
		"830f6d6e31406578616d706c652e6e6574" +
		"9406" + "00" + "18" + "0a090100" +
		"9406" + "00" + "19" + "0a090200" +
		"2014" + "00000100" + "e1bd14345a8ee1f7c366d5abbbd712bc"
	// testReply() + Explicit Mode Acknowledgements: 10.9.1.0/24 success,
	// 10.9.2.0/25 not authorized + MH auth.
	goldenMobileNetReplyHex = "030007080a010005c0000201e5a7a441b2f38920" +
		"830f6d6e31406578616d706c652e6e6574" +
		"9408" + "01" + "00" + "18" + "00" + "0a090100" +
		"9408" + "01" + "02" + "19" + "00" + "0a090200" +
		"2014" + "00000100" + "80a56d8be22e186b5bc7708475c4678c"
	// testReply() + Implicit Mode Acknowledgement: configured
	// 10.9.3.0/24 success + MH auth.
	goldenMobileNetImplicitHex = "030007080a010005c0000201e5a7a441b2f38920" +
		"830f6d6e31406578616d706c652e6e6574" +
		"9408" + "02" + "00" + "18" + "00" + "0a090300" +
		"2014" + "00000100" + "8e33b0b894422e507e57a6088ae4bf6d"
)

func mnp(s string) MobileNetPrefix {
	p := netip.MustParsePrefix(s)
	return MobileNetPrefix{Bits: uint8(p.Bits()), Addr: p.Addr()}
}

func testMobileNetRequest() Request {
	r := testRequest()
	r.MobileNet.Add(mnp("10.9.1.0/24"))
	r.MobileNet.Add(mnp("10.9.2.0/25"))
	return r
}

func testMobileNetReply() Reply {
	r := testReply()
	r.MobileNet.Add(MobileNetAck{Code: MobileNetSuccess, Prefix: mnp("10.9.1.0/24")})
	r.MobileNet.Add(MobileNetAck{Code: MobileNetUnauthorized, Prefix: mnp("10.9.2.0/25")})
	return r
}

func testMobileNetImplicit() Reply {
	r := testReply()
	r.MobileNet.Implicit = true
	r.MobileNet.Add(MobileNetAck{Code: MobileNetSuccess, Prefix: mnp("10.9.3.0/24")})
	return r
}

func TestMobileNetRequestGolden(t *testing.T) {
	r := testMobileNetRequest()
	p := sealedRequestGolden(t, r, goldenMobileNetRequestHex)
	if !p.MobileNet.Authenticated {
		t.Error("prefixes before the MH auth not marked authenticated")
	}
	p.MobileNet.Authenticated = false
	if !reflect.DeepEqual(p, r) {
		t.Fatalf("parsed %+v\nwant   %+v", p, r)
	}
}

func TestMobileNetReplyGolden(t *testing.T) {
	for _, tc := range []struct {
		name   string
		r      Reply
		golden string
	}{
		{"explicit", testMobileNetReply(), goldenMobileNetReplyHex},
		{"implicit", testMobileNetImplicit(), goldenMobileNetImplicitHex},
	} {
		t.Run(tc.name, func(t *testing.T) { checkReplyGolden(t, tc.r, tc.golden) })
	}
}

// TestMobileNetCodes pins every acknowledgement code of RFC 5177 to its
// value and meaning.
func TestMobileNetCodes(t *testing.T) {
	for _, tc := range []struct {
		c    MobileNetCode
		v    uint8
		want string
	}{
		{MobileNetSuccess, 0, "success"},
		{MobileNetInvalidPrefix, 1, "invalid prefix"},
		{MobileNetUnauthorized, 2, "mobile router is not authorized for prefix"},
		{MobileNetFwdSetupFail, 3, "forwarding setup failed"},
		{4, 4, "mobile network code 4"},
	} {
		if uint8(tc.c) != tc.v || tc.c.String() != tc.want {
			t.Errorf("code %d: value %d %q, want %d %q", tc.c, uint8(tc.c), tc.c, tc.v, tc.want)
		}
	}
	for _, tc := range []struct{ got, want uint8 }{
		{ExtMobileNet, 148}, {MobileNetSubRequest, 0}, {MobileNetSubExplicitAck, 1}, {MobileNetSubImplicitAck, 2},
	} {
		if tc.got != tc.want {
			t.Errorf("constant %d, want %d", tc.got, tc.want)
		}
	}
}

func TestMobileNetPrefix(t *testing.T) {
	for _, tc := range []struct {
		p     MobileNetPrefix
		want  string // "" when invalid
		exact bool
	}{
		{mnp("10.9.1.0/24"), "10.9.1.0/24", true},
		{mnp("10.9.1.7/32"), "10.9.1.7/32", true},
		{mnp("0.0.0.0/0"), "0.0.0.0/0", true},
		{MobileNetPrefix{Bits: 24, Addr: netip.MustParseAddr("10.9.1.1")}, "10.9.1.0/24", false},
		{MobileNetPrefix{Bits: 33, Addr: netip.MustParseAddr("10.9.1.0")}, "", false},
		{MobileNetPrefix{Bits: 255, Addr: netip.MustParseAddr("10.9.1.0")}, "", false},
		{MobileNetPrefix{Bits: 24}, "", false},
	} {
		q, ok := tc.p.Prefix()
		if got := map[bool]string{true: q.String(), false: ""}[ok]; got != tc.want || tc.p.Exact() != tc.exact {
			t.Errorf("%+v: Prefix %q Exact %v, want %q %v", tc.p, got, tc.p.Exact(), tc.want, tc.exact)
		}
	}
}

// TestMobileNetParse covers what the goldens do not: the bound, the
// authentication boundary, sub-types out of place and malformed lengths.
func TestMobileNetParse(t *testing.T) {
	h := NewHMACMD5(testKey)
	tr := testRequest()
	base, _ := tr.AppendBinary(nil)

	t.Run("eleven prefixes: eight parsed, three counted", func(t *testing.T) {
		b := append([]byte(nil), base...)
		for i := range 11 {
			b = AppendMobileNetRequest(b, MobileNetPrefix{Bits: 24, Addr: netip.AddrFrom4([4]byte{10, 9, byte(i), 0})})
		}
		b = AppendMHAuth(b, 0, 256, h)
		var p Request
		if err := p.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		m := p.MobileNet
		if m.N != MaxMobileNetPrefixes || m.Extra != 3 || !m.Authenticated {
			t.Fatalf("N %d Extra %d Authenticated %v, want 8 3 true", m.N, m.Extra, m.Authenticated)
		}
		for i, q := range m.List() {
			if q.Addr.As4()[2] != byte(i) {
				t.Errorf("prefix %d is %v: message order not kept", i, q.Addr)
			}
		}
	})
	t.Run("prefix after the MH auth is not authenticated", func(t *testing.T) {
		b := AppendMobileNetRequest(append([]byte(nil), base...), mnp("10.9.1.0/24"))
		b = AppendMHAuth(b, 0, 256, h)
		b = AppendMobileNetRequest(b, mnp("10.9.2.0/24"))
		var p Request
		if err := p.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if p.MobileNet.N != 2 || p.MobileNet.Authenticated {
			t.Fatalf("%+v: a prefix after the authenticator must clear Authenticated", p.MobileNet)
		}
	})
	t.Run("no MH auth", func(t *testing.T) {
		b := AppendMobileNetRequest(append([]byte(nil), base...), mnp("10.9.1.0/24"))
		var p Request
		if err := p.UnmarshalBinary(b); err != nil || p.MobileNet.Authenticated {
			t.Fatalf("%v %+v", err, p.MobileNet)
		}
	})
	t.Run("prefix length over 32 parses", func(t *testing.T) {
		b := AppendMobileNetRequest(append([]byte(nil), base...), MobileNetPrefix{Bits: 40, Addr: netip.MustParseAddr("10.9.1.0")})
		var p Request
		if err := p.UnmarshalBinary(b); err != nil || p.MobileNet.N != 1 || p.MobileNet.Prefixes[0].Bits != 40 {
			t.Fatalf("%v %+v: the home agent answers it with code 1, the parser keeps it", err, p.MobileNet)
		}
	})
	t.Run("out-of-place and unknown sub-types are skipped", func(t *testing.T) {
		b := append([]byte(nil), base...)
		b = AppendMobileNetAck(b, MobileNetSubExplicitAck, MobileNetAck{Prefix: mnp("10.9.1.0/24")})
		b = AppendMobileNetAck(b, MobileNetSubImplicitAck, MobileNetAck{Prefix: mnp("10.9.1.0/24")})
		b = append(b, ExtMobileNet, 3, 9, 0, 0)
		var p Request
		if err := p.UnmarshalBinary(b); err != nil || p.IgnoredExt != 3 || p.MobileNet.N != 0 {
			t.Fatalf("%v ignored %d %+v", err, p.IgnoredExt, p.MobileNet)
		}
		rp := testReply()
		rb, _ := rp.AppendBinary(nil)
		rb = AppendMobileNetRequest(rb, mnp("10.9.1.0/24"))
		var r Reply
		if err := r.UnmarshalBinary(rb); err != nil || r.IgnoredExt != 1 || r.MobileNet.N != 0 {
			t.Fatalf("%v ignored %d %+v", err, r.IgnoredExt, r.MobileNet)
		}
	})
	trp := testReply()
	rb, _ := trp.AppendBinary(nil)
	for name, tc := range map[string]struct {
		base, ext []byte
	}{
		"request short":       {base, []byte{148, 5, 0, 24, 10, 9, 1}},
		"request long":        {base, []byte{148, 7, 0, 24, 10, 9, 1, 0, 0}},
		"empty":               {base, []byte{148, 0}},
		"explicit ack short":  {rb, []byte{148, 6, 1, 0, 24, 10, 9, 1}},
		"implicit ack short":  {rb, []byte{148, 2, 2, 0}},
		"implicit ack long":   {rb, []byte{148, 9, 2, 0, 24, 0, 10, 9, 1, 0, 0}},
		"mixed modes":         {rb, []byte{148, 8, 1, 0, 24, 0, 10, 9, 1, 0, 148, 8, 2, 0, 24, 0, 10, 9, 2, 0}},
		"reply empty":         {rb, []byte{148, 0}},
		"runs past the end":   {base, []byte{148, 6, 0, 24, 10}},
		"request 9 with junk": {base, []byte{148, 6, 0, 24, 10, 9, 1, 0, 148}},
	} {
		b := append(append([]byte(nil), tc.base...), tc.ext...)
		var err error
		if b[0] == TypeRequest {
			var p Request
			err = p.UnmarshalBinary(b)
		} else {
			var p Reply
			err = p.UnmarshalBinary(b)
		}
		if !errors.Is(err, ErrBadExtension) && !errors.Is(err, ErrTruncated) {
			t.Errorf("%s: err %v, want ErrBadExtension or ErrTruncated", name, err)
		}
	}
}

func TestMobileNetAppendErrors(t *testing.T) {
	r := testRequest()
	r.MobileNet.Add(MobileNetPrefix{Bits: 24}) // no address
	if b, err := r.AppendBinary([]byte("x")); err != ErrAddress || string(b) != "x" {
		t.Fatalf("%v %x: want ErrAddress and the buffer unchanged", err, b)
	}
	p := testReply()
	p.MobileNet.Add(MobileNetAck{Prefix: MobileNetPrefix{Bits: 24, Addr: netip.MustParseAddr("2001:db8::")}})
	if b, err := p.AppendBinary([]byte("x")); err != ErrAddress || string(b) != "x" {
		t.Fatalf("%v %x: want ErrAddress and the buffer unchanged", err, b)
	}
	var m MobileNetRequest
	for i := range MaxMobileNetPrefixes {
		if !m.Add(mnp("10.0.0.0/8")) {
			t.Fatalf("Add %d refused", i)
		}
	}
	if m.Add(mnp("10.0.0.0/8")) {
		t.Fatal("ninth Add accepted")
	}
	var a MobileNetReply
	for range MaxMobileNetPrefixes {
		a.Add(MobileNetAck{})
	}
	if a.Add(MobileNetAck{}) {
		t.Fatal("ninth ack accepted")
	}
}

func TestMobileNetRoundTrip(t *testing.T) {
	h := NewHMACMD5(testKey)
	for n := 0; n <= MaxMobileNetPrefixes; n++ {
		r := testRequest()
		a := testReply()
		a.MobileNet.Implicit = n%2 == 1
		for i := range n {
			p := MobileNetPrefix{Bits: uint8(20 + i*2), Addr: netip.AddrFrom4([4]byte{172, 16, byte(i * 16), 0})}
			r.MobileNet.Add(p)
			a.MobileNet.Add(MobileNetAck{Code: MobileNetCode(i % 5), Prefix: p})
		}
		b, err := r.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		b = AppendMHAuth(b, 0, 9, h)
		var p Request
		if err := p.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if p.MobileNet.Authenticated != (n > 0) || !Verify(b, p.MHAuth, h, new([64]byte)) {
			t.Fatalf("n=%d: %+v", n, p.MobileNet)
		}
		p.MHAuth, p.MobileNet.Authenticated = AuthExt{}, false
		if !reflect.DeepEqual(p, r) {
			t.Fatalf("n=%d: parsed %+v\nwant   %+v", n, p, r)
		}
		rb, err := a.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		var q Reply
		if err := q.UnmarshalBinary(rb); err != nil || !reflect.DeepEqual(q, a) {
			t.Fatalf("n=%d: %v parsed %+v\nwant %+v", n, err, q, a)
		}
	}
}

// TestMobileNetAllocs: parse, authenticate and answer a router with the
// maximum of eight prefixes without allocating.
func TestMobileNetAllocs(t *testing.T) {
	h := NewHMACMD5(testKey)
	tr, tp := testRequest(), testReply()
	for i := range MaxMobileNetPrefixes {
		p := MobileNetPrefix{Bits: 24, Addr: netip.AddrFrom4([4]byte{10, 9, byte(i), 0})}
		tr.MobileNet.Add(p)
		tp.MobileNet.Add(MobileNetAck{Prefix: p})
	}
	req, _ := tr.AppendBinary(nil)
	req = AppendMHAuth(req, 0, 256, h)
	rep, _ := tp.AppendBinary(nil)
	buf := make([]byte, 0, 512)
	scratch := new([64]byte)
	var r Request
	var p Reply
	for name, f := range map[string]func(){
		"Request.UnmarshalBinary+Verify": func() {
			_ = r.UnmarshalBinary(req)
			_ = Verify(req, r.MHAuth, h, scratch)
		},
		"Reply.UnmarshalBinary": func() { _ = p.UnmarshalBinary(rep) },
		"Request.AppendBinary+MHAuth": func() {
			b, _ := tr.AppendBinary(buf[:0])
			_ = AppendMHAuth(b, 0, 256, h)
		},
		"Reply.AppendBinary+MHAuth": func() {
			b, _ := tp.AppendBinary(buf[:0])
			_ = AppendMHAuth(b, 0, 256, h)
		},
	} {
		f()
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
	if r.MobileNet.N != MaxMobileNetPrefixes || p.MobileNet.N != MaxMobileNetPrefixes {
		t.Fatalf("parsed %d and %d prefixes", r.MobileNet.N, p.MobileNet.N)
	}
}

// FuzzMobileNet: any request or reply that parses re-encodes to a message
// that parses to the same prefixes and acknowledgements.
func FuzzMobileNet(f *testing.F) {
	for _, g := range []string{goldenMobileNetRequestHex, goldenMobileNetReplyHex, goldenMobileNetImplicitHex} {
		f.Add(unhex(f, g))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if r.UnmarshalBinary(b) == nil {
			out, err := r.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			var q Request
			if err := q.UnmarshalBinary(out); err != nil {
				t.Fatalf("re-encoded request does not parse: %v", err)
			}
			if q.MobileNet.Prefixes != r.MobileNet.Prefixes || q.MobileNet.N != r.MobileNet.N {
				t.Fatalf("prefixes %+v became %+v", r.MobileNet, q.MobileNet)
			}
		}
		var p Reply
		if p.UnmarshalBinary(b) == nil {
			out, err := p.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			var q Reply
			if err := q.UnmarshalBinary(out); err != nil {
				t.Fatalf("re-encoded reply does not parse: %v", err)
			}
			if q.MobileNet.Acks != p.MobileNet.Acks || q.MobileNet.N != p.MobileNet.N || q.MobileNet.Implicit != p.MobileNet.Implicit {
				t.Fatalf("acks %+v became %+v", p.MobileNet, q.MobileNet)
			}
		}
	})
}

func BenchmarkParseVerifyMobileNet8(b *testing.B) {
	h := NewHMACMD5(testKey)
	r := testRequest()
	for i := range MaxMobileNetPrefixes {
		r.MobileNet.Add(MobileNetPrefix{Bits: 24, Addr: netip.AddrFrom4([4]byte{10, 9, byte(i), 0})})
	}
	msg, _ := r.AppendBinary(nil)
	msg = AppendMHAuth(msg, 0, 256, h)
	scratch := new([64]byte)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := r.UnmarshalBinary(msg); err != nil {
			b.Fatal(err)
		}
		if !Verify(msg, r.MHAuth, h, scratch) || !r.MobileNet.Authenticated {
			b.Fatal("verify")
		}
	}
}
