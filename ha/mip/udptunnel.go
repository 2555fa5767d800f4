package mip

// Mobile IP traversal of NAT devices (RFC 3519): the UDP Tunnel Request
// extension a mobile node puts in its Registration Request, the UDP Tunnel
// Reply extension the home agent answers with, the reply code it denies an
// unacceptable request with, and the 4-byte header of the tunnel data
// messages that then carry the mobile node's traffic on UDP port 434.

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// Extension types (RFC 3519 §3.1, §3.2). The request's is skippable (an
// agent without NAT traversal ignores it and the node falls back to plain
// tunnelling); the reply's is not (a node that asked must understand it).
const (
	ExtUDPTunnelReply   uint8 = 44
	ExtUDPTunnelRequest uint8 = 144
)

// TypeTunnelData is the message type of a MIP tunnel data message (RFC 3519
// §3.3). The first byte of every UDP 434 payload tells a registration
// (TypeRequest, TypeReply) from tunnelled data, which is how one socket and
// one eBPF program share the port.
const TypeTunnelData uint8 = 4

// Encapsulations and tunnel data next headers share the IP protocol number
// space (RFC 3519 §3.1.4, §3.3): what follows the tunnel data header.
const (
	NextIPv4    uint8 = 4  // IP in IP (RFC 2003): the inner packet itself
	NextGRE     uint8 = 47 // GRE (RFC 2784)
	NextMinimal uint8 = 55 // minimal encapsulation (RFC 2004)
)

// Sizes.
const (
	UDPTunnelExtLen = 2 + 6 // type, length, six bytes of body (both extensions)
	TunnelHeaderLen = 4     // type, next header, reserved
	// TunnelOverhead is what UDP tunnelling adds to an IPv4 packet: outer
	// IPv4 header, UDP header, tunnel data header.
	TunnelOverhead = 20 + 8 + TunnelHeaderLen
)

// Flags of the UDP Tunnel Request (byte 2 of the body): F R, then six
// reserved bits sent as zero.
const (
	// UDPTunnelForce asks for UDP tunnelling even where the home agent
	// detects no NAT (§3.1.1): a node that knows of a firewall only UDP
	// crosses.
	UDPTunnelForce uint8 = 0x80
	// UDPTunnelFARequired says the node registered through a foreign agent
	// because the agent required it (§3.1.2).
	UDPTunnelFARequired uint8 = 0x40
)

// UDPTunnelReplyForced is the F bit of the reply's 16-bit flags word: the
// home agent tunnels in UDP because the request's F flag asked, not because
// it detected a NAT.
const UDPTunnelReplyForced uint16 = 0x8000

// ErrTunnelHeader is returned for a tunnel data message that is short or
// not of type 4.
var ErrTunnelHeader = errors.New("mip: not a tunnel data message (shorter than 4 bytes, or type not 4)")

// UDPTunnelRequest is a parsed UDP Tunnel Request extension (§3.1).
type UDPTunnelRequest struct {
	Present       bool
	SubType       uint8
	Flags         uint8 // UDPTunnelForce, UDPTunnelFARequired; reserved bits as received
	Encapsulation uint8 // NextIPv4, NextGRE or NextMinimal
	// Authenticated: the extension precedes the Mobile-Home Authentication
	// extension, so the node's authenticator covers it. An extension a
	// foreign agent appended after it is not covered.
	Authenticated bool
}

// UDPTunnelReply is a parsed UDP Tunnel Reply extension (§3.2).
type UDPTunnelReply struct {
	Present bool
	SubType uint8
	Code    TunnelCode
	Flags   uint16 // UDPTunnelReplyForced; reserved bits as received
	// Keepalive is the interval, in seconds, at which the node sends
	// keepalives to hold its NAT mapping open (§3.2, §4.9); 0: the
	// node's default.
	Keepalive uint16
}

// TunnelCode is the reply code inside the UDP Tunnel Reply extension.
type TunnelCode uint8

// Tunnel reply codes (RFC 3519 §3.2).
const (
	TunnelWillDo   TunnelCode = 0  // the home agent will use UDP tunnelling
	TunnelDeclined TunnelCode = 64 // declined, reason unspecified: plain tunnelling
)

// String returns the RFC's wording; unknown codes print as "tunnel code N".
func (c TunnelCode) String() string {
	switch c {
	case TunnelWillDo:
		return "will do UDP tunnelling"
	case TunnelDeclined:
		return "UDP tunnelling declined, reason unspecified"
	}
	return "tunnel code " + strconv.Itoa(int(c))
}

// parseUDPTunnelRequest reads the six body bytes of a type 144 extension.
func parseUDPTunnelRequest(body []byte) (UDPTunnelRequest, error) {
	if len(body) != 6 {
		return UDPTunnelRequest{}, ErrBadExtension
	}
	return UDPTunnelRequest{Present: true, SubType: body[0], Flags: body[2], Encapsulation: body[3]}, nil
}

func parseUDPTunnelReply(body []byte) (UDPTunnelReply, error) {
	if len(body) != 6 {
		return UDPTunnelReply{}, ErrBadExtension
	}
	return UDPTunnelReply{
		Present:   true,
		SubType:   body[0],
		Code:      TunnelCode(body[1]),
		Flags:     binary.BigEndian.Uint16(body[2:]),
		Keepalive: binary.BigEndian.Uint16(body[4:]),
	}, nil
}

// AppendUDPTunnelRequest appends a UDP Tunnel Request extension: after the
// request's fixed part (and NAI), before AppendMHAuth, so that the node's
// authenticator covers it. Reserved fields are sent as zero.
func AppendUDPTunnelRequest(b []byte, u UDPTunnelRequest) []byte {
	return append(b, ExtUDPTunnelRequest, 6, u.SubType, 0, u.Flags, u.Encapsulation, 0, 0)
}

// AppendUDPTunnelReply appends a UDP Tunnel Reply extension, before
// AppendMHAuth.
func AppendUDPTunnelReply(b []byte, u UDPTunnelReply) []byte {
	b = append(b, ExtUDPTunnelReply, 6, u.SubType, uint8(u.Code))
	b = binary.BigEndian.AppendUint16(b, u.Flags)
	return binary.BigEndian.AppendUint16(b, u.Keepalive)
}

// TunnelHeader is the MIP tunnel data message header (RFC 3519 §3.3) that
// precedes the encapsulated packet in a UDP 434 payload.
type TunnelHeader struct {
	NextHeader uint8 // NextIPv4, NextGRE or NextMinimal
}

// AppendBinary appends type 4, the next header and two reserved zero bytes.
func (h TunnelHeader) AppendBinary(b []byte) ([]byte, error) {
	return append(b, TypeTunnelData, h.NextHeader, 0, 0), nil
}

// UnmarshalBinary reads the header from the start of a UDP payload; the
// encapsulated packet is b[TunnelHeaderLen:]. The reserved field is ignored
// on receipt.
func (h *TunnelHeader) UnmarshalBinary(b []byte) error {
	if len(b) < TunnelHeaderLen || b[0] != TypeTunnelData {
		return ErrTunnelHeader
	}
	h.NextHeader = b[1]
	return nil
}
