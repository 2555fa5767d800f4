package agent

import (
	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/mip"
)

// NAT traversal (RFC 3519) in the registration decision. A node behind a
// NAT asks for UDP tunnelling with a UDP Tunnel Request extension; the
// agent detects the NAT by the request's source address differing from
// its care-of address, and the binding then records the source address
// and port the request came from (the NAT's mapping) with encapsulation
// UDP: tunnel data goes there, from the virtual address and port 434. A
// re-registration from a new mapping moves the tunnel to it. The reply
// carries a UDP Tunnel Reply extension (keepalive interval, F flag), sealed
// under the node's authenticator like every extension the verdict holds.

// natDecide judges the request's UDP Tunnel Request for node n. It sets
// c.udp (the binding is UDP-tunnelled) and the verdict's Tunnel (the reply
// extension), or denies: 129 for a forced request without a NAT when
// nat.accept_forced is false, 142 for an encapsulation inside UDP other than
// IP in IP (the data path decapsulates only that) or a kernel without the
// UDP tunnel. false: denied, c.v's code says why.
//
// An extension the node's authenticator does not cover (appended after
// it), unless a foreign agent whose FA-HA authenticator was checked
// forwarded the request, is ignored: an unauthenticated extension must not
// decide where the node's traffic goes. So is one of a node UDP tunnelling
// is not offered to (the extension is skippable: the node gets plain
// tunnelling), and one in a de-registration (there is no tunnel to set up).
func (c *Core) natDecide(n *node) bool {
	c.udp = false
	req, u := &c.req, &c.req.UDPTunnel
	if !u.Present || !n.udpTun || req.Lifetime == 0 {
		return true
	}
	if !u.Authenticated {
		if _, viaFA := c.fas[c.rq.srcAddr]; !viaFA {
			return true
		}
	}
	careOf := binding.AddrU32(req.CareOf)
	behindNAT := c.rq.srcAddr != careOf
	forced := !behindNAT && u.Flags&mip.UDPTunnelForce != 0
	switch {
	case careOf == binding.AddrU32(req.HomeAddr):
		return true // returning home: a de-registration, no tunnel
	case !behindNAT && !forced:
		// No NAT between the node and us: plain tunnelling reaches it, and
		// the reply says UDP tunnelling is declined (RFC 3519 §3.2).
		c.v.Tunnel = mip.UDPTunnelReply{Present: true, Code: mip.TunnelDeclined}
		return true
	case forced && !c.cfg.NAT.AcceptForced:
		c.v.Code = mip.CodeAdminProhibited
		return false
	case u.Encapsulation != mip.NextIPv4 || !c.udpKernel:
		c.v.Code = mip.CodeUDPEncapUnavailable
		return false
	}
	c.udp = true
	c.v.Tunnel = c.tunnelReply(forced)
	return true
}

// tunnelReply is the UDP Tunnel Reply of an accepted UDP-tunnelled binding:
// will do, the keepalive interval configured now, F when no NAT was seen.
func (c *Core) tunnelReply(forced bool) mip.UDPTunnelReply {
	r := mip.UDPTunnelReply{Present: true, Code: mip.TunnelWillDo, Keepalive: c.cfg.NAT.KeepaliveSeconds()}
	if forced {
		r.Flags = mip.UDPTunnelReplyForced
	}
	return r
}

// natEntry makes e a UDP-tunnelled binding to the request's source
// address and port when natDecide chose it; otherwise e's encapsulation is
// left as the flags say.
func (c *Core) natEntry(e *binding.Entry) {
	if c.udp {
		e.Encap, e.NATAddr, e.NATPort = binding.EncapUDP, c.rq.srcAddr, c.rq.srcPort
	}
}

// natMoved reports whether the tunnel to e differs from the one to cur in
// its NAT traversal: into or out of UDP, or a new NAT mapping.
func natMoved(cur, e *binding.Entry) bool {
	return cur.Encap != e.Encap || cur.NATAddr != e.NATAddr || cur.NATPort != e.NATPort
}

// natSameSource reports whether a retransmission of the request that wrote
// cur came the way cur records: a UDP-tunnelled binding's request from a
// new NAT mapping is not a duplicate (the tunnel would stay on the old
// mapping), and gets 133 like any reused Identification; the node
// re-registers with a fresh one from its new mapping.
func (c *Core) natSameSource(cur *binding.Entry) bool {
	return cur.Encap != binding.EncapUDP || cur.NATAddr == c.rq.srcAddr && cur.NATPort == c.rq.srcPort
}

// natDupReply is the UDP Tunnel Reply a duplicate's answer repeats.
func (c *Core) natDupReply(cur *binding.Entry) {
	if cur.Encap == binding.EncapUDP {
		c.v.Tunnel = c.tunnelReply(cur.NATAddr == cur.CareOf)
	}
}

// SetKernelUDP records whether the datapath can carry the UDP tunnel;
// without it a request that would be UDP-tunnelled gets 142.
func (c *Core) SetKernelUDP(ok bool) { c.udpKernel = ok }

// noIPIP denies (139) a registration that would be tunnelled IP in IP when
// the kernel has no IP-in-IP device: a home agent for nodes behind NATs
// only may run without the driver (the datapath then serves UDP tunnels
// alone), and accepting the node would black-hole its traffic.
func (c *Core) noIPIP() bool {
	req := &c.req
	if !c.noIPIPKernel || c.udp || req.Flags&mip.FlagG != 0 || req.Lifetime == 0 || req.CareOf == req.HomeAddr {
		return false
	}
	c.v.Code = mip.CodeEncapUnavailable
	return true
}

// SetKernelIPIP records whether the datapath has its IP-in-IP device.
func (c *Core) SetKernelIPIP(ok bool) { c.noIPIPKernel = !ok }
