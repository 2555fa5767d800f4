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
