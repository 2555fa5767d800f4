package hasync

import (
	"math"
	"net/netip"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
)

// Building, sealing and addressing the messages this member sends.

func (m *Machine) begin(typ uint8) int {
	start := len(m.arena)
	m.seq++
	h := Header{Version: Version, Type: typ, Sender: m.id, Session: m.cfg.Session, Seq: m.seq}
	m.arena, _ = h.AppendBinary(m.arena)
	return start
}

// finish seals the message at arena[start:] and emits it to the group
// (to invalid) or to one address. It returns the number of datagrams.
func (m *Machine) finish(out []Action, start int, to netip.Addr) ([]Action, int) {
	var err error
	m.arena, err = m.keys.Seal(m.arena, start)
	if err != nil { // a bug: every message is sized to fit
		m.log.Error("hasync: message too long, not sent", "err", err)
		m.arena = m.arena[:start]
		return out, 0
	}
	pkt := m.arena[start:len(m.arena):len(m.arena)]
	if to.IsValid() {
		return append(out, Action{Kind: ActUnicast, To: to, Pkt: pkt}), 1
	}
	if len(m.cfg.Peers) == 0 {
		return append(out, Action{Kind: ActMulticast, Pkt: pkt}), 1
	}
	for _, a := range m.cfg.Peers {
		out = append(out, Action{Kind: ActUnicast, To: a, Pkt: pkt})
	}
	return out, len(m.cfg.Peers)
}

func msOf(d int64) uint32 {
	if d <= 0 {
		return 0
	}
	d /= int64(time.Millisecond)
	if d > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(d)
}

func recordOf(e *binding.Entry, now int64, r *Record) {
	*r = Record{MNFlags: e.Flags, Granted: e.Granted, Remaining: msOf(e.Expires - now), Home: e.Home,
		HomeAgent: e.HomeAgent, CareOf: e.CareOf, ID: e.ID, Origin: e.Origin}
	if e.Tombstone() {
		// A tombstone's version is all a receiver needs: it withdraws what
		// its own live copy routed. The endpoint and networks the slot
		// may still hold are not sent.
		r.Flags = RecDereg
		r.Granted = 0
		return
	}
	r.NATAddr, r.NATPort, r.Encap = e.NATAddr, e.NATPort, uint8(e.Encap)
	for i := range min(e.NumPrefixes(), MaxRecPrefixes) {
		r.NetAddr[i], r.NetBits[i] = e.PrefixU32(i)
	}
	r.Nets = uint8(min(e.NumPrefixes(), MaxRecPrefixes))
}

// newer reports whether version a is larger than version b (spec §1).
func newer(aID uint64, aOrigin uint32, aTomb bool, bID uint64, bOrigin uint32, bTomb bool) bool {
	if aID != bID {
		return aID > bID
	}
	if aOrigin != bOrigin {
		return aOrigin > bOrigin
	}
	return aTomb && !bTomb
}
