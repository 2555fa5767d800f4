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

// TestBeyondTheBound deliberately writes more distinct homes than a member
// has slots (capacity 1,000 + 250 tombstone slots): while member 2 is cut
// off for longer than the retransmission budget, 1,000 bindings are
// de-registered and 500 other homes register, so members 0 and 1 fold
// the old tombstones into floors. After the heal, member 2's stale live
// copies reach them through anti-entropy: the floors refuse every one, and
// the new bindings stay (their Identifications are newer than any floor).
// Member 2 itself keeps its stale copies until they expire and, full of
// them, cannot take the new ones: the documented price beyond the bound.
func TestBeyondTheBound(t *testing.T) {
	const n = 1000
	s := newSimnet(t, 3, 3, func(c *Config) { c.MaxPending = 65536; c.TombstoneTTL = time.Hour })
	s.table = func() *binding.Table { return binding.New(n, n/4) }
	for i := range 3 {
		s.start(i)
		s.run(s.now + 5*sec)
	}
	a := func(k int) uint32 { return 0x0a000000 + uint32(k) + 1 }
	b := func(k int) uint32 { return 0x0a100000 + uint32(k) + 1 }
	id := uint64(1 << 32)
	for k := range n {
		if err := s.register(0, a(k), id+uint64(k), 0xc6336401); err != nil {
			t.Fatal(err)
		}
		s.run(s.now + ms)
	}
	s.run(s.now + 10*sec)
	same(t, s)
	cut := true
	s.drop = func(from, to int, typ uint8) bool { return cut && (to == 2 || from == 2) }
	for k := range n {
		if err := s.deregister(0, a(k), id+uint64(n+k)); err != nil {
			t.Fatal(err)
		}
		s.run(s.now + ms)
	}
	for k := range n / 2 {
		if err := s.register(0, b(k), id+uint64(2*n+k), 0xc6336402); err != nil {
			t.Fatal(err)
		}
		s.run(s.now + ms)
	}
	s.run(s.now + 20*sec) // the retransmissions to member 2 run out
	cut = false
	s.run(s.now + 60*sec) // anti-entropy
	var floored, evicted uint64
	for i, nd := range s.nodes {
		floored += nd.m.Counters().StaleByFloor
		evicted += nd.tab.Stats().TombEvicted
		if i == 2 {
			continue
		}
		for k := range n / 2 {
			if e := nd.tab.Get(b(k)); e == nil || e.Tombstone() {
				t.Fatalf("member %d lacks new binding %08x: %+v", i, b(k), e)
			}
		}
		back := 0
		for k := range n {
			if e := nd.tab.Get(a(k)); e != nil && !e.Tombstone() {
				back++
			}
		}
		if back > 0 {
			t.Errorf("member %d: %d de-registered bindings live again", i, back)
		}
	}
	for i, nd := range s.nodes {
		liveA := 0
		for k := range n {
			if e := nd.tab.Get(a(k)); e != nil && !e.Tombstone() {
				liveA++
			}
		}
		t.Logf("member %d: %d live A, %d live, %d tombs, counters %+v", i, liveA, nd.tab.Len(), nd.tab.Tombs(), nd.m.Counters())
	}
	if evicted == 0 || floored == 0 {
		t.Fatalf("%d tombstones folded, %d stale copies refused: the test no longer exceeds the bound", evicted, floored)
	}
	t.Logf("%d tombstones folded, %d stale copies refused by floors", evicted, floored)
}
