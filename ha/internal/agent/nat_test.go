package agent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/datapath"
	"github.com/hagent/hagent/ha/mip"
)

// natMapped is where a NAT'd node's requests come from: another address
// than its (private) care-of address.
var natMapped = netip.AddrPortFrom(netip.MustParseAddr("203.0.113.5"), 40000)

// natConfig offers UDP tunnelling to every node except "nort", keepalive 25 s.
func natConfig(capacity int) *config.Config {
	cfg := testConfig(capacity)
	cfg.NAT = config.NAT{UDPTunnel: true, AcceptForced: true, Keepalive: 25 * time.Second}
	for i := range cfg.Nodes {
		cfg.Nodes[i].UDPTunnel = cfg.Nodes[i].Name != "nort"
	}
	return cfg
}

func natCore(t testing.TB, cfg *config.Config) *Core {
	c, err := NewCore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// udpReq is req1 with a UDP Tunnel Request (IP in IP inside UDP) and flags.
func udpReq(id uint64, flags, encap uint8) rq {
	r := req1(id)
	r.CareOf = netip.MustParseAddr("10.0.0.7") // private, behind the NAT
	r.UDPTunnel = mip.UDPTunnelRequest{Present: true, Flags: flags, Encapsulation: encap}
	return r
}

// Every answer to a UDP Tunnel Request, on the Core alone: the reply code,
// the UDP Tunnel Reply (code, F, keepalive), and what the binding records.
func TestUDPTunnelReplyCodes(t *testing.T) {
	noNAT := func(r rq) rq { r.CareOf = natMapped.Addr(); return r }
	type want struct {
		code   mip.Code
		ext    bool // a UDP Tunnel Reply
		tcode  mip.TunnelCode
		forced bool
		udp    bool // the binding is UDP-tunnelled to natMapped
	}
	tests := []struct {
		name string
		cfg  func(*config.Config)
		core func(*Core)
		r    rq
		w    want
	}{
		{"NAT detected", nil, nil, udpReq(ts(0), 0, mip.NextIPv4), want{mip.CodeAccepted, true, mip.TunnelWillDo, false, true}},
		{"NAT detected, F set", nil, nil, udpReq(ts(0), mip.UDPTunnelForce, mip.NextIPv4), want{mip.CodeAccepted, true, mip.TunnelWillDo, false, true}},
		{"NAT detected, R set", nil, nil, udpReq(ts(0), mip.UDPTunnelFARequired, mip.NextIPv4), want{mip.CodeAccepted, true, mip.TunnelWillDo, false, true}},
		{"no NAT, no F: declined, plain tunnel", nil, nil, noNAT(udpReq(ts(0), 0, mip.NextIPv4)), want{mip.CodeAccepted, true, mip.TunnelDeclined, false, false}},
		{"no NAT, F, forced accepted", nil, nil, noNAT(udpReq(ts(0), mip.UDPTunnelForce, mip.NextIPv4)), want{mip.CodeAccepted, true, mip.TunnelWillDo, true, true}},
		{"no NAT, F, accept_forced off", func(c *config.Config) { c.NAT.AcceptForced = false }, nil, noNAT(udpReq(ts(0), mip.UDPTunnelForce, mip.NextIPv4)), want{mip.CodeAdminProhibited, false, 0, false, false}},
		{"accept_forced off, NAT detected, F set", func(c *config.Config) { c.NAT.AcceptForced = false }, nil, udpReq(ts(0), mip.UDPTunnelForce, mip.NextIPv4), want{mip.CodeAccepted, true, mip.TunnelWillDo, false, true}},
		{"GRE inside UDP", nil, nil, udpReq(ts(0), 0, mip.NextGRE), want{mip.CodeUDPEncapUnavailable, false, 0, false, false}},
		{"minimal inside UDP", nil, nil, udpReq(ts(0), 0, mip.NextMinimal), want{mip.CodeUDPEncapUnavailable, false, 0, false, false}},
		{"kernel without the UDP tunnel", nil, func(c *Core) { c.SetKernelUDP(false) }, udpReq(ts(0), 0, mip.NextIPv4), want{mip.CodeUDPEncapUnavailable, false, 0, false, false}},
		{"not offered to the node", func(c *config.Config) { c.Nodes[0].UDPTunnel = false }, nil, udpReq(ts(0), 0, mip.NextIPv4), want{mip.CodeAccepted, false, 0, false, false}},
		{"not offered at all", func(c *config.Config) { c.NAT.UDPTunnel = false }, nil, udpReq(ts(0), 0, mip.NextIPv4), want{mip.CodeAccepted, false, 0, false, false}},
		{"no extension behind a NAT", nil, nil, func() rq { r := udpReq(ts(0), 0, mip.NextIPv4); r.UDPTunnel = mip.UDPTunnelRequest{}; return r }(), want{mip.CodeAccepted, false, 0, false, false}},
		{"de-registration", nil, nil, func() rq { r := udpReq(ts(0), 0, mip.NextIPv4); r.Lifetime = 0; return r }(), want{mip.CodeAccepted, false, 0, false, false}},
		{"replay refused first", nil, nil, udpReq(ts(-time.Minute), 0, mip.NextGRE), want{mip.CodeIDMismatch, false, 0, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := natConfig(4)
			if tt.cfg != nil {
				tt.cfg(cfg)
			}
			c := natCore(t, cfg)
			if tt.core != nil {
				tt.core(c)
			}
			r := handle(t, c, 0, natMapped, haVIP, tt.r.bytes(t))
			if r == nil {
				t.Fatal("no reply")
			}
			if r.rep.Code != tt.w.code {
				t.Fatalf("code %d (%s), want %d (%s)", r.rep.Code, r.rep.Code, tt.w.code, tt.w.code)
			}
			verifyReply(t, r.raw, key1)
			u := r.rep.UDPTunnel
			if u.Present != tt.w.ext {
				t.Fatalf("UDP Tunnel Reply present %v, want %v", u.Present, tt.w.ext)
			}
			if u.Present {
				if u.Code != tt.w.tcode || (u.Flags&mip.UDPTunnelReplyForced != 0) != tt.w.forced {
					t.Errorf("UDP Tunnel Reply code %d F %v, want %d F %v", u.Code, u.Flags&mip.UDPTunnelReplyForced != 0, tt.w.tcode, tt.w.forced)
				}
				if wk := uint16(25); u.Code == mip.TunnelWillDo && u.Keepalive != wk {
					t.Errorf("keepalive %d s, want %d", u.Keepalive, wk)
				}
			}
			e := c.table.Get(binding.AddrU32(mn1))
			if !tt.w.code.Accepted() || tt.r.Lifetime == 0 {
				if e != nil && !e.Tombstone() {
					t.Fatalf("a live binding after code %d", r.rep.Code)
				}
				return
			}
			if e == nil {
				t.Fatal("no binding")
			}
			gotUDP := e.Encap == binding.EncapUDP
			if gotUDP != tt.w.udp {
				t.Fatalf("binding encapsulation %s, want UDP %v", e.Encap, tt.w.udp)
			}
			if gotUDP && (binding.U32Addr(e.NATAddr) != natMapped.Addr() || e.NATPort != natMapped.Port()) {
				t.Errorf("binding endpoint %s:%d, want %s", binding.U32Addr(e.NATAddr), e.NATPort, natMapped)
			}
			if !gotUDP && (e.NATAddr != 0 || e.NATPort != 0) {
				t.Errorf("plain binding with an endpoint %s:%d", binding.U32Addr(e.NATAddr), e.NATPort)
			}
			if r.ch.Entry.Encap != e.Encap || !r.ch.Moved {
				t.Errorf("change %+v does not carry the new binding", r.ch)
			}
		})
	}
}

// The UDP Tunnel Reply is inside what the MN-HA authenticator covers
// (RFC 3519 §3.2): a changed keepalive byte fails the node's check.
func TestUDPTunnelReplyIsAuthenticated(t *testing.T) {
	c := natCore(t, natConfig(4))
	r := handle(t, c, 0, natMapped, haVIP, udpReq(ts(0), 0, mip.NextIPv4).bytes(t))
	if !r.rep.UDPTunnel.Present {
		t.Fatal("no UDP Tunnel Reply")
	}
	raw := append([]byte(nil), r.raw...)
	i := mip.RequestLen - 4 // the reply's fixed part is 20 bytes
	if raw[i] != mip.ExtUDPTunnelReply {
		t.Fatalf("byte %d is %d, want the UDP Tunnel Reply (44) right after the fixed part", i, raw[i])
	}
	raw[i+7]++ // the keepalive's low byte
	var rep mip.Reply
	if err := rep.UnmarshalBinary(raw); err != nil {
		t.Fatal(err)
	}
	var s [64]byte
	if mip.Verify(raw, rep.MHAuth, mip.NewHMACMD5(key1), &s) {
		t.Fatal("a changed UDP Tunnel Reply still authenticates: it is outside the MN-HA authenticator")
	}
}

// An extension appended after the node's authenticator is not the node's
// word: it is ignored (plain tunnelling), not obeyed.
func TestUDPTunnelRequestOutsideTheAuthenticatorIgnored(t *testing.T) {
	c := natCore(t, natConfig(4))
	r := udpReq(ts(0), 0, mip.NextIPv4)
	r.UDPTunnel = mip.UDPTunnelRequest{}
	pkt := r.bytes(t)
	pkt = mip.AppendUDPTunnelRequest(pkt, mip.UDPTunnelRequest{Present: true, Encapsulation: mip.NextIPv4})
	got := handle(t, c, 0, natMapped, haVIP, pkt)
	if got == nil || got.rep.Code != mip.CodeAccepted || got.rep.UDPTunnel.Present {
		t.Fatalf("reply %+v, want accepted without a UDP Tunnel Reply", got)
	}
	if e := c.table.Get(binding.AddrU32(mn1)); e.Encap == binding.EncapUDP {
		t.Fatal("an unauthenticated UDP Tunnel Request made the binding UDP")
	}
}

// A re-registration from a new NAT mapping moves the tunnel (Moved, the
// new port in the binding); one from the same mapping is a plain renewal;
// a retransmission of the accepted request from the same mapping is a
// duplicate with the same UDP Tunnel Reply, from a new mapping a 133.
func TestUDPTunnelFollowsTheMapping(t *testing.T) {
	c := natCore(t, natConfig(4))
	first := udpReq(ts(0), 0, mip.NextIPv4)
	if r := handle(t, c, 0, natMapped, haVIP, first.bytes(t)); r.ch.Kind != Registered || !r.ch.Moved {
		t.Fatalf("first registration: %s moved=%v", r.ch.Kind, r.ch.Moved)
	}
	if r := handle(t, c, 1, natMapped, haVIP, first.bytes(t)); r.rep.Code != mip.CodeAccepted || !r.ch.Dup || !r.rep.UDPTunnel.Present || r.rep.UDPTunnel.Keepalive != 25 {
		t.Fatalf("retransmission from the same mapping: code %d dup %v tunnel %+v, want a duplicate with the tunnel reply", r.rep.Code, r.ch.Dup, r.rep.UDPTunnel)
	}
	moved := netip.AddrPortFrom(natMapped.Addr(), 40001)
	if r := handle(t, c, 2, moved, haVIP, first.bytes(t)); r.rep.Code != mip.CodeIDMismatch || r.ch.Dup {
		t.Fatalf("retransmission from a new mapping: code %d dup %v, want 133", r.rep.Code, r.ch.Dup)
	}
	if e := c.table.Get(binding.AddrU32(mn1)); e.NATPort != natMapped.Port() {
		t.Fatalf("a refused request moved the binding to port %d", e.NATPort)
	}
	if r := handle(t, c, 3, natMapped, haVIP, udpReq(ts(time.Second), 0, mip.NextIPv4).bytes(t)); r.ch.Kind != Renewed || r.ch.Moved {
		t.Fatalf("renewal from the same mapping: %s moved=%v, want renewed in place", r.ch.Kind, r.ch.Moved)
	}
	r := handle(t, c, 4, moved, haVIP, udpReq(ts(2*time.Second), 0, mip.NextIPv4).bytes(t))
	if r.rep.Code != mip.CodeAccepted || r.ch.Kind != Renewed || !r.ch.Moved || r.ch.Entry.NATPort != 40001 {
		t.Fatalf("re-registration from a new mapping: code %d %s moved=%v port %d, want the tunnel moved to 40001", r.rep.Code, r.ch.Kind, r.ch.Moved, r.ch.Entry.NATPort)
	}
	if e := c.table.Get(binding.AddrU32(mn1)); e.NATPort != 40001 || e.Encap != binding.EncapUDP {
		t.Fatalf("binding %s:%d %s, want udp to port 40001", binding.U32Addr(e.NATAddr), e.NATPort, e.Encap)
	}
	// Back home behind no NAT, without the extension: plain tunnelling again.
	back := req1(ts(3 * time.Second))
	if r := handle(t, c, 5, mnSrc, haVIP, back.bytes(t)); !r.ch.Moved || r.ch.Entry.Encap == binding.EncapUDP {
		t.Fatalf("registration without the extension: moved=%v encap %s, want moved out of UDP", r.ch.Moved, r.ch.Entry.Encap)
	}
}

// A verdict a later stage denies (the hold policy, the kernel) carries no
// UDP Tunnel Reply: no tunnel is set up for a denied request.
func TestDeniedVerdictDropsTheTunnelReply(t *testing.T) {
	c := natCore(t, natConfig(4))
	var v Verdict
	c.Handle(0, wall0, natMapped, haVIP, udpReq(ts(0), 0, mip.NextIPv4).bytes(t), &v)
	if !v.Tunnel.Present {
		t.Fatal("accepted verdict without a UDP Tunnel Reply")
	}
	v.Deny(mip.CodeInsufficientResources)
	rep := verifyReply(t, seal(t, c, &v), key1)
	if rep.Code != mip.CodeInsufficientResources || rep.UDPTunnel.Present {
		t.Fatalf("denied reply: code %d tunnel %+v, want 130 without a UDP Tunnel Reply", rep.Code, rep.UDPTunnel)
	}
}

// The advertisement's U flag follows nat.udp_tunnel.
func TestAdvertUFlag(t *testing.T) {
	for _, on := range []bool{false, true} {
		cfg := natConfig(4)
		cfg.NAT.UDPTunnel = on
		a := advertConfig(cfg)
		if got := a.Flags()&(1<<(15-8)) != 0; got != on {
			t.Errorf("nat.udp_tunnel %v: U flag %v", on, got)
		}
	}
}

func TestRegistrationWithUDPTunnelAllocatesNothing(t *testing.T) {
	c := natCore(t, natConfig(16))
	out := make([]byte, 0, ReplyBufLen)
	reqs := make([][]byte, 64)
	for i := range reqs {
		reqs[i] = udpReq(ts(0)+uint64(i), 0, mip.NextIPv4).bytes(t)
	}
	i := 0
	allocs := testing.AllocsPerRun(50, func() {
		src := netip.AddrPortFrom(natMapped.Addr(), uint16(40000+i%3)) // the mapping moves now and then
		reply, _, _ := sealed(c, int64(i), wall0, src, haVIP, reqs[i%len(reqs)], out)
		if reply == nil {
			t.Fatal("no reply")
		}
		i++
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per registration with a UDP Tunnel Request, want 0", allocs)
	}
	if c.Stats.Codes[0] == 0 || c.table.Get(binding.AddrU32(mn1)).Encap != binding.EncapUDP {
		t.Fatal("nothing UDP-tunnelled accepted: the test measured the wrong path")
	}
}

// BenchmarkRegistrationUDPTunnel is BenchmarkRegistration with a UDP Tunnel
// Request in every request, from behind a NAT: the extension parsed, the
// decision, the endpoint written, the UDP Tunnel Reply sealed.
func BenchmarkRegistrationUDPTunnel(b *testing.B) {
	const nodes = 10000
	cfg := natConfig(nodes)
	cfg.Nodes = cfg.Nodes[2:3] // one pool covering the home network
	cfg.Agent.HomeNetwork = netip.MustParsePrefix("192.0.0.0/16")
	cfg.Nodes[0].Pool = netip.MustParsePrefix("192.0.64.0/18")
	c := natCore(b, cfg)
	n := min(b.N, 1<<21)
	const stride = mip.RequestLen + mip.UDPTunnelExtLen + mip.MHAuthLen
	buf := make([]byte, 0, n*stride)
	h := mip.NewHMACMD5(keyPool)
	base := ts(0)
	priv := netip.MustParseAddr("10.0.0.7")
	for i := 0; i < n; i++ {
		a := uint32(192)<<24 | 64<<8 | uint32(i%nodes+1)
		r := mip.Request{Lifetime: 300, HomeAddr: binding.U32Addr(a), HomeAgent: haVIP, CareOf: priv, ID: base + uint64(i),
			UDPTunnel: mip.UDPTunnelRequest{Present: true, Encapsulation: mip.NextIPv4}}
		start := len(buf)
		buf, _ = r.AppendBinary(buf)
		buf = mip.AppendMHAuth(buf, start, 400, h)
	}
	out := make([]byte, 0, ReplyBufLen)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % n
		reply, _, _ := sealed(c, int64(i), wall0, natMapped, haVIP, buf[j*stride:(j+1)*stride], out)
		if reply == nil {
			b.Fatal("no reply")
		}
	}
	b.StopTimer()
	if b.N <= n && c.Stats.Codes[0] != uint64(b.N) {
		b.Fatalf("accepted %d of %d", c.Stats.Codes[0], b.N)
	}
}

// The kernel is asked for what the binding records: a UDP binding goes to
// its NAT mapping (and so does a peer's replicated copy, at takeover),
// a plain one as its flags say.
func TestDatapathBindingCarriesTheNATEndpoint(t *testing.T) {
	e := binding.Entry{Home: binding.AddrU32(mn1), CareOf: binding.AddrU32(netip.MustParseAddr("10.0.0.7")), Flags: mip.FlagT,
		Encap: binding.EncapUDP, NATAddr: binding.AddrU32(natMapped.Addr()), NATPort: natMapped.Port()}
	b := dpBinding(&e)
	if b.Encap != datapath.UDP || b.NAT != natMapped || b.Home != mn1 || !b.Reverse {
		t.Fatalf("UDP binding programmed as %+v", b)
	}
	e.Encap, e.NATAddr, e.NATPort, e.Flags = binding.EncapDefault, 0, 0, mip.FlagG
	if b := dpBinding(&e); b.Encap != datapath.GRE || b.NAT.IsValid() {
		t.Fatalf("GRE binding programmed as %+v", b)
	}
}

// Without an IP-in-IP device (a kernel without the driver, serving nodes
// behind NATs only) a registration that would be tunnelled IP in IP is
// denied 139; a UDP-tunnelled one and a de-registration are not.
func TestNoIPIPKernelServesUDPOnly(t *testing.T) {
	c := natCore(t, natConfig(4))
	c.SetKernelIPIP(false)
	if r := handle(t, c, 0, mnSrc, haVIP, req1(ts(0)).bytes(t)); r.rep.Code != mip.CodeEncapUnavailable {
		t.Fatalf("plain registration: code %d, want 139", r.rep.Code)
	}
	if r := handle(t, c, 0, natMapped, haVIP, udpReq(ts(time.Second), 0, mip.NextIPv4).bytes(t)); r.rep.Code != mip.CodeAccepted || r.ch.Entry.Encap != binding.EncapUDP {
		t.Fatalf("UDP-tunnelled registration: code %d encap %s, want accepted, udp", r.rep.Code, r.ch.Entry.Encap)
	}
	d := req1(ts(2 * time.Second))
	d.Lifetime = 0
	if r := handle(t, c, 0, mnSrc, haVIP, d.bytes(t)); r.rep.Code != mip.CodeAccepted || r.ch.Kind != Deregistered {
		t.Fatalf("de-registration: code %d %s, want accepted", r.rep.Code, r.ch.Kind)
	}
}
