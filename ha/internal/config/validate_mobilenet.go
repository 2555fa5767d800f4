package config

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/hagent/hagent/ha/internal/clip"
)

// Mobile networks (RFC 5177): per [[node]], the prefixes behind a mobile
// router and how many of them one router may have routed at once.

// MaxMobileNetworks is the most prefixes one router may have routed: the
// bounded storage of a binding and of a parsed request hold this many
// (mip.MaxMobileNetPrefixes, a test keeps the two equal), as deployed home
// agents accept (Cisco StarOS: 8 per router).
const MaxMobileNetworks = 8

// DefaultMaxMobileNetworks is node.max_mobile_networks when left out.
const DefaultMaxMobileNetworks = MaxMobileNetworks

type rawNodeMobileNet struct {
	Networks field[[]string]
	Max      field[int64]
}

func readNodeMobileNet(t *table) rawNodeMobileNet {
	return rawNodeMobileNet{
		Networks: t.strings("mobile_networks"),
		Max:      t.integer("max_mobile_networks"),
	}
}

// ImplicitMobileNetworks returns the prefixes routed when a router of this
// entry registers without listing any (RFC 5177 implicit mode): all of
// MobileNetworks for an entry that is one router (a home_address, or an
// nai), nil for a pool without an nai, whose routers share the entry and
// so cannot all own its networks (they may still claim them explicitly).
func (n *Node) ImplicitMobileNetworks() []netip.Prefix {
	if n.Pool.IsValid() && n.NAI == "" {
		return nil
	}
	return n.MobileNetworks
}

// MayClaim reports whether a router of this entry may claim p in explicit
// mode: p equals or lies inside one of MobileNetworks. p must be masked (the
// registrar answers host bits with MOBNET_INVALID_PREFIX_LEN first). It
// allocates nothing.
func (n *Node) MayClaim(p netip.Prefix) bool {
	for _, q := range n.MobileNetworks {
		if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// mobileNetAt is one validated claim, for the overlap check across entries.
type mobileNetAt struct {
	p    netip.Prefix
	n    *rawNode
	item int // 1-based position in the entry's mobile_networks
}

// nonUnicastNets are the networks that cannot be behind a router: traffic
// for them is never routed to one.
var nonUnicastNets = []struct {
	p    netip.Prefix
	what string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network" (RFC 1122)`},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (RFC 3927)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (and the limited broadcast address)"},
}

// nodeMobileNet checks the entry's mobile_networks and max_mobile_networks.
// Overlaps with other entries are checked once every entry is read
// (mobileNetsDisjoint); overlaps inside the entry here.
func (d *decoder) nodeMobileNet(rn *rawNode, n *Node, a *Agent, seen *[]mobileNetAt) {
	f, fm := rn.MobileNet.Networks, rn.MobileNet.Max
	n.MaxMobileNetworks = int(d.intIn(fm, DefaultMaxMobileNetworks, 1, MaxMobileNetworks))
	if fm.Set && !f.Set {
		d.warnf(fm.Line, fm.Key, "has no effect without mobile_networks: this node is no mobile router")
	}
	if !f.Set {
		return
	}
	for i, s := range f.V {
		key := fmt.Sprintf("%s[%d]", f.Key, i+1)
		p, ok := d.mobilePrefix(f.Line, key, s)
		if !ok {
			continue
		}
		if h := a.HomeNetwork; h.IsValid() && h.Overlaps(p) {
			d.errorf(f.Line, key, "%s overlaps agent.home_network %s: the home network is the home link, a mobile network lies behind a router away from it; give the router's own LAN prefix", p, h)
			continue
		}
		if j := slices.IndexFunc(n.MobileNetworks, p.Overlaps); j >= 0 {
			d.errorf(f.Line, key, "%s overlaps %s listed before it (%s[%d]): list each network once, as its largest prefix", p, n.MobileNetworks[j], f.Key, j+1)
			continue
		}
		n.MobileNetworks = append(n.MobileNetworks, p)
		*seen = append(*seen, mobileNetAt{p: p, n: rn, item: i + 1})
	}
	// Implicit mode routes every configured prefix, and a binding holds
	// at most max_mobile_networks of them.
	if single := !n.Pool.IsValid() || rn.NAI.Set; single && len(n.MobileNetworks) > n.MaxMobileNetworks {
		d.errorf(f.Line, f.Key, "lists %d networks but max_mobile_networks is %d: a router registering in implicit mode is given all of them; list at most %d (aggregate neighbouring prefixes), or raise max_mobile_networks (at most %d)",
			len(n.MobileNetworks), n.MaxMobileNetworks, n.MaxMobileNetworks, MaxMobileNetworks)
	}
}

// mobilePrefix parses one element of mobile_networks.
func (d *decoder) mobilePrefix(line int, key, s string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		d.errorf(line, key, "%s is not a prefix: write address/length, e.g. \"10.1.0.0/24\" (one host: \"10.1.0.5/32\")", clip.Quote(s))
	case !p.Addr().Is4():
		d.errorf(line, key, "%s is not IPv4: hagent is an IPv4 Home Agent (RFC 5944)", clip.Quote(s))
	case p.Bits() == 0:
		d.errorf(line, key, "%s is every address: a router claims the networks behind it; give their prefixes", s)
	case p.Masked() != p:
		d.errorf(line, key, "%s has host bits set: write %s (the network), or %s/32 for the one host", s, p.Masked(), p.Addr())
	default:
		for _, u := range nonUnicastNets {
			if u.p.Overlaps(p) {
				d.errorf(line, key, "%s overlaps %s, which is %s: no unicast traffic for it can be routed to a router", s, u.p, u.what)
				return netip.Prefix{}, false
			}
		}
		return p, true
	}
	return netip.Prefix{}, false
}

// mobileNetsDisjoint refuses a network claimed by two entries: traffic for
// it could go to only one of the routers. Claims are sorted by address, so
// that each needs comparing with one earlier claim only (two prefixes
// overlap only when one contains the other); a fleet of 100,000 routers
// stays a sort.
func (d *decoder) mobileNetsDisjoint(claims []mobileNetAt) {
	slices.SortFunc(claims, func(x, y mobileNetAt) int {
		if c := x.p.Addr().Compare(y.p.Addr()); c != 0 {
			return c
		}
		return x.p.Bits() - y.p.Bits()
	})
	var open *mobileNetAt // the earlier claim reaching furthest
	for i := range claims {
		c := &claims[i]
		if open != nil && open.p.Contains(c.p.Addr()) {
			// Report on the later entry in the file, naming the earlier.
			first, later := open, c
			if later.n.Index < first.n.Index {
				first, later = later, first
			}
			f := later.n.MobileNet.Networks
			d.errorf(f.Line, fmt.Sprintf("%s[%d]", f.Key, later.item),
				"%s overlaps %s of %s (%s[%d]): one network belongs to one router, or its traffic would reach only one of them; remove it from one entry (the same prefixes in different enterprises need separate Home Agents: hagent has no VRFs)",
				later.p, first.p, nodeRef(first.n), first.n.MobileNet.Networks.Key, first.item)
			if c.p.Bits() > open.p.Bits() {
				continue // open still reaches further
			}
		}
		open = c
	}
}
