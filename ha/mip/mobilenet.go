package mip

// Network mobility for Mobile IPv4 (RFC 5177): the Mobile Network Request
// extension a mobile router puts in its Registration Request, one per prefix
// of the networks behind it, and the Mobile Network Acknowledgement the home
// agent answers with in the reply: one Explicit Mode Acknowledgement per
// requested prefix, or, when the router sent no prefix and the home agent
// routed the prefixes configured for it, one Implicit Mode Acknowledgement per
// such prefix. Both acknowledgements have the same layout (sub-type, code,
// prefix length, reserved, prefix), which is also how Wireshark dissects them.
//
// Parsing stays allocation-free: prefixes land in fixed arrays of
// MaxMobileNetPrefixes entries inside Request and Reply.

import (
	"net/netip"
	"strconv"
)

// ExtMobileNet is the Mobile Network Extension type (RFC 5177). It is
// skippable: a home agent without network mobility ignores it, registers the
// router's home address only, and sends no acknowledgement, which tells the
// router its networks are not routed.
const ExtMobileNet uint8 = 148

// Sub-types of the Mobile Network Extension (RFC 5177).
const (
	MobileNetSubRequest     uint8 = 0 // Mobile Network Request: one prefix
	MobileNetSubExplicitAck uint8 = 1 // Explicit Mode Acknowledgement: a requested prefix and its code
	MobileNetSubImplicitAck uint8 = 2 // Implicit Mode Acknowledgement: a configured prefix and its code
)

// Lengths (the extension's length byte: what follows type and length).
const (
	mobileNetRequestLen = 6 // sub-type, prefix length, prefix
	mobileNetAckLen     = 8 // sub-type, code, prefix length, reserved, prefix
)

// MaxMobileNetPrefixes is how many prefixes a Request or Reply holds: the
// most any deployed home agent accepts per router (Cisco StarOS: 8). RFC 5177
// sets no limit, so a request with more is well formed and is not refused as
// poorly formed (134): the first MaxMobileNetPrefixes extensions, in message
// order, are parsed and the rest only counted in MobileNetRequest.Extra. The
// home agent acknowledges those it parsed; the extra ones get no
// acknowledgement, so the router cannot take them as routed (StarOS drops
// them the same way). The agent decides whether to refuse the registration
// instead; the parser only keeps the count.
const MaxMobileNetPrefixes = 8

// MobileNetPrefix is a prefix as carried on the wire: a length byte and four
// address bytes. Bits is kept as received, so that a length over 32 reaches
// the home agent's decision (it is acknowledged with MobileNetInvalidPrefix)
// instead of failing the parse.
type MobileNetPrefix struct {
	Bits uint8
	Addr netip.Addr // always IPv4 after parsing
}

// Prefix returns the prefix with its host bits cleared, and false when Bits is
// over 32 or Addr is not IPv4.
func (p MobileNetPrefix) Prefix() (netip.Prefix, bool) {
	if p.Bits > 32 || !p.Addr.Is4() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(p.Addr, int(p.Bits)).Masked(), true
}

// Exact reports whether the prefix is valid and has no host bits set: what a
// home agent should insist on before routing it (a router that sends
// 10.9.1.1/24 most likely misconfigured its LAN).
func (p MobileNetPrefix) Exact() bool {
	q, ok := p.Prefix()
	return ok && q.Addr() == p.Addr
}

// MobileNetCode is the code of a Mobile Network Acknowledgement (RFC 5177),
// one per acknowledged prefix.
type MobileNetCode uint8

// Acknowledgement codes (RFC 5177; the constants' names in the comments
// are the RFC's). These four are all RFC 5177 defines, and it adds no
// Registration Reply code: a prefix is refused in its acknowledgement while
// the registration itself is accepted (checked against Wireshark's copy of
// the IANA registries, TestTsharkMobileNetCodes and TestTsharkReplyCodes).
const (
	MobileNetSuccess       MobileNetCode = 0 // Success: prefix registered and routed
	MobileNetInvalidPrefix MobileNetCode = 1 // MOBNET_INVALID_PREFIX_LEN: "Invalid prefix" (length over 32, /0, host bits set)
	MobileNetUnauthorized  MobileNetCode = 2 // MOBNET_UNAUTHORIZED: "Mobile Router is not authorized for prefix"
	MobileNetFwdSetupFail  MobileNetCode = 3 // MOBNET_FWDING_SETUP_FAILED: "Forwarding setup failed"
)

// String returns the RFC's wording; unknown codes print as "mobile network
// code N".
func (c MobileNetCode) String() string {
	switch c {
	case MobileNetSuccess:
		return "success"
	case MobileNetInvalidPrefix:
		return "invalid prefix"
	case MobileNetUnauthorized:
		return "mobile router is not authorized for prefix"
	case MobileNetFwdSetupFail:
		return "forwarding setup failed"
	}
	return "mobile network code " + strconv.Itoa(int(c))
}

// MobileNetRequest is what a Registration Request carries of RFC 5177:
// explicit mode when N > 0 (the prefixes are listed), otherwise implicit mode
// or no network mobility at all, which only the home agent's configuration
// tells apart (the router sends no extension in implicit mode).
type MobileNetRequest struct {
	N        int // prefixes parsed into Prefixes[:N]
	Prefixes [MaxMobileNetPrefixes]MobileNetPrefix
	// Extra counts Mobile Network Request extensions beyond
	// MaxMobileNetPrefixes: received, not parsed, not acknowledged.
	Extra int
	// Authenticated: every Mobile Network Request extension precedes the
	// Mobile-Home Authentication extension, so the router's authenticator
	// covers them. A prefix a foreign agent appended after it is not
	// covered, and a home agent must not route it.
	Authenticated bool
}

// List returns the parsed prefixes (aliases m).
func (m *MobileNetRequest) List() []MobileNetPrefix { return m.Prefixes[:m.N] }

// Add appends a prefix for AppendBinary; false when the array is full.
func (m *MobileNetRequest) Add(p MobileNetPrefix) bool {
	if m.N == MaxMobileNetPrefixes {
		return false
	}
	m.Prefixes[m.N] = p
	m.N++
	return true
}

// MobileNetAck is one acknowledgement, explicit or implicit.
type MobileNetAck struct {
	Code   MobileNetCode
	Prefix MobileNetPrefix
}

// MobileNetReply is what a Registration Reply carries of RFC 5177: the
// acknowledgements, all of one mode (a reply mixing explicit and implicit
// ones is malformed).
type MobileNetReply struct {
	Implicit bool // the acknowledgements are Implicit Mode ones (sub-type 2)
	N        int  // acknowledgements in Acks[:N]
	Acks     [MaxMobileNetPrefixes]MobileNetAck
	Extra    int // acknowledgements beyond MaxMobileNetPrefixes, counted only
}

// List returns the parsed acknowledgements (aliases m).
func (m *MobileNetReply) List() []MobileNetAck { return m.Acks[:m.N] }

// Add appends an explicit acknowledgement for AppendBinary; false when full.
func (m *MobileNetReply) Add(a MobileNetAck) bool {
	if m.N == MaxMobileNetPrefixes {
		return false
	}
	m.Acks[m.N] = a
	m.N++
	return true
}

// parseMobileNet reads one type 148 extension body into the request or reply
// state. Sub-types that do not belong to the message (an acknowledgement in a
// request, a request in a reply) and unknown sub-types are skipped like any
// unrecognised skippable extension (RFC 5944 §1.9); a known sub-type with the
// wrong length makes the message malformed.
func parseMobileNet(msgType uint8, body []byte, e *exts, end int) error {
	if len(body) == 0 {
		return ErrBadExtension
	}
	switch {
	case msgType == TypeRequest && body[0] == MobileNetSubRequest:
		if len(body) != mobileNetRequestLen {
			return ErrBadExtension
		}
		m := &e.mnReq
		if m.N == MaxMobileNetPrefixes {
			m.Extra++
		} else {
			m.Prefixes[m.N] = MobileNetPrefix{Bits: body[1], Addr: addr4(body[2:])}
			m.N++
		}
		e.mnReqEnd = end
	case msgType == TypeReply && (body[0] == MobileNetSubExplicitAck || body[0] == MobileNetSubImplicitAck):
		m := &e.mnRep
		implicit := body[0] == MobileNetSubImplicitAck
		if len(body) != mobileNetAckLen || (m.N > 0 && m.Implicit != implicit) {
			return ErrBadExtension
		}
		m.Implicit = implicit
		if m.N == MaxMobileNetPrefixes {
			m.Extra++
		} else {
			m.Acks[m.N] = MobileNetAck{
				Code:   MobileNetCode(body[1]),
				Prefix: MobileNetPrefix{Bits: body[2], Addr: addr4(body[4:])},
			}
			m.N++
		}
	default:
		e.ignored++
	}
	return nil
}

// AppendMobileNetRequest appends one Mobile Network Request extension, before
// AppendMHAuth so that the router's authenticator covers it. The address is
// sent as given (host bits included): the wire carries what the caller chose.
func AppendMobileNetRequest(b []byte, p MobileNetPrefix) []byte {
	a := p.Addr.Unmap().As4()
	return append(b, ExtMobileNet, mobileNetRequestLen, MobileNetSubRequest, p.Bits, a[0], a[1], a[2], a[3])
}

// AppendMobileNetAck appends one acknowledgement of sub-type
// MobileNetSubExplicitAck or MobileNetSubImplicitAck, before AppendMHAuth.
// The reserved byte is sent as zero.
func AppendMobileNetAck(b []byte, subType uint8, a MobileNetAck) []byte {
	v := a.Prefix.Addr.Unmap().As4()
	return append(b, ExtMobileNet, mobileNetAckLen, subType, uint8(a.Code),
		a.Prefix.Bits, 0, v[0], v[1], v[2], v[3])
}

// appendMobileNetRequests appends m's prefixes in order.
func appendMobileNetRequests(b []byte, m *MobileNetRequest) ([]byte, error) {
	for _, p := range m.List() {
		if !p.Addr.Unmap().Is4() {
			return b, ErrAddress
		}
		b = AppendMobileNetRequest(b, p)
	}
	return b, nil
}

// appendMobileNetReply appends m's acknowledgements in order.
func appendMobileNetReply(b []byte, m *MobileNetReply) ([]byte, error) {
	sub := MobileNetSubExplicitAck
	if m.Implicit {
		sub = MobileNetSubImplicitAck
	}
	for _, a := range m.List() {
		if !a.Prefix.Addr.Unmap().Is4() {
			return b, ErrAddress
		}
		b = AppendMobileNetAck(b, sub, a)
	}
	return b, nil
}
