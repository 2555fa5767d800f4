// Package vrrp is VRRP version 3 for IPv4 (RFC 5798): the advertisement wire
// format with its pseudo-header checksum (§5, §7.1), a pure state machine
// (§6.4) and, on Linux, a runner that owns the raw IP socket (protocol 112).
//
// Parsing allocates nothing: the advertisement keeps its addresses in a fixed
// array. Validation failures are sentinel errors so the runner can count them
// per reason and drop the packet (RFC 5798 §7.1 says "discard", and log).
package vrrp

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"
)

// Protocol constants (RFC 5798 §5.1, §5.2).
const (
	IPProtocol = 112 // IP protocol number of VRRP
	TTL        = 255 // sent and required on receipt (§5.1.1.3, §7.1)
	Version    = 3
	TypeAdvert = 1
	HeaderLen  = 8 // version/type .. checksum
	// MaxAddrs bounds the address list so an Advertisement fits a fixed
	// array (zero allocations). A Home Agent group shares one or a few
	// virtual addresses; 32 is plenty.
	MaxAddrs = 32
	// MaxInterval is the largest 12-bit Max Adver Int: 4095 centiseconds.
	MaxInterval = 4095 * 10 * time.Millisecond
)

// Group is the IPv4 multicast address adverts are sent to (§5.1.1.2).
var Group = netip.AddrFrom4([4]byte{224, 0, 0, 18})

// Errors, one per reason a received advertisement is dropped.
var (
	ErrTruncated    = errors.New("vrrp: advertisement truncated (shorter than 8 bytes plus 4 per announced address)")
	ErrVersion      = errors.New("vrrp: not version 3 (is a peer configured for VRRPv2?)")
	ErrType         = errors.New("vrrp: unknown message type (only 1, advertisement, exists)")
	ErrChecksum     = errors.New("vrrp: bad checksum (pseudo-header: src, dst, proto 112, length)")
	ErrTTL          = errors.New("vrrp: IP TTL is not 255 (packet was routed; discard)")
	ErrVRID         = errors.New("vrrp: VRID not configured here")
	ErrAddrList     = errors.New("vrrp: address list differs from the configured virtual addresses (check every member's config)")
	ErrInterval     = errors.New("vrrp: advertisement interval is 0")
	ErrTooManyAddrs = errors.New("vrrp: more than 32 addresses")
	ErrAddress      = errors.New("vrrp: address is not IPv4")
	ErrIntervalBig  = errors.New("vrrp: advertisement interval exceeds 4095 centiseconds")
)

// Advertisement is the VRRPv3 IPv4 advertisement (RFC 5798 §5.2).
type Advertisement struct {
	VRID     uint8
	Priority uint8
	// Interval is Max Adver Int in centiseconds (12 bits).
	Interval uint16
	// Checksum as received; AppendBinary writes it as is (use
	// AppendChecksummed to compute it).
	Checksum uint16
	Count    uint8 // number of valid entries in Addrs
	Addrs    [MaxAddrs]netip.Addr
}

// Len is the encoded length.
func (a *Advertisement) Len() int { return HeaderLen + 4*int(a.Count) }

// Addresses returns the valid part of Addrs (aliases a; no allocation).
func (a *Advertisement) Addresses() []netip.Addr { return a.Addrs[:a.Count] }

// SetAddresses copies addrs into the fixed array.
func (a *Advertisement) SetAddresses(addrs []netip.Addr) error {
	if len(addrs) > MaxAddrs {
		return ErrTooManyAddrs
	}
	for i, x := range addrs {
		if !x.Is4() {
			return ErrAddress
		}
		a.Addrs[i] = x
	}
	a.Count = uint8(len(addrs))
	return nil
}

// IntervalDuration converts the centisecond field.
func (a *Advertisement) IntervalDuration() time.Duration {
	return time.Duration(a.Interval) * 10 * time.Millisecond
}

// Centiseconds converts a duration to the 12-bit wire field, rounding down
// and clamping to 1..4095.
func Centiseconds(d time.Duration) uint16 {
	cs := d / (10 * time.Millisecond)
	if cs < 1 {
		cs = 1
	}
	if cs > 4095 {
		cs = 4095
	}
	return uint16(cs)
}

// AppendBinary appends the advertisement with the Checksum field as stored.
func (a *Advertisement) AppendBinary(b []byte) ([]byte, error) {
	if a.Count > MaxAddrs {
		return b, ErrTooManyAddrs
	}
	if a.Interval > 0x0fff {
		return b, ErrIntervalBig
	}
	b = append(b, Version<<4|TypeAdvert, a.VRID, a.Priority, a.Count)
	b = binary.BigEndian.AppendUint16(b, a.Interval)
	b = binary.BigEndian.AppendUint16(b, a.Checksum)
	for _, x := range a.Addrs[:a.Count] {
		if !x.Is4() {
			return b, ErrAddress
		}
		v := x.As4()
		b = append(b, v[:]...)
	}
	return b, nil
}

// AppendChecksummed appends the advertisement with the checksum computed over
// the IPv4 pseudo-header for src → dst (RFC 5798 §5.2.8), and stores it in
// a.Checksum.
func (a *Advertisement) AppendChecksummed(b []byte, src, dst netip.Addr) ([]byte, error) {
	a.Checksum = 0
	start := len(b)
	b, err := a.AppendBinary(b)
	if err != nil {
		return b, err
	}
	a.Checksum = Checksum(src, dst, b[start:])
	binary.BigEndian.PutUint16(b[start+6:], a.Checksum)
	return b, nil
}

// UnmarshalBinary decodes version 3, type 1 and the address list; it does
// not verify the checksum (that needs the IP addresses: see Receive).
func (a *Advertisement) UnmarshalBinary(b []byte) error {
	if len(b) < HeaderLen {
		return ErrTruncated
	}
	if b[0]>>4 != Version {
		return ErrVersion
	}
	if b[0]&0x0f != TypeAdvert {
		return ErrType
	}
	n := int(b[3])
	if n > MaxAddrs {
		return ErrTooManyAddrs
	}
	// RFC 5798 §7.1: "the received packet contains the complete VRRP packet".
	// Trailing bytes (e.g. VRRPv2 auth data some peers add) are tolerated.
	if len(b) < HeaderLen+4*n {
		return ErrTruncated
	}
	a.VRID = b[1]
	a.Priority = b[2]
	a.Count = uint8(n)
	a.Interval = binary.BigEndian.Uint16(b[4:]) & 0x0fff
	a.Checksum = binary.BigEndian.Uint16(b[6:])
	for i := range n {
		a.Addrs[i] = netip.AddrFrom4([4]byte(b[HeaderLen+4*i:]))
	}
	return nil
}

// Checksum is the Internet checksum of msg preceded by the IPv4 pseudo-header
// (src, dst, zero, protocol 112, length of msg), RFC 5798 §5.2.8 / §7.1.
// To send, compute over msg with its checksum field zero and store the
// result; on receipt, Checksum over the whole message is 0 when it is right.
func Checksum(src, dst netip.Addr, msg []byte) uint16 {
	s4, d4 := src.As4(), dst.As4()
	var sum uint32
	sum += uint32(s4[0])<<8 | uint32(s4[1])
	sum += uint32(s4[2])<<8 | uint32(s4[3])
	sum += uint32(d4[0])<<8 | uint32(d4[1])
	sum += uint32(d4[2])<<8 | uint32(d4[3])
	sum += IPProtocol
	sum += uint32(len(msg))
	for len(msg) >= 2 {
		sum += uint32(msg[0])<<8 | uint32(msg[1])
		msg = msg[2:]
	}
	if len(msg) == 1 {
		sum += uint32(msg[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// Expect is what a receiver is configured with (RFC 5798 §7.1).
type Expect struct {
	VRID  uint8
	Addrs []netip.Addr // the configured virtual addresses, in any order
}

// Receive decodes and validates a received advertisement per RFC 5798 §7.1:
// TTL, version, length, checksum, VRID, interval and address list. ttl is the
// IP TTL from the receive path. On error a holds whatever was decoded.
func Receive(a *Advertisement, msg []byte, src, dst netip.Addr, ttl int, want *Expect) error {
	if ttl != TTL {
		return ErrTTL
	}
	if err := a.UnmarshalBinary(msg); err != nil {
		return err
	}
	if !src.Is4() || !dst.Is4() {
		return ErrAddress
	}
	if Checksum(src, dst, msg[:a.Len()]) != 0 {
		return ErrChecksum
	}
	if a.VRID != want.VRID {
		return ErrVRID
	}
	if a.Interval == 0 {
		return ErrInterval
	}
	// §7.1: a mismatching list MUST be dropped unless it comes from the
	// address owner (priority 255).
	if a.Priority != 255 && !sameSet(a.Addresses(), want.Addrs) {
		return ErrAddrList
	}
	return nil
}

func sameSet(got, want []netip.Addr) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			if g == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
