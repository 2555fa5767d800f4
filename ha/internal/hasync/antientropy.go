package hasync

import (
	"net/netip"

	"github.com/hagent/hagent/ha/internal/binding"
)

// Anti-entropy (spec §5.5): periodic digests of the table, and the repair
// of the buckets that differ.

func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// EntryHash and Bucket are the digest functions of spec §4.8.
func EntryHash(home, origin uint32, id uint64, tomb bool) uint64 {
	d := uint64(0)
	if tomb {
		d = 1
	}
	return mix(mix(mix(uint64(home)<<32|uint64(origin))^id) ^ d)
}

// Bucket is the digest bucket of a home address.
func Bucket(home uint32) int { return int(mix(uint64(home)) >> 57) }

func (m *Machine) computeDigest(now int64, d *Digest) {
	*d = Digest{}
	guard := int64(m.cfg.DigestGuard)
	m.tab.Range(func(e *binding.Entry) bool {
		if e.Expires-now < guard {
			return true
		}
		t := e.Tombstone()
		d.Buckets[digestBucket(e)] ^= entryHash(e)
		if t {
			d.Tombs++
		} else {
			d.Live++
		}
		return true
	})
	if m.init {
		d.Flags |= DigestInit
	}
}

func (m *Machine) sendDigest(now int64, out []Action, to netip.Addr, flags uint8) []Action {
	m.computeDigest(now, &m.digest)
	m.digest.Flags |= flags
	start := m.begin(TypeDigest)
	m.arena, _ = m.digest.AppendBinary(m.arena)
	out, n := m.finish(out, start, to)
	m.C.DigestsSent += uint64(n)
	return out
}

func (m *Machine) sendDigests(now int64, out []Action) []Action {
	if !m.init {
		return out
	}
	if now >= m.nextDigest {
		m.rng ^= m.rng << 13
		m.rng ^= m.rng >> 7
		m.rng ^= m.rng << 17
		jitter := int64(m.rng % uint64(m.cfg.DigestPeriod/10+1))
		m.nextDigest = now + int64(m.cfg.DigestPeriod) + jitter
		// Sent even when no peer is known: the digest is also the hello
		// by which members that missed each other's start find each other.
		out = m.sendDigest(now, out, netip.Addr{}, 0)
		for i := range m.peers {
			m.peers[i].needDigest = false
		}
	}
	for i := range m.peers {
		p := &m.peers[i]
		if p.needDigest && p.up && now-p.digestAt >= m.resyncDigestGap() {
			p.needDigest, p.digestAt = false, now
			out = m.sendDigest(now, out, p.addr, 0)
		}
	}
	return out
}

func (m *Machine) onDigest(now int64, pi int, out []Action) []Action {
	d := &m.rxDigest
	p := &m.peers[pi]
	m.C.DigestsReceived++
	p.init = d.Flags&DigestInit != 0
	if !m.init || !p.init {
		return out
	}
	m.computeDigest(now, &m.digest)
	var diff [DigestBuckets / 64]uint64
	any := false
	for i := range d.Buckets {
		if d.Buckets[i] != m.digest.Buckets[i] {
			diff[i/64] |= 1 << (i % 64)
			any = true
		}
	}
	if !any {
		p.inSync = true
		return out
	}
	p.inSync = false
	m.C.DigestMismatches++
	out = m.repair(now, pi, &diff, out)
	if d.Flags&DigestAnswer == 0 {
		out = m.sendDigest(now, out, p.addr, DigestAnswer)
	}
	return out
}

// repair pushes this member's entries in the differing buckets to peer pi.
func (m *Machine) repair(now int64, pi int, diff *[DigestBuckets / 64]uint64, out []Action) []Action {
	to := m.peers[pi].addr
	start, n, chunks, room := -1, uint16(0), 0, ReplyRoom
	flush := func() {
		if start < 0 {
			return
		}
		be.PutUint16(m.arena[start+HeaderLen+2:], n)
		out, _ = m.finish(out, start, to)
		m.C.RepairsSent++
		chunks++
		start, n, room = -1, 0, ReplyRoom
	}
	push := func(e *binding.Entry) bool {
		b := digestBucket(e)
		if diff[b/64]&(1<<(b%64)) == 0 {
			return true
		}
		if start < 0 {
			start = m.begin(TypeTableReply)
			rep := TableReply{Code: ReplyRepair}
			m.arena = rep.AppendHeader(m.arena)
		}
		m.recordOf(e, now, &m.rec)
		m.arena = AppendExt(m.arena, &m.rec)
		room -= ExtSize(&m.rec)
		n++
		// A chunk holds what fits one datagram: 39 plain bindings, or
		// until the longest record could no longer follow.
		if n == MaxBindPerReply || room < 4+MaxKnownRecord {
			flush()
		}
		return chunks < m.cfg.MaxRepair
	}
	// Resume where the previous repair stopped, wrapping around: a peer
	// that differs in more entries than one repair carries gets the rest
	// next time, not the same first ones again (with every bucket
	// differing, it would never get the others). Entries past the resume
	// point may go twice in one repair: merging is idempotent.
	from := m.repairNext
	m.repairNext = m.tab.RangeFrom(from, push)
	if m.repairNext == 0 && from > 1 && chunks < m.cfg.MaxRepair {
		m.repairNext = m.tab.RangeFrom(0, push)
	}
	flush()
	return out
}

// resyncDigestGap is the least time between two digests sent to one peer
// alone (a resync): a peer that never acknowledges, marked for resync by
// every update, costs at most one digest per gap, not one per update.
func (m *Machine) resyncDigestGap() int64 { return int64(m.cfg.DigestPeriod) / 10 }
