package hasync

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"hash"
)

// Key is one group key. Every member holds the same set; SendKey in Config
// selects the one used to send, all of them are accepted on receipt (so keys
// can be rolled over member by member).
type Key struct {
	ID     uint8
	Secret []byte // at least 16 bytes
}

// Keyring authenticates group messages with HMAC-SHA-256 truncated to 128
// bits. It is owned by one goroutine; Seal and Open allocate nothing.
type Keyring struct {
	send int // index into macs
	ids  []uint8
	macs []hash.Hash
	sum  [sha256.Size]byte
}

// NewKeyring builds a keyring; sendID must be one of keys.
func NewKeyring(keys []Key, sendID uint8) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("hasync: no group key configured: set at least one key (id, secret of 16+ bytes) on every member")
	}
	k := &Keyring{send: -1}
	for _, key := range keys {
		if len(key.Secret) < 16 {
			return nil, fmt.Errorf("hasync: group key %d: secret is %d bytes, need at least 16", key.ID, len(key.Secret))
		}
		for _, id := range k.ids {
			if id == key.ID {
				return nil, fmt.Errorf("hasync: group key id %d configured twice", key.ID)
			}
		}
		if key.ID == sendID {
			k.send = len(k.ids)
		}
		k.ids = append(k.ids, key.ID)
		k.macs = append(k.macs, hmac.New(sha256.New, key.Secret))
	}
	if k.send < 0 {
		return nil, fmt.Errorf("hasync: send key id %d is not among the configured group keys", sendID)
	}
	return k, nil
}

// SendID is the key id Seal uses.
func (k *Keyring) SendID() uint8 { return k.ids[k.send] }

// Seal finishes the message that starts at b[start:] (header with any Length
// and key id, then the body): it writes the key id and the total Length into
// the header and appends the ICV.
func (k *Keyring) Seal(b []byte, start int) ([]byte, error) {
	n := len(b) - start + ICVLen
	if n > MaxDatagram || len(b)-start < HeaderLen {
		return b, ErrTooLong
	}
	m := b[start:]
	m[4] = k.ids[k.send]
	be.PutUint16(m[2:], uint16(n))
	h := k.macs[k.send]
	h.Reset()
	h.Write(m)
	s := h.Sum(k.sum[:0])
	return append(b, s[:ICVLen]...), nil
}

// Open checks the ICV of the whole message b (its header's key id selects
// the key). It does not parse the header beyond the key id.
func (k *Keyring) Open(b []byte) error {
	if len(b) < HeaderLen+ICVLen {
		return ErrTruncated
	}
	i := k.index(b[4])
	if i < 0 {
		return ErrUnknownKey
	}
	h := k.macs[i]
	h.Reset()
	h.Write(b[:len(b)-ICVLen])
	s := h.Sum(k.sum[:0])
	if subtle.ConstantTimeCompare(s[:ICVLen], b[len(b)-ICVLen:]) != 1 {
		return ErrAuth
	}
	return nil
}

func (k *Keyring) index(id uint8) int {
	for i, x := range k.ids {
		if x == id {
			return i
		}
	}
	return -1
}

// ReplayWindow is the anti-replay state of one peer (spec §3 step 6): its
// proven session and a 64-message sliding window over that session's
// sequence numbers. Sequence numbers compare in serial-number arithmetic
// (RFC 1982, 32 bits): a sender that starts near 0xffffffff keeps being
// heard after the wrap. A message of any other session is not fresh here:
// the session must be proven first (spec §3.1), so a replay from an
// earlier session can never displace the live one.
type ReplayWindow struct {
	Session uint32 // proven session, 0: none yet
	Top     uint32 // highest sequence accepted in Session
	Bits    uint64 // bit i set: Top-i seen
	From    uint32 // the sequence of the Response that proved Session
	// Old is a Top of at least the late limit ago (Age): a sequence behind
	// it was passed by a later one of the same sender that long ago. Mark
	// is the Top taken at MarkAt, the next Old.
	Old, Mark uint32
	MarkAt    int64
	// Anchor is the sequence of the latest Response of Session that
	// echoed a nonce of ours, AnchorAt when that nonce was first sent:
	// every sequence after Anchor was sent after AnchorAt. Prev and
	// PrevAt are the anchor before it, and Floor the sequence a fresh one
	// must be after: Prev while PrevAt is recent (Age), else Anchor.
	Anchor, Prev     uint32
	AnchorAt, PrevAt int64
	Floor            uint32
}

// ahead reports whether seq is after top in serial-number arithmetic:
// (seq - top) mod 2^32 in 1 .. 2^31-1.
func ahead(seq, top uint32) bool {
	d := seq - top
	return d != 0 && d < 1<<31
}

// Check reports whether (session, seq) is fresh in the proven session,
// without recording it.
func (w *ReplayWindow) Check(session, seq uint32) bool {
	if session == 0 || session != w.Session {
		return false
	}
	if ahead(seq, w.Top) {
		return true
	}
	d := w.Top - seq
	return d < 64 && w.Bits&(1<<d) == 0 && !ahead(w.Old, seq) && ahead(seq, w.Floor)
}

// Age moves the window's marks to now: a sequence passed by a later one
// of the sender at least late ago (late: a bound on benign reordering) is
// no longer fresh, unseen or not. Without it an unseen sequence stays
// fresh until 64 later ones have arrived, which a sender that says
// little, or an attacker who delays what it says and lets one message
// through now and then, can stretch beyond a tombstone's lifetime: a
// Binding Update withheld that long would bring back the binding a later
// de-registration removed. With it, an accepted message arrives at most
// about 2 × late plus the longest gap between the sender's messages after
// a later one of its sender (spec §3 step 6).
//
// Age also moves Floor: a sequence at or before the latest anchor is
// fresh only while the anchor before it is recent, since it may have been
// sent before that anchor's challenge only.
func (w *ReplayWindow) Age(now, late int64) {
	if now-w.MarkAt >= late {
		w.Old, w.Mark, w.MarkAt = w.Mark, w.Top, now
	}
	w.Floor = w.Prev
	if now-w.PrevAt > late {
		w.Floor = w.Anchor
	}
}

// Recent records that seq, a Response accepted in the proven session,
// echoes a nonce first sent at asked: every later sequence of the session
// was sent after asked. A receiver that accepts a sequence only while the
// anchor it follows is at most a late limit old (Machine.lapsed, Age)
// accepts nothing sent longer ago than that, however the path delayed
// it, without a clock shared with the sender.
func (w *ReplayWindow) Recent(seq uint32, asked int64) {
	w.Prev, w.PrevAt = w.Anchor, w.AnchorAt
	w.Anchor, w.AnchorAt = seq, asked
}

// Accept records seq in the proven session; call it only after Check,
// authentication and parsing succeeded.
func (w *ReplayWindow) Accept(seq uint32) {
	if ahead(seq, w.Top) {
		d := seq - w.Top
		if d >= 64 {
			w.Bits = 0
		} else {
			w.Bits <<= d
		}
		w.Bits |= 1
		w.Top = seq
		return
	}
	w.Bits |= 1 << (w.Top - seq)
}

// Prove makes session the peer's proven session, seq its first accepted
// sequence (the Session Response that proved it). Any earlier session is
// forgotten: its messages fail Check like every unproven one. So is what
// the session sent before the Response: only the Response is known to be
// recent (it echoes a fresh nonce), and a message sent before it, however
// long ago, may have been held back on the path. When the same session is
// proven again after a silence (spec §3.1 rule 5), this is what keeps a
// copy withheld since before the silence from being accepted after it.
func (w *ReplayWindow) Prove(session, seq uint32, now int64) {
	w.Session, w.Top, w.Bits, w.From = session, seq, ^uint64(0), seq
	w.Old, w.Mark, w.MarkAt = seq, seq, now
	w.Anchor, w.Prev, w.Floor = seq, seq, seq
	w.AnchorAt, w.PrevAt = now, now
}

// Stale reports whether seq, refused by Check, is within the window and
// late rather than a duplicate: sent before the Response that proved the
// session, or unseen and passed by a later sequence too long ago (Age).
func (w *ReplayWindow) Stale(seq uint32) bool {
	d := w.Top - seq
	if ahead(seq, w.Top) || d >= 64 {
		return false
	}
	return ahead(w.From, seq) || (w.Bits&(1<<d) == 0 && (ahead(w.Old, seq) || !ahead(seq, w.Floor)))
}

// SetKeys replaces the group keys while the machine runs (key rotation by
// SIGHUP): messages are sealed with send from now on and opened with any of
// keys. Per-peer replay windows are kept. On error nothing changes.
func (m *Machine) SetKeys(keys []Key, send uint8) error {
	kr, err := NewKeyring(keys, send)
	if err != nil {
		return err
	}
	m.keys = kr
	return nil
}

// SendKey is the id of the key messages are sealed with now.
func (m *Machine) SendKey() uint8 { return m.keys.ids[m.keys.send] }
