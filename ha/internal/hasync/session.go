package hasync

import (
	"net/netip"
)

// Session proof (spec §3.1). A peer's session becomes live here only when a
// message of that session echoes a nonce this member has just chosen: a
// replay, from whatever earlier session, cannot. Until then nothing of the
// session is applied, no address is taken from it, and the live session
// (if any) keeps being accepted. The price is one round trip at a peer's
// start and one dropped message per new session (retransmitted by the
// peer like any lost one).

// unproven handles an authenticated, parsed message whose session is not
// the proven session of peer pi.
func (m *Machine) unproven(now int64, pi int, h *Header, src netip.Addr, out []Action) []Action {
	p := &m.peers[pi]
	switch h.Type {
	case TypeResponse:
		if m.rxChal.Peer == m.id && p.nonce != 0 && m.rxChal.Nonce == p.nonce && now-p.nonceAt <= int64(m.cfg.DeadInterval) {
			// The proven session itself, proven again after a silence, is
			// no restart: the peer is alive again (revived).
			restarted := p.rw.Session != 0 && p.rw.Session != h.Session
			p.rw.Prove(h.Session, h.Seq, now)
			p.rw.Recent(h.Seq, p.nonceAt)
			p.nonce, p.failed = 0, false
			if src.IsValid() {
				p.addr = src
			}
			m.C.SessionsProven++
			m.log.Info("hasync: peer session proven", "peer", p.addr, "id", p.id, "restarted", restarted)
			out = m.revived(pi, restarted, out)
			m.heard(now, pi, restarted)
			return out
		}
	case TypeChallenge:
		// Answering is safe whoever asks: the answer proves only our own
		// session and changes nothing here.
		out = m.onChallenge(now, pi, out)
	}
	m.C.Unproven++
	return m.challenge(now, pi, out)
}

// lapsed reports whether peer p's proven session has been silent for
// longer than DeadInterval, or its latest answered challenge was first
// sent longer ago than that: its next message must prove it again (spec
// §3.1 rules 5 and 6). A member that crashed or left stays silent, and a
// datagram of its last session that never arrived (lost, or held back by
// an attacker on the path) would otherwise stay fresh in the window for
// ever: delivered after the tombstones of what it carries were purged, it
// would bring back a de-registered binding. A member that was only cut
// off answers the challenge, and Prove refuses what it sent before. A
// member whose whole stream an attacker delays, in order, is never
// silent and never overtaken; only the age of its latest answer tells
// how late its messages are.
func (m *Machine) lapsed(now int64, p *peer) bool {
	dead := int64(m.cfg.DeadInterval)
	return p.rw.Session != 0 && (now-p.heard > dead || now-p.rw.AnchorAt > dead)
}

// refreshDue reports whether peer p's proven session, having just sent a
// fresh message, should be challenged again: its latest answered
// challenge is a quarter of DeadInterval old, so that the answer comes
// back (retried for another half) long before the session lapses. Only a
// peer that speaks is asked: a silent one has nothing to date.
func (m *Machine) refreshDue(now int64, p *peer) bool {
	return now-p.rw.AnchorAt >= int64(m.cfg.DeadInterval)/4
}

// answeredInSession takes a Response of peer p's proven session, at
// sequence seq, that echoes the outstanding nonce as the session's newest
// anchor (ReplayWindow.Recent), if that nonce is recent enough to date
// anything.
func (m *Machine) answeredInSession(now int64, p *peer, seq uint32) {
	if m.rxChal.Peer != m.id || p.nonce == 0 || m.rxChal.Nonce != p.nonce {
		return
	}
	if now-p.nonceAt <= int64(m.cfg.DeadInterval) {
		p.rw.Recent(seq, p.nonceAt)
	}
	p.nonce = 0
}

// challenge asks peer pi to prove its current session, at most once per
// AckTimeout whatever arrives (replays cannot make this member flood).
// The nonce stays the same until it is answered, or until it was first
// sent half a DeadInterval ago: an answer to it would then date what
// follows too far back to keep the session from lapsing.
func (m *Machine) challenge(now int64, pi int, out []Action) []Action {
	p := &m.peers[pi]
	if p.nonce != 0 && now-p.chalAt < int64(m.cfg.AckTimeout) {
		return out
	}
	if p.nonce != 0 && now-p.nonceAt >= int64(m.cfg.DeadInterval)/2 {
		p.nonce = 0
	}
	if p.nonce == 0 {
		for p.nonce == 0 {
			m.nonces++
			p.nonce = mix(m.nonces) // a bijection: unique within this start
		}
		p.nonceAt = now
	}
	p.chalAt = now
	c := Challenge{Peer: p.id, Nonce: p.nonce}
	start := m.begin(TypeChallenge)
	m.arena, _ = c.AppendBinary(m.arena)
	out, n := m.finish(out, start, netip.Addr{})
	m.C.ChallengesSent += uint64(n)
	return out
}

// onChallenge answers a challenge addressed to this member, to the group
// (never to the datagram's source, which may be a replayer): the same
// nonce at most once per AckTimeout/2, so replayed challenges cost at most
// one answer each and cannot suppress the answer to a fresh one.
func (m *Machine) onChallenge(now int64, pi int, out []Action) []Action {
	c := &m.rxChal
	p := &m.peers[pi]
	if c.Peer != m.id {
		return out
	}
	if c.Nonce == p.answered && now-p.answeredAt < int64(m.cfg.AckTimeout)/2 {
		return out
	}
	p.answered, p.answeredAt = c.Nonce, now
	r := Challenge{Peer: p.id, Nonce: c.Nonce}
	start := m.begin(TypeResponse)
	m.arena, _ = r.AppendBinary(m.arena)
	out, n := m.finish(out, start, netip.Addr{})
	m.C.ResponsesSent += uint64(n)
	if d := &m.dl; d.active && d.responder == 0 && !d.resend {
		// The challenger dropped our table request (our session was new to
		// it): ask again once the answer is through, rather than after
		// RequestTimeout. Every challenger of this start shares the one
		// repetition.
		d.resend = true
		d.reqDue = min(d.reqDue, now+int64(m.cfg.AckTimeout)/8)
	}
	return out
}

// resendRequest repeats the running download's request unchanged (same
// Identification and Attempt, so the same responder is designated).
func (m *Machine) resendRequest(now int64, out []Action) []Action {
	d := &m.dl
	r := TableRequest{Attempt: d.attempt, NumExclude: d.nex, ID: d.id, Exclude: d.exclude}
	start := m.begin(TypeTableRequest)
	m.arena, _ = r.AppendBinary(m.arena)
	out, n := m.finish(out, start, netip.Addr{})
	m.C.TableRequestsTotal += uint64(n)
	d.reqDue = now + int64(m.cfg.RequestTimeout)
	d.progress = now
	return out
}
