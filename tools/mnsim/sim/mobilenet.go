package sim

import (
	"net/netip"

	"github.com/hagent/hagent/ha/mip"
)

// MobileNetAcks is what a home agent that lets a router claim the prefixes
// allowed answers to req (RFC 5177), the stand-in's rule: in explicit mode
// one Explicit Mode Acknowledgement per requested prefix, success for a
// prefix equal to or inside an allowed one, MOBNET_INVALID_PREFIX_LEN for a
// length over 32 or host bits set, MOBNET_UNAUTHORIZED otherwise; in
// implicit mode (no prefix requested) one Implicit Mode Acknowledgement of
// success per allowed prefix, at most mip.MaxMobileNetPrefixes.
func MobileNetAcks(req *mip.MobileNetRequest, allowed []netip.Prefix) mip.MobileNetReply {
	var rep mip.MobileNetReply
	if req.N == 0 {
		rep.Implicit = true
		for _, p := range allowed {
			if !rep.Add(mip.MobileNetAck{Code: mip.MobileNetSuccess, Prefix: mip.MobileNetPrefix{Bits: uint8(p.Bits()), Addr: p.Addr()}}) {
				break
			}
		}
		return rep
	}
	for _, p := range req.List() {
		code := mip.MobileNetUnauthorized
		if q, ok := p.Prefix(); !ok || !p.Exact() {
			code = mip.MobileNetInvalidPrefix
		} else {
			for _, a := range allowed {
				if a.Bits() <= q.Bits() && a.Contains(q.Addr()) {
					code = mip.MobileNetSuccess
					break
				}
			}
		}
		rep.Add(mip.MobileNetAck{Code: code, Prefix: p})
	}
	return rep
}
