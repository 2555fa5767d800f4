package agent

import (
	"net/netip"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
)

// The claims of shared pools' routers (claimindex.go): a network one router
// of a pool without an nai holds is refused (MOBNET_UNAUTHORIZED) to any
// other, whether the other claims it, a network inside it or one containing
// it. Claims of entries that are one router need no index: the
// configuration already keeps their networks disjoint
// (config.mobileNetsDisjoint).

// heldByOther reports whether a live binding other than home's holds p, a
// network containing p or one inside it, among the claims of shared pools.
// The index is checked against the table when read: a claim whose binding
// went, or no longer carries it, is stale, ignored and removed.
func (c *Core) heldByOther(p netip.Prefix, home uint32) bool {
	if c.claims == nil {
		return false
	}
	return c.claims.conflict(binding.AddrU32(p.Addr()), uint8(p.Bits()), home, c.claimsLive)
}

// claimLive reports whether home's live binding carries (addr, bits).
func (c *Core) claimLive(home, addr uint32, bits uint8) bool {
	e := c.table.Get(home)
	if e == nil || e.Tombstone() {
		return false
	}
	for i := 0; i < e.NumPrefixes(); i++ {
		if a, b := e.PrefixU32(i); a == addr && b == bits {
			return true
		}
	}
	return false
}

// noteClaims records e's networks as its home's when e belongs to a shared
// pool (see heldByOther). Called when a binding is written, here or by a
// peer. A full index is swept of stale claims first; one full of live
// claims (more routers than claimCapacity counted on: not possible with the
// configuration it was sized for) leaves the claim out, counted.
func (c *Core) noteClaims(e *binding.Entry) {
	if c.claims == nil || e.NumPrefixes() == 0 || e.Node < 0 || int(e.Node) >= len(c.nodes) || c.nodes[e.Node].single {
		return
	}
	for i := 0; i < e.NumPrefixes(); i++ {
		a, b := e.PrefixU32(i)
		if !c.claims.put(a, b, e.Home) && (c.claims.sweep(c.claimsLive) == 0 || !c.claims.put(a, b, e.Home)) {
			c.ClaimsFull++
		}
	}
}

// claimCapacity bounds the live claims of shared pools: each router of a
// pool without an nai that lists networks holds at most its entry's
// max_mobile_networks, and no more routers are live than the table holds.
// 0: no such pool, no index.
func claimCapacity(nodes []node, tableCap int) int {
	total := 0
	for i := range nodes {
		n := &nodes[i]
		if n.single || n.cfg == nil || !n.cfg.Pool.IsValid() || len(n.cfg.MobileNetworks) == 0 {
			continue
		}
		routers := min(int(n.hi-n.lo)+1, tableCap)
		limit := n.cfg.MaxMobileNetworks
		if limit <= 0 || limit > config.MaxMobileNetworks {
			limit = config.MaxMobileNetworks
		}
		total += routers * limit
	}
	return min(total, tableCap*config.MaxMobileNetworks)
}

// sizeClaims (re)builds the index for the configuration (start, reload):
// the only place it allocates. A rebuilt index is filled from the table.
func (c *Core) sizeClaims() {
	want := claimCapacity(c.nodes, c.table.Cap())
	if c.claimsLive == nil {
		c.claimsLive = c.claimLive
	}
	if want == 0 {
		c.claims = nil
		return
	}
	if c.claims != nil && c.claims.Cap() == want {
		return
	}
	c.claims = newClaimIndex(want)
	c.table.Range(func(e *binding.Entry) bool {
		if !e.Tombstone() {
			c.noteClaims(e)
		}
		return true
	})
}
