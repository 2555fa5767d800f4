package agent

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/mip"
)

// Fleets on a shared home address (agent.shared_home_addresses): every
// router of a fleet registers with one dummy home address and its own NAI.
// Each router is a [[node]] with that address and an nai; its binding is
// the table's entry for (home address, binding.FleetKey(NAI)), so the
// routers never replace one another's binding, and replay protection,
// de-registration, expiry, clear and revocation are per router. The
// address itself is nobody's: it is never routed nor announced by ARP
// (dataplane.go); the routers' networks are routed into their tunnels.
// A request for a shared address without an NAI, or with one no entry
// has, finds no security association: 129, like any unknown node.

// fleetNode sets up st, the state of entry n, as a fleet router when its
// home address is shared; it reports whether it is (then the entry is not
// indexed by home address: several entries have it).
func (c *Core) fleetNode(st *node, cfg *config.Config) bool {
	n := st.cfg
	if !cfg.Agent.SharedHome(n.HomeAddress) || n.NAI == "" {
		return false
	}
	st.nai = []byte(n.NAI)
	st.fleet = binding.FleetKey(st.nai)
	return true
}

// fleetClash reports whether cur, the entry router n's key finds, was
// written for another NAI: two NAIs whose keys collide (a 64-bit hash;
// below 1e-9 for 100,000 routers on one address). The later router is
// refused (129, set in the verdict) rather than allowed to take the
// other's binding.
func (c *Core) fleetClash(n *node, cur *binding.Entry) bool {
	if cur == nil {
		return false
	}
	if nai := c.table.NAIOf(cur); len(nai) > 0 && !bytes.Equal(nai, n.nai) {
		c.v.Code = mip.CodeAdminProhibited
		return true
	}
	return false
}

// Why a peer's record naming a fleet router is not admitted.
const (
	whyNoFleetNode = "no [[node]] has this NAI on this shared home address"
)

// AdmitNAI judges a peer's record naming the fleet router nai on home
// (hasync.Config.AdmitNAI) against this member's configuration: an entry
// with that NAI has home as its shared home address; with p valid, that
// entry may claim network p. "" admits.
func (c *Core) AdmitNAI(home uint32, nai []byte, p netip.Prefix) string {
	i, ok := c.byNAI[string(nai)]
	if !ok || c.nodes[i].fleet == 0 || c.nodes[i].home != home {
		return whyNoFleetNode
	}
	if !p.IsValid() {
		return ""
	}
	if !p.Addr().Is4() || p.Masked() != p || p.Bits() == 0 {
		return whyBadNet
	}
	if !c.nodes[i].cfg.MayClaim(p) {
		return whyNetNotAllowed
	}
	return ""
}

// ClearNAI removes the binding of the node with NAI nai on the operator's
// request: a fleet router's own binding on its shared home address, or
// the binding of the node's home address. ok false: no such node or no
// binding.
func (c *Core) ClearNAI(now int64, nai string) (Change, bool) {
	i, ok := c.byNAI[nai]
	if !ok {
		return Change{}, false
	}
	n := &c.nodes[i]
	if n.fleet == 0 {
		if n.home == 0 {
			return Change{}, false // a pool's: clear it by its address
		}
		return c.clearKey(now, n.home, 0, nil)
	}
	return c.clearKey(now, n.home, n.fleet, n.nai)
}

// bindingKey names a binding: its home address, and its fleet key on a
// shared home address (0 for any other).
type bindingKey struct {
	home uint32
	key  uint64
}

// naiBytes is nai as the group machine takes it: nil when empty.
func naiBytes(nai string) []byte {
	if nai == "" {
		return nil
	}
	return []byte(nai)
}

// clearEvent reads the argument of `clear binding`: a home address, or the
// NAI of a node (a fleet router's binding on its shared home address is
// cleared by NAI: the address names them all). what names it in answers;
// bad is the error to answer instead.
func clearEvent(arg string) (ev Event, what, bad string) {
	ev.Kind = EvClear
	if addr, err := netip.ParseAddr(arg); err == nil {
		if !addr.Is4() {
			return ev, "", fmt.Sprintf("clear binding: %q is not an IPv4 address", arg)
		}
		ev.Home = addr
		return ev, addr.String(), ""
	}
	if !strings.Contains(arg, "@") && strings.Trim(arg, "0123456789.") == "" {
		return ev, "", fmt.Sprintf("clear binding: %q is not an IPv4 address", arg)
	}
	ev.NAI = arg
	return ev, "NAI " + arg, ""
}
