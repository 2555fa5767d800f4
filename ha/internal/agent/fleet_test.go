package agent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/mip"
)

var (
	fleetHomeAddr = netip.MustParseAddr("192.0.2.200")
	keyFleet      = []byte("one-key-per-flt!") // one SPI and key for the enterprise, as deployed
)

const (
	naiA, naiB = "mrA@fleet.example", "mrB@fleet.example"
	sec        = int64(time.Second)
)

// fleetConfig adds two routers of a fleet on the shared home address
// 192.0.2.200 to testConfig: one SPI and key, their own NAIs and networks.
func fleetConfig(home netip.Addr, nodes ...config.Node) *config.Config {
	cfg := testConfig(16)
	cfg.Agent.SharedHomeAddresses = []netip.Addr{home}
	for _, n := range []struct{ name, nai, net string }{{"mrA", naiA, "10.30.1.0/24"}, {"mrB", naiB, "10.30.2.0/24"}} {
		cfg.Nodes = append(cfg.Nodes, config.Node{Name: n.name, NAI: n.nai, HomeAddress: home, SPI: 700, Key: keyFleet,
			Algorithm: "hmac-md5", Replay: "timestamp", ReverseTunnel: true, MobileNetworks: []netip.Prefix{pfx(n.net)}, MaxMobileNetworks: 8})
	}
	return cfg
}

func fleetReq(nai string, id uint64, lifetime uint16, careOf netip.Addr) rq {
	r := rq{Request: mip.Request{Lifetime: lifetime, HomeAddr: fleetHomeAddr, HomeAgent: haVIP, CareOf: careOf, ID: id}, spi: 700, key: keyFleet}
	if nai != "" {
		r.NAI = []byte(nai)
	}
	return r
}

func fleetCore(t testing.TB) *Core {
	c, err := NewCore(fleetConfig(fleetHomeAddr))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Two routers of a fleet register with the same home address: each gets a
// binding of its own, with the same Identification even (replay
// protection is per router); a replay of one's is refused without
// touching the other; a request without NAI, or with an NAI no entry has,
// is refused 129; one de-registers or is cleared: the other stays.
func TestFleetRoutersShareAHome(t *testing.T) {
	c := fleetCore(t)
	coaA, coaB := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.11")
	id := ts(0)
	for _, x := range []struct {
		nai string
		coa netip.Addr
	}{{naiA, coaA}, {naiB, coaB}} {
		if r := handle(t, c, 0, mnSrc, haVIP, fleetReq(x.nai, id, 300, x.coa).bytes(t)); r == nil || r.rep.Code != mip.CodeAccepted {
			t.Fatalf("%s: %+v", x.nai, r)
		}
	}
	if c.table.Len() != 2 {
		t.Fatalf("%d bindings, want one per router: the second router replaced the first's binding", c.table.Len())
	}
	kA, kB := binding.FleetKey([]byte(naiA)), binding.FleetKey([]byte(naiB))
	home := binding.AddrU32(fleetHomeAddr)
	eA, eB := c.table.GetKey(home, kA), c.table.GetKey(home, kB)
	if eA == nil || eB == nil || eA.CareOf != binding.AddrU32(coaA) || eB.CareOf != binding.AddrU32(coaB) {
		t.Fatalf("bindings A %+v B %+v", eA, eB)
	}
	if string(c.table.NAIOf(eA)) != naiA || entryNets(eA)[0] != pfx("10.30.1.0/24") || entryNets(eB)[0] != pfx("10.30.2.0/24") {
		t.Fatalf("A's NAI %q, networks A %v B %v (implicit mode: each its own)", c.table.NAIOf(eA), entryNets(eA), entryNets(eB))
	}
	// A replay of A's request (an older Identification) is A's problem only.
	if r := handle(t, c, sec, mnSrc, haVIP, fleetReq(naiA, id-1, 300, coaB).bytes(t)); r.rep.Code != mip.CodeIDMismatch {
		t.Fatalf("replay: code %d, want 133", r.rep.Code)
	}
	if e := c.table.GetKey(home, kB); e == nil || e.CareOf != binding.AddrU32(coaB) {
		t.Fatal("B's binding moved by A's replay")
	}
	// No NAI, an unknown NAI: no security association.
	for _, nai := range []string{"", "mrZ@fleet.example"} {
		if r := handle(t, c, sec, mnSrc, haVIP, fleetReq(nai, id+5, 300, coaA).bytes(t)); r.rep.Code != mip.CodeAdminProhibited {
			t.Fatalf("NAI %q: code %d, want 129", nai, r.rep.Code)
		}
	}
	if c.table.Get(home) != nil {
		t.Fatal("a binding of the shared address without a router")
	}
	// A de-registers: B stays.
	if r := handle(t, c, 2*sec, mnSrc, haVIP, fleetReq(naiA, id+10, 0, coaA).bytes(t)); r.rep.Code != mip.CodeAccepted || r.ch.Kind != Deregistered || r.ch.Entry.Key != kA {
		t.Fatalf("de-registration: code %d change %+v", r.rep.Code, r.ch)
	}
	if e := c.table.GetKey(home, kA); e == nil || !e.Tombstone() {
		t.Fatalf("A after de-registration: %+v", e)
	}
	if e := c.table.GetKey(home, kB); e == nil || e.Tombstone() {
		t.Fatalf("B after A's de-registration: %+v", e)
	}
	// The operator clears B by NAI: A's tombstone stays.
	if ch, ok := c.ClearNAI(3*sec, naiB); !ok || ch.Entry.Key != kB {
		t.Fatalf("ClearNAI: %v %+v", ok, ch)
	}
	if c.table.GetKey(home, kB) != nil || c.table.GetKey(home, kA) == nil {
		t.Fatal("clear of B: wrong binding removed")
	}
	if _, ok := c.Clear(3*sec, fleetHomeAddr); ok {
		t.Fatal("clear by the shared address removed a router's binding")
	}
}

// A fleet router's registration allocates nothing.
func TestFleetRegistrationAllocatesNothing(t *testing.T) {
	c := fleetCore(t)
	out := make([]byte, 0, ReplyBufLen)
	reqs := make([][]byte, 64)
	for i := range reqs {
		nai := naiA
		if i%2 == 1 {
			nai = naiB
		}
		reqs[i] = fleetReq(nai, ts(0)+uint64(i), 300, coa).bytes(t)
	}
	i := 0
	allocs := testing.AllocsPerRun(50, func() {
		if reply, _, _ := sealed(c, int64(i), wall0, mnSrc, haVIP, reqs[i%len(reqs)], out); reply == nil {
			t.Fatal("no reply")
		}
		i++
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per fleet registration, want 0", allocs)
	}
	var rep mip.Reply
	reply, _, _ := sealed(c, int64(i), wall0, mnSrc, haVIP, reqs[i%len(reqs)], out)
	if err := rep.UnmarshalBinary(reply); err != nil || rep.Code != mip.CodeAccepted || c.table.Len() != 2 {
		t.Fatalf("last reply: %v code %d, %d bindings: the test measured the wrong path", err, rep.Code, c.table.Len())
	}
}

// A peer's record naming a fleet router is admitted for that router's
// home address and networks only.
func TestFleetAdmitNAI(t *testing.T) {
	c := fleetCore(t)
	home := binding.AddrU32(fleetHomeAddr)
	for _, x := range []struct {
		home uint32
		nai  string
		p    string
		ok   bool
	}{
		{home, naiA, "", true}, {home, naiA, "10.30.1.0/25", true}, {home, naiA, "10.30.2.0/24", false},
		{home + 1, naiA, "", false}, {home, "mrZ@fleet.example", "", false}, {home, "mn2@example.net", "", false},
	} {
		var p netip.Prefix
		if x.p != "" {
			p = pfx(x.p)
		}
		if why := c.AdmitNAI(x.home, []byte(x.nai), p); (why == "") != x.ok {
			t.Errorf("AdmitNAI(%x, %s, %s) = %q", x.home, x.nai, x.p, why)
		}
	}
	if c.AdmitHome(home) == "" {
		t.Error("a record for the shared address without an NAI is admitted")
	}
}

// In the kernel: the shared home address is never routed nor announced,
// each router's networks go into its own tunnel, and a de-registration
// withdraws that router's only. The console shows each router's NAI, and
// `clear binding NAI` clears one.
func TestFleetKernelAndConsole(t *testing.T) {
	h, f := newNetHarness(t)
	shared := netip.MustParseAddr("127.0.0.200")
	cfg := fleetConfig(shared)
	h.a.cfg.Agent.SharedHomeAddresses = cfg.Agent.SharedHomeAddresses
	h.a.cfg.Nodes = append(h.a.cfg.Nodes, cfg.Nodes[len(cfg.Nodes)-2:]...)
	if err := h.a.core.setNodes(h.a.cfg); err != nil {
		t.Fatal(err)
	}
	coaA, coaB := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.11")
	id := mip.Timestamp(time.Now())
	req := func(nai string, id uint64, lt uint16, coa netip.Addr) []byte {
		r := fleetReq(nai, id, lt, coa)
		r.HomeAddr, r.HomeAgent = shared, h.a.cfg.Agent.VirtualAddress
		return r.bytes(t)
	}
	h.batch(req(naiA, id, 300, coaA), req(naiB, id, 300, coaB))
	if len(h.sent) != 2 {
		t.Fatalf("%d replies", len(h.sent))
	}
	for _, b := range h.sent {
		if r := verifyReply(t, b, keyFleet); r.Code != mip.CodeAccepted {
			t.Fatalf("code %d", r.Code)
		}
	}
	h.sent = h.sent[:0]
	if h.dp.nAdds != 0 {
		t.Fatalf("%d home routes added: the shared address %s must never be routed (%v)", h.dp.nAdds, shared, h.dp.adds)
	}
	if len(f.routes) != 2 || f.routes[pfx("10.30.1.0/24")] != coaA || f.routes[pfx("10.30.2.0/24")] != coaB {
		t.Fatalf("network routes %v", f.routes)
	}
	rows := h.a.showBindings(console.Request{})
	nais := map[string]bool{}
	for _, r := range rows.Rows {
		nais[r.NAI] = r.Home == shared.String()
	}
	if len(rows.Rows) != 2 || !nais[naiA] || !nais[naiB] {
		t.Fatalf("show bindings: %+v", rows.Rows)
	}
	// A de-registers: its network goes, B's stays.
	h.batch(req(naiA, id+1, 0, coaA))
	h.sent = h.sent[:0]
	if len(f.routes) != 1 || f.routes[pfx("10.30.2.0/24")] != coaB || h.dp.nDels != 0 {
		t.Fatalf("after A's de-registration: network routes %v, %d home routes removed", f.routes, h.dp.nDels)
	}
	// Takeover programs B's network and no home route.
	clear(f.routes)
	h.a.dpl.active = false
	h.a.activateDataplane(true)
	if len(f.routes) != 1 || f.routes[pfx("10.30.2.0/24")] != coaB {
		t.Fatalf("takeover: routes %v", f.routes)
	}
	for b := range h.a.want() {
		t.Fatalf("takeover wants home route %+v", b)
	}
	// clear binding by NAI.
	if r := h.a.answer(console.Request{Cmd: "clear binding", Args: []string{naiB}}); r.Error != "" {
		t.Fatalf("clear binding %s: %s", naiB, r.Error)
	}
	h.a.flushDataplane()
	if len(f.routes) != 0 || h.a.core.table.Len() != 0 {
		t.Fatalf("after clear: routes %v, %d bindings", f.routes, h.a.core.table.Len())
	}
	if r := h.a.answer(console.Request{Cmd: "clear binding", Args: []string{naiB}}); r.Error == "" {
		t.Fatal("a second clear found a binding")
	}
}

// Two NAIs whose keys collide: the binding held under the key is another
// NAI's (planted here: a real FNV-1a collision is not at hand), so router
// A is refused 129 and the other's binding is left as it was.
func TestFleetKeyCollisionRefused(t *testing.T) {
	c := fleetCore(t)
	home := binding.AddrU32(fleetHomeAddr)
	kA := binding.FleetKey([]byte(naiA))
	other := binding.Entry{Home: home, Key: kA, CareOf: 7, ID: 1, Node: -1, Registered: 1, Expires: int64(300 * time.Second)}
	if _, err := c.table.PutNAI(other, []byte("collides@fleet.example")); err != nil {
		t.Fatal(err)
	}
	if r := handle(t, c, 0, mnSrc, haVIP, fleetReq(naiA, ts(0), 300, coa).bytes(t)); r.rep.Code != mip.CodeAdminProhibited {
		t.Fatalf("code %d, want 129", r.rep.Code)
	}
	if e := c.table.GetKey(home, kA); e == nil || e.CareOf != 7 || string(c.table.NAIOf(e)) != "collides@fleet.example" {
		t.Fatalf("the other router's binding: %+v", e)
	}
}

// A reload that removes router A's entry revokes A's binding only; one
// learnt from a peer (no node index) is matched to its entry by key, not
// by the address all the fleet shares.
func TestFleetReloadRevokesOneRouter(t *testing.T) {
	for _, learnt := range []bool{false, true} {
		c := fleetCore(t)
		for _, nai := range []string{naiA, naiB} {
			if r := handle(t, c, 0, mnSrc, haVIP, fleetReq(nai, ts(0), 300, coa).bytes(t)); r.rep.Code != mip.CodeAccepted {
				t.Fatalf("%s: code %d", nai, r.rep.Code)
			}
		}
		home := binding.AddrU32(fleetHomeAddr)
		kA, kB := binding.FleetKey([]byte(naiA)), binding.FleetKey([]byte(naiB))
		if learnt {
			c.table.GetKey(home, kA).Node = -1
			c.table.GetKey(home, kB).Node = -1
		}
		cfg := fleetConfig(fleetHomeAddr)
		cfg.Nodes = append(cfg.Nodes[:len(cfg.Nodes)-2], cfg.Nodes[len(cfg.Nodes)-1]) // without mrA
		if err := c.Reload(cfg); err != nil {
			t.Fatal(err)
		}
		var revoked []uint64
		if n := c.Revoke(sec, func(ch Change, node, why string) { revoked = append(revoked, ch.Entry.Key) }); n != 1 || revoked[0] != kA {
			t.Fatalf("learnt %v: %d revoked %x, want A's only", learnt, n, revoked)
		}
		if e := c.table.GetKey(home, kA); e == nil || !e.Tombstone() {
			t.Fatalf("learnt %v: A %+v", learnt, e)
		}
		if e := c.table.GetKey(home, kB); e == nil || e.Tombstone() {
			t.Fatalf("learnt %v: B %+v", learnt, e)
		}
	}
}
