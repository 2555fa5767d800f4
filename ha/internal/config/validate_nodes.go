package config

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/hagent/hagent/ha/internal/clip"
)

// nodeRef names a node in messages about another one.
func nodeRef(n *rawNode) string {
	if n.Name.Set {
		return fmt.Sprintf("%s (%s, line %d)", n.Path, clip.Quote(n.Name.V), n.Line)
	}
	return fmt.Sprintf("%s (line %d)", n.Path, n.Line)
}

func (d *decoder) buildNodes(r *rawConfig, c *Config) {
	a := &c.Agent
	seen := nodesSeen{
		names: map[string]*rawNode{},
		nais:  map[string]*rawNode{},
		addrs: map[netip.Addr]*rawNode{},
	}
	if len(r.Nodes) == 0 && r.AgentPresent {
		d.warnf(0, "", "no [[node]] entries: every registration request would be answered 129 (administratively prohibited); add a [[node]] with home_address or pool")
	}
	for i := range r.Nodes {
		rn := &r.Nodes[i]
		n := Node{Line: rn.Line, Name: fmt.Sprintf("node%d", rn.Index)}
		d.nodeName(rn, &n, &seen)
		d.nodeAddress(rn, &n, a, &seen)
		d.nodeNAI(rn, &n, &seen)
		d.nodeRest(rn, &n, a)
		d.nodeMobileNet(rn, &n, a, &seen.mobileNets)
		d.nodeUDPTunnel(rn, &n, &c.NAT)
		c.Nodes = append(c.Nodes, n)
	}
	d.homesOutsidePools(&seen)
	d.fleetNodes(r, c, seen.pools)
	d.mobileNetsDisjoint(seen.mobileNets)
}

// nodesSeen is what buildNodes has seen of the entries before the current
// one, to refuse duplicates and overlaps.
type nodesSeen struct {
	names map[string]*rawNode
	nais  map[string]*rawNode
	addrs map[netip.Addr]*rawNode
	pools []poolAt
	// Explicit home addresses are checked against every pool after the
	// loop, because a pool may come after the node entry it swallows.
	homes []addrAt
	// Every mobile network claimed, checked for overlaps after the loop.
	mobileNets []mobileNetAt
}

type poolAt struct {
	p netip.Prefix
	n *rawNode
}

type addrAt struct {
	a netip.Addr
	n *rawNode
}

// nodeName checks the entry's name, unique among the nodes.
func (d *decoder) nodeName(rn *rawNode, n *Node, seen *nodesSeen) {
	if f := rn.Name; f.Set {
		switch {
		case f.V == "" || len(f.V) > 64 || strings.ContainsFunc(f.V, func(r rune) bool { return r < ' ' || r == 0x7f }):
			d.errorf(f.Line, f.Key, "%s must be 1..64 printable characters", clip.Quote(f.V))
		default:
			n.Name = f.V
		}
	}
	if prev, ok := seen.names[n.Name]; ok {
		d.errorf(rn.Name.Line, rn.Name.Key, "%s is already the name of %s: names label nodes in logs and must be unique", clip.Quote(n.Name), nodeRef(prev))
	} else {
		seen.names[n.Name] = rn
	}
}

// nodeAddress checks the entry's home_address or pool: inside the home
// network, not the agent's own, not shared with another entry.
func (d *decoder) nodeAddress(rn *rawNode, n *Node, a *Agent, seen *nodesSeen) {
	switch {
	case rn.HomeAddress.Set && rn.Pool.Set:
		d.errorf(rn.Pool.Line, rn.Pool.Key, "and home_address are both set: a [[node]] is either one mobile node (home_address) or a pool sharing a key (pool)")
	case !rn.HomeAddress.Set && !rn.Pool.Set:
		d.errorf(rn.Line, rn.Path, `needs home_address = "a.b.c.d" (one mobile node) or pool = "a.b.c.d/len" (nodes sharing a key)`)
	case rn.HomeAddress.Set:
		n.HomeAddress = d.unicast4(rn.HomeAddress, true, "")
		if d.onHomeLink(rn.HomeAddress, n.HomeAddress, a.HomeNetwork, "home addresses belong to agent.home_network") &&
			d.notAgent(rn.HomeAddress, n.HomeAddress, a, "a mobile node's") {
			if prev, ok := seen.addrs[n.HomeAddress]; ok && !a.SharedHome(n.HomeAddress) {
				d.errorf(rn.HomeAddress.Line, rn.HomeAddress.Key, "%s is already the home address of %s: each address belongs to one node", n.HomeAddress, nodeRef(prev))
			} else {
				seen.addrs[n.HomeAddress] = rn
				seen.homes = append(seen.homes, addrAt{n.HomeAddress, rn})
			}
		}
	default:
		p := d.prefix4(rn.Pool, true, "")
		f := rn.Pool
		switch {
		case !p.IsValid():
		case a.HomeNetwork.IsValid() && !(a.HomeNetwork.Bits() <= p.Bits() && a.HomeNetwork.Contains(p.Addr())):
			d.errorf(f.Line, f.Key, "%s is not inside agent.home_network %s: pools are part of the home network", p, a.HomeNetwork)
		case a.Address.IsValid() && p.Contains(a.Address):
			d.errorf(f.Line, f.Key, "%s contains agent.address %s: use a pool that leaves out the agent's own addresses", p, a.Address)
		case a.VirtualAddress.IsValid() && p.Contains(a.VirtualAddress):
			d.errorf(f.Line, f.Key, "%s contains agent.virtual_address %s: use a pool that leaves out the agent's own addresses", p, a.VirtualAddress)
		default:
			overlap := false
			for _, q := range seen.pools {
				if q.p.Overlaps(p) {
					d.errorf(f.Line, f.Key, "%s overlaps %s.pool %s of %s: each address belongs to one entry", p, q.n.Path, q.p, nodeRef(q.n))
					overlap = true
					break
				}
			}
			if !overlap {
				seen.pools = append(seen.pools, poolAt{p, rn})
			}
			n.Pool = p
		}
	}
}

// nodeNAI checks the entry's NAI, unique (case-insensitively) among the nodes.
func (d *decoder) nodeNAI(rn *rawNode, n *Node, seen *nodesSeen) {
	if f := rn.NAI; f.Set {
		switch {
		case f.V == "" || len(f.V) > 255:
			d.errorf(f.Line, f.Key, "must be 1..255 bytes (it travels in a one-byte-length extension, RFC 2794)")
		case strings.ContainsFunc(f.V, func(r rune) bool { return r <= ' ' || r >= 0x7f }):
			d.errorf(f.Line, f.Key, "%s must be printable ASCII without spaces, like \"user@realm\" (RFC 4282)", clip.Quote(f.V))
		default:
			k := strings.ToLower(f.V)
			if prev, ok := seen.nais[k]; ok {
				d.errorf(f.Line, f.Key, "%s is already the NAI of %s: NAIs identify one node", clip.Quote(f.V), nodeRef(prev))
			} else {
				seen.nais[k] = rn
			}
			n.NAI = f.V
		}
	}
}

// nodeRest reads the entry's security association and limits.
func (d *decoder) nodeRest(rn *rawNode, n *Node, a *Agent) {
	n.SPI = d.spi(rn.SPI)
	n.Key = d.secret(rn.Key, true)
	n.Algorithm = d.algorithm(rn.Algorithm)
	n.Replay = DefaultReplay
	if f := rn.Replay; f.Set {
		if f.V == "timestamp" || f.V == "nonce" {
			n.Replay = f.V
		} else {
			d.errorf(f.Line, f.Key, "%s is not supported: use \"timestamp\" (RFC 5944 §5.7, the default) or \"nonce\"", clip.Quote(f.V))
		}
	}
	if f := rn.MaxLifetime; f.Set {
		v := d.intIn(f, 0, 0, 65535)
		if v > int64(a.MaxLifetime) {
			d.errorf(f.Line, f.Key, "%d exceeds agent.max_lifetime %d: a node's cap can only lower the agent's", v, a.MaxLifetime)
		} else {
			n.MaxLifetime = uint16(v)
		}
	}
	n.ReverseTunnel = d.boolOr(rn.ReverseTunnel, true)
	if rn.ReverseTunnel.Set && rn.ReverseTunnel.V && !a.ReverseTunnel {
		d.warnf(rn.ReverseTunnel.Line, rn.ReverseTunnel.Key, "has no effect while agent.reverse_tunnel is false")
	}
}

// homesOutsidePools refuses a home address that lies inside a pool, in
// whatever order the two entries came.
func (d *decoder) homesOutsidePools(seen *nodesSeen) {
	for _, h := range seen.homes {
		for _, q := range seen.pools {
			if q.p.Contains(h.a) {
				f := h.n.HomeAddress
				d.errorf(f.Line, f.Key, "%s lies inside %s.pool %s of %s: ambiguous, remove the entry or carve the address out of the pool", h.a, q.n.Path, q.p, nodeRef(q.n))
			}
		}
	}
}

func (d *decoder) buildForeignAgents(r *rawConfig, c *Config) {
	seen := map[netip.Addr]*rawFA{}
	for i := range r.ForeignAgents {
		rf := &r.ForeignAgents[i]
		fa := ForeignAgent{Line: rf.Line}
		fa.Address = d.unicast4(rf.Address, true, "the foreign agent's address (its care-of address)")
		if fa.Address.IsValid() {
			if prev, ok := seen[fa.Address]; ok {
				d.errorf(rf.Address.Line, rf.Address.Key, "%s already has a security association in %s (line %d): one per foreign agent", fa.Address, prev.Path, prev.Line)
			} else {
				seen[fa.Address] = rf
			}
			d.notAgent(rf.Address, fa.Address, &c.Agent, "a foreign agent's")
		}
		fa.SPI = d.spi(rf.SPI)
		fa.Key = d.secret(rf.Key, true)
		fa.Algorithm = d.algorithm(rf.Algorithm)
		c.ForeignAgents = append(c.ForeignAgents, fa)
	}
}
