package config

import (
	"fmt"
	"net/netip"
	"slices"
)

// Fleets on a shared home address. Deployed mobile-router services (DMNR)
// give every router of a fleet one dummy home address: it is nobody's
// address on the home link, each router registers with it and its own NAI,
// and what is routed are the router's networks. agent.shared_home_addresses
// lists those addresses; any number of [[node]] entries may have one as
// home_address, each with an nai (the binding of such a router is
// identified by its NAI, docs/architecture.md "Fleets").

// MaxSharedNAI is the longest NAI of a router on a shared home address:
// the binding table keeps a router's NAI whole beside its binding
// (binding.NAIMax), because it is the binding's identity in the group.
const MaxSharedNAI = 56

// SharedHome reports whether a is one of agent.shared_home_addresses.
func (a *Agent) SharedHome(addr netip.Addr) bool {
	return slices.Contains(a.SharedHomeAddresses, addr)
}

// sharedHomes checks agent.shared_home_addresses: host addresses of the
// home network, not the agent's own, each once. Pools are checked against
// them with the nodes (fleetNodes).
func (d *decoder) sharedHomes(f field[[]string], a *Agent) []netip.Addr {
	if !f.Set {
		return nil
	}
	var out []netip.Addr
	for i, s := range f.V {
		e := field[string]{V: s, Set: true, Key: fmt.Sprintf("%s[%d]", f.Key, i+1), Line: f.Line}
		addr := d.unicast4(e, true, "")
		if !addr.IsValid() || !d.onHomeLink(e, addr, a.HomeNetwork, "a shared home address is an address of the home network") ||
			!d.notAgent(e, addr, a, "a fleet's shared home address") {
			continue
		}
		if slices.Contains(out, addr) {
			d.errorf(e.Line, e.Key, "%s is listed twice: list each shared address once", addr)
			continue
		}
		out = append(out, addr)
	}
	return out
}

// fleetNodes checks what a shared address asks of the entries: no pool
// contains it (a pool's routers would be given it as their own), and every
// entry with it as home_address has an NAI short enough to be kept whole.
func (d *decoder) fleetNodes(r *rawConfig, c *Config, pools []poolAt) {
	a := &c.Agent
	for _, addr := range a.SharedHomeAddresses {
		for _, q := range pools {
			if q.p.Contains(addr) {
				f := r.Agent.SharedHomeAddresses
				d.errorf(f.Line, f.Key, "%s lies inside %s.pool %s of %s: a shared address is nobody's own, carve it out of the pool", addr, q.n.Path, q.p, nodeRef(q.n))
			}
		}
	}
	for i := range r.Nodes {
		rn, n := &r.Nodes[i], &c.Nodes[i]
		if !n.HomeAddress.IsValid() || !a.SharedHome(n.HomeAddress) {
			continue
		}
		switch {
		case n.NAI == "" && !rn.NAI.Set:
			d.errorf(rn.HomeAddress.Line, rn.HomeAddress.Key, `%s is shared (agent.shared_home_addresses): add nai = "router@realm", the NAI tells this router's binding from the others'`, n.HomeAddress)
		case len(n.NAI) > MaxSharedNAI:
			d.errorf(rn.NAI.Line, rn.NAI.Key, "is %d bytes: a router on a shared home address has an NAI of at most %d bytes (the binding table keeps it whole, as the router's identity)", len(n.NAI), MaxSharedNAI)
		}
	}
}
