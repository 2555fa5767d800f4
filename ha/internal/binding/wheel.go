package binding

import "math/bits"

// wheel is a hashed timing wheel over slab indexes: slot = tick & mask,
// tick = Expires >> tickShift. Invariant: an entry whose tick is <= cursor
// is linked in the cursor's slot, every other entry in its own tick's slot.
// So Expire only visits the slots between the previous call and now, and a
// wrapped entry (tick > cursor+mask) simply stays in its slot until its turn.
type wheel struct {
	heads  []int32  // first entry per slot, 0 = empty
	bits   []uint64 // occupancy bitmap: skip empty slots 64 at a time
	mask   int64
	cursor int64 // tick up to which Expire has run
	n      int

	// Cached minimum (NextDeadline, tombstone eviction): kept while the
	// minimum entry stays, recomputed lazily after it leaves.
	minOK  bool
	minAt  int64
	minIdx int32

	// Lower bound of every Expires (NextDeadline only). Renewing the
	// earliest binding invalidates the exact minimum, and recomputing it
	// walks that slot's chain — under a renewal storm that is the whole
	// table, once per owner-loop iteration. A deadline that is too early
	// costs one spurious wake-up, so the bound survives renewals and
	// removals and is recomputed only after Expire has run.
	lbOK bool
	lbAt int64
}

func (w *wheel) init(b uint) {
	if b < minWheelBits {
		b = minWheelBits
	}
	w.heads = make([]int32, 1<<b)
	w.bits = make([]uint64, (1<<b)/64)
	w.mask = 1<<b - 1
}

func (w *wheel) reset() {
	clear(w.heads)
	clear(w.bits)
	w.n, w.minOK, w.lbOK = 0, false, false
}

func (w *wheel) slotFor(exp int64) int32 {
	t := exp >> tickShift
	if t < w.cursor {
		t = w.cursor
	}
	return int32(t & w.mask)
}

func (w *wheel) add(s []Entry, i int32) {
	e := &s[i]
	slot := w.slotFor(e.Expires)
	e.wslot = slot
	e.wprev = 0
	h := w.heads[slot]
	e.wnext = h
	if h != 0 {
		s[h].wprev = i
	} else {
		w.bits[slot>>6] |= 1 << (uint(slot) & 63)
	}
	w.heads[slot] = i
	w.n++
	if w.lbOK && e.Expires < w.lbAt {
		w.lbAt = e.Expires
	}
	switch {
	case w.n == 1:
		w.minOK, w.minAt, w.minIdx = true, e.Expires, i
	case w.minOK && e.Expires < w.minAt:
		w.minAt, w.minIdx = e.Expires, i
	}
}

func (w *wheel) remove(s []Entry, i int32) {
	e := &s[i]
	if e.wprev != 0 {
		s[e.wprev].wnext = e.wnext
	} else {
		w.heads[e.wslot] = e.wnext
		if e.wnext == 0 {
			w.bits[e.wslot>>6] &^= 1 << (uint(e.wslot) & 63)
		}
	}
	if e.wnext != 0 {
		s[e.wnext].wprev = e.wprev
	}
	e.wprev, e.wnext = 0, 0
	w.n--
	if w.minOK && w.minIdx == i {
		w.minOK = false
	}
}

// advance moves the cursor towards tick nt over empty slots only, which
// keeps the invariant. Put calls it with the registration time: when
// renewals keep every binding from expiring, Expire may never run, and
// without this the cursor would fall more than a turn behind and
// NextDeadline would degrade to a full scan. Amortized O(1): the cursor only
// moves forward, 64 slots per step.
func (w *wheel) advance(nt int64) {
	if w.n == 0 {
		w.cursor = max(w.cursor, nt)
		return
	}
	for w.cursor < nt {
		pos := w.cursor & w.mask
		word := w.bits[pos>>6] >> (pos & 63)
		if word&1 != 0 {
			return
		}
		step := 64 - pos&63
		if word != 0 {
			step = int64(bits.TrailingZeros64(word))
		}
		w.cursor = min(nt, w.cursor+step)
	}
}

// moved re-files entry i after its Expires changed from old.
func (w *wheel) moved(s []Entry, i int32, old int64) {
	e := &s[i]
	if e.Expires == old {
		return
	}
	if w.slotFor(e.Expires) != e.wslot {
		w.remove(s, i)
		w.add(s, i)
		return
	}
	if w.lbOK && e.Expires < w.lbAt {
		w.lbAt = e.Expires
	}
	switch {
	case w.minOK && e.Expires < w.minAt:
		w.minAt, w.minIdx = e.Expires, i
	case w.minOK && w.minIdx == i:
		w.minOK = false // it grew: someone else may be earlier now
	}
}

// lowerBound returns a time no later than the earliest Expires (see lbOK).
func (w *wheel) lowerBound(s []Entry) (int64, bool) {
	if w.n == 0 {
		return 0, false
	}
	if !w.lbOK {
		at, _, ok := w.min(s)
		if !ok {
			return 0, false
		}
		w.lbAt, w.lbOK = at, true
	}
	return w.lbAt, true
}

// min returns the earliest Expires and its entry.
func (w *wheel) min(s []Entry) (int64, int32, bool) {
	if w.n == 0 {
		return 0, 0, false
	}
	if w.minOK {
		return w.minAt, w.minIdx, true
	}
	size := w.mask + 1
	for k := int64(0); k < size; {
		pos := (w.cursor + k) & w.mask
		word := w.bits[pos>>6] >> (pos & 63)
		if word == 0 {
			k += 64 - pos&63
			continue
		}
		k += int64(bits.TrailingZeros64(word))
		if k >= size {
			break
		}
		pos = (w.cursor + k) & w.mask
		// Entries of this turn of the wheel (tick <= cursor+k) are
		// earlier than everything in later slots; wrapped ones are not.
		limit := w.cursor + k
		var best int32
		for i := w.heads[pos]; i != 0; i = s[i].wnext {
			if s[i].Expires>>tickShift <= limit && (best == 0 || s[i].Expires < s[best].Expires) {
				best = i
			}
		}
		if best != 0 {
			w.minOK, w.minAt, w.minIdx = true, s[best].Expires, best
			return w.minAt, best, true
		}
		k++
	}
	// Every entry is more than one turn ahead (only after very long
	// lifetimes with no Expire for a long time): look at all of them.
	var best int32
	for pos := range w.heads {
		for i := w.heads[pos]; i != 0; i = s[i].wnext {
			if best == 0 || s[i].Expires < s[best].Expires {
				best = i
			}
		}
	}
	w.minOK, w.minAt, w.minIdx = true, s[best].Expires, best
	return w.minAt, best, true
}
