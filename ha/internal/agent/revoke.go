package agent

import (
	"net/netip"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
)

// Revocation. A binding was accepted under a [[node]] entry: its name, its
// NAI, and the home address or pool the entry grants. A reload (SIGHUP)
// that takes that away revokes the binding at once, rather than letting it
// route the home address to the old care-of address until it expires while
// nobody can de-register it any more (the node's own de-registration is
// answered 129 once its entry is gone). Revoked: the entry was removed (a
// renamed entry is a removed one plus a new one), its NAI changed, its
// home_address changed, its pool no longer contains the binding's home
// address, or that address became another entry's home_address. Not
// revoked: a new key or SPI (key rotation is routine: the node renews with
// the new key; `clear binding` cuts one node off at once), lifetimes, the
// replay method, reverse tunnelling.
//
// The removal is a table write like any other, so that it sticks: in a
// group a de-registration versioned just above the binding, through the
// group machine exactly like `clear binding` (the peers remove it too, and
// anti-entropy cannot bring the live record back); standalone a tombstone
// at the binding's own version (it keeps the node's Identification, should
// the entry come back). The kernel route and proxy ARP go with it.

// revocation is one binding the last reload took the authorization of.
type revocation struct {
	home, careOf uint32
	key          uint64 // a fleet router's binding (fleet.go); nai is its NAI
	nai          string
	id           uint64
	node         string // the entry's name in the old configuration
	why          string
}

// revocations appends to out the live bindings that the old entries prev
// authorized and the new ones (c.nodes, c.byHome) do not. A binding no old
// entry covered (learnt from a peer configured differently) is not this
// reload's doing and stays.
func (c *Core) revocations(prev []node, out []revocation) []revocation {
	byName := make(map[string]int32, len(c.nodes))
	for i := range c.nodes {
		byName[c.nodes[i].cfg.Name] = int32(i)
	}
	c.table.Range(func(e *binding.Entry) bool {
		if e.Tombstone() {
			return true
		}
		o := grantedBy(prev, e)
		if o == nil {
			return true
		}
		why := ""
		if j, ok := byName[o.cfg.Name]; !ok {
			why = "node removed"
		} else {
			why = c.unauthorized(o, j, e.Home)
		}
		if why != "" {
			out = append(out, revocation{home: e.Home, careOf: e.CareOf, key: e.Key, nai: string(c.table.NAIOf(e)), id: e.ID, node: o.cfg.Name, why: why})
		}
		return true
	})
	return out
}

// grantedBy is the old entry a binding was accepted under: its index, or,
// for one learnt from a peer that names no index (a pool with an NAI is
// not found by address), the entry whose address or pool covers it.
func grantedBy(prev []node, e *binding.Entry) *node {
	if e.Node >= 0 && int(e.Node) < len(prev) {
		if o := &prev[e.Node]; covers(o, e.Home) && o.fleet == e.Key {
			return o
		}
		return nil
	}
	for i := range prev {
		if covers(&prev[i], e.Home) && prev[i].fleet == e.Key { // a fleet router's: the entry of its NAI
			return &prev[i]
		}
	}
	return nil
}

// covers reports whether entry n grants home: its home_address, or an
// address of its pool.
func covers(n *node, home uint32) bool {
	if n.home != 0 {
		return n.home == home
	}
	return n.hi != 0 && home >= n.lo && home <= n.hi
}

// unauthorized says why new entry j, which has the name of old entry o, no
// longer grants home ("" when it still does).
func (c *Core) unauthorized(o *node, j int32, home uint32) string {
	n := &c.nodes[j]
	switch {
	case n.cfg.NAI != o.cfg.NAI:
		return "nai changed"
	case !covers(n, home) && n.home != 0:
		return "home_address changed"
	case !covers(n, home):
		return "pool no longer contains the home address"
	}
	if k, ok := c.byHome[home]; ok && k != j {
		return "home address now belongs to node " + c.nodes[k].cfg.Name
	}
	return ""
}

// Revoke removes the bindings the last Reload revoked (see the top of this
// file) and returns how many. fn hears each one right after its write, with
// the entry's old name and the reason; in a group it must send c.acts before
// returning (the group machine reuses its message buffer for the next).
func (c *Core) Revoke(now int64, fn func(ch Change, node, why string)) int {
	n := 0
	for _, r := range c.revoke {
		e := c.table.GetKey(r.home, r.key)
		if e == nil || e.Tombstone() || e.ID != r.id || e.CareOf != r.careOf {
			continue // the table moved on since the reload
		}
		ch := Change{Kind: Revoked, Entry: *e}
		if c.group != nil {
			var err error
			// Above the live record, as clear binding: the peers' copies of
			// it lose against this in every merge.
			if c.acts, err = c.group.DeregisterNAI(now, r.home, naiBytes(r.nai), e.ID+1, c.acts); err != nil {
				continue // ErrStale: the group holds a newer write already
			}
		} else {
			c.table.TombstoneNAI(r.home, r.key, naiBytes(r.nai), e.ID, c.id, now+c.tombLife)
		}
		c.Stats.Revoked++
		n++
		if fn != nil {
			fn(ch, r.node, r.why)
		}
	}
	c.revoke = c.revoke[:0]
	return n
}

// applyReload applies a validated configuration (SIGHUP) on the owner
// goroutine: the Core's reload, then the revocations it found, each sent to
// the group and the kernel like a de-registration, logged once per node.
func (a *Agent) applyReload(cfg *config.Config) error {
	acts := a.reg.Handle(a.now(), Event{Kind: EvReload, Cfg: cfg}, a.acts[:0])
	type tally struct {
		n     int
		why   string
		first netip.Addr
	}
	var names []string
	per := map[string]*tally{}
	var err error
	total := 0
	for i := range acts {
		switch act := &acts[i]; act.Kind {
		case ActReloaded:
			err = act.Err
		case ActRevoked:
			total++
			t := per[act.Node]
			if t == nil {
				t = &tally{why: act.Why, first: binding.U32Addr(act.Change.Entry.Home)}
				per[act.Node] = t
				names = append(names, act.Node)
			}
			t.n++
		}
	}
	a.perform(a.now(), acts)
	if err != nil {
		return err
	}
	a.cfg = cfg
	setMemoryLimit(cfg.Agent.MemoryLimitMiB)
	for _, name := range names {
		t := per[name]
		a.log.Warn("bindings revoked: the reload took away their node's authorization",
			"node", name, "bindings", t.n, "reason", t.why, "home", t.first)
	}
	a.log.Info("configuration reloaded", "nodes", len(cfg.Nodes), "bindings", a.core.table.Len(), "revoked", total)
	return nil
}
