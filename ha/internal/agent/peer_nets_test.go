package agent

import (
	"net/netip"
	"testing"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/hasync"
)

// peerNetsHarness is a group member that is active and routes mobile
// networks (a fake kernel that records them), and whose peer registers
// the router R itself: the configured node Nodes[0], which may claim
// 10.9.0.0/16, or (fleet) mrA of a fleet on fleetHomeAddr, which may
// claim 10.30.0.0/16.
func peerNetsHarness(t *testing.T) (*replHarness, *fakeNetDP) {
	t.Helper()
	h := newReplHarnessWith(t, false, func(cfg *config.Config) {
		cfg.Nodes[0].MobileNetworks = []netip.Prefix{pfx("10.9.0.0/16")}
		cfg.Nodes[0].MaxMobileNetworks = 8
		f := fleetConfig(fleetHomeAddr)
		f.Nodes[len(f.Nodes)-2].MobileNetworks = []netip.Prefix{pfx("10.30.0.0/16")}
		cfg.Agent.SharedHomeAddresses = f.Agent.SharedHomeAddresses
		cfg.Nodes = append(cfg.Nodes, f.Nodes[len(f.Nodes)-2:]...)
	})
	f := newFakeNetDP()
	h.a.dpl = &dataplane{dp: f, active: true, ifname: noIf, nets: newNetPlane(f)}
	h.r.kernel = true
	h.peerUp()
	h.toPeer(true)
	return h, f
}

// peerRegisters has the peer register R (fleet: mrA) from careOf with
// nets, and the member hear it and flush its kernel changes as the loop
// does after an event.
func (h *replHarness) peerRegisters(fleet bool, careOf uint32, nets ...string) {
	h.t.Helper()
	h.id++
	e := binding.Entry{Home: binding.AddrU32(h.a.cfg.Nodes[0].HomeAddress), CareOf: careOf,
		HomeAgent: binding.AddrU32(h.a.cfg.Agent.VirtualAddress), ID: h.id, Granted: 300}
	var nai []byte
	if fleet {
		nai = []byte(naiA)
		e.Home, e.Key = binding.AddrU32(fleetHomeAddr), binding.FleetKey(nai)
	}
	for _, n := range nets {
		e.AddPrefix(pfx(n))
	}
	var err error
	if h.out, err = h.peer.RegisterNAI(h.now, e, nai, h.out[:0]); err != nil {
		h.t.Fatal(err)
	}
	h.peerSays(h.out)
	h.a.flushDataplane()
}

// peerDeregisters has the peer de-register R (fleet: mrA).
func (h *replHarness) peerDeregisters(fleet bool) {
	h.t.Helper()
	h.id++
	home, nai := binding.AddrU32(h.a.cfg.Nodes[0].HomeAddress), []byte(nil)
	if fleet {
		home, nai = binding.AddrU32(fleetHomeAddr), []byte(naiA)
	}
	var err error
	if h.out, err = h.peer.DeregisterNAI(h.now, home, nai, h.id, h.out[:0]); err != nil {
		h.t.Fatal(err)
	}
	h.peerSays(h.out)
	h.a.flushDataplane()
}

func wantRoutes(t *testing.T, f *fakeNetDP, when string, careOf uint32, nets ...string) {
	t.Helper()
	ok := len(f.routes) == len(nets)
	for _, n := range nets {
		ok = ok && f.routes[pfx(n)] == binding.U32Addr(careOf)
	}
	if !ok {
		t.Fatalf("%s: kernel routes %v, want %v → %s", when, f.routes, nets, binding.U32Addr(careOf))
	}
}

// A peer's write of router R that drops a network, heard by the active
// member, removes that network's route in the same flush (not at the next
// periodic check, which this fake kernel does not even have): with the
// same care-of address, with another one, and when the write replaces the
// whole set. A peer's de-registration then removes the rest.
func TestPeerWriteDroppingNetworkWithdrawsIt(t *testing.T) {
	const coaA, coaB = 0xc6336401, 0xc6336402
	for _, fleet := range []bool{false, true} {
		net := func(third string) string { return "10.9." + third + ".0/24" }
		name := "plain"
		if fleet {
			net = func(third string) string { return "10.30." + third + ".0/24" }
			name = "fleet"
		}
		for _, tc := range []struct {
			name   string
			careOf uint32
			then   []string
		}{
			{"same care-of", coaA, []string{net("1")}},
			{"moved", coaB, []string{net("1")}},
			{"replaced", coaA, []string{net("3")}},
			{"none left", coaA, nil},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				h, f := peerNetsHarness(t)
				h.peerRegisters(fleet, coaA, net("1"), net("2"))
				wantRoutes(t, f, "after the peer's first write", coaA, net("1"), net("2"))
				h.peerRegisters(fleet, tc.careOf, tc.then...)
				wantRoutes(t, f, "after the peer's write dropping "+net("2"), tc.careOf, tc.then...)
				h.peerDeregisters(fleet)
				wantRoutes(t, f, "after the peer's de-registration", 0)
			})
		}
	}
}

// Hearing a peer's write that drops networks and removing their routes
// allocates nothing: the writes alternate between 8 networks and 1. A
// fleet router's, because a plain binding's new route is announced by
// gratuitous ARP, which on this harness's missing interface fails (and
// allocates its error) every time.
func TestPeerWriteDroppingNetworkAllocatesNothing(t *testing.T) {
	h, f := peerNetsHarness(t)
	const runs = 50
	var pkts [][]byte
	nai := []byte(naiA)
	home := binding.AddrU32(fleetHomeAddr)
	for i := range runs + 2 {
		h.id++
		e := binding.Entry{Home: home, Key: binding.FleetKey(nai), CareOf: 0xc6336401,
			HomeAgent: binding.AddrU32(h.a.cfg.Agent.VirtualAddress), ID: h.id, Granted: 300}
		nets := 1
		if i%2 == 0 {
			nets = 8
		}
		for j := range nets {
			e.AddPrefixU32(0x0a1e0000|uint32(j+1)<<8, 24)
		}
		var err error
		if h.out, err = h.peer.RegisterNAI(h.now, e, nai, h.out[:0]); err != nil {
			t.Fatal(err)
		}
		for _, act := range h.out {
			if act.Kind == hasync.ActMulticast || act.Kind == hasync.ActUnicast {
				pkts = append(pkts, append([]byte(nil), act.Pkt...))
			}
		}
	}
	if len(pkts) != runs+2 {
		t.Fatalf("%d update datagrams, want %d", len(pkts), runs+2)
	}
	h.discard = true
	i := 0
	deliver := func() {
		h.handle(Event{Kind: EvGroup, Src: peerAddr, TTL: hasync.RequiredTTL, Pkt: pkts[i]})
		h.a.flushDataplane()
		i++
	}
	deliver() // 8 networks: the buffers grow to their size once
	if allocs := testing.AllocsPerRun(runs, deliver); allocs != 0 {
		t.Fatalf("%.1f allocations per peer write dropping networks, want 0", allocs)
	}
	// The last write (1 network) followed one with 8: the 7 are gone.
	if len(f.routes) != 1 || f.routes[pfx("10.30.1.0/24")] != binding.U32Addr(0xc6336401) {
		t.Fatalf("after the writes, kernel routes %v: the test measured the wrong path", f.routes)
	}
	if e := h.a.core.Table().GetKey(home, binding.FleetKey(nai)); e == nil || e.ID != h.id {
		t.Fatalf("the member holds %+v, want the peer's last write (id %d)", e, h.id)
	}
}

// Two routers of a shared pool, R and S: R drops a network and S claims
// it, and the peer's writes reach the member in the other order (a lost
// update retransmitted): S's route for the network stands when R's write
// dropping it arrives.
func TestPeerWriteDroppingNetworkTakenByAnother(t *testing.T) {
	pp := newPoolPeers(t)
	h, f, write := pp.h, pp.f, pp.write
	write("127.0.0.70", coaR, h.id+1, "10.20.1.0/24", "10.20.2.0/24")
	// S's write claiming 10.20.2.0/24 arrives first, R's dropping it after.
	write("127.0.0.71", coaS, h.id+1, "10.20.2.0/24")
	write("127.0.0.70", coaR, h.id+2, "10.20.1.0/24")
	if len(f.routes) != 2 || f.routes[pfx("10.20.1.0/24")] != binding.U32Addr(coaR) || f.routes[pfx("10.20.2.0/24")] != binding.U32Addr(coaS) {
		t.Fatalf("kernel routes %v, want 10.20.1.0/24 → R, 10.20.2.0/24 → S", f.routes)
	}
	// S's de-registration removes it.
	h.id += 3
	pp.deregister("127.0.0.71", h.id)
	h.a.flushDataplane()
	if len(f.routes) != 1 || f.routes[pfx("10.20.1.0/24")] != binding.U32Addr(coaR) {
		t.Fatalf("after S's de-registration, kernel routes %v", f.routes)
	}
}

// The same two routers, the other way round: S's write claiming a network
// reaches the member before R's de-registration, whose entry still lists
// that network (R dropped it by de-registering; the writes crossed). R's
// de-registration must not remove S's route.
func TestPeerDeregistrationOfNetworkTakenByAnother(t *testing.T) {
	pp := newPoolPeers(t)
	h, f, write := pp.h, pp.f, pp.write
	deregister := pp.deregister
	write("127.0.0.70", coaR, h.id+1, "10.20.1.0/24", "10.20.2.0/24")
	write("127.0.0.71", coaS, h.id+1, "10.20.2.0/24")
	deregister("127.0.0.70", h.id+2)
	h.a.flushDataplane()
	if len(f.routes) != 1 || f.routes[pfx("10.20.2.0/24")] != binding.U32Addr(coaS) {
		t.Fatalf("after R's late de-registration, kernel routes %v, want only 10.20.2.0/24 → S", f.routes)
	}
	// In one flush: S's claim and R's de-registration queued together.
	write("127.0.0.70", coaR, h.id+3, "10.20.3.0/24")
	pp.register("127.0.0.71", coaS, h.id+4, "10.20.2.0/24", "10.20.3.0/24")
	deregister("127.0.0.70", h.id+5)
	h.a.flushDataplane()
	if len(f.routes) != 2 || f.routes[pfx("10.20.3.0/24")] != binding.U32Addr(coaS) || f.routes[pfx("10.20.2.0/24")] != binding.U32Addr(coaS) {
		t.Fatalf("after S's claim and R's de-registration in one flush, kernel routes %v, want 10.20.2.0/24 and 10.20.3.0/24 → S", f.routes)
	}
}

// poolPeers is a member with kernel routes (a fake) for a shared pool with
// mobile networks (127.0.0.64/27, 10.20.0.0/16), hearing its peer's writes.
type poolPeers struct {
	t *testing.T
	h *replHarness
	f *fakeNetDP
}

// The care-of addresses of routers R and S.
const coaR, coaS = 0xc6336401, 0xc6336402

func newPoolPeers(t *testing.T) *poolPeers {
	h := newReplHarnessWith(t, false, func(cfg *config.Config) {
		p := testConfig(8).Nodes[2]
		p.Pool = netip.MustParsePrefix("127.0.0.64/27")
		p.MobileNetworks = []netip.Prefix{pfx("10.20.0.0/16")}
		p.MaxMobileNetworks = 8
		cfg.Nodes = append(cfg.Nodes, p)
	})
	f := newFakeNetDP()
	h.a.dpl = &dataplane{dp: f, active: true, ifname: noIf, nets: newNetPlane(f)}
	h.r.kernel = true
	h.peerUp()
	h.toPeer(true)
	return &poolPeers{t: t, h: h, f: f}
}

// register has the peer write home's binding with nets, heard by the
// member, not yet flushed to the kernel.
func (p *poolPeers) register(home string, careOf uint32, id uint64, nets ...string) {
	p.t.Helper()
	h := p.h
	e := binding.Entry{Home: binding.AddrU32(netip.MustParseAddr(home)), CareOf: careOf,
		HomeAgent: binding.AddrU32(h.a.cfg.Agent.VirtualAddress), ID: id, Granted: 300}
	for _, n := range nets {
		e.AddPrefix(pfx(n))
	}
	var err error
	if h.out, err = h.peer.Register(h.now, e, h.out[:0]); err != nil {
		p.t.Fatal(err)
	}
	h.peerSays(h.out)
}

// write is register, flushed.
func (p *poolPeers) write(home string, careOf uint32, id uint64, nets ...string) {
	p.t.Helper()
	p.register(home, careOf, id, nets...)
	p.h.a.flushDataplane()
}

// deregister has the peer de-register home, heard by the member, not yet
// flushed.
func (p *poolPeers) deregister(home string, id uint64) {
	p.t.Helper()
	h := p.h
	var err error
	if h.out, err = h.peer.Deregister(h.now, binding.AddrU32(netip.MustParseAddr(home)), id, h.out[:0]); err != nil {
		p.t.Fatal(err)
	}
	h.peerSays(h.out)
}
