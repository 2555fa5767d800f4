package agent

import (
	"net/netip"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/hasync"
	"github.com/hagent/hagent/ha/mip"
)

// Mobile networks (RFC 5177) in the registration decision: which of a
// router's prefixes the binding carries, and the acknowledgement of each,
// which the verdict carries to Seal. Explicit mode (the request lists
// prefixes): each is judged on its own, in message order: code 1 for a
// length over 32, /0 or host bits set, 2 for a prefix the node's entry
// does not authorise, one beyond node.max_mobile_networks, or one another
// router of a shared pool already holds, else 0 (3 later, if the kernel
// refuses its route). Implicit mode (none listed): the node's configured
// networks (config.Node.ImplicitMobileNetworks), acknowledged with
// sub-type 2. Nothing is allocated: the acknowledgements live in the
// verdict, the prefixes in the entry.

// netAcks is what a reply acknowledges of a router's networks, in request
// order: compact, because a verdict is copied through the hold queue.
type netAcks struct {
	n        uint8
	implicit bool
	code     [mip.MaxMobileNetPrefixes]mip.MobileNetCode
	bits     [mip.MaxMobileNetPrefixes]uint8
	addr     [mip.MaxMobileNetPrefixes]uint32
	// slot[i] is the index of acknowledgement i's prefix in the entry
	// (-1: not carried), so that a kernel refusal finds its ack.
	slot [mip.MaxMobileNetPrefixes]int8
}

func (a *netAcks) add(code mip.MobileNetCode, bits uint8, addr uint32, slot int8) {
	i := a.n
	a.code[i], a.bits[i], a.addr[i], a.slot[i] = code, bits, addr, slot
	a.n++
}

// fill writes the acknowledgements into a reply's extension state.
func (a *netAcks) fill(m *mip.MobileNetReply) {
	m.N, m.Extra, m.Implicit = 0, 0, a.implicit
	for i := 0; i < int(a.n); i++ {
		m.Acks[i] = mip.MobileNetAck{Code: a.code[i], Prefix: mip.MobileNetPrefix{Bits: a.bits[i], Addr: binding.U32Addr(a.addr[i])}}
	}
	m.N = int(a.n)
}

// fail marks the acknowledgement of the entry's prefix slot as
// MOBNET_FWDING_SETUP_FAILED.
func (a *netAcks) fail(slot int) {
	for i := 0; i < int(a.n); i++ {
		if int(a.slot[i]) == slot {
			a.code[i] = mip.MobileNetFwdSetupFail
		}
	}
}

// mobileNets decides the networks of a registration of node n for home
// (the request is c.req): it adds the admitted ones to e and their
// acknowledgements to c.v.
func (c *Core) mobileNets(n *node, home uint32, e *binding.Entry) {
	acks := &c.v.nets
	*acks = netAcks{}
	mn := &c.req.MobileNet
	cfg := n.cfg
	if mn.N == 0 {
		imp := cfg.ImplicitMobileNetworks()
		if len(imp) == 0 {
			return
		}
		acks.implicit = true
		for _, p := range imp[:min(len(imp), mip.MaxMobileNetPrefixes)] {
			a, bits := binding.AddrU32(p.Addr()), uint8(p.Bits())
			code, slot := mip.MobileNetSuccess, int8(e.NumPrefixes())
			if !e.AddPrefixU32(a, bits) {
				code, slot = mip.MobileNetUnauthorized, -1
			}
			acks.add(code, bits, a, slot)
		}
		return
	}
	if !mn.Authenticated {
		// A prefix after the authenticator is nobody's claim: a foreign
		// agent (or anyone on the path) could have appended it. Not routed,
		// not acknowledged.
		return
	}
	limit := cfg.MaxMobileNetworks
	if limit <= 0 || limit > binding.MaxPrefixes {
		limit = binding.MaxPrefixes
	}
	for _, q := range mn.List() {
		a := binding.AddrU32(q.Addr)
		code := c.judgeNet(n, cfg, q, home, e, limit)
		slot := int8(-1)
		if code == mip.MobileNetSuccess {
			p, _ := q.Prefix()
			if s := netIndex(e, p); s >= 0 {
				slot = int8(s) // listed twice: acknowledged twice, carried once
			} else {
				slot = int8(e.NumPrefixes())
				e.AddPrefixU32(a, q.Bits)
			}
		}
		acks.add(code, q.Bits, a, slot)
	}
}

// judgeNet is the code of one explicitly claimed prefix.
func (c *Core) judgeNet(n *node, cfg *config.Node, q mip.MobileNetPrefix, home uint32, e *binding.Entry, limit int) mip.MobileNetCode {
	if !q.Exact() || q.Bits == 0 {
		return mip.MobileNetInvalidPrefix
	}
	p, _ := q.Prefix()
	switch {
	case !cfg.MayClaim(p):
		return mip.MobileNetUnauthorized
	case netIndex(e, p) >= 0:
		return mip.MobileNetSuccess
	case e.NumPrefixes() >= limit:
		return mip.MobileNetUnauthorized // RFC 5177 has no "too many": documented as 2
	case !n.single && c.heldByOther(p, home):
		return mip.MobileNetUnauthorized
	}
	return mip.MobileNetSuccess
}

// netIndex is the slot of p in e, or -1.
func netIndex(e *binding.Entry, p netip.Prefix) int {
	a, bits := binding.AddrU32(p.Addr()), uint8(p.Bits())
	for i := 0; i < e.NumPrefixes(); i++ {
		if x, b := e.PrefixU32(i); x == a && b == bits {
			return i
		}
	}
	return -1
}

// netList is a short list of networks (a Change's Gone): compact, because
// a Change is copied into every action.
type netList struct {
	n    uint8
	bits [binding.MaxPrefixes]uint8
	addr [binding.MaxPrefixes]uint32
}

// gone sets l to old's networks that cur does not carry.
func (l *netList) gone(old, cur *binding.Entry) {
	l.n = 0
	for i := 0; i < old.NumPrefixes(); i++ {
		if netIndex(cur, old.Prefix(i)) < 0 {
			l.addr[l.n], l.bits[l.n] = old.PrefixU32(i)
			l.n++
		}
	}
}

// droppedNets sets l to what a peer's write of home dropped
// (hasync.Action.Dropped), less what another live binding now carries: a
// router of a shared pool may claim a network another one dropped, and the
// peer's writes of the two can arrive in either order (a lost update
// retransmitted); the route is then the other's, not to be removed.
func (c *Core) droppedNets(l *netList, d *hasync.Dropped, home uint32) {
	l.n = 0
	for i := range int(d.N) {
		a, b := d.Addr[i], d.Bits[i]
		if c.netOfOther(a, b, home) {
			continue
		}
		l.addr[l.n], l.bits[l.n] = a, b
		l.n++
	}
}

// netOfOther reports whether a live binding of a shared pool other than
// home's carries (addr, bits): its route is that binding's, whatever home's
// change says.
func (c *Core) netOfOther(addr uint32, bits uint8, home uint32) bool {
	if c.claims == nil {
		return false
	}
	h, ok := c.claims.get(addr, bits)
	return ok && h != home && c.claimLive(h, addr, bits)
}

// keepOthersNets removes from e (a copy: a removal's Change) the networks
// another live binding now carries. A router's de-registration or expiry
// lists the networks its binding last held; when writes crossed (a peer's
// write giving one of them to another router of the pool reached this
// member first), removing them all would take the other router's route
// away until the periodic check put it back.
func (c *Core) keepOthersNets(e *binding.Entry) {
	if c.claims == nil || e.NumPrefixes() == 0 {
		return
	}
	var keep [binding.MaxPrefixes]struct {
		a uint32
		b uint8
	}
	n := 0
	for i := 0; i < e.NumPrefixes(); i++ {
		if a, b := e.PrefixU32(i); !c.netOfOther(a, b, e.Home) {
			keep[n].a, keep[n].b = a, b
			n++
		}
	}
	if n == e.NumPrefixes() {
		return
	}
	e.ClearPrefixes()
	for _, k := range keep[:n] {
		e.AddPrefixU32(k.a, k.b)
	}
}

// prefix is network i of l.
func (l *netList) prefix(i int) netip.Prefix {
	return netip.PrefixFrom(binding.U32Addr(l.addr[i]), int(l.bits[i]))
}

// sameNets reports whether a and b carry the same networks in the same order.
func sameNets(a, b *binding.Entry) bool {
	if a.NumPrefixes() != b.NumPrefixes() {
		return false
	}
	for i := 0; i < a.NumPrefixes(); i++ {
		x, xb := a.PrefixU32(i)
		y, yb := b.PrefixU32(i)
		if x != y || xb != yb {
			return false
		}
	}
	return true
}

// AdmitPrefix judges a network a peer's record claims for home against this
// member's own configuration (hasync.Config.AdmitPrefix): the node that
// holds home here must be allowed to claim it. "" admits.
func (c *Core) AdmitPrefix(home uint32, p netip.Prefix) string {
	if !p.IsValid() || !p.Addr().Is4() || p.Masked() != p || p.Bits() == 0 {
		return whyBadNet
	}
	if i, ok := c.byHome[home]; ok {
		if c.nodes[i].cfg.MayClaim(p) {
			return ""
		}
		return whyNetNotAllowed
	}
	// A pool's home (with an NAI or not: the record names no node).
	why := whyNoNode
	for _, pi := range c.pools {
		if n := &c.nodes[pi]; home >= n.lo && home <= n.hi {
			if n.cfg.MayClaim(p) {
				return ""
			}
			why = whyNetNotAllowed
		}
	}
	return why
}

const (
	whyBadNet        = "a mobile network that is not a masked IPv4 prefix"
	whyNetNotAllowed = "a mobile network its node's mobile_networks does not allow"
)

// netStrings is e's networks as the console shows them (nil: none).
func netStrings(e *binding.Entry) []string {
	if e.NumPrefixes() == 0 {
		return nil
	}
	s := make([]string, e.NumPrefixes())
	for i := range s {
		s[i] = e.Prefix(i).String()
	}
	return s
}

// dupNets acknowledges the networks of a retransmitted request (its first
// reply was lost) as the binding it wrote holds them: decided again, and a
// network decided 0 that the binding does not carry was refused by the
// kernel (3).
func (c *Core) dupNets(n *node, home uint32, cur *binding.Entry) {
	var scratch binding.Entry
	c.mobileNets(n, home, &scratch)
	a := &c.v.nets
	for i := 0; i < int(a.n); i++ {
		if a.code[i] == mip.MobileNetSuccess && netIndex(cur, netip.PrefixFrom(binding.U32Addr(a.addr[i]), int(a.bits[i]))) < 0 {
			a.code[i] = mip.MobileNetFwdSetupFail
		}
	}
}
