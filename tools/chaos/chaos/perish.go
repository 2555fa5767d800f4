package chaos

import (
	"net/netip"
	"slices"
	"sort"
	"time"
)

// What a double failure may take away. An acceptance survives the death of
// the member that sent it because a peer acknowledged it first
// (docs/architecture.md, "What accepted promises"); it does not survive the
// acceptor and that peer both dying before anyone else learned the write.
// The schedule kills two members at once on purpose (never three: the table
// lives in memory), so the model has to tell that loss from a broken
// promise, from what the agents themselves report: right after each kill
// the tables of the members still alive are read; a write that none of them
// holds, and that at least two distinct members died after it was sent
// (its acceptor and the peer that acknowledged it, whoever they were), is
// gone with its holders. One death alone never excuses a missing write.

// death is one SIGKILL of a member (its table dies with it).
type death struct {
	member int
	at     time.Time // taken before the signal: a write sent later cannot have reached the victim's table first
}

// Killed records that member was killed at at, and survivors, the live
// rows of every member alive right after the kill (read after it), one
// slice per member. Writes that no survivor holds and that two or more
// distinct members outlived only by dying after they were sent perished:
// the model no longer requires them (they stay possible, a datagram of a
// dead member may still be under way) and the node's state is uncertain
// until its next acceptance, so that settle re-sends it. survivors nil: not
// known (a table could not be read), the death is only recorded. It returns
// the homes whose confirmed write perished and those where only unanswered
// writes did, each sorted.
func (m *Model) Killed(member int, at time.Time, survivors [][]Row) (accepted, unanswered []netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deaths = append(m.deaths, death{member, at})
	if survivors == nil {
		return nil, nil
	}
	tables := make([]map[netip.Addr]Row, len(survivors))
	for i, rows := range survivors {
		tables[i] = make(map[netip.Addr]Row, len(rows))
		for _, r := range rows {
			tables[i][r.Home] = r
		}
	}
	for h, n := range m.nodes {
		confirmed, lost := false, false
		if n.confirmed != nil && m.perishes(h, *n.confirmed, tables, at) {
			n.perished = append(n.perished, n.confirmed.ID)
			// Still possible, no longer required: back among the writes
			// of unknown fate (IDs in order: it is below every one of them).
			n.uncertain = append([]write{*n.confirmed}, n.uncertain...)
			n.confirmed = nil
			confirmed = true
		}
		for _, w := range n.uncertain {
			// An unanswered write whose acceptance may still be on its way
			// back: when it comes, it confirms nothing.
			if !slices.Contains(n.perished, w.ID) && m.perishes(h, w, tables, at) {
				n.perished = append(n.perished, w.ID)
				lost = true
			}
		}
		switch {
		case confirmed:
			accepted = append(accepted, h)
		case lost:
			unanswered = append(unanswered, h)
		}
	}
	for _, l := range [][]netip.Addr{accepted, unanswered} {
		sort.Slice(l, func(i, j int) bool { return l[i].Less(l[j]) })
	}
	return accepted, unanswered
}

// perishes reports whether w of home is held by no survivor and at least
// two distinct members died after it was sent. The caller holds m.mu.
func (m *Model) perishes(home netip.Addr, w write, tables []map[netip.Addr]Row, now time.Time) bool {
	dead := map[int]bool{}
	for _, d := range m.deaths {
		if !d.at.Before(w.Sent) {
			dead[d.member] = true
		}
	}
	if len(dead) < 2 {
		return false
	}
	for _, t := range tables {
		if holds(t, home, w, now) {
			return false
		}
	}
	return true
}

// holds reports whether a member's live rows may hold w: a row of w or of a
// later write; or, when the home has no row, w is a de-registration or a
// binding about to expire (absence proves nothing then). Doubt counts as
// held: only a write provably missing is excused.
func holds(t map[netip.Addr]Row, home netip.Addr, w write, now time.Time) bool {
	r, ok := t[home]
	if ok {
		return r.ID >= w.ID
	}
	return !w.Live || w.expiry().Before(now.Add(slack))
}

// killed tells the model that m was killed at at (taken before the
// signal) and what the members still alive hold right after it. A member
// whose table cannot be read leaves the survivors unknown: the death is
// recorded, no write is excused.
func (r *run) killed(m *member, at time.Time) {
	var survivors [][]Row
	for _, o := range r.ms {
		if o.dead {
			continue
		}
		rows, err := liveRows(o.socket)
		if err != nil {
			r.note("    after killing ha%d, ha%d's table unread (%v): no write excused", m.i+1, o.i+1, err)
			survivors = nil
			break
		}
		survivors = append(survivors, rows)
	}
	acc, unans := r.model.Killed(m.i, at, survivors)
	if len(acc)+len(unans) > 0 {
		r.note("    killing ha%d took the last copy of the writes of %d nodes, %d of them accepted %v, that two dead members held: no longer required",
			m.i+1, len(acc)+len(unans), len(acc), acc)
	}
}
