package chaos

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"
)

// write is one registration or de-registration a mobile node sent.
type write struct {
	Live   bool       // false: a de-registration (lifetime 0)
	CareOf netip.Addr // meaningful when Live
	ID     uint64
	Sent   time.Time // expiry is measured from here: the agent starts the lifetime later, never earlier
	Life   time.Duration
	seq    uint64 // Model.seq when its acceptance was recorded; 0: none
}

func (w write) expiry() time.Time { return w.Sent.Add(w.Life) }

func (w write) String() string {
	if !w.Live {
		return fmt.Sprintf("deregistered id %#x", w.ID)
	}
	return fmt.Sprintf("live coa %v id %#x lifetime %s", w.CareOf, w.ID, w.Life)
}

// nodeState is what the model knows of one home address: the last write an
// authenticated acceptance confirmed, and the writes sent after it whose
// fate is unknown (no reply: lost on the way there, or the reply lost on the
// way back). The group orders writes by Identification (last writer wins),
// so the table may hold the confirmed write or any later uncertain one.
type nodeState struct {
	confirmed *write
	uncertain []write // IDs above confirmed's, in sending order
	lastID    uint64
}

// Model is the test's own account of the binding table, built only from
// mnsim's replies. It shares no code with the agents.
type Model struct {
	mu     sync.Mutex
	nodes  map[netip.Addr]*nodeState
	deaths []death // every member killed so far (perish.go)
	seq    uint64  // acceptances recorded so far (perish.go: which ones a table read may show)
}

// NewModel returns an empty model.
func NewModel() *Model { return &Model{nodes: make(map[netip.Addr]*nodeState)} }

func (m *Model) node(home netip.Addr) *nodeState {
	n := m.nodes[home]
	if n == nil {
		n = &nodeState{}
		m.nodes[home] = n
	}
	return n
}

// NextID returns an Identification for home above every one used before
// (the agents refuse a timestamp that does not increase).
func (m *Model) NextID(home netip.Addr, ts uint64) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.node(home)
	if ts <= n.lastID {
		ts = n.lastID + 1
	}
	n.lastID = ts
	return ts
}

// Sent records a write before it leaves: until a reply says otherwise it
// may or may not take effect.
func (m *Model) Sent(home netip.Addr, w write) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.node(home)
	n.uncertain = append(n.uncertain, w)
}

// Accepted records an authenticated acceptance of the write with id; granted
// is the lifetime the reply carries. Writes with lower IDs can no longer be
// what the group holds.
func (m *Model) Accepted(home netip.Addr, id uint64, granted time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.node(home)
	for i, w := range n.uncertain {
		if w.ID != id {
			continue
		}
		if w.Live {
			w.Life = granted
		}
		m.seq++
		w.seq = m.seq
		if n.confirmed == nil || w.ID > n.confirmed.ID {
			n.confirmed = &w
		}
		n.uncertain = append(n.uncertain[:i], n.uncertain[i+1:]...)
		// Writes below the confirmed one can no longer be what the group
		// holds (last writer wins by Identification).
		keep := n.uncertain[:0]
		for _, u := range n.uncertain {
			if u.ID > n.confirmed.ID {
				keep = append(keep, u)
			}
		}
		n.uncertain = keep
		return
	}
}

// Denied records a denial: the write with id did not happen.
func (m *Model) Denied(home netip.Addr, id uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.node(home)
	for i, w := range n.uncertain {
		if w.ID == id {
			n.uncertain = append(n.uncertain[:i], n.uncertain[i+1:]...)
			return
		}
	}
}

// Uncertain lists the home addresses whose state is not known exactly.
func (m *Model) Uncertain() []netip.Addr {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []netip.Addr
	for h, n := range m.nodes {
		if len(n.uncertain) > 0 {
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// Live reports whether the model's confirmed state of home is a live
// binding (used by the traffic generator to choose renew or register).
func (m *Model) Live(home netip.Addr, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.nodes[home]
	return n != nil && n.confirmed != nil && n.confirmed.Live && n.confirmed.expiry().After(now)
}

// Row is one live binding as a member reports it.
type Row struct {
	Home   netip.Addr
	CareOf netip.Addr
	ID     uint64
}

// Diff compares one member's live rows with the model at time now (taken
// while the rows were read). Bindings whose expiry lies within slack of now
// may be present or absent. It returns one line per disagreement.
func (m *Model) Diff(rows []Row, now time.Time, slack time.Duration) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	byHome := make(map[netip.Addr]Row, len(rows))
	var out []string
	for _, r := range rows {
		if _, dup := byHome[r.Home]; dup {
			out = append(out, fmt.Sprintf("%v: listed twice", r.Home))
		}
		byHome[r.Home] = r
	}
	homes := make([]netip.Addr, 0, len(m.nodes)+len(rows))
	for h := range m.nodes {
		homes = append(homes, h)
	}
	for h := range byHome {
		if _, ok := m.nodes[h]; !ok {
			homes = append(homes, h)
		}
	}
	sort.Slice(homes, func(i, j int) bool { return homes[i].Less(homes[j]) })
	for _, h := range homes {
		r, present := byHome[h]
		n := m.nodes[h]
		if d := diffNode(n, r, present, now, slack); d != "" {
			out = append(out, fmt.Sprintf("%v: %s", h, d))
		}
	}
	return out
}

// diffNode returns "" when the member's view of one home is one the model
// allows, else what is wrong.
func diffNode(n *nodeState, r Row, present bool, now time.Time, slack time.Duration) string {
	var cands []write
	if n != nil {
		if n.confirmed != nil {
			cands = append(cands, *n.confirmed)
		}
		for _, w := range n.uncertain {
			if n.confirmed == nil || w.ID > n.confirmed.ID {
				cands = append(cands, w)
			}
		}
	}
	// Absent is allowed when no write happened or the latest possible one
	// is gone: a de-registration, or a binding expired (or about to).
	absentOK := n == nil || n.confirmed == nil
	for _, w := range cands {
		if !w.Live || w.expiry().Before(now.Add(slack)) {
			absentOK = true
		}
	}
	if !present {
		if absentOK {
			return ""
		}
		return fmt.Sprintf("missing; model: %s", describe(n, now))
	}
	for _, w := range cands {
		if w.Live && w.ID == r.ID && w.CareOf == r.CareOf && w.expiry().After(now.Add(-slack)) {
			return ""
		}
	}
	return fmt.Sprintf("member holds live coa %v id %#x; model: %s", r.CareOf, r.ID, describe(n, now))
}

func describe(n *nodeState, now time.Time) string {
	if n == nil || (n.confirmed == nil && len(n.uncertain) == 0) {
		return "never registered"
	}
	var b strings.Builder
	if n.confirmed != nil {
		fmt.Fprintf(&b, "confirmed %s", n.confirmed)
		if n.confirmed.Live {
			fmt.Fprintf(&b, " (expires in %s)", n.confirmed.expiry().Sub(now).Round(time.Second))
		}
	} else {
		b.WriteString("nothing confirmed")
	}
	for _, w := range n.uncertain {
		fmt.Fprintf(&b, "; unanswered %s", w)
	}
	return b.String()
}

// Live count of bindings the model requires now (for progress lines).
func (m *Model) Count(now time.Time) (live, gone int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.nodes {
		if n.confirmed == nil {
			continue
		}
		if n.confirmed.Live && n.confirmed.expiry().After(now) {
			live++
		} else {
			gone++
		}
	}
	return live, gone
}
