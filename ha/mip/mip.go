// Package mip is the Mobile IPv4 registration wire format (RFC 5944 §3.3–3.8):
// Registration Request and Reply, their extensions (authentication, RFC 2794
// NAI) and the Mobile-Home authenticator (HMAC-MD5, §3.5.1 / §5.1).
//
// Parsing allocates nothing: variable-length fields alias the input buffer, and
// errors are package-level sentinels returned unwrapped. The caller counts them
// per reason and drops the packet (RFC 5944 mostly says "silently discard").
package mip

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
)

// Port is the UDP port registration messages are sent to (RFC 5944 §3.1).
const Port = 434

// Message types (RFC 5944 §3.3, §3.4).
const (
	TypeRequest uint8 = 1
	TypeReply   uint8 = 3
)

// Flags byte of the Registration Request (byte 1): S B D M G r T x.
const (
	FlagS uint8 = 0x80 // simultaneous bindings
	FlagB uint8 = 0x40 // broadcast datagrams
	FlagD uint8 = 0x20 // decapsulation by the mobile node (co-located care-of address)
	FlagM uint8 = 0x10 // minimal encapsulation
	FlagG uint8 = 0x08 // GRE encapsulation
	Flagr uint8 = 0x04 // reserved, sent as zero
	FlagT uint8 = 0x02 // reverse tunnelling requested (RFC 3024)
	Flagx uint8 = 0x01 // reserved, sent as zero, ignored on reception
)

// Extension types in the registration-message number space (RFC 5944 §1.9,
// RFC 2794). This number space has no one-byte Pad extension: type 0 is an
// ordinary unrecognised non-skippable type here (the one-byte padding of
// §2.1.3 exists only in Agent Advertisements, a separate number space).
const (
	ExtMHAuth uint8 = 32  // Mobile-Home Authentication (§3.5.2)
	ExtMFAuth uint8 = 33  // Mobile-Foreign Authentication (§3.5.3)
	ExtFHAuth uint8 = 34  // Foreign-Home Authentication (§3.5.4)
	ExtNAI    uint8 = 131 // Mobile Node NAI (RFC 2794)
)

// Sizes of the fixed parts.
const (
	RequestLen = 24 // type, flags, lifetime, home address, home agent, care-of, identification
	ReplyLen   = 20 // type, code, lifetime, home address, home agent, identification
	// MHAuthLen is the size of a Mobile-Home Authentication extension with an
	// HMAC-MD5 authenticator: type, length, SPI, 16 bytes.
	MHAuthLen = 2 + 4 + 16
	// MinAuthenticator is the shortest authenticator accepted in an
	// authentication extension: 128 bits, the default algorithm's (§3.5.1).
	MinAuthenticator = 16
	// MaxNAI is the longest NAI an extension can carry (one-byte length).
	MaxNAI = 255
)

// Parse and build errors. They are returned without wrapping so that parsing
// allocates nothing; compare with == or errors.Is.
var (
	ErrTruncated        = errors.New("mip: message truncated (shorter than its fixed part, or an extension runs past the end)")
	ErrType             = errors.New("mip: wrong message type")
	ErrUnknownExtension = errors.New("mip: unrecognised non-skippable extension (type 0-127): message must be discarded")
	ErrBadExtension     = errors.New("mip: malformed extension (bad length, empty or misplaced NAI, or duplicate)")
	ErrAddress          = errors.New("mip: address is not IPv4")
	ErrNAITooLong       = errors.New("mip: NAI longer than 255 bytes")
)

// Code is the Registration Reply code (RFC 5944 §3.4, RFC 3024 §4.3).
type Code uint8

// Reply codes. 0-1 accepted, 64-127 denied by the foreign agent, 128-255
// denied by the home agent.
const (
	CodeAccepted               Code = 0
	CodeAcceptedNoSimultaneous Code = 1

	// Denied by the foreign agent.
	CodeFAUnspecified            Code = 64
	CodeFAAdminProhibited        Code = 65
	CodeFAInsufficientResources  Code = 66
	CodeFAMNAuthFailed           Code = 67
	CodeFAHAAuthFailed           Code = 68
	CodeFALifetimeTooLong        Code = 69
	CodeFAPoorlyFormedRequest    Code = 70
	CodeFAPoorlyFormedReply      Code = 71
	CodeFAEncapUnavailable       Code = 72
	CodeFAReserved73             Code = 73
	CodeFAReverseTunnelUnavail   Code = 74
	CodeFAReverseTunnelMandatory Code = 75
	CodeFAMNTooDistant           Code = 76
	CodeFAInvalidCareOf          Code = 77
	CodeFARegistrationTimeout    Code = 78
	CodeFADeliveryStyle          Code = 79
	CodeFAHomeNetUnreachable     Code = 80
	CodeFAHAHostUnreachable      Code = 81
	CodeFAHAPortUnreachable      Code = 82
	CodeFAHAUnreachable          Code = 88

	// Denied by the home agent.
	CodeUnspecified              Code = 128
	CodeAdminProhibited          Code = 129
	CodeInsufficientResources    Code = 130
	CodeMNAuthFailed             Code = 131
	CodeFAAuthFailed             Code = 132
	CodeIDMismatch               Code = 133
	CodePoorlyFormed             Code = 134
	CodeTooManyBindings          Code = 135
	CodeUnknownHA                Code = 136
	CodeReverseTunnelUnavailable Code = 137 // RFC 3024
	CodeReverseTunnelMandatory   Code = 138 // RFC 3024
	CodeEncapUnavailable         Code = 139 // RFC 3024
	// CodeUDPEncapUnavailable denies a request whose UDP Tunnel Request
	// extension the home agent cannot honour: an encapsulation it does not
	// support, or UDP tunnelling off (RFC 3519 §3.5).
	CodeUDPEncapUnavailable Code = 142
)

// Accepted reports whether the code means the registration was accepted.
func (c Code) Accepted() bool { return c <= CodeAcceptedNoSimultaneous }

// String returns the RFC's wording, shortened; unknown codes print as "code N".
func (c Code) String() string {
	switch c {
	case CodeAccepted:
		return "accepted"
	case CodeAcceptedNoSimultaneous:
		return "accepted, simultaneous bindings unsupported"
	case CodeFAUnspecified:
		return "FA: reason unspecified"
	case CodeFAAdminProhibited:
		return "FA: administratively prohibited"
	case CodeFAInsufficientResources:
		return "FA: insufficient resources"
	case CodeFAMNAuthFailed:
		return "FA: mobile node failed authentication"
	case CodeFAHAAuthFailed:
		return "FA: home agent failed authentication"
	case CodeFALifetimeTooLong:
		return "FA: requested lifetime too long"
	case CodeFAPoorlyFormedRequest:
		return "FA: poorly formed request"
	case CodeFAPoorlyFormedReply:
		return "FA: poorly formed reply"
	case CodeFAEncapUnavailable:
		return "FA: requested encapsulation unavailable"
	case CodeFAReserved73:
		return "FA: reserved (73)"
	case CodeFAReverseTunnelUnavail:
		return "FA: requested reverse tunnel unavailable"
	case CodeFAReverseTunnelMandatory:
		return "FA: reverse tunnel mandatory and T bit not set"
	case CodeFAMNTooDistant:
		return "FA: mobile node too distant"
	case CodeFAInvalidCareOf:
		return "FA: invalid care-of address"
	case CodeFARegistrationTimeout:
		return "FA: registration timeout"
	case CodeFADeliveryStyle:
		return "FA: delivery style not supported"
	case CodeFAHomeNetUnreachable:
		return "FA: home network unreachable"
	case CodeFAHAHostUnreachable:
		return "FA: home agent host unreachable"
	case CodeFAHAPortUnreachable:
		return "FA: home agent port unreachable"
	case CodeFAHAUnreachable:
		return "FA: home agent unreachable"
	case CodeUnspecified:
		return "reason unspecified"
	case CodeAdminProhibited:
		return "administratively prohibited"
	case CodeInsufficientResources:
		return "insufficient resources"
	case CodeMNAuthFailed:
		return "mobile node failed authentication"
	case CodeFAAuthFailed:
		return "foreign agent failed authentication"
	case CodeIDMismatch:
		return "identification mismatch"
	case CodePoorlyFormed:
		return "poorly formed request"
	case CodeTooManyBindings:
		return "too many simultaneous mobility bindings"
	case CodeUnknownHA:
		return "unknown home agent address"
	case CodeReverseTunnelUnavailable:
		return "requested reverse tunnel unavailable"
	case CodeReverseTunnelMandatory:
		return "reverse tunnel mandatory and T bit not set"
	case CodeEncapUnavailable:
		return "requested encapsulation unavailable"
	case CodeUDPEncapUnavailable:
		return "requested UDP tunnel encapsulation unavailable"
	}
	return "code " + strconv.Itoa(int(c))
}

// AuthExt is a parsed authentication extension (RFC 5944 §3.5.2–3.5.4).
type AuthExt struct {
	Present       bool
	SPI           uint32
	Authenticator []byte // aliases the parsed buffer
	// Covered is how many bytes of the message, from byte 0, the authenticator
	// covers: the UDP payload, every prior extension, and this extension's
	// type, length and SPI (§3.5.1).
	Covered int
}

// Request is a Registration Request (RFC 5944 §3.3).
type Request struct {
	Flags     uint8
	Lifetime  uint16
	HomeAddr  netip.Addr // always IPv4 after UnmarshalBinary
	HomeAgent netip.Addr
	CareOf    netip.Addr
	ID        uint64
	NAI       []byte // nil when absent; aliases the parsed buffer
	MHAuth    AuthExt
	MFAuth    AuthExt
	FHAuth    AuthExt
	// UDPTunnel is the RFC 3519 UDP Tunnel Request extension.
	UDPTunnel UDPTunnelRequest
	// MobileNet holds the RFC 5177 Mobile Network Request extensions.
	MobileNet MobileNetRequest
	// IgnoredExt counts unrecognised skippable extensions (types 128-255),
	// which §1.9 says to skip.
	IgnoredExt int
}

// Reply is a Registration Reply (RFC 5944 §3.4).
type Reply struct {
	Code      Code
	Lifetime  uint16
	HomeAddr  netip.Addr
	HomeAgent netip.Addr
	ID        uint64
	NAI       []byte // nil when absent; aliases the parsed buffer
	MHAuth    AuthExt
	// MFAuth and FHAuth appear only on replies relayed by a foreign agent.
	MFAuth     AuthExt
	FHAuth     AuthExt
	UDPTunnel  UDPTunnelReply // RFC 3519 UDP Tunnel Reply extension
	MobileNet  MobileNetReply // RFC 5177 Mobile Network Acknowledgements
	IgnoredExt int
}

// exts is the common result of walking the extensions.
type exts struct {
	nai        []byte
	mh, mf, fh AuthExt
	utReq      UDPTunnelRequest
	utRep      UDPTunnelReply
	utReqEnd   int // where the request extension ends: covered by MH auth?
	mnReq      MobileNetRequest
	mnRep      MobileNetReply
	mnReqEnd   int // where the last Mobile Network Request extension ends
	ignored    int
}

// parseExts walks the extensions of a message whose fixed part is b[:fixed]
// and whose type is b[0]: the UDP Tunnel Request is recognised in requests
// only (elsewhere it is an ordinary skippable type), the UDP Tunnel Reply in
// replies only (elsewhere an unrecognised non-skippable type).
// Every extension in this number space is type(1) length(1) data(length): the
// long format of §1.10 is for non-skippable types only, which we reject
// anyway, and the short format of §1.11 is a refinement of the same TLV.
func parseExts(b []byte, fixed int, e *exts) error {
	for off := fixed; off < len(b); {
		if len(b)-off < 2 {
			return ErrTruncated
		}
		typ, l := b[off], int(b[off+1])
		body := off + 2
		end := body + l
		if end > len(b) {
			return ErrTruncated
		}
		switch typ {
		case ExtMHAuth, ExtMFAuth, ExtFHAuth:
			if l < 4+MinAuthenticator {
				return ErrBadExtension
			}
			var a *AuthExt
			switch typ {
			case ExtMHAuth:
				a = &e.mh
			case ExtMFAuth:
				a = &e.mf
			default:
				a = &e.fh
			}
			if a.Present {
				return ErrBadExtension
			}
			*a = AuthExt{
				Present:       true,
				SPI:           binary.BigEndian.Uint32(b[body:]),
				Authenticator: b[body+4 : end : end],
				Covered:       body + 4,
			}
		case ExtNAI:
			// RFC 2794 §2: the NAI extension must precede any authentication
			// extension, so that it is authenticated; an empty NAI is invalid.
			if l == 0 || e.nai != nil || e.mh.Present || e.mf.Present || e.fh.Present {
				return ErrBadExtension
			}
			e.nai = b[body:end:end]
		case ExtUDPTunnelRequest:
			if b[0] != TypeRequest {
				e.ignored++
				break
			}
			if e.utReq.Present {
				return ErrBadExtension
			}
			u, err := parseUDPTunnelRequest(b[body:end])
			if err != nil {
				return err
			}
			e.utReq, e.utReqEnd = u, end
		case ExtUDPTunnelReply:
			if b[0] != TypeReply {
				return ErrUnknownExtension
			}
			if e.utRep.Present {
				return ErrBadExtension
			}
			u, err := parseUDPTunnelReply(b[body:end])
			if err != nil {
				return err
			}
			e.utRep = u
		case ExtMobileNet:
			if err := parseMobileNet(b[0], b[body:end], e, end); err != nil {
				return err
			}
		default:
			if typ < 128 {
				return ErrUnknownExtension
			}
			e.ignored++
		}
		off = end
	}
	e.utReq.Authenticated = e.utReq.Present && e.mh.Present && e.utReqEnd <= e.mh.Covered
	e.mnReq.Authenticated = e.mnReq.N > 0 && e.mh.Present && e.mnReqEnd <= e.mh.Covered
	return nil
}

func addr4(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b[:4])) }

func put4(b []byte, a netip.Addr) ([]byte, error) {
	a = a.Unmap()
	if !a.Is4() {
		return b, ErrAddress
	}
	v := a.As4()
	return append(b, v[:]...), nil
}

// UnmarshalBinary parses a Registration Request. It allocates nothing: NAI and
// authenticators alias b. On error r is left in an unspecified state.
func (r *Request) UnmarshalBinary(b []byte) error {
	if len(b) < RequestLen {
		return ErrTruncated
	}
	if b[0] != TypeRequest {
		return ErrType
	}
	var e exts
	if err := parseExts(b, RequestLen, &e); err != nil {
		return err
	}
	*r = Request{
		Flags:      b[1],
		Lifetime:   binary.BigEndian.Uint16(b[2:]),
		HomeAddr:   addr4(b[4:]),
		HomeAgent:  addr4(b[8:]),
		CareOf:     addr4(b[12:]),
		ID:         binary.BigEndian.Uint64(b[16:]),
		NAI:        e.nai,
		MHAuth:     e.mh,
		MFAuth:     e.mf,
		FHAuth:     e.fh,
		UDPTunnel:  e.utReq,
		MobileNet:  e.mnReq,
		IgnoredExt: e.ignored,
	}
	return nil
}

// AppendBinary appends the fixed part and, when r.NAI is not nil, an NAI
// extension, then a UDP Tunnel Request extension when r.UDPTunnel.Present,
// then one Mobile Network Request extension per prefix in r.MobileNet.
// Authentication extensions are added by AppendMHAuth.
func (r *Request) AppendBinary(b []byte) ([]byte, error) {
	if len(r.NAI) > MaxNAI {
		return b, ErrNAITooLong
	}
	orig := len(b)
	b = append(b, TypeRequest, r.Flags)
	b = binary.BigEndian.AppendUint16(b, r.Lifetime)
	var err error
	for _, a := range [3]netip.Addr{r.HomeAddr, r.HomeAgent, r.CareOf} {
		if b, err = put4(b, a); err != nil {
			return b[:orig], err
		}
	}
	b = binary.BigEndian.AppendUint64(b, r.ID)
	b = appendNAI(b, r.NAI)
	if r.UDPTunnel.Present {
		b = AppendUDPTunnelRequest(b, r.UDPTunnel)
	}
	if b, err = appendMobileNetRequests(b, &r.MobileNet); err != nil {
		return b[:orig], err
	}
	return b, nil
}

func appendNAI(b, nai []byte) []byte {
	if nai == nil {
		return b
	}
	b = append(b, ExtNAI, uint8(len(nai)))
	return append(b, nai...)
}

// UnmarshalBinary parses a Registration Reply; like Request.UnmarshalBinary
// it allocates nothing and aliases b.
func (r *Reply) UnmarshalBinary(b []byte) error {
	if len(b) < ReplyLen {
		return ErrTruncated
	}
	if b[0] != TypeReply {
		return ErrType
	}
	var e exts
	if err := parseExts(b, ReplyLen, &e); err != nil {
		return err
	}
	*r = Reply{
		Code:       Code(b[1]),
		Lifetime:   binary.BigEndian.Uint16(b[2:]),
		HomeAddr:   addr4(b[4:]),
		HomeAgent:  addr4(b[8:]),
		ID:         binary.BigEndian.Uint64(b[12:]),
		NAI:        e.nai,
		MHAuth:     e.mh,
		MFAuth:     e.mf,
		FHAuth:     e.fh,
		UDPTunnel:  e.utRep,
		MobileNet:  e.mnRep,
		IgnoredExt: e.ignored,
	}
	return nil
}

// AppendBinary appends the fixed part and, when r.NAI is not nil, an NAI
// extension, then a UDP Tunnel Reply extension when r.UDPTunnel.Present,
// then r.MobileNet's acknowledgements in order.
// Authentication extensions are added by AppendMHAuth.
func (r *Reply) AppendBinary(b []byte) ([]byte, error) {
	if len(r.NAI) > MaxNAI {
		return b, ErrNAITooLong
	}
	orig := len(b)
	b = append(b, TypeReply, uint8(r.Code))
	b = binary.BigEndian.AppendUint16(b, r.Lifetime)
	var err error
	for _, a := range [2]netip.Addr{r.HomeAddr, r.HomeAgent} {
		if b, err = put4(b, a); err != nil {
			return b[:orig], err
		}
	}
	b = binary.BigEndian.AppendUint64(b, r.ID)
	b = appendNAI(b, r.NAI)
	if r.UDPTunnel.Present {
		b = AppendUDPTunnelReply(b, r.UDPTunnel)
	}
	if b, err = appendMobileNetReply(b, &r.MobileNet); err != nil {
		return b[:orig], err
	}
	return b, nil
}
