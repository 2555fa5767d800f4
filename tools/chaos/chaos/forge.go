package chaos

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Forged group records: what a holder of the group key can send once it has
// proven a session of its own (spec §3.1) — the receiver's configuration is
// then the only thing between the forgery and its table. The record is
// written from docs/hasync-spec.md (§4.1 record, §4.2 Binding Update), not
// with the agents' code, so the tool also checks that the spec is enough to
// speak the protocol.

const typeUpdate = 1

// forgedRecord is one live binding record for home, as fake member sender
// would announce it.
func forgedRecord(sender uint32, home, careOf netip.Addr, id uint64) []byte {
	r := make([]byte, 32)
	binary.BigEndian.PutUint16(r[2:], 300)     // granted, s
	binary.BigEndian.PutUint32(r[4:], 300_000) // remaining, ms
	h4, c4, v4 := home.As4(), careOf.As4(), netip.MustParseAddr(vip).As4()
	copy(r[8:], h4[:])
	copy(r[12:], v4[:])
	copy(r[16:], c4[:])
	binary.BigEndian.PutUint64(r[20:], id)
	binary.BigEndian.PutUint32(r[28:], sender)
	return r
}

// provenForger starts the rogue host with one fake member and has it prove
// its session to every member (hello, challenge, response) before it
// forges anything: an unproven session's records would be dropped before
// the receiver's configuration is even asked.
func (r *run) provenForger() (*attacker, error) {
	a, err := r.startAttacker()
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.fakes = a.fakes[:1]
	a.fakeOn = true
	a.mu.Unlock()
	for range 3 {
		a.hello()
		time.Sleep(300 * time.Millisecond)
	}
	return a, nil
}

// sendForged has the proven fake member send one Binding Update per record.
func (a *attacker) sendForged(records [][]byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, rec := range records {
		a.toMembers(a.seal(&a.fakes[0], typeUpdate, rec))
	}
}

func (a *attacker) fakeID() uint32 { return a.fakes[0].id }
