package agent

import (
	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/mip"
)

// intent is a table write a decision wants. Standalone or without a kernel
// it is made at once; staged (the registrar programs a kernel), the
// decision only records it, the kernel is programmed, and the registrar
// makes only the writes whose bindings the kernel holds (Core.commit): the
// group never hears of a binding the kernel refused.
type intent struct {
	kind  ChangeKind // Registered, Renewed or Deregistered; NoChange: none
	moved bool       // the kernel's view changes
	ni    int32
	code  mip.Code
	lt    uint16
	ent   binding.Entry // Home, ID, Origin, Node; for a registration all of it
	ctx   reqCtx        // the request's, kept when staged
}

// reqCtx is what a write needs of its request beside the entry: its time,
// its time of day (a 133's Identification), its source and NAI (the
// console shows them). nai aliases the request's buffer, alive until the
// batch is answered.
type reqCtx struct {
	now     int64
	ts      uint64
	srcAddr uint32
	srcPort uint16
	nai     []byte
}

// pendRef is what a later decision of the same batch must not read past: a
// staged write's home and, for a node whose replay state is its own, its
// node.
type pendRef struct {
	home uint32
	key  uint64 // binding.Entry.Key: the routers of a shared home address do not wait for each other
	ni   int32  // -1: the node's replay state is the table's
}

// Stage makes Handle record its writes in *in instead of making them (nil:
// write at once). The caller commits them with commit, in order.
func (c *Core) Stage(in *intent) {
	c.stage, c.staged = in != nil, in
	if in != nil {
		in.kind = NoChange
	}
}

// Suspended reports whether the last Handle stopped short: its request
// depends on a staged write (the same home, the same node's replay state,
// or a pool's first free address). It is handled again after the commits.
func (c *Core) Suspended() bool { return c.suspended }

// conflicts reports whether a decision for node ni and home would read what
// a staged write changes.
func (c *Core) conflicts(ni int32, home uint32) bool {
	n := &c.nodes[ni]
	solo := n.single || n.nonceM
	for _, p := range c.pend {
		if p.home == home && p.key == n.fleet || solo && p.ni == ni {
			return true
		}
	}
	return false
}

// stash records a staged write: the verdict says what it will say once
// written, the change is what the kernel is to hold.
func (c *Core) stash(in *intent, ch *Change) {
	*c.staged = *in
	c.staged.ctx = c.rq
	c.staged.ctx.nai = c.req.NAI
	ni := int32(-1)
	if n := &c.nodes[in.ni]; n.single || n.nonceM {
		ni = in.ni
	}
	c.pend = append(c.pend, pendRef{home: in.ent.Home, key: in.ent.Key, ni: ni})
	c.v.Code, c.v.Lifetime = in.code, in.lt
	if in.kind == Deregistered {
		c.v.Lifetime = 0
	}
	*ch = Change{Kind: in.kind, Entry: in.ent, Moved: in.moved}
	if old := c.table.GetKey(in.ent.Home, in.ent.Key); old != nil && !old.Tombstone() {
		ch.Gone.gone(old, &in.ent) // the kernel drops what the write drops
	}
}

// Unstage ends a staged round: its writes were committed or dropped.
func (c *Core) Unstage() { c.pend = c.pend[:0] }

// commit makes the write of a staged intent and fills v (its verdict) and
// *ch: the write register and deregister make at once when not staged
// (keep the two alike). A write the table or the group refuses turns v
// into its denial (refuseWrite); false then.
func (c *Core) commit(in *intent, rq *reqCtx, v *Verdict, ch *Change) bool {
	n := &c.nodes[in.ni]
	home, key := in.ent.Home, in.ent.Key
	var e *binding.Entry
	var err error
	switch {
	case in.kind == Deregistered && c.group != nil:
		if c.acts, err = c.group.DeregisterNAI(rq.now, home, n.nai, in.ent.ID, c.acts); err == nil {
			e = c.table.GetKey(home, key)
		}
	case in.kind == Deregistered:
		e = c.table.TombstoneNAI(home, key, n.nai, in.ent.ID, c.id, rq.now+c.tombLife)
	case c.group != nil:
		if c.acts, err = c.group.RegisterNAI(rq.now, in.ent, n.nai, c.acts); err == nil {
			if e = c.table.GetKey(home, key); e == nil {
				err = binding.ErrFull
			}
		}
	default:
		e, err = c.table.PutNAI(in.ent, n.nai)
	}
	if err == nil && e == nil && in.kind != Deregistered {
		err = binding.ErrFull // the write went in but left no entry
	}
	if err != nil {
		refuseWrite(v, err, rq.ts, in.ent.ID)
		return false
	}
	if in.kind != Deregistered {
		c.written(n, e, in.kind, in.moved, in.code, in.lt, in.ent.ID, rq, rq.nai, v, ch)
		return true
	}
	if n.single {
		n.lastID = in.ent.ID
	}
	c.noteSource(e, rq.srcAddr, rq.srcPort, rq.nai)
	v.Code, v.Lifetime = in.code, 0
	c.Stats.Deregistrations++
	*ch = Change{Kind: Deregistered, Entry: in.ent}
	if e != nil {
		ch.Entry = *e
	}
	return true
}

// refused notes a staged write the kernel refused: not made, its verdict a
// denial (code); the node's Identification still counts for replay.
func (c *Core) refused(in *intent, v *Verdict, code mip.Code) {
	if n := &c.nodes[in.ni]; n.single {
		n.lastID = max(n.lastID, in.ent.ID)
	}
	v.Deny(code)
	c.Stats.Withdrawn++
}
