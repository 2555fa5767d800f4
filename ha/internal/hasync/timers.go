package hasync

import "math"

// Timers: Tick runs whatever is due; NextDeadline says when to call it next.

// Tick runs every timer due at now: binding expiry (live → tombstone) and
// tombstone purge, update retransmissions, table request retries, chunk
// retransmissions, dead peers, digests. Call it when NextDeadline passes
// (calling it more often is harmless).
func (m *Machine) Tick(now int64, out []Action) []Action {
	m.arena = m.arena[:0]
	m.expired = m.expired[:0]
	m.tab.Expire(now, m.expireFn)
	for i := range m.expired {
		e := &m.expired[i]
		m.tab.TombstoneKey(e.Home, e.Key, e.ID, e.Origin, e.Expires+int64(m.cfg.TombstoneTTL)) // in its own slot: its NAI stays
		out = append(out, Action{Kind: ActUnbind, Entry: *e})
	}
	for i := range m.peers {
		p := &m.peers[i]
		if p.up && now-p.heard > int64(m.cfg.DeadInterval) {
			p.up, p.inSync, p.acking = false, false, false
			m.log.Warn("hasync: peer down (not heard)", "peer", p.addr, "id", p.id)
		}
	}
	out = m.checkLiveness(now, out)
	out = m.sendHeartbeat(now, out)
	out = m.retransmit(now, out)
	out = m.downloadTimers(now, out)
	for i := 0; i < len(m.serves); i++ {
		s := m.serves[i]
		out = m.pump(now, s, out)
		if i < len(m.serves) && m.serves[i] != s {
			i--
		}
	}
	return m.sendDigests(now, out)
}

// NextDeadline is the monotonic time Tick must run next (math.MaxInt64: no
// timer armed).
func (m *Machine) NextDeadline() int64 {
	t := int64(math.MaxInt64)
	// A bound, not the exact minimum: see binding.Table.DeadlineBound.
	if d, ok := m.tab.DeadlineBound(); ok {
		t = min(t, d)
	}
	if len(m.heap) > 0 {
		t = min(t, m.heap[0].due)
	}
	if m.dl.active {
		if m.dl.responder != 0 {
			t = min(t, m.dl.progress+int64(m.cfg.StallTimeout))
		} else {
			t = min(t, m.dl.reqDue)
		}
	}
	for _, s := range m.serves {
		for c := s.base; c < s.next; c++ {
			if !s.isAcked(c) {
				t = min(t, s.due[c])
			}
		}
	}
	if m.init {
		t = min(t, m.nextDigest)
	}
	t = m.heartbeatDeadline(t)
	for i := range m.peers {
		p := &m.peers[i]
		if p.up {
			t = min(t, p.heard+int64(m.cfg.DeadInterval)+1)
		}
		if p.needDigest && p.up && m.init {
			t = min(t, p.digestAt+m.resyncDigestGap())
		}
	}
	return t
}
