package hasync

import (
	"net/netip"

	"github.com/hagent/hagent/ha/internal/binding"
)

// The table download, responder side (claims 14-22, 42-49).

type serve struct {
	peer  int32
	addr  netip.Addr
	reqID uint32
	keys  []uint32
	fkeys []uint64 // beside keys, the fleet keys; nil while the table has no fleet binding (fleet.go)
	ends  []uint32 // chunk c (1..n-1) sends keys[ends[c-2]:ends[c-1]] (ends[-1] = 0)
	n     uint32
	base  uint32
	next  uint32
	acked []uint64
	due   []int64
	tries []uint8
}

// designated reports whether this member answers a request from requester
// with the given attempt and exclusions (claim 17, spec §5.3).
func (m *Machine) designated(requester uint32, r *TableRequest) bool {
	if r.Excludes(m.id) {
		return false
	}
	before := func(init bool, id uint32) bool { // candidate sorts before me
		if init != m.init {
			return init
		}
		return id < m.id
	}
	rank, count := 0, 1
	for i := range m.peers {
		p := &m.peers[i]
		if !p.up || p.id == 0 || p.id == requester || r.Excludes(p.id) {
			continue
		}
		count++
		if before(p.init, p.id) {
			rank++
		}
	}
	return rank == int(r.Attempt)%count
}

func (m *Machine) onRequest(now int64, pi int, out []Action) []Action {
	r := &m.rxReq
	p := &m.peers[pi]
	m.C.RequestsReceived++
	p.init, p.inSync = false, false
	for _, s := range m.serves {
		if s.peer == int32(pi) && s.reqID == r.ID { // repeated request: resend what is unacked
			for c := s.base; c < s.next; c++ {
				s.due[c] = now
			}
			return m.pump(now, s, out)
		}
	}
	if !m.designated(p.id, r) {
		return out
	}
	m.cancelServe(int32(pi))
	code := ReplyOK
	if !m.init {
		code = ReplyNotInitialized
	} else if len(m.serves) >= m.cfg.MaxDownloads {
		code = ReplyBusy
	}
	if code != ReplyOK {
		rep := TableReply{Code: code, ID: r.ID}
		start := m.begin(TypeTableReply)
		m.arena = rep.AppendHeader(m.arena)
		out, _ = m.finish(out, start, p.addr)
		m.C.RepliesSent++
		m.C.RepliesTotal++
		return out
	}
	s := &serve{peer: int32(pi), addr: p.addr, reqID: r.ID, keys: make([]uint32, 0, m.tab.Len()+m.tab.Tombs())}
	// Chunks are cut by the records' sizes at the snapshot: as many as fit
	// one datagram (39 plain bindings, fewer with endpoints and networks).
	room, n := ReplyRoom, 0
	m.tab.Range(func(e *binding.Entry) bool {
		m.recordOf(e, now, &m.rec)
		if sz := ExtSize(&m.rec); sz > room || n == MaxBindPerReply {
			s.ends = append(s.ends, uint32(len(s.keys)))
			room, n = ReplyRoom, 0
		}
		room -= ExtSize(&m.rec)
		n++
		s.keys = append(s.keys, e.Home)
		s.noteKey(e.Key)
		return true
	})
	if n > 0 {
		s.ends = append(s.ends, uint32(len(s.keys)))
	}
	s.n = 1 + uint32(len(s.ends))
	s.acked = make([]uint64, (s.n+63)/64)
	s.due = make([]int64, s.n)
	s.tries = make([]uint8, s.n)
	m.serves = append(m.serves, s)
	m.log.Info("hasync: serving binding table", "to", p.addr, "id", p.id, "bindings", len(s.keys), "chunks", s.n)
	return m.pump(now, s, out)
}

func (m *Machine) cancelServe(pi int32) {
	for i, s := range m.serves {
		if s.peer == pi {
			m.serves = append(m.serves[:i], m.serves[i+1:]...)
			return
		}
	}
}

func (s *serve) isAcked(c uint32) bool { return s.acked[c/64]&(1<<(c%64)) != 0 }

// pump retransmits due chunks and fills the window; it drops the serve when
// a chunk ran out of retries.
func (m *Machine) pump(now int64, s *serve, out []Action) []Action {
	for c := s.base; c < s.next; c++ {
		if s.isAcked(c) || s.due[c] > now {
			continue
		}
		if int(s.tries[c]) >= m.cfg.MaxRetries {
			m.C.RepliesFailed++
			m.log.Warn("hasync: table download abandoned: requester stopped acknowledging", "to", s.addr, "chunk", c, "of", s.n)
			m.dropServe(s)
			return out
		}
		s.tries[c]++
		s.due[c] = now + int64(m.cfg.AckTimeout)<<s.tries[c]
		out = m.sendChunk(now, s, c, out)
		m.C.RepliesTotal++
	}
	for s.next < s.n && s.next-s.base < uint32(m.cfg.Window) {
		c := s.next
		s.next++
		s.due[c] = now + int64(m.cfg.AckTimeout)
		out = m.sendChunk(now, s, c, out)
		m.C.RepliesSent++
		m.C.RepliesTotal++
	}
	return out
}

func (m *Machine) dropServe(s *serve) {
	for i, x := range m.serves {
		if x == s {
			m.serves = append(m.serves[:i], m.serves[i+1:]...)
			return
		}
	}
}

func (m *Machine) sendChunk(now int64, s *serve, c uint32, out []Action) []Action {
	if c == 0 {
		l := &m.rxList // scratch (not in use while sending)
		*l = HAList{ID: s.reqID, MoreBind: s.n - 1}
		l.HAs[0] = HAEntry{Addr: binding.AddrU32(m.cfg.Addr), ID: m.id, Flags: HAAlive | HAInitialized}
		l.NumHA = 1
		for i := range m.peers {
			p := &m.peers[i]
			if p.id == 0 || !p.addr.IsValid() || l.NumHA >= MaxHAs {
				continue // unknown id, or known only from an unproven message
			}
			f := uint8(0)
			if p.up {
				f |= HAAlive
			}
			if p.init {
				f |= HAInitialized
			}
			l.HAs[l.NumHA] = HAEntry{Addr: binding.AddrU32(p.addr), ID: p.id, Flags: f}
			l.NumHA++
		}
		start := m.begin(TypeHAList)
		m.arena, _ = l.AppendBinary(m.arena)
		out, _ = m.finish(out, start, s.addr)
		return out
	}
	lo, hi := uint32(0), s.ends[c-1]
	if c >= 2 {
		lo = s.ends[c-2]
	}
	start := m.begin(TypeTableReply)
	rep := TableReply{Code: ReplyOK, MoreBind: s.n - 1 - c, ID: s.reqID, Chunk: c}
	m.arena = rep.AppendHeader(m.arena)
	n, room := uint16(0), ReplyRoom
	for i, home := range s.keys[lo:hi] {
		e := m.tab.GetKey(home, s.keyAt(int(lo)+i))
		if e == nil {
			continue
		}
		m.recordOf(e, now, &m.rec)
		if ExtSize(&m.rec) > room {
			// It grew since the snapshot (networks added by a newer
			// write), and that write's Binding Update carries it to the
			// requester; anti-entropy repairs it if that one is lost.
			continue
		}
		room -= ExtSize(&m.rec)
		m.arena = AppendExt(m.arena, &m.rec)
		n++
	}
	be.PutUint16(m.arena[start+HeaderLen+2:], n)
	out, _ = m.finish(out, start, s.addr)
	return out
}

func (m *Machine) onReplyAck(now int64, pi int, out []Action) []Action {
	a := &m.rxRep
	var s *serve
	for _, x := range m.serves {
		if x.peer == int32(pi) && x.reqID == a.ID {
			s = x
		}
	}
	if s == nil || a.Chunk >= s.n {
		m.C.ReplyAcksDropped++
		return out
	}
	m.C.ReplyAcksReceived++
	if a.Code == ReplyAckAbort {
		m.dropServe(s)
		return out
	}
	s.acked[a.Chunk/64] |= 1 << (a.Chunk % 64)
	for s.base < s.next && s.isAcked(s.base) {
		s.base++
	}
	if s.base == s.n {
		m.log.Info("hasync: binding table served", "to", s.addr, "chunks", s.n)
		m.dropServe(s)
		return out
	}
	return m.pump(now, s, out)
}
