// Package hsrp is the Hot Standby Router Protocol, version 1 (RFC 2281): the
// 20-byte message carried in UDP port 1985 to 224.0.0.2 (§5.1), a pure state
// machine (§5.4–§5.6) and, on Linux, a runner that owns the UDP socket.
//
// Parsing allocates nothing; validation failures are sentinel errors the
// runner counts per reason.
package hsrp

import (
	"errors"
	"net"
	"net/netip"
)

// Protocol constants.
const (
	Port    = 1985
	Len     = 20
	Version = 0
)

// Group is the all-routers multicast address HSRP uses.
var Group = netip.AddrFrom4([4]byte{224, 0, 0, 2})

// Op codes (§5.1).
const (
	OpHello  uint8 = 0
	OpCoup   uint8 = 1
	OpResign uint8 = 2
)

// State is the HSRP state, with its wire values (§5.1).
type State uint8

const (
	Initial State = 0
	Learn   State = 1
	Listen  State = 2
	Speak   State = 4
	Standby State = 8
	Active  State = 16
)

func (s State) String() string {
	switch s {
	case Initial:
		return "Initial"
	case Learn:
		return "Learn"
	case Listen:
		return "Listen"
	case Speak:
		return "Speak"
	case Standby:
		return "Standby"
	case Active:
		return "Active"
	}
	return "invalid"
}

func (s State) valid() bool {
	switch s {
	case Initial, Learn, Listen, Speak, Standby, Active:
		return true
	}
	return false
}

// DefaultAuth is the RECOMMENDED default authentication data, "cisco" (§5.1).
var DefaultAuth = [8]byte{'c', 'i', 's', 'c', 'o'}

// Errors, one per reason a message is dropped.
var (
	ErrTruncated = errors.New("hsrp: message shorter than 20 bytes")
	ErrVersion   = errors.New("hsrp: version is not 0 (HSRPv2 peer? configure version 1)")
	ErrOpCode    = errors.New("hsrp: unknown op code (0 hello, 1 coup, 2 resign)")
	ErrState     = errors.New("hsrp: unknown state value")
	ErrGroup     = errors.New("hsrp: group not configured here")
	ErrAuth      = errors.New("hsrp: authentication data differs (check the group's auth string)")
	ErrAddress   = errors.New("hsrp: virtual address is not IPv4")
)

// Message is the HSRPv1 message (RFC 2281 §5.1).
type Message struct {
	Version   uint8
	OpCode    uint8
	State     State
	Hellotime uint8 // seconds
	Holdtime  uint8 // seconds
	Priority  uint8
	Group     uint8
	Reserved  uint8
	Auth      [8]byte
	VIP       netip.Addr // may be the zero address when not configured (Learn)
}

// AppendBinary appends the 20-byte message.
func (m *Message) AppendBinary(b []byte) ([]byte, error) {
	var v [4]byte
	if m.VIP.IsValid() {
		if !m.VIP.Is4() {
			return b, ErrAddress
		}
		v = m.VIP.As4()
	}
	b = append(b, m.Version, m.OpCode, uint8(m.State), m.Hellotime, m.Holdtime, m.Priority, m.Group, m.Reserved)
	b = append(b, m.Auth[:]...)
	return append(b, v[:]...), nil
}

// UnmarshalBinary decodes a message; bytes after the 20th are ignored (RFC
// 2281 has none; HSRPv1 implementations send exactly 20).
func (m *Message) UnmarshalBinary(b []byte) error {
	if len(b) < Len {
		return ErrTruncated
	}
	if b[0] != Version {
		return ErrVersion
	}
	if b[1] > OpResign {
		return ErrOpCode
	}
	if !State(b[2]).valid() {
		return ErrState
	}
	m.Version, m.OpCode, m.State = b[0], b[1], State(b[2])
	m.Hellotime, m.Holdtime, m.Priority, m.Group, m.Reserved = b[3], b[4], b[5], b[6], b[7]
	m.Auth = [8]byte(b[8:16])
	m.VIP = netip.Addr{}
	if v := [4]byte(b[16:20]); v != [4]byte{} {
		m.VIP = netip.AddrFrom4(v)
	}
	return nil
}

// Receive decodes and checks group and authentication (§5.1: a message with
// the wrong authentication data is not authenticated and is ignored).
func Receive(m *Message, b []byte, group uint8, auth *[8]byte) error {
	if err := m.UnmarshalBinary(b); err != nil {
		return err
	}
	if m.Group != group {
		return ErrGroup
	}
	if m.Auth != *auth {
		return ErrAuth
	}
	return nil
}

// VirtualMAC is the group's virtual MAC address 0000.0c07.acXX (§5.3).
func VirtualMAC(group uint8) net.HardwareAddr {
	return net.HardwareAddr{0x00, 0x00, 0x0c, 0x07, 0xac, group}
}

// AuthString pads s (at most 8 bytes) with zeros into authentication data.
func AuthString(s string) ([8]byte, error) {
	var a [8]byte
	if len(s) > 8 {
		return a, errors.New("hsrp: auth string longer than 8 bytes")
	}
	copy(a[:], s)
	return a, nil
}
