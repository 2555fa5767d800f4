package hasync

// ChallengeBody is the body length of a Session Challenge and of a Session
// Response (spec §4.10, §4.11).
const ChallengeBody = 12

// Challenge is the body of a Session Challenge (type 9) and of a Session
// Response (type 10); they share one layout.
//
//	0..3   Agent id: in a Challenge the member asked to prove its session,
//	       in a Response the member that asked (the challenger)
//	4..11  Nonce (never 0)
type Challenge struct {
	Peer  uint32
	Nonce uint64
}

// AppendBinary appends the 12-byte body.
func (c *Challenge) AppendBinary(b []byte) ([]byte, error) {
	b = be.AppendUint32(b, c.Peer)
	return be.AppendUint64(b, c.Nonce), nil
}

// UnmarshalBinary parses exactly one 12-byte body.
func (c *Challenge) UnmarshalBinary(b []byte) error {
	if len(b) < ChallengeBody {
		return ErrTruncated
	}
	if len(b) != ChallengeBody {
		return ErrLength
	}
	c.Peer = be.Uint32(b)
	c.Nonce = be.Uint64(b[4:])
	if c.Peer == 0 || c.Nonce == 0 {
		return ErrMalformed
	}
	return nil
}
