package agent

// DropReason says why a datagram got no answer at all. Every silently
// discarded packet is counted under exactly one reason, so an operator can
// tell "someone is sending us garbage" from "our config rejects them".
type DropReason uint8

const (
	DropTruncated   DropReason = iota // shorter than a registration request's fixed part
	DropNotRequest                    // first byte is not type 1
	DropUnknownExt                    // unrecognised extension of type 0..127 (RFC 5944 §1.9: discard)
	DropBadSource                     // source port 0 or a non-unicast source: nowhere to answer
	DropReplyTooBig                   // the reply could not be encoded (a bug; never expected)
	DropOversize                      // datagram larger than the receive buffer (no request is that long)
	DropNotActive                     // standby or passive in the redundancy group: the active member answers
	numDropReasons
)

var dropNames = [numDropReasons]string{
	DropTruncated:   "truncated",
	DropNotRequest:  "not-a-request",
	DropUnknownExt:  "unknown-critical-extension",
	DropBadSource:   "bad-source",
	DropReplyTooBig: "reply-too-big",
	DropOversize:    "oversize",
	DropNotActive:   "not-active",
}

func (d DropReason) String() string {
	if d < numDropReasons {
		return dropNames[d]
	}
	return "unknown"
}

// Stats are the registration path's counters. They are plain integers owned
// by the agent's single owner goroutine; the console gets a copy.
type Stats struct {
	Requests        uint64 // datagrams received on the registration port
	Replies         uint64 // replies produced
	Codes           [256]uint64
	Drops           [numDropReasons]uint64
	Registrations   uint64 // new bindings
	Renewals        uint64 // accepted re-registrations of an existing binding
	Deregistrations uint64 // accepted de-registrations
	Duplicates      uint64 // exact retransmissions answered again without a table change
	Expired         uint64 // bindings whose lifetime ran out
	Cleared         uint64 // bindings removed by the operator
	Revoked         uint64 // bindings removed because a reload took their node's authorization away
	Withdrawn       uint64 // bindings the kernel refused: not written, the node answered 130 (or 139)
	SendErrors      uint64 // replies the kernel refused to send
}
