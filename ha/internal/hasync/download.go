package hasync

import (
	"net/netip"

	"github.com/hagent/hagent/ha/internal/binding"
)

// The table download, requester side (claims 9-13, 26-32).

type download struct {
	active    bool
	id        uint32
	attempt   uint8
	nex       uint8
	exclude   [MaxExclude]uint32
	responder uint32
	total     uint32
	ngot      uint32
	got       []uint64
	reqDue    int64
	progress  int64
	requests  int
	// resend: a member challenged our session, so it dropped our request;
	// repeat the same attempt at reqDue (not a retry: Attempt unchanged).
	resend bool
}

func (m *Machine) sendRequest(now int64, out []Action, fresh bool) []Action {
	if fresh {
		m.reqN++
		m.dl.id = m.cfg.Session ^ m.reqN<<8 ^ m.reqN
		if m.dl.id == 0 {
			m.dl.id = 1
		}
		m.dl.responder, m.dl.total, m.dl.ngot = 0, 0, 0
		m.dl.got = m.dl.got[:0]
	}
	r := TableRequest{Attempt: m.dl.attempt, NumExclude: m.dl.nex, ID: m.dl.id, Exclude: m.dl.exclude}
	start := m.begin(TypeTableRequest)
	m.arena, _ = r.AppendBinary(m.arena)
	out, n := m.finish(out, start, netip.Addr{})
	if m.dl.requests == 0 {
		m.C.TableRequestsSent++
	}
	m.C.TableRequestsTotal += uint64(n)
	m.dl.requests++
	m.dl.reqDue = now + int64(m.cfg.RequestTimeout)
	m.dl.progress = now
	return out
}

func (m *Machine) knowInitialized() bool {
	for i := range m.peers {
		p := &m.peers[i]
		if p.up && p.init && !m.excluded(p.id) {
			return true
		}
	}
	return false
}

func (m *Machine) excluded(id uint32) bool {
	for _, x := range m.dl.exclude[:m.dl.nex] {
		if x == id {
			return true
		}
	}
	return false
}

func (m *Machine) lowestKnown() bool {
	for i := range m.peers {
		p := &m.peers[i]
		if p.up && p.id != 0 && p.id < m.id && !m.excluded(p.id) {
			return false
		}
	}
	return true
}

func (m *Machine) becomeInitialized(now int64, out []Action, why string) []Action {
	m.init = true
	m.dl.active = false
	m.dl.got = nil
	m.log.Info("hasync: binding table initialized", "how", why, "bindings", m.tab.Len(), "tombstones", m.tab.Tombs())
	out = append(out, Action{Kind: ActInitialized})
	m.nextDigest = now
	return m.sendDigests(now, out)
}

func (m *Machine) downloadTimers(now int64, out []Action) []Action {
	d := &m.dl
	if !d.active {
		return out
	}
	if d.responder != 0 {
		if now-d.progress < int64(m.cfg.StallTimeout) {
			return out
		}
		m.log.Warn("hasync: table download stalled, asking the next responder", "responder", d.responder, "chunks", d.ngot, "of", d.total)
		m.C.TableRequestsFailed++
		if d.nex < MaxExclude {
			d.exclude[d.nex] = d.responder
			d.nex++
		}
		d.attempt++
		return m.sendRequest(now, out, true)
	}
	if now < d.reqDue {
		return out
	}
	if d.resend {
		d.resend = false
		return m.resendRequest(now, out)
	}
	if d.requests >= m.cfg.AloneAttempts && !m.knowInitialized() && m.lowestKnown() {
		m.C.TableRequestsFailed++
		return m.becomeInitialized(now, out, "no initialized member answered")
	}
	d.attempt++
	return m.sendRequest(now, out, false)
}

func (m *Machine) replyAck(out []Action, to netip.Addr, code uint8, id, chunk, more uint32) []Action {
	a := ReplyAck{Code: code, MoreBind: more, ID: id, Chunk: chunk}
	start := m.begin(TypeReplyAck)
	m.arena, _ = a.AppendBinary(m.arena)
	out, _ = m.finish(out, start, to)
	m.C.TableAcksSent++
	return out
}

// chunk records chunk c (of total) from the responder pi; returns whether the
// download is now complete.
func (m *Machine) chunk(now int64, pi int, c, total uint32) bool {
	d := &m.dl
	if d.responder == 0 {
		d.responder = m.peers[pi].id
	}
	if d.total == 0 {
		d.total = total
		d.got = make([]uint64, (total+63)/64)
	}
	if total != d.total || c >= d.total {
		return false
	}
	if d.got[c/64]&(1<<(c%64)) == 0 {
		d.got[c/64] |= 1 << (c % 64)
		d.ngot++
		d.progress = now
	}
	return d.ngot == d.total
}

// mine reports whether an answer with download id id from peer pi belongs to
// the running download (and not to a second responder).
func (m *Machine) mine(pi int, id uint32) bool {
	return m.dl.active && id == m.dl.id && (m.dl.responder == 0 || m.dl.responder == m.peers[pi].id)
}

func (m *Machine) onList(now int64, pi int, out []Action) []Action {
	l := &m.rxList
	m.learnList(now, l)
	p := &m.peers[pi]
	p.init = true
	m.C.TableRepliesReceived++
	if !m.mine(pi, l.ID) {
		if !m.dl.active || l.ID != m.dl.id {
			m.C.TableRepliesDropped++
		}
		return m.replyAck(out, p.addr, ReplyAckAbort, l.ID, 0, l.MoreBind)
	}
	done := m.chunk(now, pi, 0, l.MoreBind+1)
	out = m.replyAck(out, p.addr, ReplyAckOK, l.ID, 0, l.MoreBind)
	if done {
		m.C.Downloads++
		out = m.becomeInitialized(now, out, "downloaded from "+p.addr.String())
	}
	return out
}

// learnList adds the members of a Home Agent list (claims 15, 31).
func (m *Machine) learnList(now int64, l *HAList) {
	for i := range int(l.NumHA) {
		h := &l.HAs[i]
		if h.ID == m.id || h.ID == 0 {
			continue
		}
		known := false
		for j := range m.peers {
			if m.peers[j].id == h.ID {
				known = true
				m.peers[j].init = m.peers[j].init || h.Flags&HAInitialized != 0
			}
		}
		if !known && h.Flags&HAAlive != 0 {
			if j := m.peerFor(h.ID, binding.U32Addr(h.Addr), true); j >= 0 {
				// learnt second-hand: considered up until the dead interval
				// says otherwise, so that it expects our updates.
				m.peers[j].up, m.peers[j].heard = true, now
				m.peers[j].init = h.Flags&HAInitialized != 0
			}
		}
	}
}

func (m *Machine) onReply(now int64, pi int, out []Action) []Action {
	r := &m.rxRep
	p := &m.peers[pi]
	switch r.Code {
	case ReplyRepair:
		m.C.RepairsRecvd++
		out = m.mergeAll(now, r, out)
		return out
	case ReplyNotInitialized, ReplyBusy:
		m.C.TableRepliesReceived++
		if r.Code == ReplyNotInitialized {
			p.init = false
		}
		if m.dl.active && r.ID == m.dl.id && m.dl.responder == 0 {
			// Ask again soon: the next attempt designates another member.
			m.dl.reqDue = min(m.dl.reqDue, now+int64(m.cfg.RequestTimeout)/4)
		}
		return out
	case ReplyOK:
	default:
		m.C.Malformed++
		return out
	}
	m.C.TableRepliesReceived++
	p.init = true
	if !m.mine(pi, r.ID) {
		if !m.dl.active {
			m.C.TableRepliesDropped++
		} else {
			out = m.mergeAll(now, r, out) // a second responder: its data is as good
		}
		return m.replyAck(out, p.addr, ReplyAckAbort, r.ID, r.Chunk, r.MoreBind)
	}
	out = m.mergeAll(now, r, out)
	done := m.chunk(now, pi, r.Chunk, r.Chunk+r.MoreBind+1)
	out = m.replyAck(out, p.addr, ReplyAckOK, r.ID, r.Chunk, r.MoreBind)
	if done {
		m.C.Downloads++
		out = m.becomeInitialized(now, out, "downloaded from "+p.addr.String())
	}
	return out
}

func (m *Machine) mergeAll(now int64, r *TableReply, out []Action) []Action {
	var rec Record
	off := 0
	for range int(r.NumBind) {
		next, err := r.Next(off, &rec)
		if next == off { // cannot happen: UnmarshalBinary validated every extension
			break
		}
		off = next
		if err == nil {
			_, out = m.merge(now, &rec, out)
		}
	}
	return out
}
