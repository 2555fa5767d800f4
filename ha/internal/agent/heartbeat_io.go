package agent

import (
	"fmt"
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
// its verdict instead of calling a live peer dead.

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
		if a.now() < g.wantAwake.Load() {
			return
		}
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// armAwake tells the election's hook when the owner wants its wake-ups
// (owner goroutine, after every event): at every one while this member
// sends periodic heartbeats (they leave with the advertisement,
// hasync.AlignHeartbeat); otherwise from when the next advertisement could
// come after the active peer's heartbeat expiry, so that the heartbeats
// queued are read in an advertisement's wake-up rather than in one of
// their own.
func (a *Agent) armAwake() {
	g := a.grp
	if g == nil || g.awake == nil || g.period <= 0 {
		return
	}
	e, known := g.m.HeartbeatWatch()
	g.wantAwake.Store(awakeFrom(g.m.HeartbeatPeriodic(), known, e, g.period))
}

// awakeFrom is armAwake's rule: from when the election's wake-ups are
// wanted, given whether this member heartbeats periodically, whether every
// up peer's heartbeat parameters are known, the earliest expiry of a peer
// heartbeating periodically (0: none) and the advertisement interval. With
// a peer unknown or no periodic peer every wake-up is wanted: a peer that
// just restarted or became active heartbeats from now on, and its
// heartbeat must be read at once, not at this member's next timer up to a
// second later (hasync.Machine.HeartbeatWatch).
func awakeFrom(periodic, known bool, expiry, period int64) int64 {
	if periodic || !known || expiry == 0 {
		return 0
	}
	return expiry - period - period/4
}

// electionAwake: the election advertised or heard an advertisement (owner
// goroutine). Read the heartbeats queued, and send ours with the
// advertisement if one is due.
func (a *Agent) electionAwake() {
	a.drainHeartbeats()
	g := a.grp
	if !g.m.HeartbeatPeriodic() {
		return
	}
	now := a.now()
	acts := g.m.AlignHeartbeat(now, g.period, g.hacts[:0])
	for i := range acts {
		a.groupAction(now, &acts[i])
	}
	g.hacts = acts[:0]
}

// drainHeartbeats feeds every queued heartbeat datagram to the registrar,
// each at its arrival time (owner goroutine). The stamp is on the realtime
// clock; its age, measured now, places it on the monotonic one.
func (a *Agent) drainHeartbeats() {
	g := a.grp
	if g == nil || g.hb == nil {
		return
	}
	for {
		n, src, ttl, at, ok, err := g.hb.ReadQueued(g.hbBuf)
		if err != nil {
			if !g.hbFailed {
				g.hbFailed = true
				a.log.Error("group heartbeat socket read failed; peers' heartbeats are not read (failover falls back to the election's timers)", "err", err)
			}
			return
		}
		if !ok {
			return
		}
		now := a.now()
		heard := now
		if at != 0 {
			if age := time.Now().UnixNano() - at; age > 0 && age < int64(time.Minute) {
				heard = now - age
			}
		}
		acts := a.reg.Handle(heard, Event{Kind: EvGroup, Src: src, TTL: ttl, Pkt: g.hbBuf[:n]}, a.acts[:0])
		a.perform(now, acts)
	}
}
