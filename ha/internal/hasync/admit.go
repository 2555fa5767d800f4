package hasync

import (
	"net/netip"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
)

// Reasons a received record is refused, for the log (constants: the check
// allocates nothing).
const (
	whyOwnAddr    = "home address is this member's own address"
	whyMemberAddr = "home address is a group member's address"
	whyMustKnow   = "record carries an extension this member does not know and must understand (upgrade it)"
)

// admit judges a record received from a peer (Binding Update, table
// download chunk, anti-entropy repair) against this member's own
// configuration before merge stores anything: a home address the agent
// would never bind itself (outside the home network, no configured node or
// pool holds it, the virtual address: Config.Admit), a group member's
// address, a network the home may not claim (Config.AdmitPrefix) or an
// extension this member cannot understand is refused, whichever version it carries, so that a key holder
// or a differently configured member cannot plant routes here. The one
// exception is a de-registration for a home the table holds: it only
// removes (a node revoked by a reload elsewhere first must still be
// removable here). A refused record is counted (RecordsRefused) and logged
// at most once per 10 s; it is not stored and not re-requested.
func (m *Machine) admit(now int64, r *Record, held bool) bool {
	if held && (r.Dereg() || r.Remaining == 0) {
		return true
	}
	why := ""
	switch {
	case r.Home == binding.AddrU32(m.cfg.Addr):
		why = whyOwnAddr
	case m.isMember(r.Home):
		why = whyMemberAddr
	case r.Unknown != 0:
		why = whyMustKnow
	case r.NAILen > 0:
		why = m.admitFleet(r)
	case m.cfg.Admit != nil:
		why = m.cfg.Admit(r.Home)
	}
	if why == "" && m.cfg.AdmitPrefix != nil && !r.Dereg() && r.NAILen == 0 {
		why = m.admitPrefixes(r)
	}
	if why == "" {
		return true
	}
	m.C.RecordsRefused++
	if m.refuseWarned == 0 || now-m.refuseWarned >= int64(10*time.Second) {
		m.refuseWarned = now
		m.log.Warn("hasync: refused a peer's binding record: not admitted by this member's configuration (check that every member has the same home network, nodes and pools)",
			"home", binding.U32Addr(r.Home), "why", why, "origin", r.Origin, "refused_total", m.C.RecordsRefused)
	}
	return false
}

// admitPrefixes asks AdmitPrefix about every network r claims: one the
// home may not claim refuses the whole record. Storing the binding without
// it would acknowledge a write this member does not hold, and after a
// failover here the router would lose a network without being told.
func (m *Machine) admitPrefixes(r *Record) string {
	for i := range int(min(r.Nets, MaxRecPrefixes)) {
		p := netip.PrefixFrom(binding.U32Addr(r.NetAddr[i]), int(r.NetBits[i]))
		if why := m.cfg.AdmitPrefix(r.Home, p); why != "" {
			return why
		}
	}
	return ""
}

// isMember reports whether home is the address of a known group member.
func (m *Machine) isMember(home uint32) bool {
	for i := range m.peers {
		if a := m.peers[i].addr; a.IsValid() && binding.AddrU32(a) == home {
			return true
		}
	}
	return false
}

// floored counts a live write refused because a folded tombstone's floor
// covers it (binding.Table.Covered) and says so at most once per 10 s:
// it happens only past the table's bound (more distinct homes within a
// tombstone period than capacity + tombstone capacity).
func (m *Machine) floored(now int64, home uint32, id uint64) {
	m.C.StaleByFloor++
	if m.floorWarned == 0 || now-m.floorWarned >= int64(10*time.Second) {
		m.floorWarned = now
		m.log.Warn("hasync: refused a live binding older than a tombstone folded for lack of room (more homes than capacity + tombstone_capacity within the tombstone lifetime)",
			"home", binding.U32Addr(home), "id", id, "refused_total", m.C.StaleByFloor)
	}
}
