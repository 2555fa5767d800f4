package agent

import (
	"net/netip"
	"strings"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/mip"
)

// sliceEntries bounds the table entries one `show bindings` answer visits
// in one iteration of the owner loop: a registration arriving while the
// whole table is being answered waits for one slice, not for the table.
// The answer is assembled from the slices; between two, the loop serves
// whatever else is ready.
const sliceEntries = 1024

// bindingsWalk is one `show bindings` answer being produced slice by slice
// (binding.Table.RangeFrom). What it gives, with the table changing
// between slices:
//   - every binding (live or tombstone) present for the whole answer
//     appears exactly once, in one of the states it had meanwhile (a slot
//     holds its home while it is present: renewals and live → tombstone
//     change it in place);
//   - a binding added or removed meanwhile appears at most once, in one of
//     its states (a home removed and added again in a slot not yet walked
//     would be seen twice: the later sighting replaces the earlier);
//   - the summary counts are those of the homes the answer saw, so they
//     agree with the rows (live + tombstones = rows + truncated).
//
// With nothing changing, as when the invariant checkers read the tables of
// a converged group, it is exactly the table.
type bindingsWalk struct {
	limit int
	only  uint32 // one home asked for; 0: all
	pos   int    // where the next slice starts
	now   int64  // the current slice's clock: each row is as of its slice
	began bool
	done  bool
	out   *console.Bindings // Rows stays empty until assemble
	// rows: one chunk per slice, so that growing the answer never copies
	// the rows already made on the loop; assemble joins them off the loop.
	rows  [][]console.Binding
	nrows int
	// seen: each home visited so far, its row (-1: none; else chunk and
	// index, sliceEntries per chunk) and its kind, so a home seen twice
	// counts once.
	seen    map[bindingKey]seenHome
	matched int // homes seen that were asked for
	// maxVisited is the most entries one slice visited (the loop's pause,
	// counted in entries; tests and the benchmark read it).
	maxVisited int
}

type seenHome struct {
	row  int32
	kind uint8
}

const (
	kindLive uint8 = 1 << iota
	kindGRE
	kindReverse
	kindMatch // the home asked for (or any, when all are)
	kindUDP   // RFC 3519 UDP tunnelling to a NAT mapping
)

func newBindingsWalk(r console.Request) *bindingsWalk {
	w := &bindingsWalk{limit: r.Limit, out: &console.Bindings{}}
	if w.limit == 0 {
		w.limit = defaultRows
	}
	if len(r.Args) > 0 {
		if ad, err := netip.ParseAddr(r.Args[0]); err == nil && ad.Is4() {
			w.only = binding.AddrU32(ad)
			w.out.Detail = true
		}
	}
	return w
}

// bindingsSlice walks the next sliceEntries entries of the table into w; it
// runs on the owner loop. After the last slice, w.done is set and w.out is
// the answer.
func (a *Agent) bindingsSlice(w *bindingsWalk) {
	if w.done {
		return
	}
	t := a.core.table
	w.now = a.now()
	if !w.began {
		w.began = true
		// Grown as the walk goes: the map grows in bounded steps, a table
		// of a million homes is not allocated in one slice.
		w.seen = make(map[bindingKey]seenHome, sliceEntries)
	}
	w.rows = append(w.rows, nil)
	n := 0
	w.pos = t.RangeFrom(w.pos, func(e *binding.Entry) bool {
		n++
		a.walkEntry(w, e)
		return n < sliceEntries
	})
	w.maxVisited = max(w.maxVisited, n)
	if w.pos != 0 {
		return
	}
	w.done = true
	w.out.Capacity, w.out.TombCap = t.Cap(), t.TombCap()
	w.out.Truncated = w.matched - w.nrows
	w.seen = nil
}

// count adds (d = 1) or takes back (d = -1) one home of kind to the
// summary, as it is walked: nothing is left to count after the last slice.
func (w *bindingsWalk) count(kind uint8, d int) {
	o := w.out
	if kind&kindLive == 0 {
		o.Tombs += d
	} else {
		o.Live += d
		if kind&kindUDP != 0 {
			o.UDP += d
		} else if kind&kindGRE != 0 {
			o.GRE += d
		} else {
			o.IPIP += d
		}
		if kind&kindReverse != 0 {
			o.Reverse += d
		}
	}
	if kind&kindMatch != 0 {
		w.matched += d
	}
}

// assemble joins the chunks into the answer's rows; it runs off the loop,
// once the walk is done.
func (w *bindingsWalk) assemble() *console.Bindings {
	if w.nrows > 0 && w.out.Rows == nil {
		w.out.Rows = make([]console.Binding, 0, w.nrows)
		for _, c := range w.rows {
			w.out.Rows = append(w.out.Rows, c...)
		}
	}
	w.rows = nil
	return w.out
}

// walkEntry records one visited entry: its kind, and its row if it is asked
// for and within the limit. A home seen again replaces what was recorded.
func (a *Agent) walkEntry(w *bindingsWalk, e *binding.Entry) {
	var kind uint8
	if !e.Tombstone() {
		kind |= kindLive
		if e.Flags&mip.FlagG != 0 {
			kind |= kindGRE
		}
		if e.Encap == binding.EncapUDP {
			kind |= kindUDP
		}
		if e.Flags&mip.FlagT != 0 {
			kind |= kindReverse
		}
	}
	match := w.only == 0 || e.Home == w.only
	if match {
		kind |= kindMatch
	}
	k := bindingKey{e.Home, e.Key} // the routers of a shared home address are rows of their own
	s, again := w.seen[k]
	if again {
		w.count(s.kind, -1)
	} else {
		s.row = -1
	}
	s.kind = kind
	w.count(kind, 1)
	switch {
	case !match:
	case s.row >= 0:
		w.rows[s.row/sliceEntries][s.row%sliceEntries] = a.bindingRow(e, w.now)
	case w.limit < 0 || w.nrows < w.limit:
		c := len(w.rows) - 1
		if w.rows[c] == nil {
			w.rows[c] = make([]console.Binding, 0, sliceEntries)
		}
		s.row = int32(c*sliceEntries + len(w.rows[c]))
		w.rows[c] = append(w.rows[c], a.bindingRow(e, w.now))
		w.nrows++
	}
	w.seen[k] = s
}

// showBindings is the whole answer in one step: for callers already on the
// owner loop that need it at once (tests). The console goes slice by slice
// (consoleAnswer).
func (a *Agent) showBindings(r console.Request) *console.Bindings {
	w := newBindingsWalk(r)
	for !w.done {
		a.bindingsSlice(w)
	}
	return w.assemble()
}

// isShowBindings reports whether r is answered by a walk of the table.
func isShowBindings(r console.Request) bool {
	f := strings.Fields(r.Cmd)
	return len(f) == 2 && f[0] == "show" && f[1] == "bindings"
}
