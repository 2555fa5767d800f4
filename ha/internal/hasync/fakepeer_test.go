package hasync

import (
	"net/netip"
	"testing"
)

// fakePeer is a group member driven by hand (a key holder, a replayer's
// victim): it seals whatever it is told to send in its session, and it
// answers the session challenges a Machine asks it.
type fakePeer struct {
	k                *Keyring
	id, session, seq uint32
}

func newFakePeer(t testing.TB, id, session uint32) *fakePeer {
	return &fakePeer{k: testKeyring(t), id: id, session: session}
}

// msg seals one message of type typ with body (nil: no body).
func (f *fakePeer) msg(typ uint8, body func([]byte) ([]byte, error)) []byte {
	f.seq++
	h := Header{Version: Version, Type: typ, Sender: f.id, Session: f.session, Seq: f.seq}
	b, _ := h.AppendBinary(nil)
	if body != nil {
		b, _ = body(b)
	}
	b, _ = f.k.Seal(b, 0)
	return b
}

func (f *fakePeer) update(r Record) []byte { return f.msg(TypeBindingUpdate, r.AppendBinary) }

// challengeIn returns the nonce of a challenge to f among out, 0 if none.
func (f *fakePeer) challengeIn(out []Action) uint64 {
	for _, a := range out {
		if (a.Kind == ActMulticast || a.Kind == ActUnicast) && a.Pkt[1] == TypeChallenge {
			var c Challenge
			if c.UnmarshalBinary(Body(a.Pkt)) == nil && c.Peer == f.id {
				return c.Nonce
			}
		}
	}
	return 0
}

// answer builds the response to a challenge of challenger with nonce.
func (f *fakePeer) answer(challenger uint32, nonce uint64) []byte {
	c := Challenge{Peer: challenger, Nonce: nonce}
	return f.msg(TypeResponse, c.AppendBinary)
}

// prove makes f's session the proven one at m: it sends a message m cannot
// accept yet, answers the challenge, and fails the test unless m then
// counts the session proven.
func (f *fakePeer) prove(t testing.TB, m *Machine, me uint32, now int64, src netip.Addr) {
	t.Helper()
	before := m.Counters().SessionsProven
	out := m.Receive(now, src, RequiredTTL, f.msg(TypeLeave, nil), nil)
	n := f.challengeIn(out)
	if n == 0 {
		// Asked recently: the challenge is outstanding, its nonce unknown
		// to this helper. Wait out the rate limit.
		now += int64(m.cfg.AckTimeout)
		out = m.Receive(now, src, RequiredTTL, f.msg(TypeLeave, nil), nil)
		if n = f.challengeIn(out); n == 0 {
			t.Fatalf("no challenge for agent %d: %+v", f.id, out)
		}
	}
	m.Receive(now, src, RequiredTTL, f.answer(me, n), nil)
	if m.Counters().SessionsProven != before+1 {
		t.Fatalf("session %d of agent %d not proven: %+v", f.session, f.id, m.Counters())
	}
}
