package agent

import (
	"errors"
	"iter"
	"net/netip"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/datapath"
	"github.com/hagent/hagent/ha/mip"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func wire(s string) mip.MobileNetPrefix {
	p := netip.MustParsePrefix(s)
	return mip.MobileNetPrefix{Bits: uint8(p.Bits()), Addr: p.Addr()}
}

// mnConfig: mn1 (fixed home) may claim 10.9.0.0/16 and 10.10.1.0/24, at
// most 3 at once; "pool" (no NAI: routers sharing a key) may claim inside
// 10.20.0.0/16.
func mnConfig() *config.Config {
	cfg := testConfig(16)
	cfg.Nodes[0].MobileNetworks = []netip.Prefix{pfx("10.9.0.0/16"), pfx("10.10.1.0/24")}
	cfg.Nodes[0].MaxMobileNetworks = 3
	cfg.Nodes[2].MobileNetworks = []netip.Prefix{pfx("10.20.0.0/16")}
	cfg.Nodes[2].MaxMobileNetworks = 8
	return cfg
}

func mnCore(t testing.TB) *Core {
	c, err := NewCore(mnConfig())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// routerReq is mn1's registration claiming nets (explicit mode).
func routerReq(id uint64, nets ...mip.MobileNetPrefix) rq {
	r := req1(id)
	for _, n := range nets {
		r.MobileNet.Add(n)
	}
	return r
}

type ackWant struct {
	code mip.MobileNetCode
	net  string
}

func checkAcks(t *testing.T, r *result, implicit bool, want []ackWant) {
	t.Helper()
	got := r.rep.MobileNet
	if !r.rep.MHAuth.Present {
		t.Fatal("reply without authenticator")
	}
	var scratch [64]byte
	if !mip.Verify(r.raw, r.rep.MHAuth, mip.NewHMACMD5(key1), &scratch) && !mip.Verify(r.raw, r.rep.MHAuth, mip.NewHMACMD5(keyPool), &scratch) {
		t.Fatal("reply does not authenticate")
	}
	if got.N != len(want) || (len(want) > 0 && got.Implicit != implicit) {
		t.Fatalf("acknowledgements %+v, want %v (implicit %v)", got.List(), want, implicit)
	}
	for i, w := range want {
		a := got.Acks[i]
		if a.Code != w.code || a.Prefix != wire(w.net) {
			t.Errorf("ack %d: %v %d/%v, want %v %s", i, a.Code, a.Prefix.Bits, a.Prefix.Addr, w.code, w.net)
		}
	}
}

func entryNets(e *binding.Entry) []netip.Prefix {
	var ps []netip.Prefix
	for i := 0; i < e.NumPrefixes(); i++ {
		ps = append(ps, e.Prefix(i))
	}
	return ps
}

// Every acknowledgement code of explicit mode, the maximum, and the binding
// carrying only what was acknowledged with 0.
func TestMobileNetExplicitCodes(t *testing.T) {
	hostBits := mip.MobileNetPrefix{Bits: 24, Addr: netip.MustParseAddr("10.9.1.1")}
	tooLong := mip.MobileNetPrefix{Bits: 33, Addr: netip.MustParseAddr("10.9.1.0")}
	zero := mip.MobileNetPrefix{Bits: 0, Addr: netip.MustParseAddr("0.0.0.0")}
	cases := []struct {
		name  string
		nets  []mip.MobileNetPrefix
		acks  []ackWant
		carry []string
	}{
		{"one authorised", []mip.MobileNetPrefix{wire("10.9.1.0/24")},
			[]ackWant{{0, "10.9.1.0/24"}}, []string{"10.9.1.0/24"}},
		{"equal to the configured one", []mip.MobileNetPrefix{wire("10.10.1.0/24")},
			[]ackWant{{0, "10.10.1.0/24"}}, []string{"10.10.1.0/24"}},
		{"host bits: 1", []mip.MobileNetPrefix{hostBits, wire("10.9.2.0/24")},
			[]ackWant{{1, "10.9.1.1/24"}, {0, "10.9.2.0/24"}}, []string{"10.9.2.0/24"}},
		{"length over 32: 1", []mip.MobileNetPrefix{tooLong}, nil, nil},
		{"length 0: 1", []mip.MobileNetPrefix{zero}, []ackWant{{1, "0.0.0.0/0"}}, nil},
		{"not configured: 2", []mip.MobileNetPrefix{wire("10.11.0.0/24"), wire("10.9.3.0/24")},
			[]ackWant{{2, "10.11.0.0/24"}, {0, "10.9.3.0/24"}}, []string{"10.9.3.0/24"}},
		{"larger than configured: 2", []mip.MobileNetPrefix{wire("10.10.0.0/16")},
			[]ackWant{{2, "10.10.0.0/16"}}, nil},
		{"beyond the maximum: 2", []mip.MobileNetPrefix{wire("10.9.1.0/24"), wire("10.9.2.0/24"), wire("10.9.3.0/24"), wire("10.9.4.0/24")},
			[]ackWant{{0, "10.9.1.0/24"}, {0, "10.9.2.0/24"}, {0, "10.9.3.0/24"}, {2, "10.9.4.0/24"}},
			[]string{"10.9.1.0/24", "10.9.2.0/24", "10.9.3.0/24"}},
		{"listed twice: carried once", []mip.MobileNetPrefix{wire("10.9.1.0/24"), wire("10.9.1.0/24")},
			[]ackWant{{0, "10.9.1.0/24"}, {0, "10.9.1.0/24"}}, []string{"10.9.1.0/24"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := mnCore(t)
			r := handle(t, c, 0, mnSrc, haVIP, routerReq(ts(0), tc.nets...).bytes(t))
			if r.rep.Code != mip.CodeAccepted {
				t.Fatalf("code %d", r.rep.Code)
			}
			if tc.name == "length over 32: 1" {
				// A length byte over 32 does not fit the acknowledgement's
				// MobileNetPrefix golden either way: read it raw.
				if r.rep.MobileNet.N != 1 || r.rep.MobileNet.Acks[0].Code != mip.MobileNetInvalidPrefix || r.rep.MobileNet.Acks[0].Prefix.Bits != 33 {
					t.Fatalf("acks %+v, want one code 1 for /33", r.rep.MobileNet.List())
				}
			} else {
				checkAcks(t, r, false, tc.acks)
			}
			e := c.Table().Get(binding.AddrU32(mn1))
			var want []netip.Prefix
			for _, s := range tc.carry {
				want = append(want, pfx(s))
			}
			if got := entryNets(e); len(got) != len(want) || (len(want) > 0 && !equalPrefixes(got, want)) {
				t.Fatalf("binding carries %v, want %v", got, want)
			}
			if got := entryNets(&r.ch.Entry); !equalPrefixes(got, want) {
				t.Fatalf("change carries %v, want %v", got, want)
			}
		})
	}
}

func equalPrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Implicit mode: a router of an entry that is one router, listing no
// network, gets every configured one, acknowledged with sub-type 2; a pool
// without an NAI routes nothing implicitly (its routers share the entry).
func TestMobileNetImplicit(t *testing.T) {
	c := mnCore(t)
	r := handle(t, c, 0, mnSrc, haVIP, req1(ts(0)).bytes(t))
	checkAcks(t, r, true, []ackWant{{0, "10.9.0.0/16"}, {0, "10.10.1.0/24"}})
	if got := entryNets(c.Table().Get(binding.AddrU32(mn1))); !equalPrefixes(got, []netip.Prefix{pfx("10.9.0.0/16"), pfx("10.10.1.0/24")}) {
		t.Fatalf("binding carries %v", got)
	}
	// The pool's router.
	p := rq{Request: mip.Request{Lifetime: 300, HomeAddr: netip.MustParseAddr("192.0.2.70"), HomeAgent: haVIP, CareOf: coa, ID: ts(0)}, spi: 400, key: keyPool}
	r = handle(t, c, 0, mnSrc, haVIP, p.bytes(t))
	if r.rep.Code != mip.CodeAccepted || r.rep.MobileNet.N != 0 {
		t.Fatalf("shared pool, implicit: code %d acks %+v, want accepted without networks", r.rep.Code, r.rep.MobileNet.List())
	}
	// An ordinary node (no mobile_networks) gets no acknowledgement at all.
	c2 := newCore(t, 4)
	r = handle(t, c2, 0, mnSrc, haVIP, req1(ts(0)).bytes(t))
	if r.rep.MobileNet.N != 0 || c2.Table().Get(binding.AddrU32(mn1)).NumPrefixes() != 0 {
		t.Fatal("a node without mobile_networks got networks")
	}
}

// Only what the router's authenticator covers is a claim: a request
// extension after it is ignored (not routed, not acknowledged).
func TestMobileNetAfterAuthenticatorIgnored(t *testing.T) {
	c := mnCore(t)
	b := req1(ts(0)).bytes(t)
	b = mip.AppendMobileNetRequest(b, wire("10.9.1.0/24"))
	r := handle(t, c, 0, mnSrc, haVIP, b)
	if r.rep.Code != mip.CodeAccepted {
		t.Fatalf("code %d", r.rep.Code)
	}
	if r.rep.MobileNet.N != 0 || c.Table().Get(binding.AddrU32(mn1)).NumPrefixes() != 0 {
		t.Fatalf("an unauthenticated network was acknowledged (%+v) or carried", r.rep.MobileNet.List())
	}
}

// A denied registration acknowledges nothing: no network is routed.
func TestMobileNetDenialAcknowledgesNothing(t *testing.T) {
	c := mnCore(t)
	m := routerReq(ts(0), wire("10.9.1.0/24"))
	m.HomeAgent = netip.MustParseAddr("192.0.2.99") // not us: 136
	r := handle(t, c, 0, mnSrc, haVIP, m.bytes(t))
	if r.rep.Code != mip.CodeUnknownHA || r.rep.MobileNet.N != 0 {
		t.Fatalf("code %d acks %+v", r.rep.Code, r.rep.MobileNet.List())
	}
	var v Verdict
	v.nets.add(0, 24, 1, 0)
	v.Deny(mip.CodeInsufficientResources)
	if v.nets.n != 0 {
		t.Fatal("Deny kept the acknowledgements")
	}
}

// Routers of a pool without an NAI share an entry: a network one holds is
// refused (2) to another, whether equal or inside it, until the holder's
// binding no longer carries it. The holder's own renewal keeps it.
func TestMobileNetSharedPoolConflict(t *testing.T) {
	c := mnCore(t)
	poolReq := func(home string, id uint64, nets ...mip.MobileNetPrefix) []byte {
		r := rq{Request: mip.Request{Lifetime: 300, HomeAddr: netip.MustParseAddr(home), HomeAgent: haVIP, CareOf: coa, ID: id}, spi: 400, key: keyPool}
		for _, n := range nets {
			r.MobileNet.Add(n)
		}
		return r.bytes(t)
	}
	r := handle(t, c, 0, mnSrc, haVIP, poolReq("192.0.2.70", ts(0), wire("10.20.1.0/24")))
	checkAcks(t, r, false, []ackWant{{0, "10.20.1.0/24"}})
	r = handle(t, c, 0, mnSrc, haVIP, poolReq("192.0.2.71", ts(1*time.Second), wire("10.20.1.0/24"), wire("10.20.1.128/25"), wire("10.20.2.0/24")))
	checkAcks(t, r, false, []ackWant{{2, "10.20.1.0/24"}, {2, "10.20.1.128/25"}, {0, "10.20.2.0/24"}})
	r = handle(t, c, 0, mnSrc, haVIP, poolReq("192.0.2.70", ts(2*time.Second), wire("10.20.1.0/24")))
	checkAcks(t, r, false, []ackWant{{0, "10.20.1.0/24"}})
	// The holder de-registers: the network is free.
	d := rq{Request: mip.Request{Lifetime: 0, HomeAddr: netip.MustParseAddr("192.0.2.70"), HomeAgent: haVIP, CareOf: coa, ID: ts(3 * time.Second)}, spi: 400, key: keyPool}
	if r = handle(t, c, 0, mnSrc, haVIP, d.bytes(t)); r.rep.Code != mip.CodeAccepted || r.rep.MobileNet.N != 0 {
		t.Fatalf("de-registration: code %d acks %d", r.rep.Code, r.rep.MobileNet.N)
	}
	r = handle(t, c, 0, mnSrc, haVIP, poolReq("192.0.2.71", ts(4*time.Second), wire("10.20.1.0/24")))
	checkAcks(t, r, false, []ackWant{{0, "10.20.1.0/24"}})
}

// A peer's record is admitted only with networks this member's own
// configuration allows for its home.
func TestMobileNetAdmitPrefix(t *testing.T) {
	c := mnCore(t)
	for _, tc := range []struct {
		home string
		p    string
		ok   bool
	}{
		{"192.0.2.10", "10.9.1.0/24", true},
		{"192.0.2.10", "10.11.0.0/24", false},
		{"192.0.2.70", "10.20.5.0/24", true},
		{"192.0.2.70", "10.9.1.0/24", false},
		{"192.0.2.200", "10.9.1.0/24", false}, // no node holds that home
	} {
		why := c.AdmitPrefix(binding.AddrU32(netip.MustParseAddr(tc.home)), pfx(tc.p))
		if (why == "") != tc.ok {
			t.Errorf("%s %s: %q, want admitted %v", tc.home, tc.p, why, tc.ok)
		}
	}
}

// Registration with 8 networks allocates nothing (decision and seal).
func TestMobileNetRegistrationAllocatesNothing(t *testing.T) {
	cfg := mnConfig()
	cfg.Nodes[0].MaxMobileNetworks = 8
	c, err := NewCore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 0, ReplyBufLen)
	reqs := make([][]byte, 64)
	for i := range reqs {
		var nets []mip.MobileNetPrefix
		for j := 0; j < 8; j++ {
			nets = append(nets, mip.MobileNetPrefix{Bits: 24, Addr: netip.AddrFrom4([4]byte{10, 9, byte(j + i%2), 0})})
		}
		reqs[i] = routerReq(ts(0)+uint64(i), nets...).bytes(t)
	}
	i := 0
	allocs := testing.AllocsPerRun(50, func() {
		if reply, _, _ := sealed(c, int64(i), wall0, mnSrc, haVIP, reqs[i%len(reqs)], out); reply == nil {
			t.Fatal("no reply")
		}
		i++
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per registration with 8 networks, want 0", allocs)
	}
	var rep mip.Reply
	reply, _, _ := sealed(c, int64(i), wall0, mnSrc, haVIP, reqs[i%len(reqs)], out)
	if err := rep.UnmarshalBinary(reply); err != nil || rep.Code != mip.CodeAccepted || rep.MobileNet.N != 8 {
		t.Fatalf("last reply: %v code %d acks %d: the test measured the wrong path", err, rep.Code, rep.MobileNet.N)
	}
}

// BenchmarkRegistrationMobileNets8 is BenchmarkRegistration for routers
// claiming 8 networks each (explicit mode).
func BenchmarkRegistrationMobileNets8(b *testing.B) {
	const nodes = 10000
	cfg := testConfig(nodes)
	cfg.Nodes = cfg.Nodes[2:3]
	cfg.Agent.HomeNetwork = netip.MustParsePrefix("192.0.0.0/16")
	cfg.Nodes[0].Pool = netip.MustParsePrefix("192.0.64.0/18")
	cfg.Nodes[0].MobileNetworks = []netip.Prefix{pfx("10.0.0.0/8")}
	cfg.Nodes[0].MaxMobileNetworks = 8
	c, err := NewCore(cfg)
	if err != nil {
		b.Fatal(err)
	}
	n := min(b.N, 1<<20)
	const stride = mip.RequestLen + 8*8 + mip.MHAuthLen
	buf := make([]byte, 0, n*stride)
	h := mip.NewHMACMD5(keyPool)
	base := ts(0)
	for i := 0; i < n; i++ {
		k := i%nodes + 1
		a := uint32(192)<<24 | 64<<8 | uint32(k)
		r := mip.Request{Lifetime: 300, HomeAddr: binding.U32Addr(a), HomeAgent: haVIP, CareOf: coa, ID: base + uint64(i)}
		for j := 0; j < 8; j++ {
			r.MobileNet.Add(mip.MobileNetPrefix{Bits: 27, Addr: netip.AddrFrom4([4]byte{10, byte(k >> 8), byte(k), byte(j << 5)})})
		}
		start := len(buf)
		buf, _ = r.AppendBinary(buf)
		buf = mip.AppendMHAuth(buf, start, 400, h)
		if len(buf)-start != stride {
			b.Fatalf("request of %d bytes, want %d", len(buf)-start, stride)
		}
	}
	out := make([]byte, 0, ReplyBufLen)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % n
		if reply, _, _ := sealed(c, int64(i), wall0, mnSrc, haVIP, buf[j*stride:(j+1)*stride], out); reply == nil {
			b.Fatal("no reply")
		}
	}
	b.StopTimer()
	if b.N <= n && c.Stats.Codes[0] != uint64(b.N) {
		b.Fatalf("accepted %d of %d", c.Stats.Codes[0], b.N)
	}
	if e := c.Table().Get(uint32(192)<<24 | 64<<8 | 1); e == nil || e.NumPrefixes() != 8 {
		b.Fatal("the binding does not carry 8 networks")
	}
}

// fakeNetDP is a fakeDP that routes networks: it refuses chosen prefixes
// and records what it holds.
type fakeNetDP struct {
	*fakeDP
	refuse map[netip.Prefix]bool
	routes map[netip.Prefix]netip.Addr // prefix → care-of
	errs   []error
	recon  int
}

func newFakeNetDP() *fakeNetDP {
	return &fakeNetDP{fakeDP: newFakeDP(), refuse: map[netip.Prefix]bool{}, routes: map[netip.Prefix]netip.Addr{}, errs: make([]error, 64)}
}

var errNetRefused = errors.New("refused")

func (f *fakeNetDP) ApplyPrefixes(adds []datapath.MobileNet, dels []netip.Prefix) []error {
	var res []error
	for i, m := range adds {
		if f.refuse[m.Prefix] {
			if res == nil {
				res = f.errs[:len(adds)+len(dels)]
				clear(res)
			}
			res[i] = errNetRefused
			continue
		}
		f.routes[m.Prefix] = m.CareOf
	}
	for _, p := range dels {
		delete(f.routes, p)
	}
	return res
}

func (f *fakeNetDP) ReconcilePrefixes(want iter.Seq[datapath.MobileNet]) (int, int, error) {
	f.recon++
	clear(f.routes)
	for m := range want {
		f.routes[m.Prefix] = m.CareOf
	}
	return len(f.routes), 0, nil
}
func (f *fakeNetDP) WithdrawPrefixes() error { clear(f.routes); return nil }
func (f *fakeNetDP) PrefixRoutes() int       { return len(f.routes) }

func newNetHarness(t *testing.T) (*dpHarness, *fakeNetDP) {
	h := newDPHarness(t)
	h.a.cfg.Nodes[0].MobileNetworks = []netip.Prefix{pfx("10.9.0.0/16")}
	h.a.cfg.Nodes[0].MaxMobileNetworks = 8
	f := newFakeNetDP()
	f.fakeDP = h.dp
	h.a.dpl = &dataplane{dp: f, active: true, ifname: noIf, nets: newNetPlane(f)}
	return h, f
}

func routerFor(t testing.TB, h *dpHarness, careOf netip.Addr, lifetime uint16, nets ...string) []byte {
	if h.ids[home1] == 0 {
		h.ids[home1] = mip.Timestamp(time.Now())
	}
	h.ids[home1]++
	r := rq{Request: mip.Request{Lifetime: lifetime, HomeAddr: home1, HomeAgent: h.a.cfg.Agent.VirtualAddress, CareOf: careOf, ID: h.ids[home1]}, spi: 256, key: key1}
	for _, n := range nets {
		r.MobileNet.Add(wire(n))
	}
	return r.bytes(t)
}

func (h *dpHarness) netReply() mip.Reply {
	h.t.Helper()
	return h.replies(1)[home1]
}

// The networks follow the binding into the kernel: programmed with it, a
// refused one acknowledged 3 and left out of the binding (so the group
// never hears of it), the ones a renewal drops removed, all removed at
// de-registration, and programmed again from the table at takeover.
func TestMobileNetKernel(t *testing.T) {
	h, f := newNetHarness(t)
	f.refuse[pfx("10.9.3.0/24")] = true
	h.batch(routerFor(t, h, coa, 300, "10.9.1.0/24", "10.9.2.0/24", "10.9.3.0/24"))
	r := h.netReply()
	if r.Code != mip.CodeAccepted || r.MobileNet.N != 3 {
		t.Fatalf("code %d acks %+v", r.Code, r.MobileNet.List())
	}
	if c := []mip.MobileNetCode{r.MobileNet.Acks[0].Code, r.MobileNet.Acks[1].Code, r.MobileNet.Acks[2].Code}; c[0] != 0 || c[1] != 0 || c[2] != mip.MobileNetFwdSetupFail {
		t.Fatalf("codes %v, want 0 0 3", c)
	}
	e := h.a.core.Table().Get(binding.AddrU32(home1))
	if got := entryNets(e); !equalPrefixes(got, []netip.Prefix{pfx("10.9.1.0/24"), pfx("10.9.2.0/24")}) {
		t.Fatalf("binding carries %v, want the two routed networks", got)
	}
	if len(f.routes) != 2 || f.routes[pfx("10.9.1.0/24")] != coa {
		t.Fatalf("kernel routes %v", f.routes)
	}
	// A renewal that drops one and moves: the dropped one is removed, the
	// other follows the new care-of.
	coa2 := netip.MustParseAddr("198.51.100.99")
	h.batch(routerFor(t, h, coa2, 300, "10.9.2.0/24"))
	if r := h.netReply(); r.Code != mip.CodeAccepted || r.MobileNet.N != 1 || r.MobileNet.Acks[0].Code != 0 {
		t.Fatalf("renewal: code %d acks %+v", r.Code, r.MobileNet.List())
	}
	if len(f.routes) != 1 || f.routes[pfx("10.9.2.0/24")] != coa2 {
		t.Fatalf("after the renewal, kernel routes %v, want 10.9.2.0/24 → %s only", f.routes, coa2)
	}
	// The same care-of, another network: the route set changes though the
	// tunnel does not.
	h.batch(routerFor(t, h, coa2, 300, "10.9.4.0/24"))
	h.netReply()
	if len(f.routes) != 1 || f.routes[pfx("10.9.4.0/24")] != coa2 {
		t.Fatalf("after a renewal with another network, kernel routes %v", f.routes)
	}
	// Takeover: programmed from the table.
	clear(f.routes)
	h.a.dpl.active = false
	h.a.activateDataplane(true)
	if f.recon != 1 || len(f.routes) != 1 || f.routes[pfx("10.9.4.0/24")] != coa2 {
		t.Fatalf("takeover: %d reconciles, routes %v", f.recon, f.routes)
	}
	// De-registration removes them.
	h.batch(routerFor(t, h, coa2, 0))
	if r := h.netReply(); r.Code != mip.CodeAccepted {
		t.Fatalf("de-registration: code %d", r.Code)
	}
	if len(f.routes) != 0 {
		t.Fatalf("after de-registration, kernel routes %v", f.routes)
	}
}

// Expiry and the operator's clear withdraw the networks like the home route.
func TestMobileNetExpiryAndClearWithdraw(t *testing.T) {
	for _, how := range []string{"expiry", "clear"} {
		t.Run(how, func(t *testing.T) {
			h, f := newNetHarness(t)
			h.batch(routerFor(t, h, coa, 300, "10.9.1.0/24", "10.9.2.0/24"))
			h.netReply()
			if len(f.routes) != 2 {
				t.Fatalf("routes %v", f.routes)
			}
			if how == "expiry" {
				h.now += int64(301 * time.Second)
				h.handle(Event{Kind: EvTimer})
			} else {
				h.handle(Event{Kind: EvClear, Home: home1})
			}
			h.a.flushDataplane()
			if len(f.routes) != 0 {
				t.Fatalf("after %s, kernel routes %v", how, f.routes)
			}
		})
	}
}

// A datapath that cannot route networks acknowledges each with 3.
func TestMobileNetWithoutPrefixRoutes(t *testing.T) {
	h := newDPHarness(t)
	h.a.cfg.Nodes[0].MobileNetworks = []netip.Prefix{pfx("10.9.0.0/16")}
	h.a.dpl.nets = newNetPlane(h.dp)
	h.batch(routerFor(t, h, coa, 300, "10.9.1.0/24"))
	r := h.netReply()
	if r.Code != mip.CodeAccepted || r.MobileNet.N != 1 || r.MobileNet.Acks[0].Code != mip.MobileNetFwdSetupFail {
		t.Fatalf("code %d acks %+v, want accepted with code 3", r.Code, r.MobileNet.List())
	}
}

// A batch of routers re-registering with 8 networks each allocates nothing
// on the kernel path either.
func TestMobileNetKernelBatchAllocatesNothing(t *testing.T) {
	h, _ := newNetHarness(t)
	nets := []string{"10.9.1.0/24", "10.9.2.0/24", "10.9.3.0/24", "10.9.4.0/24", "10.9.5.0/24", "10.9.6.0/24", "10.9.7.0/24", "10.9.8.0/24"}
	reqs := make([][]byte, 64)
	for i := range reqs {
		reqs[i] = routerFor(t, h, netip.AddrFrom4([4]byte{198, 51, 100, byte(i%2 + 1)}), 300, nets...)
	}
	h.discard = true
	i := 0
	h.batch(reqs[0]) // warm the buffers
	allocs := testing.AllocsPerRun(50, func() {
		i++
		h.a.flushDataplane()
		h.batch(reqs[i%len(reqs)])
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per batch with 8 networks", allocs)
	}
	if e := h.a.core.Table().Get(binding.AddrU32(home1)); e == nil || e.NumPrefixes() != 8 {
		t.Fatal("the binding does not carry 8 networks: the test measured the wrong path")
	}
}

// The console shows a router's networks.
func TestMobileNetShownInBindings(t *testing.T) {
	h, _ := newNetHarness(t)
	h.batch(routerFor(t, h, coa, 300, "10.9.1.0/24", "10.9.2.0/24"))
	h.netReply()
	row := h.a.bindingRow(h.a.core.Table().Get(binding.AddrU32(home1)), h.now)
	if len(row.Networks) != 2 || row.Networks[0] != "10.9.1.0/24" || row.Networks[1] != "10.9.2.0/24" {
		t.Fatalf("row networks %v", row.Networks)
	}
}

// A retransmission of an accepted request (its reply was lost) is
// acknowledged as the first was: a network the kernel refused still 3.
func TestMobileNetRetransmission(t *testing.T) {
	h, f := newNetHarness(t)
	f.refuse[pfx("10.9.2.0/24")] = true
	req := routerFor(t, h, coa, 300, "10.9.1.0/24", "10.9.2.0/24", "10.11.0.0/24")
	want := []mip.MobileNetCode{0, mip.MobileNetFwdSetupFail, mip.MobileNetUnauthorized}
	for round := 0; round < 2; round++ {
		h.batch(req)
		r := h.netReply()
		if r.Code != mip.CodeAccepted || r.MobileNet.N != 3 {
			t.Fatalf("round %d: code %d acks %+v", round, r.Code, r.MobileNet.List())
		}
		for i, w := range want {
			if r.MobileNet.Acks[i].Code != w {
				t.Fatalf("round %d: acks %+v, want codes %v", round, r.MobileNet.List(), want)
			}
		}
	}
	if h.a.core.Stats.Duplicates != 1 {
		t.Fatalf("%d duplicates: the second round was not a retransmission", h.a.core.Stats.Duplicates)
	}
}

// A binding the kernel refuses is not written: the network routes its add
// may have installed are removed by the next flush, with the home route.
func TestMobileNetRefusedBindingLeavesNoNetwork(t *testing.T) {
	h, f := newNetHarness(t)
	h.dp.refuse[home1] = errors.New("no buffer space")
	h.batch(routerFor(t, h, coa, 300, "10.9.1.0/24"))
	if r := h.netReply(); r.Code != mip.CodeInsufficientResources || r.MobileNet.N != 0 {
		t.Fatalf("code %d acks %+v, want 130 without acknowledgements", r.Code, r.MobileNet.List())
	}
	h.a.flushDataplane()
	if len(f.routes) != 0 {
		t.Fatalf("after the flush, kernel routes %v", f.routes)
	}
}

// BenchmarkRegister100kRouters registers 100,000 routers of a shared pool
// with 4 networks each (400,000 claims) into one Core, in-process (no
// kernel, no group): the agent's side of the scale goal. It reports the
// time per router, the Go heap the registrations added beyond what NewCore
// preallocated, and the claim index NewCore preallocates.
func BenchmarkRegister100kRouters(b *testing.B) {
	const routers = 100000
	cfg := testConfig(routers)
	cfg.Nodes = cfg.Nodes[2:3]
	cfg.Agent.HomeNetwork = netip.MustParsePrefix("10.128.0.0/9")
	cfg.Agent.Address, cfg.Agent.VirtualAddress = netip.MustParseAddr("10.128.0.1"), netip.MustParseAddr("10.128.0.2")
	cfg.Nodes[0].Pool = netip.MustParsePrefix("10.130.0.0/15")
	cfg.Nodes[0].MobileNetworks = []netip.Prefix{pfx("10.0.0.0/10")}
	cfg.Nodes[0].MaxMobileNetworks = 8
	h := mip.NewHMACMD5(keyPool)
	reqs := make([][]byte, routers)
	base := ts(0)
	for i := range reqs {
		home := uint32(10)<<24 + 130<<16 + uint32(i+2)
		r := mip.Request{Lifetime: 300, HomeAddr: binding.U32Addr(home), HomeAgent: cfg.Agent.VirtualAddress, CareOf: coa, ID: base}
		for j := 0; j < 4; j++ {
			n := uint32(i*4 + j)
			r.MobileNet.Add(mip.MobileNetPrefix{Bits: 30, Addr: binding.U32Addr(uint32(10)<<24 | n<<2)})
		}
		buf, _ := r.AppendBinary(nil)
		reqs[i] = mip.AppendMHAuth(buf, 0, 400, h)
	}
	out := make([]byte, 0, ReplyBufLen)
	var heap int64
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		c, err := NewCore(cfg)
		if err != nil {
			b.Fatal(err)
		}
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		for i, q := range reqs {
			if reply, _, _ := sealed(c, int64(i), wall0, netip.AddrPortFrom(coa, 434), cfg.Agent.VirtualAddress, q, out); reply == nil {
				b.Fatal("no reply")
			}
		}
		b.StopTimer()
		if c.Stats.Codes[0] != routers || c.Table().Len() != routers {
			b.Fatalf("accepted %d, table %d, want %d", c.Stats.Codes[0], c.Table().Len(), routers)
		}
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		heap = int64(after.HeapAlloc) - int64(before.HeapAlloc)
		runtime.KeepAlive(c)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*routers), "ns/router")
	b.ReportMetric(float64(heap)/(1<<20), "MiB-heap-added")
	c, _ := NewCore(cfg)
	b.ReportMetric(float64(c.claims.Cap()*int(unsafe.Sizeof(claimNode{})))/(1<<20), "MiB-claim-index")
}
