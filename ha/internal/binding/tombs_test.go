package binding

import "testing"

// A fleet de-registering at once turns every live binding into a tombstone
// in its own slot: none is dropped, whatever the tombstone capacity.
func TestLiveToTombNeedsNoPoolRoom(t *testing.T) {
	tb := New(100, 25)
	for h := uint32(1); h <= 100; h++ {
		mustPut(t, tb, live(h, t0, 600))
	}
	for h := uint32(1); h <= 100; h++ {
		if p := tb.Tombstone(h, uint64(t0)+1, 7, t0+int64(h)*sec+3600*sec); p == nil || !p.Tombstone() {
			t.Fatalf("Tombstone(%d) = %+v", h, p)
		}
	}
	checkCounts(t, tb, 0, 100)
	for h := uint32(1); h <= 100; h++ {
		if p := tb.Get(h); p == nil || !p.Tombstone() {
			t.Fatalf("tombstone %d gone: %+v", h, p)
		}
	}
	if st := tb.Stats(); st.TombEvicted != 0 {
		t.Fatalf("TombEvicted = %d, want 0: a live binding's own slot holds its tombstone", st.TombEvicted)
	}
}

// Folding a tombstone into its floor, and asking a floor, allocate nothing.
func TestFoldAllocatesNothing(t *testing.T) {
	tb := New(64, 64)
	for h := uint32(1); h <= 128; h++ {
		tb.Tombstone(h, 1, 1, t0+int64(h)*sec)
	}
	h, now := uint32(1000), t0
	n := testing.AllocsPerRun(1000, func() {
		h++
		now += sec / 100
		if h%2 == 0 {
			tb.Tombstone(h, uint64(h), 1, now+200*sec)
		} else if _, err := tb.Put(live(h, now, 30)); err != nil {
			tb.Tombstone(h, uint64(h), 1, now+200*sec)
		}
		_ = tb.Covered(h-1, 1, now)
	})
	if n != 0 {
		t.Fatalf("allocs per fold = %v, want 0", n)
	}
	if tb.Stats().TombEvicted == 0 {
		t.Fatal("nothing folded: the test no longer measures the fold")
	}
}

// A floor never lapses before its time, even when the table was started by
// a tombstone (the wheels' cursors then sit at its purge time, ahead of
// the clock) and a second tombstone is folded into the same floor.
func TestFloorOutlivesCursorAhead(t *testing.T) {
	tb := New(2, 2) // 4 slots
	now := t0
	tb.Tombstone(0x0a000100, 1, 1, now+7200*sec) // starts the table
	tb.Expire(now, nil)
	const a = 0x0a000001
	b := uint32(0)
	for h := uint32(0x0a000002); h < 0x0a00ffff; h++ {
		if tb.floorOf(h, 0) == tb.floorOf(a, 0) {
			b = h
			break
		}
	}
	if b == 0 {
		t.Fatal("no second home shares a's floor")
	}
	tb.Tombstone(a, 100, 1, now+100*sec)
	tb.Tombstone(0x0a000101, 1, 1, now+7000*sec)
	tb.Tombstone(0x0a000102, 1, 1, now+7000*sec) // 4 slots taken
	tb.Tombstone(0x0a000103, 1, 1, now+6000*sec) // folds a (nearest)
	if tb.Get(a) != nil || !tb.Covered(a, 100, now) {
		t.Fatal("setup: a not folded")
	}
	tb.Tombstone(b, 5, 1, now+200*sec) // nearest: folded itself, into a's floor
	if !tb.Covered(a, 100, now) {
		t.Fatal("a's floor dropped before its purge time by a second fold")
	}
	if !tb.Covered(b, 5, now+150*sec) || tb.Covered(a, 100, now+200*sec) {
		t.Fatal("floor times wrong")
	}
}
