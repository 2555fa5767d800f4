package agent

import (
	"errors"
	"net/netip"

	"github.com/hagent/hagent/ha/internal/binding"

	"github.com/hagent/hagent/ha/mip"
)

// Verdict is what the decision says to answer one request. It is a value:
// it travels through the stages after the decision (the hold queue, the
// kernel's answer, the replication policy), each of which may change its
// code, and it is sealed once, when it is sent (Core.Seal): encoded and
// signed with the key of the node it was decided for. A stage that turns an
// acceptance into a denial changes a field; nothing is parsed, verified or
// signed twice.
type Verdict struct {
	Answer    bool // false: the request is silently discarded (the reason was counted)
	Code      mip.Code
	Lifetime  uint16
	HomeAddr  netip.Addr
	HomeAgent netip.Addr
	ID        uint64
	// NAI is the node's NAI as the request carried it (the reply echoes
	// it). It aliases the request's buffer until Keep copies it.
	NAI []byte
	// From is the address the reply leaves from (RFC 5944 §3.8.3.1).
	From  netip.Addr
	node  int32   // the node whose key signs the reply; -1: not authenticated, not signed
	gen   uint32  // that node's key generation when the verdict was made
	epoch uint32  // the Core's node list then (a reload makes a new one)
	nets  netAcks // RFC 5177 acknowledgements (mobilenet.go)

	// Tunnel is the RFC 3519 UDP Tunnel Reply extension (nat.go); not
	// Present: none. Sealed inside what the MN-HA authenticator covers.
	Tunnel mip.UDPTunnelReply
}

// Deny turns the verdict into a denial with code: RFC 5944 §3.4, a
// denial's lifetime is 0 (the node ignores it). Everything else, and the
// key that signs it, stays.
func (v *Verdict) Deny(code mip.Code) {
	v.Code = code
	v.Lifetime = 0
	v.Tunnel = mip.UDPTunnelReply{} // no tunnel is set up for a denied request
	v.nets.n = 0                    // no network is routed by a denial
}

// Keep copies the verdict's NAI into nai (the caller's storage, at least
// mip.MaxNAI bytes) so that the verdict outlives the request's buffer.
func (v *Verdict) Keep(nai []byte) {
	if v.NAI != nil {
		v.NAI = nai[:copy(nai, v.NAI)]
	}
}

var (
	// errKeyReplaced: the node's key (or SPI) was replaced by a reload, or
	// the node removed, after the verdict was made. Its node could not check
	// a reply signed with the new key, and the old one is gone: the reply
	// is not sent (the node retries).
	errKeyReplaced = errors.New("agent: the key of the reply's node was replaced by a reload")
	errReplyTooBig = errors.New("agent: the reply does not encode")
)

// verdict finishes c.v for node ni (-1: not authenticated) and from.
func (c *Core) verdict(ni int32, from netip.Addr) {
	v := c.v
	v.Answer, v.From, v.node = true, from, ni
	if ni >= 0 {
		v.gen, v.epoch = c.nodes[ni].gen, c.epoch
	}
}

// Seal encodes v into out (appended) and signs it with the MN-HA key of its
// node, the one place where a reply becomes bytes, and counts it. It
// allocates nothing. A verdict whose node's key a reload replaced is not
// sealed (errKeyReplaced): the caller must not send anything.
func (c *Core) Seal(v *Verdict, out []byte) ([]byte, error) {
	var n *node
	switch {
	case v.node < 0:
	case v.epoch == c.epoch: // no reload since the decision
		n = &c.nodes[v.node]
	default:
		if n = c.keyOf(v); n == nil {
			return nil, errKeyReplaced
		}
	}
	r := &c.rep
	r.Code, r.Lifetime, r.HomeAddr, r.HomeAgent, r.ID, r.NAI = v.Code, v.Lifetime, v.HomeAddr, v.HomeAgent, v.ID, v.NAI
	r.UDPTunnel = v.Tunnel
	v.nets.fill(&r.MobileNet) // before the authenticator, which covers it (RFC 5177)
	start := len(out)
	b, err := r.AppendBinary(out)
	if err != nil {
		c.Stats.Drops[DropReplyTooBig]++
		return nil, errReplyTooBig
	}
	if n != nil {
		b = mip.AppendMHAuth(b, start, n.cfg.SPI, n.mac)
	}
	c.Stats.Replies++
	c.Stats.Codes[v.Code]++
	return b, nil
}

// keyOf is the node whose key signs v, decided before the last reload: the
// node is found again the way Handle found it (NAI, then home address), and
// must still have the key v was decided under; nil when it has another, or
// none.
func (c *Core) keyOf(v *Verdict) *node {
	if ni := c.lookup(v.NAI, binding.AddrU32(v.HomeAddr)); ni >= 0 && c.nodes[ni].gen == v.gen {
		return &c.nodes[ni]
	}
	return nil
}
