package chaos

import (
	"fmt"
	"net/netip"
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
// the tables of the members still alive are read, tombstones included; an
// acceptance recorded before that read that none of them holds (no row of it
// or of a later write), and that at least two distinct members died after
// it was sent (its acceptor and the peer that acknowledged it, whoever they
// were), is gone with its holders. One death alone never excuses a write,
// nor is a write without an acceptance excused: its request may still be on
// its way to a survivor.

// death is one SIGKILL of a member (its table dies with it).
type death struct {
	member int
	at     time.Time // taken before the signal: a write sent later cannot have reached the victim's table first
}

// Mark returns a mark of the acceptances recorded so far: Killed excuses
// only those, as a table read after the mark shows every one of them a
// living member holds.
func (m *Model) Mark() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.seq
}

// Killed records that member was killed at at, and survivors: the rows,
// tombstones included, of every member alive right after the kill, read
// after mark was taken, one slice per member. A confirmed write recorded
// before mark that no survivor holds, and that two or more distinct members
// died after it was sent, perished: the model no longer requires it (it
// stays possible, a datagram of a dead member may still be under way) and
// the node's state is uncertain until its next acceptance, so that settle
// re-sends it. survivors nil: not known (a table could not be read), the
// death is only recorded. It returns the homes whose write perished, sorted.
func (m *Model) Killed(member int, at time.Time, mark uint64, survivors [][]Row) []netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deaths = append(m.deaths, death{member, at})
	if survivors == nil {
		return nil
	}
	tables := make([]map[netip.Addr]Row, len(survivors))
	for i, rows := range survivors {
		tables[i] = make(map[netip.Addr]Row, len(rows))
		for _, r := range rows {
			tables[i][r.Home] = r
		}
	}
	var out []netip.Addr
	for h, n := range m.nodes {
		if w := n.confirmed; w != nil && w.seq <= mark && m.perishes(h, *w, tables, at) {
			// Still possible, no longer required: back among the writes
			// of unknown fate (IDs in order: it is below every one of them).
			n.uncertain = append([]write{*w}, n.uncertain...)
			n.confirmed = nil
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
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

// holds reports whether a member's rows (tombstones included) may hold w: a
// row of w or of a later write, live or not; or, when the home has no row
// at all, w is a de-registration (its tombstone may be purged) or a binding
// about to expire. Doubt counts as held: only a write provably missing is
// excused.
func holds(t map[netip.Addr]Row, home netip.Addr, w write, now time.Time) bool {
	if r, ok := t[home]; ok {
		return r.ID >= w.ID
	}
	return !w.Live || w.expiry().Before(now.Add(slack))
}

// killed tells the model that m was killed at at (taken before the
// signal) and what the members still alive hold right after it. A member
// whose table cannot be read leaves the survivors unknown: the death is
// recorded, no write is excused.
func (r *run) killed(m *member, at time.Time) {
	mark := r.model.Mark()
	var survivors [][]Row
	for _, o := range r.ms {
		if o.dead {
			continue
		}
		rows, err := tableRows(o.socket)
		if err != nil {
			r.note("    after killing ha%d, ha%d's table unread (%v): no write excused", m.i+1, o.i+1, err)
			survivors = nil
			break
		}
		survivors = append(survivors, rows)
	}
	if lost := r.model.Killed(m.i, at, mark, survivors); len(lost) > 0 {
		r.note("    killing ha%d took the last copy of %d acceptances %v, held only by two members now dead: no longer required", m.i+1, len(lost), lost)
	}
}

// tableRows reads every row of a member's table, tombstones included (their
// care-of is the zero address): a tombstone holds its write as a live row
// does.
func tableRows(socket string) ([]Row, error) {
	resp, err := consoleCall(socket, consoleRequest{Cmd: "show bindings", Limit: -1}, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if resp.Bindings == nil || resp.Bindings.Truncated > 0 {
		return nil, fmt.Errorf("console %s: the table was not listed whole", socket)
	}
	rows := make([]Row, 0, len(resp.Bindings.Rows))
	for _, b := range resp.Bindings.Rows {
		h, err := netip.ParseAddr(b.Home)
		if err != nil {
			return nil, fmt.Errorf("console %s: row home %q: %w", socket, b.Home, err)
		}
		c, _ := netip.ParseAddr(b.CareOf)
		rows = append(rows, Row{Home: h, CareOf: c, ID: b.ID})
	}
	return rows, nil
}
