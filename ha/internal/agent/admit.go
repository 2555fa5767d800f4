package agent

// Why a peer's binding record is not admitted (constants: the check runs
// for every received record and allocates nothing).
const (
	whyOutside   = "outside agent.home_network"
	whyNetBcast  = "the home network's network or broadcast address"
	whyOwnAddr   = "this member's own or the virtual address"
	whyNoNode    = "no configured [[node]] home_address or pool holds it"
	whyNoAddress = "not an IPv4 address"
)

// AdmitHome judges the home address of a binding record received from a
// peer against this member's own configuration, as Handle would judge a
// registration for it: inside the home network (not its network or
// broadcast address), neither this member's address nor the virtual
// address, and held by a configured node (fixed home address or pool). ""
// admits it; anything else says why not. The group machine calls it for
// every received record (hasync.Config.Admit) and checks the members'
// addresses itself. It reads the current configuration, so a reload
// applies to the next record.
func (c *Core) AdmitHome(home uint32) string {
	switch {
	case home == 0:
		return whyNoAddress
	case home < c.netLo || home > c.netHi:
		return whyOutside
	case home == c.netLo || home == c.netHi:
		return whyNetBcast
	case c.ownAddr(home):
		return whyOwnAddr
	}
	if _, ok := c.byHome[home]; ok {
		return ""
	}
	for _, pi := range c.pools {
		if p := &c.nodes[pi]; home >= p.lo && home <= p.hi {
			return ""
		}
	}
	return whyNoNode
}
