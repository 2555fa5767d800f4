package failover

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// holdPoll is how often holdWatch looks at each member's address list: the
// resolution of the double-master figures.
const holdPoll = 4 * time.Millisecond

// holdWatch records, for each member of a group, the spans of time during
// which its kernel held the virtual address: two members holding it at
// once is a double master (both answer ARP, both may answer the nodes).
type holdWatch struct {
	mu    sync.Mutex
	spans [][][2]time.Time // per member: closed spans [from, to]
	open  []time.Time      // per member: start of the open span (zero: not holding)
}

// watchHolders polls every namespace in nss (the members, in order) until
// ctx ends.
func watchHolders(ctx context.Context, nss []string, dev string, addr netip.Addr) (*holdWatch, error) {
	w := &holdWatch{spans: make([][][2]time.Time, len(nss)), open: make([]time.Time, len(nss))}
	for i, ns := range nss {
		err := goNetns(ns, func() {
			for ctx.Err() == nil {
				now := time.Now()
				h := holds(dev, addr)
				w.mu.Lock()
				switch {
				case h && w.open[i].IsZero():
					w.open[i] = now
				case !h && !w.open[i].IsZero():
					w.spans[i] = append(w.spans[i], [2]time.Time{w.open[i], now})
					w.open[i] = time.Time{}
				}
				w.mu.Unlock()
				time.Sleep(holdPoll)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return w, nil
}

// overlap is how long, within [from, to], two or more of the members
// listed held the address at once.
func (w *holdWatch) overlap(from, to time.Time, members []int) time.Duration {
	type ev struct {
		at time.Time
		d  int
	}
	var evs []ev
	w.mu.Lock()
	for _, m := range members {
		spans := slices.Clone(w.spans[m])
		if !w.open[m].IsZero() {
			spans = append(spans, [2]time.Time{w.open[m], to})
		}
		for _, s := range spans {
			a, b := maxTime(s[0], from), minTime(s[1], to)
			if a.Before(b) {
				evs = append(evs, ev{a, +1}, ev{b, -1})
			}
		}
	}
	w.mu.Unlock()
	slices.SortFunc(evs, func(x, y ev) int {
		if c := x.at.Compare(y.at); c != 0 {
			return c
		}
		return x.d - y.d // ends before starts at the same instant
	})
	var total time.Duration
	n := 0
	var since time.Time
	for _, e := range evs {
		if n >= 2 {
			total += e.at.Sub(since)
		}
		n += e.d
		since = e.at
	}
	return total
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// reachable lists the members that can answer on the LAN after a fault of
// kind: member 0 is dead or cut off, except after a graceful stop (it
// releases the address as it goes, and holding it until then counts).
func reachable(kind Kind, n int) []int {
	var out []int
	for i := range n {
		if i > 0 || kind == Term {
			out = append(out, i)
		}
	}
	return out
}

func allMembers(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
