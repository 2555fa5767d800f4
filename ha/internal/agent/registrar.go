package agent

import (
	"errors"
	"log/slog"
	"math"
	"net/netip"
	"time"

	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/datapath"
	"github.com/hagent/hagent/ha/internal/hasync"
	"github.com/hagent/hagent/ha/internal/udpio"
)

// The registrar is the registration path as a machine with the shape the
// other machines have: Handle(now, Event, out) returns the Actions the
// loop performs. It composes the Core (the decision and the table), the
// group machine (hasync: replication, acknowledgements, peers' liveness),
// the hold queue (replies waiting for a peer's ack) and the replication
// policy, and it does no I/O: no socket, no kernel, no clock but the now it
// is given. Agent is the loop around it: it reads events from sockets,
// timers, the election and the console, calls Handle, and performs what
// comes back (sends, kernel programming). The rules of "what accepted
// promises" (docs/architecture.md) are tested on it with scripted events
// and fake time.

// EventKind says what happened.
type EventKind uint8

const (
	// EvBatch: a batch of datagrams arrived on the registration port
	// (Batch, Wall: the time of day for RFC 5944 timestamps).
	EvBatch EventKind = iota + 1
	// EvKernel: the kernel's answer to the last ActProgram: the adds it
	// refused (Refused). The batch's replies wait for it.
	EvKernel
	// EvGroup: a datagram of the group protocol (Pkt from Src, its TTL).
	EvGroup
	// EvTimer: the deadline of NextDeadline passed.
	EvTimer
	// EvRole: this member became active or stopped being active (Active).
	EvRole
	// EvStart: the group protocol starts (its table request).
	EvStart
	// EvClear: the operator's `clear binding` of Home. ActCleared answers.
	EvClear
	// EvReload: a new validated configuration (Cfg). ActReloaded answers.
	EvReload
	// EvStop: the agent stops: nothing held waits any more, and the group
	// hears that this member leaves.
	EvStop
)

// Event is one input of the registrar. Only the fields of its Kind are set.
type Event struct {
	Kind    EventKind
	Batch   *batch
	Wall    time.Time
	Refused []refusal
	Src     netip.Addr
	TTL     uint8
	Pkt     []byte
	Active  bool
	Cfg     *config.Config
	Home    netip.Addr
	NAI     string // EvClear: the node's NAI instead of Home (a fleet router's binding)

	// RefusedNets: with EvKernel, the mobile network routes it refused.
	RefusedNets []datapath.MobileNet
}

// ActionKind says what the loop must do.
type ActionKind uint8

const (
	// ActSend: send Pkts (sealed replies, in order) on the registration socket.
	ActSend ActionKind = iota + 1
	// ActGroup: a group machine action the loop performs (ActMulticast,
	// ActUnicast: send Group.Pkt; ActPeerDown, ActPeerAlive: tell the
	// election; ActInitialized: the table is initialized). Group.Pkt is the
	// registrar's copy, valid until the next Handle.
	ActGroup
	// ActChange: the binding table changed (Change): the kernel follows it.
	ActChange
	// ActProgram: program the kernel with the changes so far and answer
	// with EvKernel. The batch's replies are sealed after that answer.
	ActProgram
	// ActRevoked: a reload revoked a binding (Change, Node: its node's old
	// name, Why).
	ActRevoked
	// ActReloaded: the reload's outcome (Err: refused, nothing applied).
	ActReloaded
	// ActCleared: the outcome of EvClear (Change; Err: no such binding).
	ActCleared
)

// Action is one output of the registrar.
type Action struct {
	Kind   ActionKind
	Pkts   []udpio.Packet
	Group  hasync.Action
	Change Change
	Node   string
	Why    string
	Err    error
}

// noDeadline is "never" on the monotonic clock.
const noDeadline = int64(math.MaxInt64)

// Registrar decides, replicates, holds and seals registrations.
type Registrar struct {
	core *Core
	m    *hasync.Machine // nil: standalone
	hold *holdQueue      // nil: replies are not held for a peer's ack
	cfg  *config.Config  // group.require_replication is read at each decision
	log  *slog.Logger
	// kernel: a datapath follows the table; a batch's replies wait for
	// its answer (EvKernel).
	kernel bool
	// elected: an election (VRRP, HSRP) decides the role; the heartbeat
	// then runs in demand mode while this member is not active, and while
	// it is unless periodicActive (activeHeartbeat).
	elected, periodicActive bool

	out     []Action       // the actions of the Handle call in progress
	now     int64          // its time
	arena   []byte         // copies of the group machine's messages of this call
	sends   []udpio.Packet // sealed replies of this call that left the hold queue
	nsends  int
	pending *batch // the batch being answered
	npend   int    // its verdicts so far (b.v[:npend])
	// With a kernel: the next datagram to decide, and the verdicts
	// whose staged writes are made (b.v[:committed]).
	cursor, committed int
	wall              time.Time
	lastRef           int64 // rate limit of the kernel-refusal log line

	refusedNets []datapath.MobileNet // the kernel's refusals of mobile network routes (EvKernel)
}

func newRegistrar(core *Core, m *hasync.Machine, cfg *config.Config, log *slog.Logger) *Registrar {
	r := &Registrar{core: core, m: m, cfg: cfg, log: log, lastRef: -int64(logEvery)}
	if m != nil && cfg.Group.AckBeforeReply {
		ackWait := cfg.Group.AckTimeout
		if ackWait <= 0 {
			ackWait = 250 * time.Millisecond // hasync's default
		}
		r.hold = newHoldQueue(2*int64(ackWait), r.releaseHeld)
	}
	return r
}

// Handle processes one event and appends what the loop must do to out.
func (r *Registrar) Handle(now int64, ev Event, out []Action) []Action {
	r.out, r.now = out, now
	r.arena, r.nsends = r.arena[:0], 0
	switch ev.Kind {
	case EvBatch:
		r.batch(ev.Batch, ev.Wall)
	case EvKernel:
		r.refusedNets = ev.RefusedNets
		r.settle(ev.Refused)
	case EvGroup:
		r.core.acts = r.m.Receive(now, ev.Src, ev.TTL, ev.Pkt, r.core.acts[:0])
		r.groupActs()
	case EvTimer:
		if r.hold != nil {
			r.hold.expire(now)
		}
		if r.m != nil {
			// The group machine owns expiry: an expired binding becomes a
			// tombstone the group agrees on.
			r.core.acts = r.m.Tick(now, r.core.acts[:0])
			r.groupActs()
		} else {
			r.core.Expire(now, r.change)
		}
	case EvRole:
		r.core.SetServing(ev.Active)
		if r.m != nil && r.elected {
			r.m.SetHeartbeatDemand(!ev.Active || !r.periodicActive)
		}
		if !ev.Active && r.hold != nil {
			// Everything held is answered now; what no peer acknowledged
			// goes through the replication policy (a denial sends the node
			// to the member that is active now).
			r.hold.expire(noDeadline)
		}
	case EvStart:
		if r.m != nil {
			r.core.acts = r.m.Start(now, r.core.acts[:0])
			r.groupActs()
		}
	case EvClear:
		r.clear(ev.Home, ev.NAI)
	case EvReload:
		r.reload(ev.Cfg)
	case EvStop:
		if r.hold != nil {
			r.hold.expire(noDeadline) // nobody waits forever (nor hears "accepted" unacknowledged)
		}
		if r.m != nil {
			// Peers stop waiting for our acknowledgements now, not after the
			// dead interval (their held replies would otherwise wait too).
			r.core.acts = r.m.Leave(now, r.core.acts[:0])
			r.groupActs()
		}
	}
	out, r.out = r.out, nil
	return out
}

// NextDeadline is when the registrar wants EvTimer (noDeadline: never).
func (r *Registrar) NextDeadline() int64 {
	dl := noDeadline
	if r.m != nil {
		dl = r.m.NextDeadline()
	}
	if dl == noDeadline {
		if d, ok := r.core.table.DeadlineBound(); ok { // O(1) under renewal storms
			dl = d
		}
	}
	if r.hold != nil {
		if h, ok := r.hold.next(); ok && h < dl {
			dl = h
		}
	}
	return dl
}

// clear removes a binding on the operator's request: a de-registration
// the group hears of (Core.Clear).
func (r *Registrar) clear(home netip.Addr, nai string) {
	clear := func() (Change, bool) { return r.core.Clear(r.now, home) }
	if nai != "" {
		clear = func() (Change, bool) { return r.core.ClearNAI(r.now, nai) }
	}
	ch, ok := clear()
	if !ok {
		r.out = append(r.out, Action{Kind: ActCleared, Err: errNoBinding})
		return
	}
	r.change(ch)
	r.groupActs()
	r.out = append(r.out, Action{Kind: ActCleared, Change: ch})
}

var errNoBinding = errors.New("agent: no binding for that home address")

func (r *Registrar) change(ch Change) {
	r.out = append(r.out, Action{Kind: ActChange, Change: ch})
}

// batch decides every datagram of b. Each decision's group messages go out
// before any reply (claim 1: the group hears of a registration no later
// than the node). With a kernel the decisions only stage their writes
// (staged.go): the kernel is programmed first (ActProgram, answered by
// EvKernel), and only what it holds is written and replicated.
func (r *Registrar) batch(b *batch, wall time.Time) {
	r.pending, r.npend, r.cursor, r.committed, r.wall = b, 0, 0, 0, wall
	if r.kernel {
		r.decideStaged()
		return
	}
	now := r.now
	k := 0
	for i := 0; i < b.n; i++ {
		p := &b.in[i]
		if p.Trunc {
			r.core.Stats.Requests++
			r.core.Stats.Drops[DropOversize]++
			continue
		}
		v := &b.v[k]
		ch := r.core.Handle(now, wall, p.Src, p.Dst, p.Buf[:p.N], v)
		if ch.Kind != NoChange {
			r.change(ch)
		}
		if len(r.core.acts) > 0 {
			r.groupActs()
		}
		if !v.Answer {
			continue
		}
		if r.hold != nil && (ch.Kind != NoChange || ch.Dup) && !r.gateReply(now, &ch, v, p.Src, p.Ifindex) {
			continue // held until a peer acknowledges (or the wait ends)
		}
		o := &b.out[k]
		o.Src, o.Dst, o.Ifindex = p.Src, v.From, p.Ifindex
		k++
	}
	r.npend = k
	r.sendBatch()
}

// decideStaged decides the pending batch from its cursor, staging the
// writes, until its end or a request that depends on a staged write; then
// the kernel is asked.
func (r *Registrar) decideStaged() {
	b, now, c := r.pending, r.now, r.core
	for ; r.cursor < b.n; r.cursor++ {
		p := &b.in[r.cursor]
		if p.Trunc {
			c.Stats.Requests++
			c.Stats.Drops[DropOversize]++
			continue
		}
		k := r.npend
		v := &b.v[k]
		c.Stage(&b.it[k])
		ch := c.Handle(now, r.wall, p.Src, p.Dst, p.Buf[:p.N], v)
		c.Stage(nil)
		if c.Suspended() {
			break // decided again once the staged writes are made
		}
		if ch.Kind != NoChange {
			r.change(ch) // what the kernel is to hold
		}
		if !v.Answer {
			continue
		}
		b.ch[k] = ch
		o := &b.out[k]
		o.Src, o.Dst, o.Ifindex = p.Src, v.From, p.Ifindex
		r.npend++
	}
	r.out = append(r.out, Action{Kind: ActProgram})
}

// sendBatch seals the pending batch's verdicts, once each, and sends them.
func (r *Registrar) sendBatch() {
	b, k := r.pending, r.npend
	r.pending, r.npend = nil, 0
	if b == nil {
		return
	}
	n := 0
	for j := 0; j < k; j++ {
		o := &b.out[j]
		if !b.v[j].Answer {
			continue // held
		}
		buf, err := r.core.Seal(&b.v[j], o.Buf[:0])
		if err != nil {
			continue // counted; its buffer stays in the batch
		}
		o.Buf, o.N = buf, len(buf)
		if n != j {
			b.out[n], b.out[j] = b.out[j], b.out[n]
		}
		n++
	}
	if n > 0 {
		r.out = append(r.out, Action{Kind: ActSend, Pkts: b.out[:n]})
	}
}

// groupActs turns what the group machine asked for into actions, and acts
// on what concerns the registration path (acknowledgements, peers' death,
// bindings learnt from the group); then clears the list.
func (r *Registrar) groupActs() {
	for i := range r.core.acts {
		act := &r.core.acts[i]
		switch act.Kind {
		case hasync.ActMulticast, hasync.ActUnicast:
			// The machine reuses its buffer at its next call: keep a copy
			// until the loop has sent it.
			start := len(r.arena)
			r.arena = append(r.arena, act.Pkt...)
			a := *act
			a.Pkt = r.arena[start:len(r.arena):len(r.arena)]
			r.out = append(r.out, Action{Kind: ActGroup, Group: a})
		case hasync.ActBinding:
			// The group's record names no configured node (indexes differ
			// per member): resolve ours, for the console and pool ownership.
			if e := r.core.table.GetKey(act.Entry.Home, act.Entry.Key); e != nil && e.Node < 0 {
				e.Node = r.core.lookup(r.core.table.NAIOf(e), e.Home)
				act.Entry.Node = e.Node
			}
			r.core.noteClaims(&act.Entry)
			ch := Change{Kind: Registered, Entry: act.Entry, Moved: true}
			r.core.droppedNets(&ch.Gone, &act.Dropped, act.Entry.Home) // the networks the peer's write took away
			r.change(ch)
		case hasync.ActUnbind:
			r.change(Change{Kind: Deregistered, Entry: act.Entry})
		case hasync.ActAcked:
			if r.hold != nil {
				r.hold.acked(act.Entry.Home, act.Entry.Key, act.Entry.ID)
			}
		case hasync.ActPeerDown:
			// Replies held for an acknowledgement are decided now rather
			// than at the end of their wait if no acknowledging peer is
			// left (liveness.go).
			if r.hold != nil && r.m.AckingPeers() == 0 {
				r.hold.expire(noDeadline)
			}
			r.out = append(r.out, Action{Kind: ActGroup, Group: hasync.Action{Kind: act.Kind, To: act.To}})
		case hasync.ActPeerAlive, hasync.ActInitialized:
			r.out = append(r.out, Action{Kind: ActGroup, Group: hasync.Action{Kind: act.Kind, To: act.To}})
		}
	}
	r.core.acts = r.core.acts[:0]
}

// sendOne seals v and sends it alone (a reply leaving the hold queue).
func (r *Registrar) sendOne(v *Verdict, to netip.AddrPort, ifindex int) {
	if r.nsends == len(r.sends) {
		// Grows to the most replies one event released; reused after.
		r.sends = append(r.sends, udpio.Packet{Buf: make([]byte, 0, ReplyBufLen)})
	}
	p := &r.sends[r.nsends]
	b, err := r.core.Seal(v, p.Buf[:0])
	if err != nil {
		if err == errKeyReplaced {
			r.hold.Unsigned++
		}
		return
	}
	p.Buf, p.N, p.Src, p.Dst, p.Ifindex = b, len(b), to, v.From, ifindex
	r.out = append(r.out, Action{Kind: ActSend, Pkts: r.sends[r.nsends : r.nsends+1]})
	r.nsends++
}
