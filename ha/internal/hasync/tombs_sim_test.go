package hasync

import (
	"fmt"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
)

// massDereg is the fleet coming home: n live bindings replicated on three
// members (capacity n, tombstone capacity n/4, as configured by default),
// then n de-registrations at member 0, ten per millisecond (a fleet; faster
// than retransmissions, so a tombstone pool that drops the oldest drops
// them before they are retransmitted), while member 2 loses `loss` of what
// is sent to it and is cut off from the group for `cut` (starting 100 ms
// into the de-registrations). After healing and
// anti-entropy, it returns how many de-registered homes are live again on
// some member, and the first member whose table differs from member 0's
// (-1: all equal).
func massDereg(t *testing.T, seed uint64, n int, loss float64, cut time.Duration) (resurrected, unequal int) {
	t.Helper()
	s := newSimnet(t, 3, seed, func(c *Config) { c.MaxPending = 65536; c.TombstoneTTL = time.Hour })
	s.table = func() *binding.Table { return binding.New(n, n/4) }
	for i := range 3 {
		s.start(i)
		s.run(s.now + 5*sec)
	}
	home := func(k int) uint32 { return 0x0a000000 + uint32(k) + 1 }
	id := uint64(1 << 32)
	for k := range n {
		if err := s.register(0, home(k), id+uint64(k), 0xc6336400+uint32(k%200)); err != nil {
			t.Fatal(err)
		}
		s.run(s.now + ms/2)
	}
	s.run(s.now + 20*sec)
	same(t, s)

	inCut := false
	s.drop = func(from, to int, typ uint8) bool {
		return to == 2 && (inCut || s.rng.Float64() < loss)
	}
	cutFrom, cutTo := s.now+100*ms, s.now+100*ms+int64(cut)
	for k := range n {
		inCut = cut > 0 && s.now >= cutFrom && s.now < cutTo
		if err := s.deregister(0, home(k), id+uint64(n+k)); err != nil {
			t.Fatal(err)
		}
		s.run(s.now + ms/10)
	}
	for s.now < cutTo {
		inCut = true
		s.run(min(cutTo, s.now+100*ms))
	}
	inCut = false
	s.run(s.now + 5*sec) // retransmissions still lost at `loss`
	s.drop = nil
	s.run(s.now + 60*sec) // anti-entropy heals
	for k := range n {
		for _, nd := range s.nodes {
			if e := nd.tab.Get(home(k)); e != nil && !e.Tombstone() {
				resurrected++
				break
			}
		}
	}
	unequal = -1
	want := state(s.nodes[0].tab)
	for i, nd := range s.nodes[1:] {
		if state(nd.tab) != want {
			unequal = i + 1
			break
		}
	}
	for i, nd := range s.nodes {
		if ev := nd.tab.Stats().TombEvicted; ev != 0 {
			t.Errorf("member %d: %d tombstones evicted early", i, ev)
		}
	}
	return resurrected, unequal
}

// TestMassDeregistration: de-registering a whole table (four times the
// tombstone capacity) while one member misses 5 % of it, or is cut off for
// less or more than the retransmission budget (15.75 s), undoes none of it.
func TestMassDeregistration(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 2000
	}
	for _, c := range []struct {
		loss float64
		cut  time.Duration
	}{{0.05, 0}, {0.05, 8 * time.Second}, {0.05, 22 * time.Second}} {
		t.Run(fmt.Sprintf("loss=%v,cut=%v", c.loss, c.cut), func(t *testing.T) {
			r, u := massDereg(t, 1, n, c.loss, c.cut)
			if r != 0 || u >= 0 {
				t.Fatalf("%d of %d de-registered bindings live again; member %d's table differs from member 0's (-1: none)", r, n, u)
			}
		})
	}
}
