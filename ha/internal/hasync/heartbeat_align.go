package hasync

// Heartbeats on the election's wake-ups.
//
// The active member's heartbeat and its VRRP/HSRP advertisement are both
// periodic; on their own schedules each costs the process a wake-up, and
// a wake-up is most of what a packet costs an idle member (docs/
// performance.md, "Idle cost"). AlignHeartbeat, called when the election
// was awake anyway (it just advertised), sends a heartbeat in that wake-up
// and puts the following ones on a grid that divides the advertisement
// interval evenly (the spacing, at least the transmit interval, is
// announced as the transmit interval), so that the last one of each interval falls due just
// after the next advertisement (both timers are re-armed from the same
// wake-up, the heartbeat's a little later) and leaves with it. At an
// interval equal to the advertisement's no heartbeat wakes the member; at
// a third of it two in three do.
//
// The grid is not jittered (RFC 5880 §6.8.7 jitters so that senders do
// not synchronise; here only the active member heartbeats periodically,
// locked to its own advertisement). An interval may stretch once to at
// most 1.75 × the spacing when the grid is re-anchored after the election
// was late; the receiver's detection time, at least two intervals, absorbs
// it, and with a multiplier of 1 the grid is not used.

// AlignHeartbeat is called when the election was awake at now (it sent an
// advertisement), with its advertisement interval period. See above.
func (m *Machine) AlignHeartbeat(now, period int64, out []Action) []Action {
	if !m.heartbeatOn() || len(m.peers) == 0 || m.hb.demand || period <= 0 || m.cfg.HeartbeatMultiplier < 2 {
		return out
	}
	tx := m.txInterval()
	// n heartbeats per advertisement interval, never closer than the
	// transmit interval (a peer's RxInterval is a floor): 33 ms at 100 ms
	// advertisements gives 3 at 33.3 ms. An interval longer than the
	// advertisement's keeps its own, jittered schedule.
	n := period / tx
	if n == 0 {
		m.hb.step = 0
		return out
	}
	step := (period + n - 1) / n // n × step ≥ period: due just after the next advertisement
	if m.hb.last == 0 || now-m.hb.last >= step-step/4 {
		m.arena = m.arena[:0]
		out = m.emitHeartbeat(now, max(tx, step), out)
	}
	// Sent less than 3/4 of a step ago (on its own timer, just before
	// this wake-up): not again, but re-anchored here.
	m.hb.step, m.hb.next = step, now+step
	return out
}

// HeartbeatPeriodic reports whether this member sends periodic heartbeats
// now (the active member with the heartbeat on and a peer to tell): the
// election's wake-ups should then call AlignHeartbeat.
func (m *Machine) HeartbeatPeriodic() bool {
	return m.heartbeatOn() && len(m.peers) > 0 && !m.hb.demand
}

// HeartbeatWatch is what a member reading its heartbeat socket lazily must
// watch: the earliest expiry of a peer that heartbeats periodically (an
// active member whose death a standby must detect; 0: none), and whether
// the heartbeat parameters of every up peer are known. Until they are (a
// peer just came up or restarted, or one became active: its first periodic
// heartbeat is still unread) the socket must be read at every chance: the
// first-in-line rule counts a peer of unknown priority as outranking, and
// a peer not known to heartbeat periodically cannot be detected.
func (m *Machine) HeartbeatWatch() (expiry int64, known bool) {
	known = true
	for i := range m.peers {
		p := &m.peers[i]
		if !p.up || p.id == 0 {
			continue
		}
		if p.hb.mult == 0 {
			known = false
			continue
		}
		if p.hb.demand {
			continue
		}
		if e := p.expiry(); e != 0 && (expiry == 0 || e < expiry) {
			expiry = e
		}
	}
	return expiry, known
}

// DemandDue is when this member, in demand mode, takes its next turn (0:
// at once), or -1 when it takes none (not in demand mode, heartbeat off,
// no peer): its next refresh heartbeat, or sooner a turn that sends
// nothing, at most DemandRefresh after the previous turn, in which the
// agent reads its heartbeat socket (hasync-spec §4.12, Reading). An agent
// asks for the election's wake-up before it (AlignDemand); without one,
// the turn is a timer of the member's own (NextDeadline).
func (m *Machine) DemandDue() int64 {
	if !m.heartbeatOn() || len(m.peers) == 0 || !m.hb.demand {
		return -1
	}
	return min(m.hb.next, m.hb.turn)
}

// AlignDemand is called when the election was awake at now (an
// advertisement sent or heard) and the agent read its heartbeat socket in
// that wake-up: a member in demand mode whose turn falls due by before
// takes it now, and the next turn counts from now; its refresh, if due by
// before too, is sent now rather than on a timer of its own, so that it
// costs no wake-up (the refresh only keeps its parameters known and
// DeadInterval from running out: how early does not matter). On the
// active member it leaves with the advertisement; on a standby, in the
// wake-up of the advertisement it heard. The next refresh counts from
// when this one was due, not from now: timed from each early send, riding
// wake-ups a few advertisement intervals apart (a VRRP backup's) would
// send a refresh per jittered interval less the mean earliness; but never
// later than its whole spacing from now, so that two are never further
// apart than without riding.
func (m *Machine) AlignDemand(now, before int64, out []Action) []Action {
	if turn := m.DemandDue(); turn < 0 || turn > before {
		return out
	}
	m.hb.turn = now + int64(DemandRefresh)
	due := m.hb.next
	if due > before {
		return out
	}
	m.arena = m.arena[:0]
	m.hb.next = now
	out = m.sendHeartbeat(now, out)
	if due > now && m.hb.next > now {
		m.hb.next = min(m.hb.next+(due-now), now+m.hb.span)
	}
	return out
}
