// Package hasync is the Home Agent redundancy group protocol (the seeds'
// claims and figures 10-14; normative text in docs/hasync-spec.md): the wire
// codecs of every group message, their authentication (HMAC-SHA-256-128 with
// a key id, per-peer replay window) and a pure state machine (Machine) that
// keeps the group's binding tables identical: binding updates with per-peer
// acknowledgement and retransmission, the start-up table download from one
// designated responder, the Home Agent list, and anti-entropy digests.
//
// The codecs allocate nothing; errors are package-level sentinels returned
// unwrapped so that the receive path can count them per reason.
package hasync

import (
	"encoding/binary"
	"errors"
)

// Transport defaults (spec §2). Both are configurable; every member of a
// group must use the same values.
const (
	DefaultPort  = 4343          // UDP port, source and destination
	DefaultGroup = "224.0.0.240" // link-local group: switches flood it, routers never forward it
	RequiredTTL  = 255           // IP TTL sent, and required on receipt (on-link proof, like VRRP)
	MaxDatagram  = 1500 - 20 - 8 // UDP payload that fits one 1500-byte Ethernet MTU
	Version      = 2             // protocol version in the common header (2: session challenge, spec §3.1)
)

// Message types (spec §4).
const (
	TypeBindingUpdate uint8 = 1  // fig. 10
	TypeUpdateAck     uint8 = 2  // fig. 11
	TypeTableRequest  uint8 = 3  // claims 9-11
	TypeHAList        uint8 = 4  // fig. 12
	TypeTableReply    uint8 = 5  // fig. 13
	TypeReplyAck      uint8 = 6  // fig. 14
	TypeDigest        uint8 = 7  // anti-entropy (beyond the patent)
	TypeLeave         uint8 = 8  // a member stopping cleanly: header only (beyond the patent)
	TypeChallenge     uint8 = 9  // "prove your session": a fresh nonce for one agent id (beyond the patent)
	TypeResponse      uint8 = 10 // the nonce echoed from the sender's current session (beyond the patent)
	TypeHeartbeat     uint8 = 11 // liveness, BFD-like (beyond the patent; heartbeat.go)
)

// Sizes (spec §3, §4).
const (
	HeaderLen    = 20
	ICVLen       = 16                             // HMAC-SHA-256 truncated to 128 bits (RFC 4868 style)
	RecordLen    = 32                             // binding record's fixed part: body of a Binding Update, value of a binding extension
	ExtLen       = 4 + RecordLen                  // a binding extension whose record has no extensions
	UpdateLen    = HeaderLen + RecordLen + ICVLen // 68
	AckBodyLen   = 20
	AckLen       = HeaderLen + AckBodyLen + ICVLen // 56
	ReqFixedLen  = 8
	MaxExclude   = 8
	ListFixedLen = 12
	ListEntryLen = 12
	MaxHAs       = 100
	ReplyFixed   = 16
	// MaxBindPerReply is the most binding extensions a Table Reply carries so
	// that it fits one 1500-byte MTU: (1472-20-16-16)/36 = 39 plain ones
	// (records with extensions are longer: fewer fit, ReplyRoom).
	MaxBindPerReply = (MaxDatagram - HeaderLen - ReplyFixed - ICVLen) / ExtLen
	ReplyAckBody    = 16
	ReplyAckLen     = HeaderLen + ReplyAckBody + ICVLen // 52
	DigestBuckets   = 128
	DigestFixed     = 12
	DigestLen       = HeaderLen + DigestFixed + 8*DigestBuckets + ICVLen // 1072
)

// Record flags (byte 0 of a binding record).
const (
	RecDereg uint8 = 0x80 // de-registration: the record is a tombstone
)

// Binding extension type inside a Table Reply.
const ExtBinding uint8 = 1

// Update Ack codes (fig. 11).
const (
	AckAccepted   uint8 = 0   // stored, or already held this version
	AckSuperseded uint8 = 1   // receiver holds a newer version; nothing changed
	AckRefused    uint8 = 2   // not stored: the receiver's configuration does not admit the home address, or a floor covers the record
	AckTableFull  uint8 = 128 // receiver could not store it (live capacity reached)
)

// Table Reply codes (fig. 13).
const (
	ReplyOK             uint8 = 0 // a chunk of the download
	ReplyNotInitialized uint8 = 1 // claim 22: my table is not initialized from the group
	ReplyRepair         uint8 = 2 // anti-entropy push, unsolicited, never acknowledged
	ReplyBusy           uint8 = 3 // responder serves too many downloads: ask the next one
)

// Reply Ack codes (fig. 14).
const (
	ReplyAckOK    uint8 = 0
	ReplyAckAbort uint8 = 1 // requester abandons this download: stop sending
)

// HA list entry and digest flags.
const (
	HAInitialized uint8 = 0x80 // member's table is initialized from the group
	HAAlive       uint8 = 0x40 // responder heard it within the dead interval (or it is the responder)
	DigestInit    uint8 = 0x80 // sender is initialized
	DigestAnswer  uint8 = 0x40 // this digest answers one: do not answer back
)

// Wire errors. Returned unwrapped; compare with == or errors.Is.
var (
	ErrTruncated  = errors.New("hasync: message truncated (shorter than its header, fixed part or declared length)")
	ErrVersion    = errors.New("hasync: unsupported protocol version (members must run the same protocol version)")
	ErrLength     = errors.New("hasync: length field does not match the datagram or the message type")
	ErrType       = errors.New("hasync: unknown or unexpected message type")
	ErrMalformed  = errors.New("hasync: malformed field (count, extension, reserved flag or address)")
	ErrUnknownKey = errors.New("hasync: unknown key id: configure the same group keys on every member")
	ErrAuth       = errors.New("hasync: authentication failed (wrong key or forged/corrupted message)")
	ErrReplay     = errors.New("hasync: replayed or too old sequence number")
	ErrTooLong    = errors.New("hasync: message would exceed one MTU (too many entries)")
)

var be = binary.BigEndian

// Header is the common header of every group message (spec §3).
//
//	0      Version
//	1      Type
//	2..3   Length (whole message, header + body + ICV)
//	4      Key ID
//	5      Flags (reserved, 0)
//	6..7   Reserved (0)
//	8..11  Sender agent id
//	12..15 Session (sender's random per-boot value, never 0)
//	16..19 Sequence (per session, +1 for every message sent)
type Header struct {
	Version uint8
	Type    uint8
	Length  uint16
	KeyID   uint8
	Flags   uint8
	Sender  uint32
	Session uint32
	Seq     uint32
}

// AppendBinary appends the 20-byte header. Length may be 0 here: Seal fills
// it in.
func (h *Header) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, h.Version, h.Type)
	b = be.AppendUint16(b, h.Length)
	b = append(b, h.KeyID, h.Flags, 0, 0)
	b = be.AppendUint32(b, h.Sender)
	b = be.AppendUint32(b, h.Session)
	b = be.AppendUint32(b, h.Seq)
	return b, nil
}

// UnmarshalBinary parses the header of a whole message b (including its ICV)
// and checks version and length against len(b); it does not authenticate.
func (h *Header) UnmarshalBinary(b []byte) error {
	if len(b) < HeaderLen+ICVLen {
		return ErrTruncated
	}
	h.Version, h.Type = b[0], b[1]
	h.Length = be.Uint16(b[2:])
	h.KeyID, h.Flags = b[4], b[5]
	h.Sender = be.Uint32(b[8:])
	h.Session = be.Uint32(b[12:])
	h.Seq = be.Uint32(b[16:])
	if h.Version != Version {
		return ErrVersion
	}
	if int(h.Length) != len(b) {
		if int(h.Length) > len(b) {
			return ErrTruncated
		}
		return ErrLength
	}
	return nil
}

// Body returns the body of a whole message (between header and ICV). b must
// have passed Header.UnmarshalBinary.
func Body(b []byte) []byte { return b[HeaderLen : len(b)-ICVLen] }

// Record is a binding as it travels: the body of a Binding Update (fig. 10,
// extended with the version the convergent map needs) and the value of a
// binding extension in a Table Reply (fig. 13).
//
//	0      Flags (0x80 D: de-registration / tombstone)
//	1      MN flags (the registration's S B D M G r T x byte)
//	2..3   Granted lifetime, seconds (0 for a de-registration)
//	4..7   Remaining lifetime, milliseconds (tombstone: time to purge)
//	8..11  Home address
//	12..15 Home agent (address the registration was accepted on)
//	16..19 Care-of address
//	20..27 Identification (the mobile node's registration Identification: the write's version)
//	28..31 Origin agent id (tie-break of the version)
//	32..   record extensions, type-length-value (recext.go): the NAT
//	       endpoint, the mobile networks; none for a plain binding
type Record struct {
	Flags     uint8
	MNFlags   uint8
	Granted   uint16
	Remaining uint32 // ms
	Home      uint32
	HomeAgent uint32
	CareOf    uint32
	ID        uint64
	Origin    uint32

	// Extensions. The endpoint is sent when any of its fields is set, the
	// networks when Nets > 0.
	NATAddr uint32 // the NAT endpoint: address the registration came from
	NATPort uint16 // its UDP source port
	Encap   uint8  // binding.Encap
	Nets    uint8  // networks in NetAddr/NetBits, at most MaxRecPrefixes
	NetAddr [MaxRecPrefixes]uint32
	NetBits [MaxRecPrefixes]uint8
	// A fleet router's binding (a shared home address): its NAI, and the
	// key the table knows it by (binding.FleetKey of the NAI, computed on
	// receipt, never sent). NAILen 0: the home address alone names the
	// binding.
	NAILen uint8
	NAI    [MaxRecNAI]byte
	Key    uint64
	// Unknown is the first extension type received that this member does
	// not know and must understand (RecExtMust), 0 if none: such a record
	// is refused, not stored.
	Unknown uint8
}

// Dereg reports whether r is a de-registration (tombstone).
func (r *Record) Dereg() bool { return r.Flags&RecDereg != 0 }

// AppendBinary appends the record: 32 bytes, then its extensions.
func (r *Record) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, r.Flags, r.MNFlags)
	b = be.AppendUint16(b, r.Granted)
	b = be.AppendUint32(b, r.Remaining)
	b = be.AppendUint32(b, r.Home)
	b = be.AppendUint32(b, r.HomeAgent)
	b = be.AppendUint32(b, r.CareOf)
	b = be.AppendUint64(b, r.ID)
	b = be.AppendUint32(b, r.Origin)
	return r.appendExts(b), nil
}

// UnmarshalBinary parses exactly one record: the 32 fixed bytes and the
// extensions that fill the rest of b.
func (r *Record) UnmarshalBinary(b []byte) error {
	if len(b) < RecordLen {
		return ErrTruncated
	}
	if len(b) > MaxRecordLen {
		return ErrLength
	}
	r.Flags, r.MNFlags = b[0], b[1]
	if r.Flags&^RecDereg != 0 {
		return ErrMalformed
	}
	r.Granted = be.Uint16(b[2:])
	r.Remaining = be.Uint32(b[4:])
	r.Home = be.Uint32(b[8:])
	r.HomeAgent = be.Uint32(b[12:])
	r.CareOf = be.Uint32(b[16:])
	r.ID = be.Uint64(b[20:])
	r.Origin = be.Uint32(b[28:])
	if r.Home == 0 {
		return ErrMalformed
	}
	return r.parseExts(b[RecordLen:])
}

// UpdateAck is the body of a Binding Update Acknowledgement (fig. 11).
//
//	0      Code
//	1..3   Reserved (0)
//	4..7   Home address
//	8..15  Identification (of the update acknowledged)
//	16..19 Origin agent id (of the update acknowledged)
type UpdateAck struct {
	Code   uint8
	Home   uint32
	ID     uint64
	Origin uint32
	// Key: the acknowledged record names a fleet router's binding (its
	// RecExtNAI): binding.FleetKey of that NAI, sent after the 20 bytes
	// (spec §4.3). 0: an ordinary binding, the 20-byte body.
	Key uint64
}

// AppendBinary appends the 20-byte body, 28 bytes with a Key.
func (a *UpdateAck) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, a.Code, 0, 0, 0)
	b = be.AppendUint32(b, a.Home)
	b = be.AppendUint64(b, a.ID)
	b = be.AppendUint32(b, a.Origin)
	if a.Key != 0 {
		b = be.AppendUint64(b, a.Key)
	}
	return b, nil
}

// UnmarshalBinary parses exactly one body: 20 bytes, or 28 with a Key
// (a key of 0 is malformed: that is the 20-byte body).
func (a *UpdateAck) UnmarshalBinary(b []byte) error {
	if len(b) < AckBodyLen {
		return ErrTruncated
	}
	if len(b) != AckBodyLen && len(b) != AckBodyLen+8 {
		return ErrLength
	}
	a.Code = b[0]
	a.Home = be.Uint32(b[4:])
	a.ID = be.Uint64(b[8:])
	a.Origin = be.Uint32(b[16:])
	a.Key = 0
	if len(b) > AckBodyLen {
		if a.Key = be.Uint64(b[20:]); a.Key == 0 {
			return ErrMalformed
		}
	}
	return nil
}

// TableRequest is the body of a Binding Table Request (claims 9-11). The
// requester's agent id is the header's Sender.
//
//	0      Attempt (0 first, +1 per retry: selects the designated responder)
//	1      NumExclude (0..8)
//	2..3   Reserved (0)
//	4..7   Identification (the requester's download id, echoed by replies)
//	8..    NumExclude × 4: agent ids that must not answer (stalled responders)
type TableRequest struct {
	Attempt    uint8
	NumExclude uint8
	ID         uint32
	Exclude    [MaxExclude]uint32
}

// AppendBinary appends the body.
func (r *TableRequest) AppendBinary(b []byte) ([]byte, error) {
	if r.NumExclude > MaxExclude {
		return b, ErrMalformed
	}
	b = append(b, r.Attempt, r.NumExclude, 0, 0)
	b = be.AppendUint32(b, r.ID)
	for _, x := range r.Exclude[:r.NumExclude] {
		b = be.AppendUint32(b, x)
	}
	return b, nil
}

// UnmarshalBinary parses the body.
func (r *TableRequest) UnmarshalBinary(b []byte) error {
	if len(b) < ReqFixedLen {
		return ErrTruncated
	}
	r.Attempt, r.NumExclude = b[0], b[1]
	r.ID = be.Uint32(b[4:])
	if r.NumExclude > MaxExclude {
		return ErrMalformed
	}
	if len(b) != ReqFixedLen+4*int(r.NumExclude) {
		if len(b) < ReqFixedLen+4*int(r.NumExclude) {
			return ErrTruncated
		}
		return ErrLength
	}
	r.Exclude = [MaxExclude]uint32{}
	for i := range int(r.NumExclude) {
		r.Exclude[i] = be.Uint32(b[8+4*i:])
	}
	return nil
}

// Excludes reports whether id is in the request's exclude list.
func (r *TableRequest) Excludes(id uint32) bool {
	for _, x := range r.Exclude[:min(r.NumExclude, MaxExclude)] {
		if x == id {
			return true
		}
	}
	return false
}

// HAEntry is one member in a Home Agent list.
type HAEntry struct {
	Addr  uint32 // IPv4 address on the home LAN
	ID    uint32 // agent id
	Flags uint8  // HAInitialized, HAAlive
}

// HAList is the body of a Home Agent list message (fig. 12). It is chunk 0
// of a table download and is acknowledged by a Reply Ack with chunk 0.
//
//	0      NumHA (1..100)
//	1..3   Reserved (0)
//	4..7   Identification (of the Table Request answered)
//	8..11  MoreBind (number of Table Reply chunks that follow, 1..MoreBind)
//	12..   NumHA × 12: address(4), agent id(4), flags(1), reserved(3)
type HAList struct {
	NumHA    uint8
	ID       uint32
	MoreBind uint32
	HAs      [MaxHAs]HAEntry
}

// AppendBinary appends the body.
func (l *HAList) AppendBinary(b []byte) ([]byte, error) {
	if l.NumHA > MaxHAs {
		return b, ErrTooLong
	}
	b = append(b, l.NumHA, 0, 0, 0)
	b = be.AppendUint32(b, l.ID)
	b = be.AppendUint32(b, l.MoreBind)
	for i := range int(l.NumHA) {
		h := &l.HAs[i]
		b = be.AppendUint32(b, h.Addr)
		b = be.AppendUint32(b, h.ID)
		b = append(b, h.Flags, 0, 0, 0)
	}
	return b, nil
}

// UnmarshalBinary parses the body.
func (l *HAList) UnmarshalBinary(b []byte) error {
	if len(b) < ListFixedLen {
		return ErrTruncated
	}
	l.NumHA = b[0]
	l.ID = be.Uint32(b[4:])
	l.MoreBind = be.Uint32(b[8:])
	if l.NumHA > MaxHAs {
		return ErrMalformed
	}
	n := ListFixedLen + ListEntryLen*int(l.NumHA)
	if len(b) != n {
		if len(b) < n {
			return ErrTruncated
		}
		return ErrLength
	}
	for i := range int(l.NumHA) {
		p := b[ListFixedLen+ListEntryLen*i:]
		l.HAs[i] = HAEntry{Addr: be.Uint32(p), ID: be.Uint32(p[4:]), Flags: p[8]}
	}
	return nil
}

// TableReply is the body of a Binding Table Reply (fig. 13).
//
//	0      Code
//	1      Reserved (0)
//	2..3   NumBind (0..39)
//	4..7   MoreBind (chunks that follow this one; 0 = last)
//	8..11  Identification (of the Table Request answered; 0 for Repair)
//	12..15 Chunk (1-based position in the download; the HA list is chunk 0)
//	16..   NumBind binding extensions: type 1, length (2 + record length,
//	       34 for a record without extensions), reserved(2), record
//
// Bindings aliases the input after UnmarshalBinary; use Next (or Binding)
// to decode.
type TableReply struct {
	Code     uint8
	NumBind  uint16
	MoreBind uint32
	ID       uint32
	Chunk    uint32
	Bindings []byte // NumBind binding extensions, validated
}

// AppendHeader appends the fixed part of the body; the caller appends
// NumBind extensions with AppendExt.
func (r *TableReply) AppendHeader(b []byte) []byte {
	b = append(b, r.Code, 0)
	b = be.AppendUint16(b, r.NumBind)
	b = be.AppendUint32(b, r.MoreBind)
	b = be.AppendUint32(b, r.ID)
	return be.AppendUint32(b, r.Chunk)
}

// AppendExt appends one binding extension (ExtSize(rec) bytes).
func AppendExt(b []byte, rec *Record) []byte {
	b = append(b, ExtBinding, byte(2+rec.Len()), 0, 0)
	b, _ = rec.AppendBinary(b)
	return b
}

// AppendBinary appends the fixed part and the bindings in r.Bindings (raw
// extensions, as produced by AppendExt).
func (r *TableReply) AppendBinary(b []byte) ([]byte, error) {
	if r.NumBind > MaxBindPerReply || len(r.Bindings) > ReplyRoom {
		return b, ErrTooLong
	}
	if err := r.check(); err != nil {
		return b, err
	}
	b = r.AppendHeader(b)
	return append(b, r.Bindings...), nil
}

// UnmarshalBinary parses the body and validates every extension.
func (r *TableReply) UnmarshalBinary(b []byte) error {
	if len(b) < ReplyFixed {
		return ErrTruncated
	}
	r.Code = b[0]
	r.NumBind = be.Uint16(b[2:])
	r.MoreBind = be.Uint32(b[4:])
	r.ID = be.Uint32(b[8:])
	r.Chunk = be.Uint32(b[12:])
	if r.NumBind > MaxBindPerReply {
		return ErrMalformed
	}
	r.Bindings = b[ReplyFixed:]
	return r.check()
}

// check validates that Bindings holds exactly NumBind binding extensions.
func (r *TableReply) check() error {
	var rec Record
	off := 0
	for range int(r.NumBind) {
		var err error
		if off, err = r.Next(off, &rec); err != nil {
			return err
		}
	}
	if off != len(r.Bindings) {
		return ErrLength
	}
	return nil
}

// Next decodes the binding extension at offset off of Bindings into rec
// and returns the offset of the next one.
func (r *TableReply) Next(off int, rec *Record) (int, error) {
	if off < 0 || off+4 > len(r.Bindings) {
		return off, ErrTruncated
	}
	p := r.Bindings[off:]
	n := 2 + int(p[1])
	if p[0] != ExtBinding || n < ExtLen {
		return off, ErrMalformed
	}
	if n > len(p) {
		return off, ErrTruncated
	}
	return off + n, rec.UnmarshalBinary(p[4:n])
}

// Binding decodes binding extension i into rec (a walk from the first:
// use Next to decode them all).
func (r *TableReply) Binding(i int, rec *Record) error {
	off := 0
	for k := 0; k <= i; k++ {
		var err error
		if off, err = r.Next(off, rec); err != nil {
			return err
		}
	}
	return nil
}

// ReplyAck is the body of a Binding Table Reply Acknowledgement (fig. 14).
//
//	0      Code
//	1..3   Reserved (0)
//	4..7   MoreBind (echo of the chunk acknowledged)
//	8..11  Identification (of the download)
//	12..15 Chunk acknowledged (0 = the HA list)
type ReplyAck struct {
	Code     uint8
	MoreBind uint32
	ID       uint32
	Chunk    uint32
}

// AppendBinary appends the 16-byte body.
func (a *ReplyAck) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, a.Code, 0, 0, 0)
	b = be.AppendUint32(b, a.MoreBind)
	b = be.AppendUint32(b, a.ID)
	return be.AppendUint32(b, a.Chunk), nil
}

// UnmarshalBinary parses exactly one 16-byte body.
func (a *ReplyAck) UnmarshalBinary(b []byte) error {
	if len(b) < ReplyAckBody {
		return ErrTruncated
	}
	if len(b) != ReplyAckBody {
		return ErrLength
	}
	a.Code = b[0]
	a.MoreBind = be.Uint32(b[4:])
	a.ID = be.Uint32(b[8:])
	a.Chunk = be.Uint32(b[12:])
	return nil
}

// Digest is the body of an anti-entropy digest (spec §6).
//
//	0      Flags (0x80 I: sender initialized; 0x40 A: answer, do not answer back)
//	1      Log2 of the bucket count (7)
//	2..3   Reserved (0)
//	4..7   Live bindings counted
//	8..11  Tombstones counted
//	12..   128 × 8: XOR of the 64-bit entry hashes of each bucket
type Digest struct {
	Flags   uint8
	Live    uint32
	Tombs   uint32
	Buckets [DigestBuckets]uint64
}

// AppendBinary appends the 1036-byte body.
func (d *Digest) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, d.Flags, 7, 0, 0)
	b = be.AppendUint32(b, d.Live)
	b = be.AppendUint32(b, d.Tombs)
	for _, h := range d.Buckets {
		b = be.AppendUint64(b, h)
	}
	return b, nil
}

// UnmarshalBinary parses exactly one body.
func (d *Digest) UnmarshalBinary(b []byte) error {
	if len(b) < DigestFixed+8*DigestBuckets {
		return ErrTruncated
	}
	if len(b) != DigestFixed+8*DigestBuckets {
		return ErrLength
	}
	if b[1] != 7 {
		return ErrMalformed
	}
	d.Flags = b[0]
	d.Live = be.Uint32(b[4:])
	d.Tombs = be.Uint32(b[8:])
	for i := range d.Buckets {
		d.Buckets[i] = be.Uint64(b[DigestFixed+8*i:])
	}
	return nil
}
