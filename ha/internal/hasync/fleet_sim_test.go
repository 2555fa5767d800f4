package hasync

import (
	"container/heap"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
)

const fleetHome = 0x0a0000c8 // the fleet's dummy home address

func (s *simnet) registerNAI(i int, nai string, id uint64, coa uint32) error {
	var err error
	e := binding.Entry{Home: fleetHome, Key: binding.FleetKey([]byte(nai)), CareOf: coa, HomeAgent: 0xc0a80101, ID: id, Granted: 3600}
	e.AddPrefixU32(0x0a100000+uint32(len(nai))<<8+uint32(nai[2]), 32) // a network of its own
	s.out, err = s.nodes[i].m.RegisterNAI(s.now, e, []byte(nai), s.out[:0])
	s.dispatch(i)
	return err
}

func (s *simnet) deregisterNAI(i int, nai string, id uint64) error {
	var err error
	s.out, err = s.nodes[i].m.DeregisterNAI(s.now, fleetHome, []byte(nai), id, s.out[:0])
	s.dispatch(i)
	return err
}

// fleetState is state with each binding's key and NAI: what two members
// must agree on for a fleet.
func fleetState(tab *binding.Table) string {
	var rows []string
	tab.Range(func(e *binding.Entry) bool {
		if e.Tombstone() { // a version: what a slot keeps beside it is diagnosis
			rows = append(rows, fmt.Sprintf("%08x/%s tomb id=%d o=%d", e.Home, tab.NAIOf(e), e.ID, e.Origin))
		} else {
			rows = append(rows, fmt.Sprintf("%08x/%s coa=%08x id=%d o=%d%s", e.Home, tab.NAIOf(e), e.CareOf, e.ID, e.Origin, netsString(e)))
		}
		return true
	})
	sort.Strings(rows)
	return strings.Join(rows, "\n")
}

// TestFleetReplication: two routers of a fleet share one home address and
// register at member 0 with the same Identifications (replay protection
// is per router). Then router A de-registers while router B keeps
// renewing, with a fifth of the datagrams lost, a fifth duplicated and
// delivered up to 300 ms late (reordered), and member 2 cut off for longer
// than the retransmission budget. After the heal and anti-entropy, and
// after member 1 restarts and downloads the table: A is de-registered on
// every member, B live with its last write, and the members agree.
func TestFleetReplication(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { fleetRun(t, seed) })
	}
}

func fleetRun(t *testing.T, seed uint64) {
	s := newSimnet(t, 3, seed, func(c *Config) { c.TombstoneTTL = time.Hour })
	for i := range 3 {
		s.start(i)
		s.run(s.now + 5*sec)
	}
	const a, b = "mrA@fleet.example", "mrB@fleet.example"
	id := uint64(1 << 32)
	for _, nai := range []string{a, b} {
		if err := s.registerNAI(0, nai, id, 0xc6336401); err != nil {
			t.Fatal(err)
		}
	}
	s.run(s.now + 2*sec)
	fleetSame(t, s)
	if got := s.nodes[1].tab.Len(); got != 2 {
		t.Fatalf("member 1 holds %d bindings, want 2 (one per router)", got)
	}

	cut := true
	s.delay = [2]int64{50_000, 50_000 + 20*ms}
	s.drop = func(from, to int, typ uint8) bool {
		return cut && (to == 2 || from == 2) || s.rng.Float64() < 0.2
	}
	s.tap = func(from, to int, data []byte) {
		if s.rng.Float64() < 0.2 { // a duplicate, up to 300 ms late
			s.n++
			heap.Push(&s.q, inflight{at: s.now + s.rng.Int64N(300*ms), n: s.n, from: from, to: to, data: append([]byte(nil), data...)})
		}
	}
	var lastB uint64
	for k := range 40 {
		id += 1 << 32
		switch {
		case k == 10:
			if err := s.deregisterNAI(0, a, id); err != nil {
				t.Fatal(err)
			}
		case k < 10:
			if err := s.registerNAI(0, a, id, 0xc6336400+uint32(k)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.registerNAI(0, b, id, 0xc6336500+uint32(k)); err != nil {
			t.Fatal(err)
		}
		lastB = id
		s.run(s.now + 500*ms)
	}
	s.run(s.now + 20*sec) // past the retransmission budget: member 2 marked for resync
	cut = false
	s.run(s.now + 5*sec)
	s.drop, s.tap = nil, nil
	s.run(s.now + 60*sec) // anti-entropy heals
	s.stop(1)
	s.run(s.now + sec)
	s.start(1) // empty table: downloads
	s.run(s.now + 30*sec)

	ka, kb := binding.FleetKey([]byte(a)), binding.FleetKey([]byte(b))
	for i, nd := range s.nodes {
		if e := nd.tab.GetKey(fleetHome, ka); e != nil && !e.Tombstone() {
			t.Errorf("member %d: router A live again: %+v", i, *e)
		}
		if e := nd.tab.GetKey(fleetHome, kb); e == nil || e.Tombstone() || e.ID != lastB || string(nd.tab.NAIOf(e)) != b {
			t.Errorf("member %d: router B %+v, want live at id %d", i, e, lastB)
		}
		if e := nd.tab.Get(fleetHome); e != nil {
			t.Errorf("member %d: a binding of the shared home without a NAI: %+v", i, *e)
		}
	}
	fleetSame(t, s)
}

func fleetSame(t *testing.T, s *simnet) {
	t.Helper()
	want := fleetState(s.nodes[0].tab)
	for i, nd := range s.nodes[1:] {
		if got := fleetState(nd.tab); nd.alive && got != want {
			t.Fatalf("member %d differs from member 0:\n%s\nvs\n%s", i+1, got, want)
		}
	}
}

// The randomized simulation (TestSim) writes for three routers of a fleet
// on fleetHome too: model keys 1<<32 | router.
var simFleetNAIs = [...]string{"mr0@fleet.example", "mr1@fleet.example", "mr2@fleet.example"}

// modelKey is the binding a model key names: home address, fleet key and
// NAI (0 and nil for a home address's own binding).
func modelKey(k uint64) (home uint32, key uint64, nai []byte) {
	if k>>32 == 0 {
		return uint32(k), 0, nil
	}
	nai = []byte(simFleetNAIs[k&0xff])
	return fleetHome, binding.FleetKey(nai), nai
}

// rowName names a binding in state and the model's rows.
func rowName(home uint32, nai []byte) string {
	if nai == nil {
		return fmt.Sprintf("%08x", home)
	}
	return fmt.Sprintf("%08x/%s", home, nai)
}

// simFleetWrite has member i register or de-register a fleet router (the
// router and care-of derived from home, drawn by the caller) and records
// the write in md.
func simFleetWrite(s *simnet, md model, i int, dereg bool, id uint64, home uint32) {
	r := int(home % uint32(len(simFleetNAIs)))
	nai := simFleetNAIs[r]
	k := uint64(1)<<32 | uint64(r)
	if dereg {
		if s.deregisterNAI(i, nai, id) == nil {
			md[k] = append(md[k], write{id: id, origin: s.nodes[i].id, tomb: true})
		}
		return
	}
	coa := 0xc6337000 + home&0xff
	if s.registerNAI(i, nai, id, coa) == nil {
		e := binding.Entry{}
		e.AddPrefixU32(0x0a100000+uint32(len(nai))<<8+uint32(nai[2]), 32)
		md[k] = append(md[k], write{id: id, origin: s.nodes[i].id, coa: coa, nets: netsString(&e)})
	}
}
