package agent

import (
	"errors"
	"sync/atomic"

	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/internal/groupio"
)

// Arrivals on the heartbeat socket that wake the owner.
//
// The lazy scheme (heartbeat_io.go) pays off while a periodic peer's
// expiry is pending: the owner must read by then and can do it in a
// wake-up it has anyway; and while every up peer is a known demand-mode
// one (a pair at the default): nothing is due, and what comes waits for
// the owner's next turn. Otherwise (a peer's parameters are not known
// yet, no peer is up, or a periodic active member is expected and not
// heard), the owner expects nothing at any particular time, but a
// heartbeat that comes must be read at once (a new active member's first
// periodic one, a restarted peer's; awakeFrom). Reading at
// every advertisement for that cost a turn of the owner loop and an empty
// recvmsg per advertisement on every member; instead a watcher goroutine
// waits on a duplicate of the socket in the runtime's poller
// (groupio.Watcher) and nudges the owner (hbReady) when something is
// queued. The owner still reads everything itself (drainHeartbeats: each
// datagram checked in full and counted at its kernel arrival time), then
// lets the watcher wait again (rearm). When a periodic peer's expiry is
// pending again the watcher is closed, which takes the duplicate out of
// the poller: arrivals then wake nobody. The queue is the socket's own
// throughout, so nothing is lost in a switch.

// hbWatch is one watcher's life: from an eager switch to the next lazy one.
type hbWatch struct {
	w     *groupio.Watcher
	rearm chan struct{} // cap 1: the owner read what was queued; wait again
	stop  chan struct{} // closed at the switch back to lazy
}

// hbStats count how the owner loop came to read the heartbeat socket
// (owner goroutine writes, anyone reads).
type hbStats struct {
	awakeTurns   atomic.Uint64 // turns on an election wake-up (electionAwake)
	arrivalTurns atomic.Uint64 // turns on an arrival or a drain's own nudge (heartbeatsReady)
	datagrams    atomic.Uint64 // datagrams read
	cut          atomic.Uint64 // drains stopped at heartbeatDrainMax
	switches     atomic.Uint64 // switches to eager
}

// watchArrivals makes arrivals wake the owner (eager) or not (owner
// goroutine). It reports whether the state asked for holds: false when a
// watcher was wanted and could not be started or has failed (the caller
// then reads at every election wake-up, as without one).
func (a *Agent) watchArrivals(eager bool) bool {
	g := a.grp
	if !eager {
		a.stopWatch()
		return true
	}
	if g.hbWatch != nil {
		return !g.hbWatchBroken.Load()
	}
	if g.hbWatchBroken.Load() {
		return false
	}
	w, err := g.hb.Watch()
	if err != nil {
		g.hbWatchBroken.Store(true)
		a.log.Error("group heartbeat socket: cannot watch for arrivals; heartbeats are read at each advertisement instead", "err", err)
		return false
	}
	hw := &hbWatch{w: w, rearm: make(chan struct{}, 1), stop: make(chan struct{})}
	g.hbWatch = hw
	g.hbStats.switches.Add(1)
	a.wg.Add(1)
	go a.watchLoop(hw, g.hbReady)
	return true
}

// stopWatch closes the watcher, if any (owner goroutine; again at close).
func (a *Agent) stopWatch() {
	g := a.grp
	if g == nil || g.hbWatch == nil {
		return
	}
	close(g.hbWatch.stop)
	_ = g.hbWatch.w.Close()
	g.hbWatch = nil
}

// watchLoop is the watcher goroutine: nudge the owner when a datagram is
// queued, then wait until it was read before looking again.
func (a *Agent) watchLoop(hw *hbWatch, ready chan<- struct{}) {
	defer a.wg.Done()
	for {
		if err := hw.w.Wait(); err != nil {
			if errors.Is(err, groupio.ErrClosed) {
				return
			}
			g := a.grp
			g.hbWatchBroken.Store(true)
			a.log.Error("group heartbeat socket: watching for arrivals failed; heartbeats are read at each advertisement instead", "err", err)
			// The owner's next turn sees the flag: wake it for one.
			select {
			case ready <- struct{}{}:
			default:
			}
			return
		}
		select {
		case ready <- struct{}{}:
		default:
		}
		select {
		case <-hw.rearm:
		case <-hw.stop:
			return
		}
	}
}

// heartbeatsReady: something waits in the heartbeat socket (the watcher
// saw it arrive, or the last drain stopped at its bound). Read it, then
// let the watcher wait again (owner goroutine).
func (a *Agent) heartbeatsReady() {
	g := a.grp
	g.hbStats.arrivalTurns.Add(1)
	if a.drainHeartbeats() {
		return // cut: nudged itself; the watcher waits until all is read
	}
	if hw := g.hbWatch; hw != nil {
		select {
		case hw.rearm <- struct{}{}:
		default:
		}
	}
}

// heartbeatSocketCounters: how the heartbeat socket was read (show
// redundancy), what an idle member's wake-ups are spent on.
func heartbeatSocketCounters(s *hbStats) console.CounterGroup {
	return counterGroup("heartbeat_socket", "heartbeat socket reads",
		console.Counter{Key: "on_advertisement", Name: "on an election wake-up", Value: s.awakeTurns.Load()},
		console.Counter{Key: "on_arrival", Name: "on an arrival (or to read on after a bounded drain)", Value: s.arrivalTurns.Load()},
		console.Counter{Key: "datagrams", Name: "datagrams read", Value: s.datagrams.Load()},
		console.Counter{Key: "drains_cut", Name: "drains stopped at their bound (a flood)", Value: s.cut.Load()},
		console.Counter{Key: "watch_starts", Name: "switches to waking on arrivals", Value: s.switches.Load()})
}
