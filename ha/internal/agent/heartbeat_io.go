package agent

import (
	"fmt"
	"math"
	"time"

	"github.com/hagent/hagent/ha/internal/groupio"
	"github.com/hagent/hagent/ha/internal/hasync"
)

// The group heartbeat's socket (hasync-spec §2, §4.10): the group port + 1,
// kept out of the runtime's poller. A standby reading each heartbeat as it
// arrived woke three times or more per election advertisement for nothing
// but to note "still alive"; instead the owner reads what waits when it is
// awake anyway: after each advertisement the election sent or heard
// (awake), and at every timer of its own, which includes each peer's
// expiry. Each datagram counts as heard at its kernel arrival time, so a
// verdict is the same as if it had been read at once, and a member that
// was itself stalled reads the heartbeats that arrived meanwhile before
// its verdict instead of calling a live peer dead. That pays while a
// periodic peer's expiry is pending, and while every up peer is a known
// demand-mode one (read at the owner's turns, drainOnTurn); otherwise an
// arrival wakes the owner instead (heartbeat_watch.go, awakeFrom).

// heartbeatRcvBuf holds about a second of heartbeats from a few peers
// between two reads (a heartbeat costs about 1 KiB of buffer with its
// overhead).
const heartbeatRcvBuf = 256 << 10

// openHeartbeat opens the lazy heartbeat socket beside the group's.
func openHeartbeat(g *group, opts groupio.Options) error {
	opts.Port += hasync.HeartbeatPortOffset
	opts.Lazy = true
	opts.RcvBuf = heartbeatRcvBuf
	hb, err := groupio.Open(opts)
	if err != nil {
		return fmt.Errorf("agent: group heartbeat socket (group.port + %d): %w", hasync.HeartbeatPortOffset, err)
	}
	g.hb, g.hbBuf = hb, make([]byte, groupBufSize)
	g.awake = make(chan struct{}, 1)
	g.hbReady = make(chan struct{}, 1)
	return nil
}

// awakeFn is the election's Awake hook: a non-blocking nudge to the owner
// loop, which runs it in the same wake-up of the process (nil: no
// heartbeat socket). It nudges only when the owner asked for it
// (armAwake): a nudge costs the owner loop a turn.
func (a *Agent) awakeFn(g *group) func() {
	if g.awake == nil {
		return nil
	}
	c := g.awake
	return func() {
		now := a.now()
		g.awakeGap.Store(now - g.lastAwake.Swap(now))
		if now < g.wantAwake.Load() {
			return
		}
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// armAwake decides, after every event (owner goroutine), how the queued
// heartbeats will be read: at the election's wake-ups, from the time
// awakeFrom says (lazy), or at each arrival (eager: heartbeat_watch.go),
// and tells the election's hook when the owner wants its wake-ups.
func (a *Agent) armAwake() {
	g := a.grp
	if g == nil || g.hb == nil {
		return
	}
	e, known := g.m.HeartbeatWatch()
	idle := g.m.UpPeers() > 0 && !a.reg.periodicActive && g.m.DemandDue() >= 0
	from, eager := awakeFrom(g.m.HeartbeatPeriodic(), known, idle, e, g.period)
	if !a.watchArrivals(eager) {
		from = 0 // arrivals cannot wake the owner: every wake-up of the election, as before
	}
	if g.awake != nil && g.period > 0 {
		g.wantAwake.Store(min(from, demandFrom(g.m.DemandDue(), g.period, g.awakeGap.Load())))
	}
}

// demandFrom is from when the election's wake-ups are wanted to take this
// member's demand-mode turn due at due (hasync.Machine.DemandDue: a read
// of the heartbeat socket, and the refresh when one is due; -1: none) in
// one of them (electionAwake): the window before it that holds one of the
// election's wake-ups (gap apart) and the slack of a late one, as for a
// peer's expiry.
func demandFrom(due, period, gap int64) int64 {
	if due < 0 {
		return never
	}
	return due - demandWindow(period, gap)
}

// demandWindow is how far ahead of an election wake-up a turn (and a
// refresh) due then is taken in it: as far as the election's wake-ups are apart (gap, the
// last spacing measured), and a quarter interval for a late one. A master
// wakes at every advertisement; a VRRP backup that reads its master's
// adverts lazily wakes only at its Master_Down_Timer, three advertisement
// intervals apart, and a window of one interval would catch one of its
// wake-ups a third of the time: the turn would take a wake-up of its own
// the other two. The spacing counts as at least one interval (a packet
// heard between two advertisements) and at most four (the first wake-up,
// or the election stalled): a turn taken early only comes sooner, and the
// next is timed from it (a refresh's from when it was due).
func demandWindow(period, gap int64) int64 { return min(max(gap, period), 4*period) + period/4 }

// never is "no election wake-up wanted" for wantAwake.
const never = int64(math.MaxInt64)

// awakeFrom is armAwake's rule: from when the election's wake-ups are
// wanted, and whether arrivals should wake the owner instead, given
// whether this member heartbeats periodically, whether every up peer's
// heartbeat parameters are known, whether it may read at its own turns
// while no periodic peer's expiry is pending (idle, below), the earliest
// expiry of a peer heartbeating periodically (0: none) and the
// advertisement interval.
//   - This member heartbeats periodically: every wake-up (its heartbeats
//     leave with the advertisement, hasync.AlignHeartbeat), and it reads
//     what is queued then.
//   - A peer's parameters are unknown (it just came up or restarted): its
//     first heartbeat is read on its arrival (eager), so that its
//     detection parameters are known before it may owe an acknowledgement
//     (hasync.Machine.HeartbeatWatch).
//   - A periodic peer's expiry is pending: from the advertisement after
//     which the next could come later than that expiry, so that the
//     heartbeats queued are read in an advertisement's wake-up rather
//     than in one of their own.
//   - None is pending and idle: a peer is up, every up peer is in demand
//     mode, this member's own configuration keeps the active member in
//     demand mode (a pair at the default), and it sends demand refreshes
//     itself. Nothing read from the heartbeat port is needed at its
//     arrival: a demand-mode peer's heartbeat only refreshes its
//     parameters and last-heard time, judged at this member's timers,
//     which read the queue first. It waits for the owner's next turn
//     (drainOnTurn): its own timers, which include its demand-mode turns
//     (at most DemandRefresh apart, in an election wake-up or on a timer
//     of their own, whether or not a refresh is sent in them: the refresh
//     itself is rare, hasync.DemandIdleRefresh), any group message,
//     registration batch or console request. A peer that turns periodic
//     (its configuration differs) is read that late at most once.
//   - None is pending otherwise (no peer up; or a periodic active member
//     is expected and not heard yet: a new active member's first periodic
//     heartbeat must be read at once, or its death would be detected by
//     the election's timers only): an arrival wakes the owner (eager), and
//     no advertisement does.
func awakeFrom(periodic, known, idle bool, expiry, period int64) (from int64, eager bool) {
	switch {
	case periodic:
		return 0, false
	case !known:
		return never, true
	case expiry == 0:
		return never, !idle
	}
	return expiry - period - period/4, false
}

// electionAwake: the election advertised or heard an advertisement (owner
// goroutine). Read the heartbeats queued, and send ours with the
// advertisement if one is due: a periodic one, or a demand-mode refresh
// due soon; a demand-mode turn due soon is taken here too (this read is
// the turn: it then needs no wake-up of its own).
func (a *Agent) electionAwake() {
	g := a.grp
	g.hbStats.awakeTurns.Add(1)
	a.drainHeartbeats()
	now := a.now()
	var acts []hasync.Action
	if g.m.HeartbeatPeriodic() {
		acts = g.m.AlignHeartbeat(now, g.period, g.hacts[:0])
	} else {
		acts = g.m.AlignDemand(now, now+demandWindow(g.period, g.awakeGap.Load()), g.hacts[:0])
	}
	for i := range acts {
		a.groupAction(now, &acts[i])
	}
	g.hacts = acts[:0]
}

// heartbeatDrainMax bounds one drain: about what the socket's buffer holds
// (heartbeatRcvBuf). A flood to the heartbeat port then costs the owner
// loop turns of a bounded length, served in turn with its other events,
// instead of pinning it for as long as the flood lasts.
const heartbeatDrainMax = 256

// drainHeartbeats feeds the queued heartbeat datagrams to the registrar,
// each at its arrival time (owner goroutine), at most heartbeatDrainMax of
// them; cut reports that it stopped there, and then the owner is nudged
// (hbReady) to read on at its next turn. The stamp is on the realtime
// clock; its age, measured now, places it on the monotonic one.
func (a *Agent) drainHeartbeats() (cut bool) {
	g := a.grp
	if g == nil || g.hb == nil {
		return false
	}
	g.hbReadAt = a.now()
	// A wall-clock step since the last read makes the stamps' ages wrong
	// by the step: what this read finds then counts from now (deadline.WallStep).
	steady := g.hbStep.Steady(a.wall(), g.hbReadAt)
	for range heartbeatDrainMax {
		n, src, ttl, at, ok, err := g.hb.ReadQueued(g.hbBuf)
		if err != nil {
			if !g.hbFailed {
				g.hbFailed = true
				a.log.Error("group heartbeat socket read failed; peers' heartbeats are not read (failover falls back to the election's timers)", "err", err)
			}
			return false
		}
		if !ok {
			return false
		}
		g.hbStats.datagrams.Add(1)
		now := a.now()
		heard := now
		if at != 0 && steady {
			if age := a.wall() - at; age > 0 && age < int64(time.Minute) {
				heard = now - age
			}
		}
		acts := a.reg.Handle(heard, Event{Kind: EvGroup, Src: src, TTL: ttl, Pkt: g.hbBuf[:n]}, a.acts[:0])
		a.perform(now, acts)
		if g.hb.Drained() { // the queue was empty behind it: no read to find that out
			return false
		}
	}
	g.hbStats.cut.Add(1)
	select {
	case g.hbReady <- struct{}{}:
	default:
	}
	return true
}

// turnDrainGap: a turn of the owner loop taken for something else reads
// the heartbeat socket only if it was last read at least this long ago.
// Under a registration load the loop turns for every batch, thousands of
// times a second; an empty read at each would be a system call per batch
// for nothing, and what waits is at most this much older.
const turnDrainGap = int64(5 * time.Millisecond)

// drainOnTurn reads the heartbeat socket at a turn of the owner loop taken
// for another reason (owner goroutine): a group message, a registration
// batch, a console request, a role change. While the socket waits for the
// owner's turns (awakeFrom, idle) these are what reads it, in wake-ups the
// process has anyway; at other times it only reads earlier.
func (a *Agent) drainOnTurn() {
	g := a.grp
	if g == nil || g.hb == nil || a.now()-g.hbReadAt < turnDrainGap {
		return
	}
	a.drainHeartbeats()
}
