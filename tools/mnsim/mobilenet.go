package main

import (
	"fmt"
	"io"
	"net/netip"

	"github.com/hagent/hagent/ha/mip"
)

// mobileRouter is what -mobile-network and -implicit ask for: a mobile
// router (RFC 5177) in explicit mode (the prefixes in the request) or in
// implicit mode (none: the home agent routes those it has configured).
type mobileRouter struct {
	req      mip.MobileNetRequest
	implicit bool
}

// add parses one -mobile-network. The prefix is sent as written, host bits
// included, so that a home agent's answer to a malformed claim can be tried.
func (m *mobileRouter) add(s string) error {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return fmt.Errorf("%q is not an IPv4 prefix like 10.1.0.0/24", s)
	}
	if !m.req.Add(mip.MobileNetPrefix{Bits: uint8(p.Bits()), Addr: p.Addr()}) {
		return fmt.Errorf("more than %d prefixes: a request carries at most %d here (the deployed maximum)", mip.MaxMobileNetPrefixes, mip.MaxMobileNetPrefixes)
	}
	return nil
}

func (m *mobileRouter) on() bool { return m.implicit || m.req.N > 0 }

func (m *mobileRouter) mode() string {
	if m.implicit {
		return "implicit"
	}
	return "explicit"
}

// allRouted reports whether the reply acknowledged what was asked, every
// prefix with success: in explicit mode each requested prefix, in implicit
// mode at least one.
func (m *mobileRouter) allRouted(rep *mip.MobileNetReply) bool {
	if rep.N == 0 || rep.Implicit != m.implicit || rep.Extra > 0 {
		return false
	}
	for _, a := range rep.List() {
		if a.Code != mip.MobileNetSuccess {
			return false
		}
	}
	if m.implicit {
		return true
	}
	for _, p := range m.req.List() {
		if !acked(rep, p) {
			return false
		}
	}
	return true
}

func acked(rep *mip.MobileNetReply, p mip.MobileNetPrefix) bool {
	for _, a := range rep.List() {
		if a.Prefix == p {
			return true
		}
	}
	return false
}

func prefixString(p mip.MobileNetPrefix) string {
	return fmt.Sprintf("%v/%d", p.Addr, p.Bits)
}

// print writes one line per acknowledgement, then one per requested prefix
// the reply did not acknowledge.
func (m *mobileRouter) print(w io.Writer, rep *mip.MobileNetReply) {
	mode := "explicit"
	if rep.Implicit {
		mode = "implicit"
	}
	if rep.N == 0 {
		fmt.Fprintf(w, "mobile-networks: no acknowledgement (%s mode asked; the home agent routes no network)\n", m.mode())
	}
	for _, a := range rep.List() {
		fmt.Fprintf(w, "mobile-network %s %s: %d %s\n", prefixString(a.Prefix), mode, a.Code, a.Code)
	}
	if rep.Extra > 0 {
		fmt.Fprintf(w, "mobile-networks: %d more acknowledgements not parsed\n", rep.Extra)
	}
	for _, p := range m.req.List() {
		if rep.N > 0 && !acked(rep, p) {
			fmt.Fprintf(w, "mobile-network %s: not acknowledged\n", prefixString(p))
		}
	}
}

type mobileNetJSON struct {
	Mode           string        `json:"mode"` // what was asked: explicit or implicit
	Implicit       bool          `json:"implicit_acks"`
	Acks           []mobileAckJS `json:"acks"`
	Unacknowledged []string      `json:"unacknowledged,omitempty"`
	Routed         bool          `json:"routed"` // every prefix asked for acknowledged with success
}

type mobileAckJS struct {
	Prefix string `json:"prefix"`
	Code   uint8  `json:"code"`
	Name   string `json:"name"`
}

func (m *mobileRouter) json(rep *mip.MobileNetReply) *mobileNetJSON {
	j := &mobileNetJSON{Mode: m.mode(), Implicit: rep.Implicit, Acks: []mobileAckJS{}, Routed: m.allRouted(rep)}
	for _, a := range rep.List() {
		j.Acks = append(j.Acks, mobileAckJS{Prefix: prefixString(a.Prefix), Code: uint8(a.Code), Name: a.Code.String()})
	}
	for _, p := range m.req.List() {
		if !acked(rep, p) {
			j.Unacknowledged = append(j.Unacknowledged, prefixString(p))
		}
	}
	return j
}
