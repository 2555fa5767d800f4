package hasync

import (
	"container/heap"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
)

var (
	simSeed  = flag.Int64("seed", -1, "TestSim: run only this seed (reproduce a failure)")
	simRuns  = flag.Int("sim.n", 0, "TestSim: number of seeded schedules (default 400, 100 with -short)")
	simNodes = flag.Int("sim.nodes", 0, "TestSim: members per schedule (default: 2..5 by seed)")
	simDead  = flag.Duration("sim.dead", 0, "TestSim: every member's DeadInterval (default 18 s); a few seconds makes the schedules' partitions lapse sessions, proven again after the heal")
)

const ms = int64(time.Millisecond)
const sec = int64(time.Second)

// ---------- in-memory network

type inflight struct {
	at       int64
	n        uint64
	from, to int
	data     []byte
}

type pq []inflight

func (q pq) Len() int { return len(q) }
func (q pq) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].n < q[j].n
}
func (q pq) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *pq) Push(x any)   { *q = append(*q, x.(inflight)) }
func (q *pq) Pop() any     { o := *q; x := o[len(o)-1]; *q = o[:len(o)-1]; return x }

type node struct {
	id    uint32
	addr  netip.Addr
	tab   *binding.Table
	m     *Machine
	alive bool
	boots uint32
}

type simnet struct {
	t      testing.TB
	now    int64
	nodes  []*node
	q      pq
	n      uint64
	rng    *rand.Rand
	loss   float64
	delay  [2]int64 // min, max one-way delay (reordering when max > min)
	side   []int    // partition side per node: delivery only within a side
	drop   func(from, to int, typ uint8) bool
	tap    func(from, to int, data []byte) // sees every datagram sent (a capturing attacker)
	lag    func(from, to int) int64        // extra one-way delay on a link (an attacker who delays a stream)
	onNew  func(i int, m *Machine)         // called with every new machine before its Start
	out    []Action
	cfg    func(*Config)
	static bool                  // configured unicast peer list instead of multicast
	table  func() *binding.Table // a member's table at start; nil: 4096 + 4096
	sent   map[uint8]int
	acked  []binding.Entry // ActAcked seen, in order
	alive  []int           // ActPeerAlive seen: the member that reported it, in order
	nets   bool            // registrations carry a NAT endpoint and networks (simNets)
	bound  []boundAct      // ActBinding seen, in order
}

// boundAct is an ActBinding and the member that reported it.
type boundAct struct {
	at int
	a  Action
}

func newSimnet(t testing.TB, n int, seed uint64, cfg func(*Config)) *simnet {
	s := &simnet{t: t, rng: rand.New(rand.NewPCG(seed, seed^0x5eed)), delay: [2]int64{100_000, 100_000}, cfg: cfg, sent: map[uint8]int{}, now: 1000 * sec}
	for i := range n {
		nd := &node{id: uint32(10 + i), addr: netip.AddrFrom4([4]byte{192, 168, 1, byte(10 + i)})}
		s.nodes = append(s.nodes, nd)
	}
	s.side = make([]int, n)
	return s
}

func (s *simnet) config(nd *node) Config {
	c := Config{ID: nd.id, Addr: nd.addr, Session: nd.id<<16 | nd.boots + 1, Keys: []Key{{ID: 7, Secret: testKey}}, SendKey: 7,
		MaxPending: 1024, TombstoneTTL: 2 * time.Hour, DigestPeriod: 5 * time.Second, DeadInterval: 18 * time.Second}
	if s.static {
		for _, o := range s.nodes {
			if o != nd {
				c.Peers = append(c.Peers, o.addr)
			}
		}
	}
	if s.cfg != nil {
		s.cfg(&c)
	}
	return c
}

// start (re)boots node i with an empty table.
func (s *simnet) start(i int) {
	nd := s.nodes[i]
	nd.boots++
	if s.table != nil {
		nd.tab = s.table()
	} else {
		nd.tab = binding.New(4096, 4096)
	}
	m, err := New(s.config(nd), nd.tab)
	if err != nil {
		s.t.Fatal(err)
	}
	if s.onNew != nil {
		s.onNew(i, m)
	}
	nd.m, nd.alive = m, true
	s.out = m.Start(s.now, s.out[:0])
	s.dispatch(i)
}

func (s *simnet) stop(i int) {
	s.nodes[i].alive = false
	// Packets from or to the dead incarnation are lost.
	q := s.q[:0]
	for _, p := range s.q {
		if p.from != i && p.to != i {
			q = append(q, p)
		}
	}
	s.q = q
	heap.Init(&s.q)
}

func (s *simnet) byAddr(a netip.Addr) int {
	for i, nd := range s.nodes {
		if nd.addr == a {
			return i
		}
	}
	return -1
}

func (s *simnet) send(from, to int, data []byte) {
	if to < 0 || to == from || s.side[from] != s.side[to] {
		return
	}
	if s.tap != nil {
		s.tap(from, to, data)
	}
	if s.loss > 0 && s.rng.Float64() < s.loss {
		return
	}
	if s.drop != nil && s.drop(from, to, data[1]) {
		return
	}
	d := s.delay[0]
	if s.delay[1] > s.delay[0] {
		d += s.rng.Int64N(s.delay[1] - s.delay[0])
	}
	if s.lag != nil {
		d += s.lag(from, to)
	}
	s.n++
	heap.Push(&s.q, inflight{at: s.now + d, n: s.n, from: from, to: to, data: append([]byte(nil), data...)})
}

// dispatch performs the actions in s.out produced by node i.
func (s *simnet) dispatch(i int) {
	for _, a := range s.out {
		switch a.Kind {
		case ActMulticast:
			s.sent[a.Pkt[1]]++
			for j := range s.nodes {
				s.send(i, j, a.Pkt)
			}
		case ActUnicast:
			s.sent[a.Pkt[1]]++
			s.send(i, s.byAddr(a.To), a.Pkt)
		case ActAcked:
			s.acked = append(s.acked, a.Entry)
		case ActBinding:
			s.bound = append(s.bound, boundAct{i, a})
		case ActPeerAlive:
			s.alive = append(s.alive, i)
		}
	}
	s.out = s.out[:0]
}

// run advances time to until, delivering packets and firing timers.
func (s *simnet) run(until int64) {
	for {
		next, who := until, -1
		if len(s.q) > 0 && s.q[0].at < next {
			next = s.q[0].at
		}
		for i, nd := range s.nodes {
			if nd.alive {
				if d := nd.m.NextDeadline(); d < next || (d == next && who < 0 && d < until) {
					next, who = max(d, s.now), i
				}
			}
		}
		if next >= until && who < 0 && (len(s.q) == 0 || s.q[0].at >= until) {
			s.now = until
			return
		}
		s.now = max(s.now, next)
		if len(s.q) > 0 && s.q[0].at <= s.now {
			p := heap.Pop(&s.q).(inflight)
			if nd := s.nodes[p.to]; nd.alive {
				s.out = nd.m.Receive(s.now, s.nodes[p.from].addr, RequiredTTL, p.data, s.out[:0])
				s.dispatch(p.to)
			}
			continue
		}
		if who >= 0 {
			s.out = s.nodes[who].m.Tick(s.now, s.out[:0])
			s.dispatch(who)
		}
	}
}

func (s *simnet) register(i int, home uint32, id uint64, coa uint32) error {
	var err error
	e := binding.Entry{Home: home, CareOf: coa, HomeAgent: 0xc0a80101, ID: id, Granted: 3600}
	if s.nets {
		simNets(&e)
	}
	s.out, err = s.nodes[i].m.Register(s.now, e, s.out[:0])
	s.dispatch(i)
	return err
}

func (s *simnet) deregister(i int, home uint32, id uint64) error {
	var err error
	s.out, err = s.nodes[i].m.Deregister(s.now, home, id, s.out[:0])
	s.dispatch(i)
	return err
}

// state is a comparable view of a table: live bindings and tombstones with
// their versions (expiry times differ by delivery delay and are left out).
func state(tab *binding.Table) string {
	var rows []string
	tab.Range(func(e *binding.Entry) bool {
		if e.Tombstone() {
			rows = append(rows, fmt.Sprintf("%s tomb id=%d o=%d", rowName(e.Home, tab.NAIOf(e)), e.ID, e.Origin))
		} else {
			rows = append(rows, fmt.Sprintf("%s coa=%08x id=%d o=%d", rowName(e.Home, tab.NAIOf(e)), e.CareOf, e.ID, e.Origin)+netsString(e))
		}
		return true
	})
	sort.Strings(rows)
	return strings.Join(rows, "\n")
}

// ---------- reference model

type write struct {
	id     uint64
	origin uint32
	tomb   bool
	coa    uint32
	nets   string // netsString of the entry written, "" without networks
	lost   bool
	// withheld: lost, yet a datagram the attacker captured carries it
	// (markLost): it may come back.
	withheld bool
}

// model is keyed by home address, or by simRouter for a fleet router's
// binding (fleet_sim_test.go).
type model map[uint64][]write

// expected is the table the group must converge to: for each home, its
// newest write not lost. Where tab (a member's table after healing) holds
// a withheld lost write newer than that, it is expected instead: that
// write came back the one way markLost allows.
func (md model) expected(tab *binding.Table) string {
	var rows []string
	for home, ws := range md {
		var best *write
		for i := range ws {
			w := &ws[i]
			if w.lost {
				continue
			}
			if best == nil || newer(w.id, w.origin, w.tomb, best.id, best.origin, best.tomb) {
				best = w
			}
		}
		h, key, nai := modelKey(home)
		if e := tab.GetKey(h, key); e != nil {
			for i := range ws {
				w := &ws[i]
				if w.withheld && w.id == e.ID && w.origin == e.Origin && w.tomb == e.Tombstone() &&
					(best == nil || newer(w.id, w.origin, w.tomb, best.id, best.origin, best.tomb)) {
					best = w
				}
			}
		}
		if best == nil {
			continue
		}
		if best.tomb {
			rows = append(rows, fmt.Sprintf("%s tomb id=%d o=%d", rowName(h, nai), best.id, best.origin))
		} else {
			rows = append(rows, fmt.Sprintf("%s coa=%08x id=%d o=%d", rowName(h, nai), best.coa, best.id, best.origin)+best.nets)
		}
	}
	sort.Strings(rows)
	return strings.Join(rows, "\n")
}

// markLost marks the writes that only node i holds (it is about to lose its
// table). Only a datagram can bring one back: the simulated network drops
// whatever is in flight from or to a stopped node, but the attacker
// (s.tap) keeps copies of what it saw, also of datagrams the network then
// lost, and delivers them later. To a member that has not yet proven the
// crashed member's next session (spec §3.1), such a copy is a fresh
// sequence number of the session it still holds: a late original, not a
// replay, which no receiver can tell from a slow network. So a lost write
// that a captured datagram carries (seen) is withheld: it may come back,
// and then only where it is newer than every write not lost (expected).
// That loosens neither promise: a withheld write counts only where it is
// newer than every write not lost, so no de-registration is undone; and it
// only lets a lost write survive, never a held write disappear.
func (md model) markLost(s *simnet, i int, seen map[version]bool) {
	for mk, ws := range md {
		home, key, _ := modelKey(mk)
		for k := range ws {
			w := &ws[k]
			if w.lost {
				continue
			}
			held := false
			for j, nd := range s.nodes {
				if j == i || !nd.alive || nd.m == nil {
					continue
				}
				if e := nd.tab.GetKey(home, key); e != nil && !newer(w.id, w.origin, w.tomb, e.ID, e.Origin, e.Tombstone()) {
					held = true
					break
				}
			}
			if !held {
				w.lost = true
				w.withheld = seen[version{home: home, key: key, id: w.id, origin: w.origin, tomb: w.tomb}]
			}
		}
	}
}

// version identifies a binding record as sent: home address and (ID,
// Origin, D).
type version struct {
	home   uint32
	key    uint64 // a fleet router's binding: its key
	id     uint64
	origin uint32
	tomb   bool
}

// carried adds to seen the versions of the binding records that datagram
// pkt (a Binding Update or a Table Reply) carries.
func carried(pkt []byte, seen map[version]bool) {
	var h Header
	if h.UnmarshalBinary(pkt) != nil {
		return
	}
	var r Record
	add := func() {
		seen[version{home: r.Home, key: r.Key, id: r.ID, origin: r.Origin, tomb: r.Dereg() || r.Remaining == 0}] = true
	}
	switch h.Type {
	case TypeBindingUpdate:
		if r.UnmarshalBinary(Body(pkt)) == nil {
			add()
		}
	case TypeTableReply:
		var rep TableReply
		if rep.UnmarshalBinary(Body(pkt)) != nil {
			return
		}
		for i := range int(rep.NumBind) {
			if rep.Binding(i, &r) == nil {
				add()
			}
		}
	}
}

// ---------- the randomized simulation

func simOne(t testing.TB, seed uint64, nodes int) (string, bool) {
	rng := rand.New(rand.NewPCG(seed, 77))
	if nodes <= 0 {
		nodes = 2 + rng.IntN(4)
	}
	var cfg func(*Config)
	if *simDead > 0 {
		cfg = func(c *Config) { c.DeadInterval = *simDead }
	}
	s := newSimnet(t, nodes, seed, cfg)
	s.nets = true // derived from (home, id): the schedule draws nothing more
	s.static = rng.IntN(4) == 0
	s.loss = []float64{0, 0.05, 0.2, 0.35}[rng.IntN(4)]
	s.delay = [2]int64{50_000, 50_000 + rng.Int64N(20*ms)}
	md := model{}
	var nextID uint64 = 1
	// An attacker on the path keeps a sample of everything sent, to replay
	// it later (from another address) to any member: after restarts it
	// replays earlier sessions. A key holder adds fake members that never
	// acknowledge. Neither may change what the group converges to.
	frng := rand.New(rand.NewPCG(seed, 99))
	var captured [][]byte
	seen := map[version]bool{} // records in what was ever captured (markLost)
	s.tap = func(from, to int, data []byte) {
		if len(captured) < 256 {
			captured = append(captured, append([]byte(nil), data...))
		} else if i := frng.IntN(4 * len(captured)); i < len(captured) {
			captured[i] = append(captured[i][:0], data...)
		} else {
			return
		}
		carried(data, seen)
	}
	var fakes []*fakePeer
	for i := range s.nodes {
		s.start(i)
		s.run(s.now + rng.Int64N(300*ms))
	}
	homes := 5 + rng.IntN(40)
	steps := 30 + rng.IntN(120)
	for range steps {
		s.run(s.now + rng.Int64N(2*sec))
		switch r := rng.IntN(100); {
		case r < 70: // registration or de-registration at a running, initialized member
			i := rng.IntN(nodes)
			nd := s.nodes[i]
			if !nd.alive || !nd.m.Initialized() {
				continue
			}
			home := uint32(0x0a000000 + 1 + rng.IntN(homes))
			nextID++
			if nextID%4 == 0 { // a fleet router on the shared home address, from what was drawn
				simFleetWrite(s, md, i, rng.IntN(4) == 0, nextID, home)
			} else if rng.IntN(4) == 0 {
				if err := s.deregister(i, home, nextID); err == nil {
					md[uint64(home)] = append(md[uint64(home)], write{id: nextID, origin: nd.id, tomb: true})
				}
			} else {
				coa := 0xc6336400 + uint32(rng.IntN(200))
				if err := s.register(i, home, nextID, coa); err == nil {
					md[uint64(home)] = append(md[uint64(home)], write{id: nextID, origin: nd.id, coa: coa, nets: simNetsString(home, nextID)})
				}
			}
		case r < 78: // partition
			for i := range s.side {
				s.side[i] = rng.IntN(2)
			}
		case r < 85: // heal partition
			clear(s.side)
		case r < 89: // crash + restart with an empty table
			i := rng.IntN(nodes)
			if s.nodes[i].alive {
				md.markLost(s, i, seen)
				s.stop(i)
				s.run(s.now + rng.Int64N(3*sec))
				s.start(i)
			}
		case r < 93: // replay captured datagrams (earlier sessions too) to a member
			i := rng.IntN(nodes)
			for range 20 {
				if len(captured) == 0 || !s.nodes[i].alive {
					break
				}
				p := captured[frng.IntN(len(captured))]
				s.out = s.nodes[i].m.Receive(s.now, netip.MustParseAddr("203.0.113.66"), RequiredTTL, p, s.out[:0])
				s.dispatch(i)
			}
		case r < 95: // a key holder's fake member: heard by everyone, never acknowledges
			if len(fakes) < 4 {
				fakes = append(fakes, newFakePeer(t, uint32(5000+len(fakes)), uint32(frng.Uint32()|1)))
			}
			for k, f := range fakes {
				src := netip.AddrFrom4([4]byte{192, 168, 9, byte(k)})
				for _, nd := range s.nodes {
					if !nd.alive {
						continue
					}
					d := Digest{}
					out := nd.m.Receive(s.now, src, RequiredTTL, f.msg(TypeDigest, d.AppendBinary), nil)
					if n := f.challengeIn(out); n != 0 {
						// The fake proves its session; what the member sends
						// back (an update or digest for a peer that will never
						// acknowledge) is not delivered anywhere.
						_ = nd.m.Receive(s.now, src, RequiredTTL, f.answer(nd.id, n), out[:0])
					}
				}
			}
		default: // loss change
			s.loss = []float64{0, 0.05, 0.2, 0.5}[rng.IntN(4)]
		}
	}
	// Heal: no loss, no partition, everyone up; wait for anti-entropy.
	clear(s.side)
	s.loss = 0
	for i, nd := range s.nodes {
		if !nd.alive {
			s.start(i)
		}
	}
	s.run(s.now + 60*sec)
	want := md.expected(s.nodes[0].tab)
	for i, nd := range s.nodes {
		if !nd.m.Initialized() {
			return fmt.Sprintf("node %d not initialized after healing", i), false
		}
		if got := state(nd.tab); got != want {
			var all strings.Builder
			for j, o := range s.nodes {
				fmt.Fprintf(&all, "node %d id %d init=%v peers=%+v\ncounters=%+v\n", j, o.id, o.m.Initialized(), o.m.Peers(nil), o.m.Counters())
			}
			return fmt.Sprintf("node %d (id %d) table differs from the model after healing (nodes=%d static=%v)\n got:\n%s\nwant:\n%s\n%s", i, nd.id, nodes, s.static, got, want, all.String()), false
		}
	}
	return "", true
}

func TestSim(t *testing.T) {
	if *simSeed >= 0 {
		if msg, ok := simOne(t, uint64(*simSeed), *simNodes); !ok {
			t.Fatalf("seed %d: %s", *simSeed, msg)
		}
		return
	}
	n := *simRuns
	if n == 0 {
		n = 400
		if testing.Short() {
			n = 100
		}
	}
	start := time.Now()
	for seed := range uint64(n) {
		if msg, ok := simOne(t, seed, *simNodes); !ok {
			t.Fatalf("seed %d failed (reproduce: go test ./ha/internal/hasync -run 'TestSim$' -seed %d -v): %s", seed, seed, msg)
		}
	}
	t.Logf("%d schedules in %v", n, time.Since(start))
}
