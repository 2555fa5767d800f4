// Package advert implements Agent Discovery on the home link (RFC 5944 §2):
// the Agent Advertisement (an ICMP Router Advertisement, RFC 1256, carrying
// the Mobility Agent Advertisement Extension and optionally the
// Prefix-Lengths Extension), the Agent Solicitation, a pure Scheduler that
// decides when to advertise, and a Runner that does the socket I/O on the
// home interface. docs/advertise.md explains the choices.
package advert

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// ICMP types and codes (RFC 1256, RFC 5944 §2.1).
const (
	TypeAdvertisement = 9
	TypeSolicitation  = 10
	// CodeRouter: the agent also routes common traffic (the usual case for a
	// home agent that is the home link's router).
	CodeRouter = 0
	// CodeNotRouter (16): "does not route common traffic"; it still forwards
	// what registered mobile nodes send.
	CodeNotRouter = 16
)

// Extension types carried after the Router Advertisement (RFC 5944 §2.1).
const (
	ExtPadding       = 0  // One-byte Padding (§2.1.3): a lone type byte
	ExtMobilityAgent = 16 // Mobility Agent Advertisement (§2.1.1)
	ExtPrefixLengths = 19 // Prefix-Lengths (§2.1.2)
)

// Sizes and bounds. The arrays are fixed so that an Advertisement is a plain
// value: decoding and encoding never allocate.
const (
	raHeaderLen = 8 // type, code, checksum, num addrs, entry size, lifetime
	// SolicitationLen is the length of an Agent Solicitation (RFC 1256).
	SolicitationLen = 8
	// MaxRouters bounds the router addresses one Advertisement carries.
	MaxRouters = 8
	// MaxCareOf bounds the care-of addresses (only foreign agents list any).
	MaxCareOf = 8
	// MaxLen is the longest Advertisement this package writes or reads
	// in full: header, routers, mobility extension, prefix lengths, padding.
	MaxLen = raHeaderLen + 8*MaxRouters + 2 + 6 + 4*MaxCareOf + 2 + MaxRouters + 1
	// InfiniteLifetime in the registration lifetime field means "no limit".
	InfiniteLifetime = 0xffff
)

// Flags are the 16 bits after the registration lifetime of the Mobility
// Agent Advertisement Extension, in wire order R B H F M G r T U X I and
// five reserved bits.
type Flags uint16

const (
	FlagR Flags = 1 << (15 - iota) // registration required (foreign agents only)
	FlagB                          // busy (foreign agents only)
	FlagH                          // home agent
	FlagF                          // foreign agent
	FlagM                          // minimal encapsulation (RFC 2004) received
	FlagG                          // GRE encapsulation received
	Flagr                          // reserved "r", sent as zero (was V)
	FlagT                          // foreign agent supports reverse tunnelling (RFC 3024)
	FlagU                          // UDP tunnelling (RFC 3519)
	FlagX                          // registration revocation (RFC 3543)
	FlagI                          // regional registration (RFC 4857)
)

// flagsReserved are the low five bits: sent as zero, ignored on receipt.
const flagsReserved Flags = 0x1f

// String lists the set flags by letter, "H G" style, for `hactl show agent`.
func (f Flags) String() string {
	const letters = "RBHFMGrTUXI"
	var b [2 * len(letters)]byte
	n := 0
	for i := range len(letters) {
		if f&(1<<(15-i)) != 0 {
			if n > 0 {
				b[n] = ' '
				n++
			}
			b[n] = letters[i]
			n++
		}
	}
	if n == 0 {
		return "-"
	}
	return string(b[:n])
}

// RouterAddr is one entry of the Router Advertisement's address list.
type RouterAddr struct {
	Addr       netip.Addr
	Preference int32 // RFC 1256 preference level; higher is preferred
}

// Advertisement is an Agent Advertisement: ICMP Router Advertisement plus
// the Mobility Agent Advertisement Extension, the optional Prefix-Lengths
// Extension and the optional One-byte Padding.
type Advertisement struct {
	Code uint8
	// Lifetime (seconds) is the ICMP Router Advertisement lifetime: how long
	// nodes may consider this agent present without a further advertisement.
	// 0 withdraws the agent.
	Lifetime   uint16
	NumRouters int
	Routers    [MaxRouters]RouterAddr

	Sequence uint16 // §2.3.2
	// RegLifetime is the longest registration lifetime (seconds) the agent
	// accepts; InfiniteLifetime means no limit. Unrelated to Lifetime.
	RegLifetime uint16
	Flags       Flags
	NumCareOf   int
	CareOf      [MaxCareOf]netip.Addr

	// PrefixLengths adds the Prefix-Lengths Extension: Prefix[i] is the
	// prefix length of Routers[i] (a node uses it to tell whether it moved).
	PrefixLengths bool
	Prefix        [MaxRouters]uint8

	// Padded reports (after UnmarshalBinary) that a One-byte Padding
	// Extension was present. AppendBinary ignores it: it pads exactly when
	// the ICMP length would otherwise be odd (§2.1.3).
	Padded bool
}

// Errors, one per reason, so that the runner counts drops by reason without
// allocating. They say what was wrong; the runner's counters say where.
var (
	ErrShort       = errors.New("advert: ICMP message truncated")
	ErrType        = errors.New("advert: wrong ICMP type (want 9 for an advertisement, 10 for a solicitation)")
	ErrCode        = errors.New("advert: ICMP code not allowed (advertisement: 0 or 16; solicitation: 0)")
	ErrChecksum    = errors.New("advert: ICMP checksum mismatch (corrupted or truncated packet)")
	ErrEntrySize   = errors.New("advert: router address entry size below 2 words (RFC 1256)")
	ErrTooMany     = errors.New("advert: more router or care-of addresses than this implementation carries (8 each)")
	ErrExtension   = errors.New("advert: extension length runs past the end of the message")
	ErrNoMobility  = errors.New("advert: no Mobility Agent Advertisement Extension (a plain router advertisement, not an agent)")
	ErrDuplicate   = errors.New("advert: extension appears twice")
	ErrMobilityLen = errors.New("advert: Mobility Agent Advertisement Extension length not 6 + 4×N")
	ErrPrefixLen   = errors.New("advert: Prefix-Lengths Extension count differs from the number of router addresses, or a length exceeds 32")
	ErrUnknownExt  = errors.New("advert: unknown extension type below 128 (RFC 5944 §1.9: discard the whole advertisement)")
	ErrNotIPv4     = errors.New("advert: address is not IPv4")
	ErrFlags       = errors.New("advert: flags inconsistent (B or R without F, or neither H nor F; RFC 5944 §2.1.1)")
)

// Len is the encoded length, padding included.
func (a *Advertisement) Len() int {
	n := raHeaderLen + 8*a.NumRouters + 2 + 6 + 4*a.NumCareOf
	if a.PrefixLengths {
		n += 2 + a.NumRouters
	}
	return n + n&1
}

// AppendBinary appends the advertisement, checksum included, to b. It
// allocates nothing when b has room for Len() more bytes.
func (a *Advertisement) AppendBinary(b []byte) ([]byte, error) {
	if a.NumRouters < 0 || a.NumRouters > MaxRouters || a.NumCareOf < 0 || a.NumCareOf > MaxCareOf {
		return b, ErrTooMany
	}
	if a.Code != CodeRouter && a.Code != CodeNotRouter {
		return b, ErrCode
	}
	for i := range a.NumRouters {
		if !a.Routers[i].Addr.Is4() {
			return b, ErrNotIPv4
		}
		if a.PrefixLengths && a.Prefix[i] > 32 {
			return b, ErrPrefixLen
		}
	}
	for i := range a.NumCareOf {
		if !a.CareOf[i].Is4() {
			return b, ErrNotIPv4
		}
	}
	if err := a.Flags.check(); err != nil {
		return b, err
	}
	start := len(b)
	b = append(b, TypeAdvertisement, a.Code, 0, 0, uint8(a.NumRouters), 2)
	b = binary.BigEndian.AppendUint16(b, a.Lifetime)
	for i := range a.NumRouters {
		r := &a.Routers[i]
		a4 := r.Addr.As4()
		b = append(b, a4[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(r.Preference))
	}
	b = append(b, ExtMobilityAgent, uint8(6+4*a.NumCareOf))
	b = binary.BigEndian.AppendUint16(b, a.Sequence)
	b = binary.BigEndian.AppendUint16(b, a.RegLifetime)
	b = binary.BigEndian.AppendUint16(b, uint16(a.Flags&^(Flagr|flagsReserved)))
	for i := range a.NumCareOf {
		a4 := a.CareOf[i].As4()
		b = append(b, a4[:]...)
	}
	if a.PrefixLengths {
		b = append(b, ExtPrefixLengths, uint8(a.NumRouters))
		b = append(b, a.Prefix[:a.NumRouters]...)
	}
	if (len(b)-start)&1 == 1 {
		b = append(b, ExtPadding) // §2.1.3: only to make the length even, last
	}
	c := Checksum(b[start:])
	binary.BigEndian.PutUint16(b[start+2:], c)
	return b, nil
}

// check enforces §2.1.1's consistency rules on what we send and accept.
func (f Flags) check() error {
	if f&(FlagH|FlagF) == 0 || (f&(FlagB|FlagR) != 0 && f&FlagF == 0) {
		return ErrFlags
	}
	return nil
}

// UnmarshalBinary parses an ICMP Agent Advertisement (b starts at the ICMP
// type byte). It verifies the checksum and the extension rules of RFC 5944
// §1.9 and §2.1: unknown extensions of type 128 and above are skipped, below
// 128 the advertisement is rejected. It never allocates.
func (a *Advertisement) UnmarshalBinary(b []byte) error {
	*a = Advertisement{}
	if len(b) < raHeaderLen {
		return ErrShort
	}
	if b[0] != TypeAdvertisement {
		return ErrType
	}
	if b[1] != CodeRouter && b[1] != CodeNotRouter {
		return ErrCode
	}
	if Checksum(b) != 0 {
		return ErrChecksum
	}
	n, size := int(b[4]), int(b[5])
	if size < 2 {
		return ErrEntrySize
	}
	if n > MaxRouters {
		return ErrTooMany
	}
	a.Code = b[1]
	a.Lifetime = binary.BigEndian.Uint16(b[6:])
	off := raHeaderLen
	if len(b) < off+4*size*n {
		return ErrShort
	}
	a.NumRouters = n
	for i := range n {
		e := b[off+4*size*i:]
		a.Routers[i] = RouterAddr{Addr: netip.AddrFrom4([4]byte(e[:4])), Preference: int32(binary.BigEndian.Uint32(e[4:]))}
	}
	off += 4 * size * n
	var sawMobility bool
	for off < len(b) {
		t := b[off]
		if t == ExtPadding {
			// More than one, or not last, is a SHOULD NOT for the
			// sender; accepting it costs nothing.
			a.Padded = true
			off++
			continue
		}
		if off+2 > len(b) || off+2+int(b[off+1]) > len(b) {
			return ErrExtension
		}
		l := int(b[off+1])
		d := b[off+2 : off+2+l]
		switch {
		case t == ExtMobilityAgent:
			if sawMobility {
				return ErrDuplicate
			}
			sawMobility = true
			if l < 6 || (l-6)%4 != 0 {
				return ErrMobilityLen
			}
			if (l-6)/4 > MaxCareOf {
				return ErrTooMany
			}
			a.Sequence = binary.BigEndian.Uint16(d)
			a.RegLifetime = binary.BigEndian.Uint16(d[2:])
			a.Flags = Flags(binary.BigEndian.Uint16(d[4:])) &^ (Flagr | flagsReserved)
			a.NumCareOf = (l - 6) / 4
			for i := range a.NumCareOf {
				a.CareOf[i] = netip.AddrFrom4([4]byte(d[6+4*i:]))
			}
		case t == ExtPrefixLengths:
			if a.PrefixLengths {
				return ErrDuplicate
			}
			if l != n {
				return ErrPrefixLen
			}
			for i := range l {
				if d[i] > 32 {
					return ErrPrefixLen
				}
				a.Prefix[i] = d[i]
			}
			a.PrefixLengths = true
		case t < 128:
			return ErrUnknownExt
		}
		off += 2 + l
	}
	if !sawMobility {
		return ErrNoMobility
	}
	return a.Flags.check()
}

// Solicitation is an Agent Solicitation: an ICMP Router Solicitation sent
// with IP TTL 1 (RFC 5944 §2.2). It has no fields of its own.
type Solicitation struct{}

// AppendBinary appends a Solicitation, checksum included.
func (Solicitation) AppendBinary(b []byte) ([]byte, error) {
	start := len(b)
	b = append(b, TypeSolicitation, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(b[start+2:], Checksum(b[start:]))
	return b, nil
}

// UnmarshalBinary validates a Router Solicitation as RFC 1256 §6.1.1 asks:
// type 10, code 0, valid checksum, 8 octets or more (anything after the
// reserved word is covered by the checksum and ignored). The IP-level rules
// (TTL 1, the source need not be a neighbour, RFC 5944 §2.3) are the
// runner's.
func (*Solicitation) UnmarshalBinary(b []byte) error {
	if len(b) < SolicitationLen {
		return ErrShort
	}
	if b[0] != TypeSolicitation {
		return ErrType
	}
	if b[1] != 0 {
		return ErrCode
	}
	if Checksum(b) != 0 {
		return ErrChecksum
	}
	return nil
}

// Checksum is the Internet checksum (RFC 1071) of b: the ICMP checksum when
// b is an ICMP message with a zero checksum field, and 0 when b carries a
// valid one.
func Checksum(b []byte) uint16 {
	var s uint32
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}

// ipHeaderLen is the IPv4 header we write (no options).
const ipHeaderLen = 20

// appendIPHeader appends an IPv4 header for an ICMP payload of n bytes.
// The runner writes its own IP header (IP_HDRINCL) so that TTL 1 and the
// source address (the virtual address while active) are exactly what
// RFC 5944 §2.1 asks, whatever the socket defaults and address selection.
// The kernel fills in the identification when it is 0.
func appendIPHeader(b []byte, src, dst netip.Addr, ttl uint8, n int) []byte {
	start := len(b)
	b = append(b, 0x45, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(ipHeaderLen+n))
	b = append(b, 0, 0, 0, 0, ttl, 1, 0, 0) // id, frag, TTL, ICMP, checksum
	s, d := src.As4(), dst.As4()
	b = append(b, s[:]...)
	b = append(b, d[:]...)
	binary.BigEndian.PutUint16(b[start+10:], Checksum(b[start:]))
	return b
}
