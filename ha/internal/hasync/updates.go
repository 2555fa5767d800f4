package hasync

import (
	"net/netip"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
)

// Local writes and their outstanding updates (claims 1, 23): each update
// waits for every up peer's Update Ack and is retransmitted until it comes.

type pending struct {
	home   uint32
	key    uint64 // binding.Entry.Key: a fleet router's binding, 0 for others
	id     uint64
	origin uint32
	peer   int32
	tries  uint8
	used   bool
	gen    uint32
}

type hent struct {
	due  int64
	slot int32
	gen  uint32
}

// Register records a registration or renewal accepted by this member and
// multicasts it to the group (claim 1). e.Home, CareOf, HomeAgent, ID,
// Granted, Flags, Node, the NAT endpoint (NATAddr, NATPort, Encap) and the
// networks (AddPrefix) are used; Origin is set to this member's id,
// Registered to now and Expires to now+Granted. Returns binding.ErrFull
// (no room), ErrStale (the group holds a newer write of this home) or
// ErrEndpoint (an endpoint no peer would accept) and then changes nothing.
func (m *Machine) Register(now int64, e binding.Entry, out []Action) ([]Action, error) {
	return m.RegisterNAI(now, e, nil, out)
}

// RegisterNAI is Register for a binding that may be a fleet router's
// (e.Key not 0, fleet.go): nai is its NAI, kept with the binding and sent
// with every record of it. Writes are ordered per binding: per home
// address, and per router of a shared home address.
func (m *Machine) RegisterNAI(now int64, e binding.Entry, nai []byte, out []Action) ([]Action, error) {
	m.arena = m.arena[:0]
	if (e.Key != 0 || nai != nil) && (len(nai) > MaxRecNAI || e.Key != fleetKey(nai)) {
		return out, ErrFleetKey
	}
	if !e.Encap.Valid() || (e.Encap == binding.EncapUDP && (e.NATAddr == 0 || e.NATPort == 0)) {
		return out, ErrEndpoint
	}
	e.Origin, e.Registered = m.id, now
	e.Expires = now + int64(e.Granted)*int64(time.Second)
	if old := m.tab.GetKey(e.Home, e.Key); old != nil && !newer(e.ID, e.Origin, false, old.ID, old.Origin, old.Tombstone()) {
		return out, ErrStale
	}
	if m.tab.CoveredKey(e.Home, e.Key, e.ID, now) {
		m.floored(now, e.Home, e.ID)
		return out, ErrStale
	}
	p, err := m.tab.PutNAI(e, nai)
	if err != nil {
		return out, err
	}
	m.recordOf(p, now, &m.rec)
	return m.update(now, out), nil
}

// Deregister records a de-registration (lifetime 0) with the mobile node's
// Identification id accepted by this member: the binding becomes a
// tombstone (claim 23) and the group is told.
func (m *Machine) Deregister(now int64, home uint32, id uint64, out []Action) ([]Action, error) {
	return m.DeregisterNAI(now, home, nil, id, out)
}

// DeregisterNAI is Deregister for the binding of a fleet router with NAI
// nai on the shared home address home (nil nai: Deregister): that
// router's binding only becomes a tombstone.
func (m *Machine) DeregisterNAI(now int64, home uint32, nai []byte, id uint64, out []Action) ([]Action, error) {
	m.arena = m.arena[:0]
	if len(nai) > MaxRecNAI {
		return out, ErrFleetKey
	}
	key := fleetKey(nai)
	if old := m.tab.GetKey(home, key); old != nil && !newer(id, m.id, true, old.ID, old.Origin, old.Tombstone()) {
		return out, ErrStale
	}
	p := m.tab.TombstoneNAI(home, key, nai, id, m.id, now+int64(m.cfg.TombstoneTTL))
	if p == nil { // folded for lack of room, or tombstones disabled: still tell the group
		m.rec = Record{Flags: RecDereg, Remaining: msOf(int64(m.cfg.TombstoneTTL)), Home: home, ID: id, Origin: m.id}
		m.rec.setNAI(nai)
	} else {
		m.recordOf(p, now, &m.rec)
	}
	return m.update(now, out), nil
}

// Reannounce multicasts the table's current version of home again, as a
// new binding update that every up peer is expected to acknowledge. The
// agent uses it when a node retransmits a request already written: an
// acknowledgement (ActAcked) then proves the binding is replicated, whatever
// happened to the first update. Nothing is sent for an unknown home.
func (m *Machine) Reannounce(now int64, home uint32, out []Action) []Action {
	return m.ReannounceKey(now, home, 0, out)
}

// ReannounceKey is Reannounce for the binding of home and key (a fleet
// router's when key is not 0).
func (m *Machine) ReannounceKey(now int64, home uint32, key uint64, out []Action) []Action {
	m.arena = m.arena[:0]
	e := m.tab.GetKey(home, key)
	if e == nil {
		return out
	}
	m.recordOf(e, now, &m.rec)
	return m.update(now, out)
}

// update multicasts m.rec and records the acks expected (claims 1, 7, 8).
func (m *Machine) update(now int64, out []Action) []Action {
	if len(m.peers) == 0 { // claim 7: nobody else in the group
		return out
	}
	start := m.begin(TypeBindingUpdate)
	m.arena, _ = m.rec.AppendBinary(m.arena)
	out, n := m.finish(out, start, netip.Addr{})
	m.C.UpdatesSent++
	m.C.UpdatesTotal += uint64(n)
	for i := range m.peers {
		if m.peers[i].up {
			m.addPending(now, int32(i), m.rec.Home, m.rec.Key, m.rec.ID, m.rec.Origin)
		}
	}
	return out
}

// pkey names an outstanding update: the peer it waits for and the binding
// (home address, and fleet key: one per router of a shared home address).
type pkey struct {
	peer int32
	home uint32
	key  uint64
}

func (m *Machine) addPending(now int64, peer int32, home uint32, key uint64, id uint64, origin uint32) {
	k := pkey{peer, home, key}
	if s, ok := m.pidx[k]; ok {
		p := &m.pend[s]
		p.id, p.origin, p.tries = id, origin, 0
		p.gen++
		m.push(hent{due: now + int64(m.cfg.AckTimeout), slot: s, gen: p.gen})
		return
	}
	if pr := &m.peers[peer]; !pr.acking && (pr.outstanding >= m.cfg.UnackedPending || len(m.pfree) <= len(m.pend)/2) {
		// Not acknowledged since it came up: its silence may be all it
		// ever gives. It gets a few outstanding updates and never the
		// half of the set kept for peers that do acknowledge; anti-entropy
		// repairs it once it acknowledges.
		m.C.PendingRefused++
		m.markResync(peer)
		return
	}
	if len(m.pfree) == 0 {
		m.C.UpdatesFailed++
		m.markResync(peer)
		return
	}
	s := m.pfree[len(m.pfree)-1]
	m.pfree = m.pfree[:len(m.pfree)-1]
	p := &m.pend[s]
	gen := p.gen + 1
	*p = pending{home: home, key: key, id: id, origin: origin, peer: peer, used: true, gen: gen}
	m.pidx[k] = s
	if m.peers[peer].outstanding++; m.peers[peer].outstanding == 1 {
		m.peers[peer].hb.owed = now // a debt begins (demand-mode liveness)
	}
	m.push(hent{due: now + int64(m.cfg.AckTimeout), slot: s, gen: gen})
}

func (m *Machine) release(s int32) {
	p := &m.pend[s]
	delete(m.pidx, pkey{p.peer, p.home, p.key})
	m.peers[p.peer].outstanding--
	p.used = false
	p.gen++
	m.pfree = append(m.pfree, s)
}

func (m *Machine) markResync(peer int32) {
	m.peers[peer].inSync = false
	m.peers[peer].needDigest = true
}

func (m *Machine) push(h hent) {
	if len(m.heap) == cap(m.heap) { // drop stale entries before growing
		j := 0
		for _, x := range m.heap {
			if m.pend[x.slot].gen == x.gen && m.pend[x.slot].used {
				m.heap[j] = x
				j++
			}
		}
		m.heap = m.heap[:j]
		for i := len(m.heap)/2 - 1; i >= 0; i-- {
			m.down(i)
		}
	}
	m.heap = append(m.heap, h)
	i := len(m.heap) - 1
	for i > 0 {
		p := (i - 1) / 2
		if m.heap[p].due <= m.heap[i].due {
			break
		}
		m.heap[p], m.heap[i] = m.heap[i], m.heap[p]
		i = p
	}
}

func (m *Machine) down(i int) {
	n := len(m.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && m.heap[r].due < m.heap[l].due {
			c = r
		}
		if m.heap[i].due <= m.heap[c].due {
			return
		}
		m.heap[i], m.heap[c] = m.heap[c], m.heap[i]
		i = c
	}
}

func (m *Machine) pop() hent {
	h := m.heap[0]
	n := len(m.heap) - 1
	m.heap[0] = m.heap[n]
	m.heap = m.heap[:n]
	if n > 0 {
		m.down(0)
	}
	return h
}

func (m *Machine) retransmit(now int64, out []Action) []Action {
	for len(m.heap) > 0 && m.heap[0].due <= now {
		h := m.pop()
		p := &m.pend[h.slot]
		if !p.used || p.gen != h.gen {
			continue
		}
		if int(p.tries) >= m.cfg.MaxRetries {
			m.C.UpdatesFailed++
			pr := &m.peers[p.peer]
			// At most one line per peer per 10 s, not one per binding: a silent peer
			// during a registration storm would otherwise flood the console.
			if pr.warnedAt == 0 || now-pr.warnedAt >= int64(10*time.Second) {
				pr.warnedAt = now
				m.log.Warn("hasync: binding update not acknowledged, peer marked for resync", "peer", pr.addr, "id", pr.id, "home", binding.U32Addr(p.home), "failed_total", m.C.UpdatesFailed)
			}
			// A peer that let an update run out of retries is not acking
			// any more, up or not: its silence has been proven. In a group
			// of two, the survivor of a crash would otherwise answer 130 until
			// DeadInterval (35 s) marks the peer down; now only until the
			// retries run out (AckTimeout doubled MaxRetries times: 15.75 s
			// by default). Its next ack makes it acking again.
			pr.acking, pr.failed = false, true
			m.markResync(p.peer)
			m.release(h.slot)
			continue
		}
		e := m.tab.GetKey(p.home, p.key)
		if e == nil { // purged meanwhile: nothing left to tell
			m.release(h.slot)
			continue
		}
		p.tries++
		p.id, p.origin = e.ID, e.Origin
		m.push(hent{due: now + int64(m.cfg.AckTimeout)<<p.tries, slot: h.slot, gen: p.gen})
		m.recordOf(e, now, &m.rec)
		start := m.begin(TypeBindingUpdate)
		m.arena, _ = m.rec.AppendBinary(m.arena)
		out, _ = m.finish(out, start, m.peers[p.peer].addr)
		m.C.UpdatesTotal++
	}
	return out
}

// merge applies one record with the group's merge rule (spec §1) and
// returns the Update Ack code.
func (m *Machine) merge(now int64, r *Record, out []Action) (uint8, []Action) {
	e := m.tab.GetKey(r.Home, r.Key)
	dead := r.Dereg() || r.Remaining == 0
	if !m.admit(now, r, e != nil) {
		return AckRefused, out
	}
	if e != nil && !newer(r.ID, r.Origin, dead, e.ID, e.Origin, e.Tombstone()) {
		if r.ID == e.ID && r.Origin == e.Origin && dead == e.Tombstone() {
			return AckAccepted, out
		}
		m.C.Superseded++
		return AckSuperseded, out
	}
	if !dead && m.tab.CoveredKey(r.Home, r.Key, r.ID, now) {
		// A tombstone that may be newer was folded for lack of room:
		// storing this could undo a de-registration. Not stored, so not a
		// replication either: refused, not superseded.
		m.floored(now, r.Home, r.ID)
		return AckRefused, out
	}
	if dead {
		wasLive := e != nil && !e.Tombstone()
		purge := now + int64(r.Remaining)*int64(time.Millisecond)
		if !r.Dereg() { // expired in flight: a tombstone like a local expiry
			purge = now + int64(m.cfg.TombstoneTTL)
		}
		var old binding.Entry
		if wasLive {
			old = *e
		}
		if t := m.tab.TombstoneNAI(r.Home, r.Key, r.NAI[:r.NAILen], r.ID, r.Origin, purge); t != nil && !wasLive {
			t.CareOf, t.HomeAgent, t.Flags = r.CareOf, r.HomeAgent, r.MNFlags
		}
		if wasLive {
			out = append(out, Action{Kind: ActUnbind, Entry: old})
		}
		return AckAccepted, out
	}
	ne := binding.Entry{Home: r.Home, Key: r.Key, CareOf: r.CareOf, HomeAgent: r.HomeAgent, Origin: r.Origin, ID: r.ID, Node: -1,
		Granted: r.Granted, Flags: r.MNFlags, Registered: now, Expires: now + int64(r.Remaining)*int64(time.Millisecond),
		NATAddr: r.NATAddr, NATPort: r.NATPort, Encap: binding.Encap(r.Encap)}
	for i := range int(r.Nets) {
		ne.AddPrefixU32(r.NetAddr[i], r.NetBits[i])
	}
	var gone Dropped
	if e != nil && !e.Tombstone() {
		ne.Node = e.Node
		gone.set(e, &ne) // before the write overwrites e's networks
	}
	p, err := m.tab.PutNAI(ne, r.NAI[:r.NAILen])
	if err != nil {
		m.C.TableFull++
		return AckTableFull, out
	}
	return AckAccepted, append(out, Action{Kind: ActBinding, Entry: *p, Dropped: gone})
}

func (m *Machine) onUpdateAck(pi int, out []Action) []Action {
	a := &m.rec // Flags holds the code
	s, ok := m.pidx[pkey{int32(pi), a.Home, a.Key}]
	if !ok {
		return out
	}
	p := &m.pend[s]
	if newer(p.id, p.origin, false, a.ID, a.Origin, false) {
		return out // acknowledges an older version than the one outstanding
	}
	switch a.Flags {
	case AckTableFull:
		m.C.UpdatesFailed++
		m.markResync(int32(pi))
	case AckRefused:
		// Not stored there (its configuration does not admit this home,
		// or a floor covers it): resending would be refused again. Not a
		// replication either.
		m.C.UpdatesRefused++
	default:
		m.peers[pi].acking, m.peers[pi].failed = true, false
		out = append(out, Action{Kind: ActAcked, Entry: binding.Entry{Home: a.Home, Key: a.Key, ID: p.id, Origin: p.origin}})
	}
	m.release(s)
	return out
}
