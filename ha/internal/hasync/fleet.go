package hasync

import (
	"net/netip"

	"github.com/hagent/hagent/ha/internal/binding"
)

// Fleets on a shared home address (spec §4.1.1, RecExtNAI): the routers of
// a fleet register with one home address, so a record names its binding by
// home address and NAI, and the table by home address and the NAI's key
// (binding.FleetKey). Every member computes the key from the NAI the
// record carries, so two members agree on which router a record is about;
// everything else (versions, merge, tombstones, floors, pending updates,
// digests) is per binding exactly as for a home address of its own.

// fleetKey is the table key of a binding named by nai: 0 without one.
func fleetKey(nai []byte) uint64 {
	if len(nai) == 0 {
		return 0
	}
	return binding.FleetKey(nai)
}

// setNAI names r's binding by nai (nil: by its home address alone).
func (r *Record) setNAI(nai []byte) {
	r.NAILen = uint8(copy(r.NAI[:], nai))
	r.Key = fleetKey(r.NAI[:r.NAILen])
}

// recordOf fills r from e, and with e's NAI when e is a fleet router's.
func (m *Machine) recordOf(e *binding.Entry, now int64, r *Record) {
	recordOf(e, now, r)
	if e.Key != 0 {
		r.setNAI(m.tab.NAIOf(e))
		// The key is the table's: a NAI truncated to MaxRecNAI (never,
		// the configuration refuses longer ones) still names this entry.
		r.Key = e.Key
	}
}

// digestBucket is the digest bucket of e: by home address, and for a fleet
// router's binding by home address and key, so that the routers of one
// shared address spread over the buckets as distinct homes do (a repair
// sends the bindings of the buckets that differ).
func digestBucket(e *binding.Entry) int {
	return Bucket(e.Home ^ uint32(e.Key) ^ uint32(e.Key>>32))
}

// entryHash is EntryHash of e, with the fleet key mixed in when not 0 (an
// ordinary binding hashes as it always did).
func entryHash(e *binding.Entry) uint64 {
	h := EntryHash(e.Home, e.Origin, e.ID, e.Tombstone())
	if e.Key != 0 {
		h = mix(h ^ e.Key)
	}
	return h
}

// noteKey records the fleet key of the entry just appended to s.keys. The
// keys are kept only once the table shows a fleet binding: a table without
// fleets is snapshotted in 4 bytes per binding as before.
func (s *serve) noteKey(key uint64) {
	if key == 0 && s.fkeys == nil {
		return
	}
	if s.fkeys == nil {
		s.fkeys = make([]uint64, len(s.keys)-1, cap(s.keys))
	}
	s.fkeys = append(s.fkeys, key)
}

// keyAt is the fleet key of snapshot entry i (0: an ordinary binding).
func (s *serve) keyAt(i int) uint64 {
	if i < len(s.fkeys) {
		return s.fkeys[i]
	}
	return 0
}

// admitFleet judges a record naming a fleet router (Config.AdmitNAI): its
// home address for that NAI, then, unless it is a de-registration, each
// network it claims. "" admits it.
func (m *Machine) admitFleet(r *Record) string {
	if m.cfg.AdmitNAI == nil {
		return ""
	}
	nai := r.NAI[:r.NAILen]
	if why := m.cfg.AdmitNAI(r.Home, nai, netip.Prefix{}); why != "" || r.Dereg() {
		return why
	}
	for i := range int(min(r.Nets, MaxRecPrefixes)) {
		if why := m.cfg.AdmitNAI(r.Home, nai, netip.PrefixFrom(binding.U32Addr(r.NetAddr[i]), int(r.NetBits[i]))); why != "" {
			return why
		}
	}
	return ""
}
