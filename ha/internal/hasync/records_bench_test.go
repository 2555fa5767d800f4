package hasync

import (
	"testing"

	"github.com/hagent/hagent/ha/internal/binding"
)

// routerEntry is a mobile router behind a NAT with n networks.
func routerEntry(home uint32, id uint64, n int) binding.Entry {
	e := binding.Entry{Home: home, CareOf: 1, ID: id, Granted: 600, NATAddr: 0xcb007101, NATPort: 4500, Encap: binding.EncapUDP}
	for j := range n {
		e.AddPrefixU32(0x0a800000|(home&0x7fff)<<8|uint32(j)<<5, 27)
	}
	return e
}

// The registration path with a full set of networks allocates nothing
// either: the local write, its update received by two peers (auth, admit
// with AdmitPrefix, merge), their acks.
func TestMachineAllocsRouter(t *testing.T) {
	s := group(t, 3, func(c *Config) { c.AdmitPrefix = admitNets })
	m := s.nodes[0].m
	out := make([]Action, 0, 16)
	// The update leaves m's buffer before m receives an ack: what m sends
	// then (a session challenge, say) may reuse it.
	upd := make([]byte, 0, MaxDatagram)
	id := uint64(100)
	n := testing.AllocsPerRun(500, func() {
		id++
		var err error
		out, err = m.Register(s.now, routerEntry(0x0a800000+uint32(id%64)+1, id, binding.MaxPrefixes), out[:0])
		if err != nil || len(out) != 1 {
			panic(err)
		}
		upd = append(upd[:0], out[0].Pkt...)
		for _, p := range s.nodes[1:] {
			out = p.m.Receive(s.now, s.nodes[0].addr, 255, upd, out[:1])
			if e := p.tab.Get(0x0a800000 + uint32(id%64) + 1); e == nil || e.NumPrefixes() != binding.MaxPrefixes || e.ID != id {
				panic("not stored with its networks")
			}
			out = m.Receive(s.now, p.addr, 255, out[len(out)-1].Pkt, out[:1])
		}
	})
	if n != 0 {
		t.Errorf("register with %d networks + 2 peers receive + 2 acks: %v allocs, want 0", binding.MaxPrefixes, n)
	}
}

// BenchmarkRegisterReplicateRouter is BenchmarkRegisterReplicate for a
// router with 8 networks behind a NAT.
func BenchmarkRegisterReplicateRouter(b *testing.B) {
	t := &testing.T{}
	s := group(t, 3, nil)
	m := s.nodes[0].m
	out := make([]Action, 0, 16)
	// The update leaves m's buffer before m receives an ack: what m sends
	// then (a session challenge, say) may reuse it.
	upd := make([]byte, 0, MaxDatagram)
	id := uint64(100)
	b.ReportAllocs()
	for b.Loop() {
		id++
		out, _ = m.Register(s.now, routerEntry(0x0a000000+uint32(id%1024)+1, id, binding.MaxPrefixes), out[:0])
		upd = append(upd[:0], out[0].Pkt...)
		for _, p := range s.nodes[1:] {
			out = p.m.Receive(s.now, s.nodes[0].addr, 255, upd, out[:1])
			out = m.Receive(s.now, p.addr, 255, out[len(out)-1].Pkt, out[:1])
		}
	}
}

// BenchmarkDownload100kRouters is BenchmarkDownload100k for 100 000 mobile
// routers behind NATs with 4 networks each.
func BenchmarkDownload100kRouters(b *testing.B) {
	for b.Loop() {
		t := &testing.T{}
		s := newSimnet(t, 2, 1, func(c *Config) { c.Window = 64 })
		s.delay = [2]int64{20_000, 20_000}
		s.nodes[0].boots = 0
		s.start(0)
		s.run(s.now + 5*sec)
		big := binding.New(100_000, 1024)
		s.nodes[0].tab = big
		m, _ := New(s.config(s.nodes[0]), big)
		m.init = true
		s.nodes[0].m = m
		for k := range 100_000 {
			e := routerEntry(uint32(0x0a000001+k), uint64(k+1), 4)
			e.Origin, e.Granted, e.Expires = 10, 3600, s.now+3600*sec
			big.Put(e)
		}
		s.nodes[1].tab = binding.New(100_000, 1024)
		s.nodes[1].m, _ = New(s.config(s.nodes[1]), s.nodes[1].tab)
		s.nodes[1].alive = true
		s.out = s.nodes[1].m.Start(s.now, s.out[:0])
		s.dispatch(1)
		s.run(s.now + 100*ms)
		for !s.nodes[1].m.Initialized() {
			s.run(s.now + 100*ms)
		}
		if s.nodes[1].tab.Len() != 100_000 {
			b.Fatalf("got %d bindings", s.nodes[1].tab.Len())
		}
		b.ReportMetric(float64(s.nodes[0].m.Counters().RepliesSent), "chunks")
	}
}
