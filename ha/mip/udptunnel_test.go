package mip

import (
	"bytes"
	"reflect"
	"testing"
)

// Goldens with the RFC 3519 extensions, authenticators computed with
// python3's hmac module like the others (key testKey, SPI 256):
//
//	m = request_golden_through_NAI + bytes([144,6, 0,0, 0x80,4, 0,0]) + bytes([0x20,0x14,0,0,1,0])
//	hmac.new(b"hagent-test-key!", m, hashlib.md5).hexdigest()
const (
	// testRequest() + UDP Tunnel Request (sub-type 0, F, encapsulation
	// IP in IP) + MH auth.
	goldenUDPTunnelRequestHex = "010a07080a010005c0000201c6336407e5a7a441b2f38920" +
		"830f6d6e31406578616d706c652e6e6574" +
		"9006" + "00" + "00" + "80" + "04" + "0000" +
		"2014" + "00000100" + "a6651d98f0b95b0bbe988ff2d9c569fe"
	// testReply() + UDP Tunnel Reply (sub-type 0, will do, F, keepalive
	// 110 s) + MH auth.
	goldenUDPTunnelReplyHex = "030007080a010005c0000201e5a7a441b2f38920" +
		"830f6d6e31406578616d706c652e6e6574" +
		"2c06" + "00" + "00" + "8000" + "006e" +
		"2014" + "00000100" + "248de500ac70353faaa5bcc11f1fb201"
	// A tunnel data message header carrying IP in IP.
	goldenTunnelHeaderHex = "04040000"
)

func testUDPTunnelRequest() Request {
	r := testRequest()
	r.UDPTunnel = UDPTunnelRequest{Present: true, Flags: UDPTunnelForce, Encapsulation: NextIPv4}
	return r
}

func testUDPTunnelReply() Reply {
	r := testReply()
	r.UDPTunnel = UDPTunnelReply{Present: true, Code: TunnelWillDo, Flags: UDPTunnelReplyForced, Keepalive: 110}
	return r
}

func TestUDPTunnelRequestGolden(t *testing.T) {
	r := testUDPTunnelRequest()
	p := sealedRequestGolden(t, r, goldenUDPTunnelRequestHex)
	if !p.UDPTunnel.Authenticated {
		t.Error("extension before the MH auth not marked authenticated")
	}
	p.UDPTunnel.Authenticated = false
	if !reflect.DeepEqual(p, r) {
		t.Fatalf("parsed %+v\nwant   %+v", p, r)
	}
}

func TestUDPTunnelReplyGolden(t *testing.T) {
	checkReplyGolden(t, testUDPTunnelReply(), goldenUDPTunnelReplyHex)
}

func TestTunnelHeaderGolden(t *testing.T) {
	b, err := TunnelHeader{NextHeader: NextIPv4}.AppendBinary([]byte{0xaa, 0xbb})
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, goldenTunnelHeaderHex)
	if !bytes.Equal(b[:2], []byte{0xaa, 0xbb}) || !bytes.Equal(b[2:], want) {
		t.Fatalf("got %x, want aabb%x", b, want)
	}
	for _, tc := range []struct {
		name string
		msg  []byte
		next uint8
		err  error
	}{
		{"ipip", want, NextIPv4, nil},
		{"gre with payload", []byte{4, 47, 0, 0, 0x45}, NextGRE, nil},
		{"reserved ignored", []byte{4, 55, 0xff, 0xff}, NextMinimal, nil},
		{"short", []byte{4, 4, 0}, 0, ErrTunnelHeader},
		{"empty", nil, 0, ErrTunnelHeader},
		{"a registration request", unhex(t, goldenRequestHex), 0, ErrTunnelHeader},
		{"a registration reply", unhex(t, goldenReplyHex), 0, ErrTunnelHeader},
	} {
		var h TunnelHeader
		err := h.UnmarshalBinary(tc.msg)
		if err != tc.err || h.NextHeader != tc.next {
			t.Errorf("%s: next %d err %v, want %d %v", tc.name, h.NextHeader, err, tc.next, tc.err)
		}
	}
	// The message types a UDP 434 receiver tells apart by the first byte.
	if TypeTunnelData == TypeRequest || TypeTunnelData == TypeReply {
		t.Error("tunnel data type collides with a registration type")
	}
}

func TestUDPTunnelExtensions(t *testing.T) {
	req := unhex(t, goldenRequestNoNAIHex)[:RequestLen]
	rep := unhex(t, goldenReplyHex)[:ReplyLen]
	utq := ext(ExtUDPTunnelRequest, 0, 0, UDPTunnelForce|UDPTunnelFARequired|0x01, NextGRE, 0, 0)
	utp := ext(ExtUDPTunnelReply, 0, uint8(TunnelDeclined), 0x7f, 0xff, 0x01, 0x02)
	mh := ext(ExtMHAuth, auth(1)...)
	for _, tc := range []struct {
		name string
		msg  []byte
		err  error
		chk  func(t *testing.T, q *Request, p *Reply)
	}{
		{"request fields", cat(req, utq, mh), nil, func(t *testing.T, q *Request, _ *Reply) {
			want := UDPTunnelRequest{Present: true, Flags: UDPTunnelForce | UDPTunnelFARequired | 0x01, Encapsulation: NextGRE, Authenticated: true}
			if q.UDPTunnel != want {
				t.Errorf("%+v, want %+v", q.UDPTunnel, want)
			}
		}},
		{"request after MH auth: not authenticated", cat(req, mh, utq), nil, func(t *testing.T, q *Request, _ *Reply) {
			if !q.UDPTunnel.Present || q.UDPTunnel.Authenticated {
				t.Errorf("%+v", q.UDPTunnel)
			}
		}},
		{"request without MH auth: not authenticated", cat(req, utq), nil, func(t *testing.T, q *Request, _ *Reply) {
			if !q.UDPTunnel.Present || q.UDPTunnel.Authenticated {
				t.Errorf("%+v", q.UDPTunnel)
			}
		}},
		{"request sub-type kept", cat(req, ext(ExtUDPTunnelRequest, 7, 0, 0, NextIPv4, 0, 0), mh), nil, func(t *testing.T, q *Request, _ *Reply) {
			if q.UDPTunnel.SubType != 7 {
				t.Errorf("%+v", q.UDPTunnel)
			}
		}},
		{"request long", cat(req, ext(ExtUDPTunnelRequest, 0, 0, 0, 4, 0, 0, 0), mh), ErrBadExtension, nil},
		{"request short", cat(req, ext(ExtUDPTunnelRequest, 0, 0, 0, 4, 0), mh), ErrBadExtension, nil},
		{"request duplicate", cat(req, utq, utq, mh), ErrBadExtension, nil},
		{"request truncated", cat(req, utq[:5]), ErrTruncated, nil},
		// The reply's extension in a request is an unknown non-skippable type.
		{"reply extension in a request", cat(req, utp, mh), ErrUnknownExtension, nil},
		{"reply fields", cat(rep, utp, mh), nil, func(t *testing.T, _ *Request, p *Reply) {
			want := UDPTunnelReply{Present: true, Code: TunnelDeclined, Flags: 0x7fff, Keepalive: 0x0102}
			if p.UDPTunnel != want {
				t.Errorf("%+v, want %+v", p.UDPTunnel, want)
			}
		}},
		{"reply duplicate", cat(rep, utp, utp), ErrBadExtension, nil},
		{"reply short", cat(rep, ext(ExtUDPTunnelReply, 0, 0, 0, 0, 0)), ErrBadExtension, nil},
		// The request's extension in a reply is an ordinary skippable type.
		{"request extension in a reply", cat(rep, utq, mh), nil, func(t *testing.T, _ *Request, p *Reply) {
			if p.IgnoredExt != 1 || p.UDPTunnel.Present {
				t.Errorf("%+v", p)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var q Request
			var p Reply
			var err error
			if tc.msg[0] == TypeRequest {
				err = q.UnmarshalBinary(tc.msg)
			} else {
				err = p.UnmarshalBinary(tc.msg)
			}
			if err != tc.err {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if tc.chk != nil {
				tc.chk(t, &q, &p)
			}
		})
	}
}

// The reply codes RFC 3519 adds, and what each tells the mobile node.
func TestUDPTunnelCodes(t *testing.T) {
	for _, tc := range []struct {
		code     Code
		value    uint8
		accepted bool
		byHA     bool
		text     string
	}{
		// §3.5: the home agent cannot honour the UDP Tunnel Request (UDP
		// tunnelling off, or an encapsulation it lacks): StarOS sends it for
		// an unsupported encapsulation.
		{CodeUDPEncapUnavailable, 142, false, true, "requested UDP tunnel encapsulation unavailable"},
		// The denial StarOS uses for a forced request without NAT when it
		// is configured not to accept it (an existing code, not RFC 3519's).
		{CodeAdminProhibited, 129, false, true, "administratively prohibited"},
	} {
		if uint8(tc.code) != tc.value || tc.code.Accepted() != tc.accepted || (tc.code >= 128) != tc.byHA || tc.code.String() != tc.text {
			t.Errorf("code %d: value %d accepted %v byHA %v %q", tc.value, uint8(tc.code), tc.code.Accepted(), tc.code >= 128, tc.code.String())
		}
	}
	for _, tc := range []struct {
		code  TunnelCode
		value uint8
		text  string
	}{
		{TunnelWillDo, 0, "will do UDP tunnelling"},
		{TunnelDeclined, 64, "UDP tunnelling declined, reason unspecified"},
		{1, 1, "tunnel code 1"},
	} {
		if uint8(tc.code) != tc.value || tc.code.String() != tc.text {
			t.Errorf("tunnel code %d: %d %q", tc.value, uint8(tc.code), tc.code.String())
		}
	}
	if TunnelOverhead != 32 {
		t.Errorf("UDP tunnel overhead %d bytes, want 32 (IPv4 20, UDP 8, tunnel data 4)", TunnelOverhead)
	}
}

func TestUDPTunnelRoundTrip(t *testing.T) {
	h := NewHMACMD5(testKey)
	for _, flags := range []uint8{0, UDPTunnelForce, UDPTunnelFARequired, 0xff} {
		for _, encap := range []uint8{NextIPv4, NextGRE, NextMinimal, 0} {
			r := testRequest()
			r.UDPTunnel = UDPTunnelRequest{Present: true, SubType: flags & 3, Flags: flags, Encapsulation: encap}
			b, err := r.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			b = AppendMHAuth(b, 0, 9, h)
			var p Request
			if err := p.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if !p.UDPTunnel.Authenticated || !Verify(b, p.MHAuth, h, new([64]byte)) {
				t.Fatalf("%+v", p)
			}
			p.MHAuth, p.UDPTunnel.Authenticated = AuthExt{}, false
			if !reflect.DeepEqual(p, r) {
				t.Fatalf("parsed %+v\nwant   %+v", p, r)
			}
		}
	}
	for _, ka := range []uint16{0, 1, 110, 0xffff} {
		for _, code := range []TunnelCode{TunnelWillDo, TunnelDeclined, 200} {
			r := testReply()
			r.UDPTunnel = UDPTunnelReply{Present: true, Code: code, Flags: uint16(ka) ^ UDPTunnelReplyForced, Keepalive: ka}
			b, err := r.AppendBinary(nil)
			if err != nil {
				t.Fatal(err)
			}
			var p Reply
			if err := p.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(p, r) {
				t.Fatalf("%v: parsed %+v\nwant %+v", err, p, r)
			}
		}
	}
	for next := range 256 {
		b, _ := TunnelHeader{NextHeader: uint8(next)}.AppendBinary(nil)
		var h TunnelHeader
		if err := h.UnmarshalBinary(b); err != nil || h.NextHeader != uint8(next) {
			t.Fatalf("next %d: %v %d", next, err, h.NextHeader)
		}
	}
}

func TestUDPTunnelAllocs(t *testing.T) {
	req := unhex(t, goldenUDPTunnelRequestHex)
	rep := unhex(t, goldenUDPTunnelReplyHex)
	data := append(unhex(t, goldenTunnelHeaderHex), make([]byte, 84)...)
	buf := make([]byte, 0, 512)
	h := NewHMACMD5(testKey)
	tr, tp := testUDPTunnelRequest(), testUDPTunnelReply()
	var r Request
	var p Reply
	var th TunnelHeader
	for name, f := range map[string]func(){
		"Request.UnmarshalBinary": func() { _ = r.UnmarshalBinary(req) },
		"Reply.UnmarshalBinary":   func() { _ = p.UnmarshalBinary(rep) },
		"Request.AppendBinary+MHAuth": func() {
			b, _ := tr.AppendBinary(buf[:0])
			_ = AppendMHAuth(b, 0, 256, h)
		},
		"Reply.AppendBinary+MHAuth": func() {
			b, _ := tp.AppendBinary(buf[:0])
			_ = AppendMHAuth(b, 0, 256, h)
		},
		"TunnelHeader": func() {
			_ = th.UnmarshalBinary(data)
			_, _ = th.AppendBinary(buf[:0])
		},
		"errors": func() {
			var r Request
			_ = r.UnmarshalBinary(req[:RequestLen+17+5])
			_ = th.UnmarshalBinary(req)
		},
	} {
		f()
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", name, n)
		}
	}
}

func FuzzTunnelHeader(f *testing.F) {
	f.Add(unhex(f, goldenTunnelHeaderHex))
	f.Add(append(unhex(f, goldenTunnelHeaderHex), 0x45, 0, 0, 20))
	f.Add(unhex(f, goldenUDPTunnelRequestHex))
	f.Fuzz(func(t *testing.T, b []byte) {
		var h TunnelHeader
		if h.UnmarshalBinary(b) != nil {
			return
		}
		out, err := h.AppendBinary(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out[:2], b[:2]) || len(out) != TunnelHeaderLen {
			t.Fatalf("re-encoded %x from %x", out, b[:TunnelHeaderLen])
		}
	})
}

func BenchmarkParseVerifyUDPTunnel(b *testing.B) {
	msg := unhex(b, goldenUDPTunnelRequestHex)
	h := NewHMACMD5(testKey)
	scratch := new([64]byte)
	var r Request
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := r.UnmarshalBinary(msg); err != nil {
			b.Fatal(err)
		}
		if !Verify(msg, r.MHAuth, h, scratch) || !r.UDPTunnel.Authenticated {
			b.Fatal("verify")
		}
	}
}
