package binding

import "math/bits"

// A floor is what a tombstone leaves behind when the table has no slot
// for it: the largest Identification among the tombstones folded into its
// bucket of home addresses, and the latest of their purge times. Until
// then, a live write for a home the table does not hold, with an
// Identification at or below its bucket's floor, may be older than a
// de-registration the table has forgotten: Covered says so and the caller
// refuses it. A floor is sound for every home folded into it (an older
// write of that home is below the floor by construction) and conservative
// for the others of its bucket: they may be refused while it lasts, never
// wrongly accepted.
type floor struct {
	id    uint64
	until int64 // monotonic ns: the floor lapses here (no tombstone folded into it outlives it)
}

// newFloors sizes the floor array: a power of two >= tombCapacity, at
// least 64 (0 when tombstones are disabled: nothing is ever folded).
func newFloors(tombCapacity int) ([]floor, uint32) {
	if tombCapacity <= 0 {
		return nil, 0
	}
	fb := uint32(bits.Len(uint(tombCapacity - 1)))
	if fb < 6 {
		fb = 6
	}
	return make([]floor, 1<<fb), fb
}

func (t *Table) floorOf(home uint32, key uint64) *floor {
	// Not the hash index's buckets: its seed differs by a constant, so the
	// homes sharing a floor are not the ones sharing a chain. A fleet's key
	// is folded in as there (the routers of a shared home spread).
	return &t.floors[((home^uint32(key)^uint32(key>>32)^t.seed^0x5bd1e995)*0x9E3779B1)>>(32-t.fbits)]
}

// raise folds a tombstone (id, purge time) into its home's floor. A floor
// whose time is past starts afresh; an active one keeps the larger of
// each. "Past" is judged by the latest time the callers gave (t.clock),
// never ahead of theirs: a floor may be kept longer, never dropped early.
// (The wheels' cursors would not do: started by a tombstone, they sit at
// its purge time, ahead of the clock.)
func (t *Table) raise(home uint32, key uint64, id uint64, until int64) {
	f := t.floorOf(home, key)
	if f.until <= t.clock {
		*f = floor{id: id, until: until}
		return
	}
	f.id = max(f.id, id)
	f.until = max(f.until, until)
}

// fold drops tombstone slot i before its purge time, its version kept in
// its floor.
func (t *Table) fold(i int32) {
	e := &t.slab[i]
	t.raise(e.Home, e.Key, e.ID, e.Expires)
	t.release(i)
	t.stats.TombEvicted++
}

// full reports whether every slot holds a binding or a tombstone.
func (t *Table) full() bool { return t.live+t.tombs >= len(t.slab)-1 }

// makeRoom frees a slot in a full table by folding the tombstone with the
// nearest purge time. It reports false when there is none (every slot
// live: only when tombCapacity is 0).
func (t *Table) makeRoom() bool {
	if !t.full() {
		return true
	}
	_, j, ok := t.tw.min(t.slab)
	if !ok {
		return false
	}
	t.fold(j)
	return true
}

// Covered reports whether a live write for home with Identification id must
// be refused at now because a tombstone that may be newer was folded for
// lack of room (see floor). Always false while the table holds an entry for
// home: the caller compares versions with it. The check ignores the
// writer's agent id, so a write at the floor's Identification itself is
// refused whatever its origin (conservative: a tombstone wins ties).
func (t *Table) Covered(home uint32, id uint64, now int64) bool {
	return t.CoveredKey(home, 0, id, now)
}

// CoveredKey is Covered for the binding of home and key (Entry.Key).
func (t *Table) CoveredKey(home uint32, key uint64, id uint64, now int64) bool {
	if t.floors == nil || t.find(home, key) != 0 {
		return false
	}
	f := t.floorOf(home, key)
	return now < f.until && id <= f.id
}
