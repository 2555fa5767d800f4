package hasync

import (
	"net/netip"
	"time"
)

// Receive: the authenticity and replay checks every message passes, then the
// dispatch by type.

// Receive processes one datagram from src (its source address) that
// arrived with IP TTL ttl. Bad datagrams are counted and change nothing.
// The phases: authenticate, decode the body, find the peer and check the
// session and replay window, then dispatch by type.
func (m *Machine) Receive(now int64, src netip.Addr, ttl uint8, pkt []byte, out []Action) []Action {
	m.arena = m.arena[:0]
	h, ok := m.authenticate(now, src, ttl, pkt)
	if !ok {
		return out
	}
	if err := m.decode(h.Type, Body(pkt)); err != nil {
		m.C.Malformed++
		return out
	}
	src = src.Unmap()
	pi := m.peerFor(h.Sender, src, false)
	if pi < 0 {
		m.C.PeersRejected++
		if m.peerWarned == 0 || now-m.peerWarned >= int64(10*time.Second) {
			m.peerWarned = now
			m.log.Warn("hasync: group member refused: the Home Agent list is full (raise group.max_members if the group really is that large)", "src", src, "id", h.Sender, "max_peers", m.cfg.MaxPeers, "refused_total", m.C.PeersRejected)
		}
		return out
	}
	p := &m.peers[pi]
	if h.Session != p.rw.Session || m.lapsed(now, p) {
		// A session this member has not proven: the peer restarted, is new,
		// or this is a replay of an earlier session; or the proven one,
		// silent for longer than the dead interval. Nothing in it is
		// applied and its source is not taken (spec §3.1).
		return m.unproven(now, pi, &h, src, out)
	}
	p.rw.Age(now, int64(m.cfg.DeadInterval))
	if !p.rw.Check(h.Session, h.Seq) {
		if p.rw.Stale(h.Seq) {
			// Sent before the proof, or passed by a later message of the
			// sender long ago: withheld (or very late), never applied; not
			// counted as a replay.
			m.C.Unproven++
			return out
		}
		m.C.Replay++
		m.C.SecViolations++
		return out
	}
	p.rw.Accept(h.Seq)
	if h.Type == TypeResponse {
		m.answeredInSession(now, p, h.Seq)
	}
	// Only a fresh message moves the peer: a replay sent from elsewhere
	// must not redirect its acks, retransmissions and table replies.
	if src.IsValid() {
		p.addr = src
	}
	out = m.revived(pi, false, out)
	m.heard(now, pi, false)
	if h.Type != TypeLeave && m.refreshDue(now, p) {
		// Date the session again while it speaks (spec §3.1 rule 6).
		out = m.challenge(now, pi, out)
	}
	return m.dispatch(now, pi, h.Type, out)
}

// authenticate checks the TTL, the header and the authenticator of pkt and
// refuses a message naming this member (or nobody) as its sender. It counts
// what it refuses.
func (m *Machine) authenticate(now int64, src netip.Addr, ttl uint8, pkt []byte) (Header, bool) {
	var h Header
	if ttl != RequiredTTL {
		m.C.BadTTL++
		m.C.SecViolations++
		return h, false
	}
	if err := h.UnmarshalBinary(pkt); err != nil {
		m.C.Malformed++
		return h, false
	}
	if err := m.keys.Open(pkt); err != nil {
		if err == ErrUnknownKey {
			m.C.UnknownKey++
		} else {
			m.C.BadAuth++
		}
		m.C.SecViolations++
		m.authFailed(now, src.Unmap(), h.Sender, err)
		return h, false
	}
	if h.Sender == m.id || h.Sender == 0 {
		// Authenticated, yet naming us (or nobody): another member was
		// given our agent_id, or a message of ours was replayed to us.
		// Either way an operator must hear of it, at a bounded rate.
		m.C.PeersRejected++
		if m.selfWarned == 0 || now-m.selfWarned >= int64(10*time.Second) {
			m.selfWarned = now
			m.log.Warn("hasync: a group message names this agent's own id: is agent_id configured twice in the group (or are this agent's own messages being replayed to it)?", "src", src, "id", h.Sender, "same_session", h.Session == m.cfg.Session)
		}
		return h, false
	}
	return h, true
}

// decode parses body, of message type typ, into the machine's receive
// buffer for that type.
func (m *Machine) decode(typ uint8, body []byte) error {
	var err error
	switch typ {
	case TypeBindingUpdate:
		err = m.rec.UnmarshalBinary(body)
	case TypeUpdateAck:
		var a UpdateAck
		if err = a.UnmarshalBinary(body); err == nil {
			m.rec = Record{Home: a.Home, ID: a.ID, Origin: a.Origin, Flags: a.Code, Key: a.Key}
		}
	case TypeTableRequest:
		err = m.rxReq.UnmarshalBinary(body)
	case TypeHAList:
		err = m.rxList.UnmarshalBinary(body)
	case TypeTableReply:
		err = m.rxRep.UnmarshalBinary(body)
	case TypeReplyAck:
		var a ReplyAck
		if err = a.UnmarshalBinary(body); err == nil {
			m.rxRep = TableReply{Code: a.Code, MoreBind: a.MoreBind, ID: a.ID, Chunk: a.Chunk}
		}
	case TypeDigest:
		err = m.rxDigest.UnmarshalBinary(body)
	case TypeLeave:
		if len(body) != 0 {
			err = ErrLength
		}
	case TypeChallenge, TypeResponse:
		err = m.rxChal.UnmarshalBinary(body)
	case TypeHeartbeat:
		err = m.hb.rx.UnmarshalBinary(body)
	default:
		err = ErrType
	}
	return err
}

// dispatch acts on a message of type typ from peer pi, fresh and
// authenticated, whose body decode has parsed.
func (m *Machine) dispatch(now int64, pi int, typ uint8, out []Action) []Action {
	p := &m.peers[pi]
	switch typ {
	case TypeChallenge:
		out = m.onChallenge(now, pi, out)
	case TypeResponse:
		// Taken as the session's anchor in Receive (answeredInSession).
	case TypeLeave:
		m.C.LeavesReceived++
		m.left(pi)
	case TypeBindingUpdate:
		m.C.UpdatesReceived++
		code := AckAccepted
		code, out = m.merge(now, &m.rec, out)
		a := UpdateAck{Code: code, Home: m.rec.Home, ID: m.rec.ID, Origin: m.rec.Origin, Key: m.rec.Key}
		start := m.begin(TypeUpdateAck)
		m.arena, _ = a.AppendBinary(m.arena)
		out, _ = m.finish(out, start, p.addr)
		m.C.UpdateAcksSent++
	case TypeUpdateAck:
		m.C.UpdateAcksReceived++
		out = m.onUpdateAck(pi, out)
	case TypeTableRequest:
		out = m.onRequest(now, pi, out)
	case TypeHAList:
		out = m.onList(now, pi, out)
	case TypeTableReply:
		out = m.onReply(now, pi, out)
	case TypeReplyAck:
		out = m.onReplyAck(now, pi, out)
	case TypeDigest:
		out = m.onDigest(now, pi, out)
	case TypeHeartbeat:
		m.onHeartbeat(pi)
	}
	return out
}
