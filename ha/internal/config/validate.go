package config

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hagent/hagent/ha/internal/clip"
)

// This file is step two: raw values → a validated Config. Each problem is
// its own error; a bad value is replaced by its default so that checks
// depending on it still run and report what else is wrong.

func (d *decoder) build(r *rawConfig) *Config {
	c := &Config{}
	d.buildAgent(r, c)
	d.buildNodes(r, c)
	d.buildForeignAgents(r, c)
	d.buildGroup(r, c)
	d.buildVRRP(r, c)
	d.buildHSRP(r, c)
	d.buildDatapath(r, c)
	d.buildAdvert(r, c)
	if (c.VRRP.Enabled || c.HSRP.Enabled) && !c.Group.Enabled {
		// Named by the key that turned the election on: group.enabled is
		// usually absent, and its line would be 0.
		on := r.VRRP.Enabled
		if !c.VRRP.Enabled {
			on = r.HSRP.Enabled
		}
		d.warnf(on.Line, on.Key, "is true but group.enabled is false: a backup that takes over has no bindings and every mobile node must re-register; set group.enabled = true (with group.key) on every member")
	}
	// agent/group.go raises the tombstone lifetime of a group member to
	// max_lifetime: hasync refuses less, since a binding update delayed
	// beyond the tombstone could resurrect a de-registered binding. Say so
	// when the operator wrote a lower value (the default is documented).
	if f, maxLt := r.Agent.TombstoneLifetime, time.Duration(c.Agent.MaxLifetime)*time.Second; c.Group.Enabled && f.Set && c.Agent.TombstoneLifetime < maxLt {
		d.warnf(f.Line, f.Key, "%s is shorter than agent.max_lifetime %d (%s): in a group it is raised to %s, because a shorter tombstone could let a delayed update resurrect a de-registered binding; set it to at least %q",
			fmtDur(c.Agent.TombstoneLifetime), c.Agent.MaxLifetime, fmtDur(maxLt), fmtDur(maxLt), fmtDur(maxLt))
	}
	if c.VRRP.Enabled && c.HSRP.Enabled {
		d.errorf(r.HSRP.Enabled.Line, r.HSRP.Enabled.Key,
			"and vrrp.enabled (line %d) are both true; one protocol owns the virtual address: disable one", r.VRRP.Enabled.Line)
	}
	return c
}

func (d *decoder) buildAgent(r *rawConfig, c *Config) {
	ra, a := &r.Agent, &c.Agent
	if r.AgentPresent {
		a.Interface = d.ifname(ra.Interface, "", `the home interface, e.g. interface = "eth0"`)
		a.Address = d.unicast4(ra.Address, true, `this Home Agent's own address, e.g. address = "192.0.2.1"`)
		a.HomeNetwork = d.prefix4(ra.HomeNetwork, true, `the home network, e.g. home_network = "192.0.2.0/24"`)
	} else {
		// One error rather than one per required key: an empty file (or
		// the wrong one) is the usual cause.
		d.errorf(0, "", "no [agent] section: interface, address and home_network are required (see docs/config.md)")
	}
	a.VirtualAddress = d.unicast4(ra.VirtualAddress, false, "")
	if a.HomeNetwork.IsValid() && a.HomeNetwork.Bits() > 30 {
		d.errorf(ra.HomeNetwork.Line, ra.HomeNetwork.Key, "%s leaves no room for mobile nodes: use a prefix of /30 or shorter", a.HomeNetwork)
		a.HomeNetwork = netip.Prefix{}
	}
	d.onHomeLink(ra.Address, a.Address, a.HomeNetwork, "the Home Agent must sit on its home network")
	d.onHomeLink(ra.VirtualAddress, a.VirtualAddress, a.HomeNetwork, "the group's address is an address of the home network")
	a.ListenPort = uint16(d.intIn(ra.ListenPort, DefaultListenPort, 1, 65535))
	a.Capacity = int(d.intIn(ra.Capacity, DefaultCapacity, 1, MaxCapacity))
	// 0 means "derive", so that the reference config can show the key without
	// freezing a value that should follow capacity.
	a.TombstoneCapacity = int(d.intIn(ra.TombstoneCapacity, 0, 0, MaxCapacity))
	if a.TombstoneCapacity == 0 {
		a.TombstoneCapacity = max(a.Capacity/4, MinTombstoneCapacity)
	}
	a.TombstoneLifetime = d.durIn(ra.TombstoneLifetime, DefaultTombstoneLifetime, time.Second, 24*time.Hour)
	// A Registration Reply's lifetime 0xffff means infinity (RFC 5944
	// §3.4), but every binding here expires: granting it would promise a
	// router a binding that lapses after 65,535 s. Routers that ask for
	// 65535 (FortiGate's default) get 65534, the longest finite lifetime.
	if f := ra.MaxLifetime; f.Set && f.V == MaxFiniteLifetime+1 {
		d.errorf(f.Line, f.Key, "%d is \"infinity\" in a Registration Reply (RFC 5944 §3.4), and hagent expires every binding: a node granted it would count on a binding that lapses after %s; use %d, the longest finite lifetime",
			f.V, fmtDur(time.Duration(f.V)*time.Second), MaxFiniteLifetime)
		a.MaxLifetime = DefaultMaxLifetime
	} else {
		a.MaxLifetime = uint16(d.intIn(ra.MaxLifetime, DefaultMaxLifetime, 1, MaxFiniteLifetime))
	}
	a.ReplayTolerance = d.durIn(ra.ReplayTolerance, DefaultReplayTolerance, time.Second, time.Hour)
	a.SimultaneousBindings = d.boolOr(ra.SimultaneousBindings, false)
	a.ReverseTunnel = d.boolOr(ra.ReverseTunnel, true)
	a.Encapsulations = d.encapsulations(ra.Encapsulations)
	a.ConsoleSocket = DefaultConsoleSocket
	if f := ra.ConsoleSocket; f.Set {
		switch {
		case !path.IsAbs(f.V):
			d.errorf(f.Line, f.Key, "%s must be an absolute path, e.g. %q", clip.Quote(f.V), DefaultConsoleSocket)
		case len(f.V) > unixPathMax:
			d.errorf(f.Line, f.Key, "is %d bytes long; a unix socket path has at most %d", len(f.V), unixPathMax)
		default:
			a.ConsoleSocket = f.V
		}
	}
	a.LogLevel = slog.LevelInfo
	if f := ra.LogLevel; f.Set {
		levels := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
		if l, ok := levels[f.V]; ok {
			a.LogLevel = l
		} else {
			d.errorf(f.Line, f.Key, "%s is not a level: use \"debug\", \"info\", \"warn\" or \"error\"", clip.Quote(f.V))
		}
	}
	// 0 means "derive from the address": a config copied to another member
	// with only its address changed must not clone the identifier.
	a.AgentID = uint32(d.intIn(ra.AgentID, 0, 0, 1<<32-1))
	a.MemoryLimitMiB = int(d.intIn(ra.MemoryLimitMiB, 0, 0, 1<<16))
	if a.AgentID == 0 && a.Address.IsValid() {
		b := a.Address.As4()
		a.AgentID = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
}

func (d *decoder) encapsulations(f field[[]string]) []string {
	if !f.Set {
		return []string{DefaultEncapsulation}
	}
	if len(f.V) == 0 {
		d.errorf(f.Line, f.Key, `is empty: list at least one of "ipip", "gre"`)
		return []string{DefaultEncapsulation}
	}
	var out []string
	for _, e := range f.V {
		switch {
		case e == "minimal":
			// Mobile IP defines it (the M bit), but the kernel tunnels
			// the datapath uses carry only IP-in-IP and GRE: offering it
			// would accept nodes whose traffic is then never delivered.
			d.errorf(f.Line, f.Key, `has "minimal": the Linux datapath has no minimal encapsulation (RFC 2004); use "ipip" and/or "gre"`)
		case e != "ipip" && e != "gre":
			d.errorf(f.Line, f.Key, `has %s: supported are "ipip" (RFC 2003) and "gre" (RFC 2784)`, clip.Quote(e))
		case slices.Contains(out, e):
			d.errorf(f.Line, f.Key, "lists %s twice", clip.Quote(e))
		default:
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		out = []string{DefaultEncapsulation}
	}
	return out
}

// nodeRef names a node in messages about another one.
func nodeRef(n *rawNode) string {
	if n.Name.Set {
		return fmt.Sprintf("%s (%s, line %d)", n.Path, clip.Quote(n.Name.V), n.Line)
	}
	return fmt.Sprintf("%s (line %d)", n.Path, n.Line)
}

func (d *decoder) buildNodes(r *rawConfig, c *Config) {
	a := &c.Agent
	names := map[string]*rawNode{}
	nais := map[string]*rawNode{}
	addrs := map[netip.Addr]*rawNode{}
	type pool struct {
		p netip.Prefix
		n *rawNode
	}
	var pools []pool
	// Explicit home addresses are checked against every pool after the loop,
	// because a pool may come after the node entry it swallows.
	type addrAt struct {
		a netip.Addr
		n *rawNode
	}
	var homes []addrAt

	if len(r.Nodes) == 0 && r.AgentPresent {
		d.warnf(0, "", "no [[node]] entries: every registration request would be answered 129 (administratively prohibited); add a [[node]] with home_address or pool")
	}
	for i := range r.Nodes {
		rn := &r.Nodes[i]
		n := Node{Line: rn.Line, Name: fmt.Sprintf("node%d", rn.Index)}
		if f := rn.Name; f.Set {
			switch {
			case f.V == "" || len(f.V) > 64 || strings.ContainsFunc(f.V, func(r rune) bool { return r < ' ' || r == 0x7f }):
				d.errorf(f.Line, f.Key, "%s must be 1..64 printable characters", clip.Quote(f.V))
			default:
				n.Name = f.V
			}
		}
		if prev, ok := names[n.Name]; ok {
			d.errorf(rn.Name.Line, rn.Name.Key, "%s is already the name of %s: names label nodes in logs and must be unique", clip.Quote(n.Name), nodeRef(prev))
		} else {
			names[n.Name] = rn
		}

		switch {
		case rn.HomeAddress.Set && rn.Pool.Set:
			d.errorf(rn.Pool.Line, rn.Pool.Key, "and home_address are both set: a [[node]] is either one mobile node (home_address) or a pool sharing a key (pool)")
		case !rn.HomeAddress.Set && !rn.Pool.Set:
			d.errorf(rn.Line, rn.Path, `needs home_address = "a.b.c.d" (one mobile node) or pool = "a.b.c.d/len" (nodes sharing a key)`)
		case rn.HomeAddress.Set:
			n.HomeAddress = d.unicast4(rn.HomeAddress, true, "")
			if d.onHomeLink(rn.HomeAddress, n.HomeAddress, a.HomeNetwork, "home addresses belong to agent.home_network") &&
				d.notAgent(rn.HomeAddress, n.HomeAddress, a, "a mobile node's") {
				if prev, ok := addrs[n.HomeAddress]; ok {
					d.errorf(rn.HomeAddress.Line, rn.HomeAddress.Key, "%s is already the home address of %s: each address belongs to one node", n.HomeAddress, nodeRef(prev))
				} else {
					addrs[n.HomeAddress] = rn
					homes = append(homes, addrAt{n.HomeAddress, rn})
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
				for _, q := range pools {
					if q.p.Overlaps(p) {
						d.errorf(f.Line, f.Key, "%s overlaps %s.pool %s of %s: each address belongs to one entry", p, q.n.Path, q.p, nodeRef(q.n))
						overlap = true
						break
					}
				}
				if !overlap {
					pools = append(pools, pool{p, rn})
				}
				n.Pool = p
			}
		}

		if f := rn.NAI; f.Set {
			switch {
			case f.V == "" || len(f.V) > 255:
				d.errorf(f.Line, f.Key, "must be 1..255 bytes (it travels in a one-byte-length extension, RFC 2794)")
			case strings.ContainsFunc(f.V, func(r rune) bool { return r <= ' ' || r >= 0x7f }):
				d.errorf(f.Line, f.Key, "%s must be printable ASCII without spaces, like \"user@realm\" (RFC 4282)", clip.Quote(f.V))
			default:
				k := strings.ToLower(f.V)
				if prev, ok := nais[k]; ok {
					d.errorf(f.Line, f.Key, "%s is already the NAI of %s: NAIs identify one node", clip.Quote(f.V), nodeRef(prev))
				} else {
					nais[k] = rn
				}
				n.NAI = f.V
			}
		}
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
		c.Nodes = append(c.Nodes, n)
	}

	for _, h := range homes {
		for _, q := range pools {
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

func (d *decoder) buildGroup(r *rawConfig, c *Config) {
	rg, g := &r.Group, &c.Group
	g.Enabled = d.boolOr(rg.Enabled, false)
	g.Address = netip.MustParseAddr(DefaultGroupAddress)
	if f := rg.Address; f.Set {
		if a := d.ipv4(f, true, ""); a.IsValid() {
			if a.IsMulticast() {
				g.Address = a
			} else {
				d.errorf(f.Line, f.Key, "%s is not a multicast address: use one in 224.0.0.0/4, e.g. %s (the default, in RFC 5771's Local Network Control Block 224.0.0.0/24)", a, DefaultGroupAddress)
			}
		}
	}
	g.Port = uint16(d.intIn(rg.Port, DefaultGroupPort, 1, 65535))
	// Compare what will be bound, defaults included: listen_port = 4343
	// with group.port left out clashes as surely as both written. A
	// disabled group binds nothing, unless its port is written.
	if g.Port == c.Agent.ListenPort && (g.Enabled || rg.Port.Set) {
		lp := r.Agent.ListenPort
		switch {
		case rg.Port.Set:
			where := "default"
			if lp.Set {
				where = fmt.Sprintf("line %d", lp.Line)
			}
			d.errorf(rg.Port.Line, rg.Port.Key, "%d is agent.listen_port (%s): the group protocol needs its own port", g.Port, where)
		default: // only listen_port can have been written
			d.errorf(lp.Line, lp.Key, "%d is group.port (default): the group protocol needs its own port; choose another listen_port, or set group.port", g.Port)
		}
	}
	if f := rg.Peers; f.Set {
		for i, s := range f.V {
			ff := field[string]{V: s, Set: true, Key: fmt.Sprintf("%s[%d]", f.Key, i+1), Line: f.Line}
			p := d.unicast4(ff, true, "")
			if !p.IsValid() {
				continue
			}
			switch {
			case slices.Contains(g.Peers, p):
				d.errorf(ff.Line, ff.Key, "%s is listed twice", p)
			case p == c.Agent.Address || p == c.Agent.VirtualAddress:
				d.errorf(ff.Line, ff.Key, "%s is this agent's own address: list only the other members", p)
			default:
				g.Peers = append(g.Peers, p)
			}
		}
	}
	g.Key = d.secret(rg.Key, false)
	if g.Enabled && !rg.Key.Set && !d.mistyped[rg.Key.Key] {
		line := rg.Line
		if rg.Enabled.Set {
			line = rg.Enabled.Line
		}
		d.errorf(line, rg.Key.Key, `is required when group.enabled is true: group messages are authenticated; add key = "hex:..." (the same on every member)`)
	}
	g.KeyID = uint8(d.intIn(rg.KeyID, DefaultGroupKeyID, 0, 255))
	g.AckTimeout = d.durIn(rg.AckTimeout, DefaultGroupAckTimeout, 10*time.Millisecond, 10*time.Second)
	g.MaxRetries = int(d.intIn(rg.MaxRetries, DefaultGroupMaxRetries, 1, 100))
	// 100: a Home Agent List carries at most 100 members.
	g.MaxMembers = int(d.intIn(rg.MaxMembers, DefaultGroupMaxMembers, 2, 100))
	if len(g.Peers) >= g.MaxMembers {
		f := rg.MaxMembers
		if !f.Set {
			f = field[int64]{Key: "group.max_members", Line: rg.Peers.Line}
		}
		d.errorf(f.Line, f.Key, "is %d but group.peers lists %d other members: raise max_members to at least %d", g.MaxMembers, len(g.Peers), len(g.Peers)+1)
	}
	g.AntiEntropyInterval = d.durIn(rg.AntiEntropyInterval, DefaultGroupAntiEntropy, time.Second, time.Hour)
	g.AckBeforeReply = d.boolOr(rg.AckBeforeReply, true)
	g.RequireReplication = d.boolOr(rg.RequireReplication, false)
	d.buildHeartbeat(rg, g)
	if f := rg.RequireReplication; g.RequireReplication {
		// Without a group or without held replies nothing could ever prove
		// replication: the agent would refuse every registration, or
		// silently give no guarantee. Both are configuration mistakes.
		switch {
		case !g.Enabled:
			d.errorf(f.Line, f.Key, "is true but group.enabled is false: a standalone agent has no peer to replicate to and would refuse every registration; remove the key or enable the group")
		case !g.AckBeforeReply:
			d.errorf(f.Line, f.Key, "is true but group.ack_before_reply is false: replication is proven by holding each reply until a peer's acknowledgement; set ack_before_reply = true or remove the key")
		}
	}
	idLines := map[uint8]int{} // accept_keys id -> its line
	for _, rk := range rg.AcceptKeys {
		k := GroupKey{ID: uint8(d.intIn(rk.ID, 0, 0, 255)), Key: d.secret(rk.Key, true)}
		if !rk.ID.Set {
			if d.mistyped[rk.Path+".id"] {
				continue
			}
			d.errorf(rk.Line, rk.Path+".id", "is required: the key id the other members send with")
			continue
		}
		also := ""
		switch l, ok := idLines[k.ID]; {
		case ok:
			also = fmt.Sprintf("at line %d", l)
		case k.ID == g.KeyID && rg.KeyID.Set:
			also = fmt.Sprintf("at line %d", rg.KeyID.Line)
		case k.ID == g.KeyID:
			also = "group.key_id, by default"
		}
		if also != "" {
			d.errorf(rk.ID.Line, rk.ID.Key, "%d is used twice (also %s): group.key_id and the accept_keys ids must all differ", k.ID, also)
			continue
		}
		idLines[k.ID] = rk.ID.Line
		g.AcceptKeys = append(g.AcceptKeys, k)
	}
}

func (d *decoder) buildVRRP(r *rawConfig, c *Config) {
	rv, v, a := &r.VRRP, &c.VRRP, &c.Agent
	v.Enabled = d.boolOr(rv.Enabled, false)
	owner := a.VirtualAddress.IsValid() && a.VirtualAddress == a.Address
	if v.Enabled && !r.Agent.VirtualAddress.Set {
		d.errorf(rv.Enabled.Line, rv.Enabled.Key, `is true but agent.virtual_address is not set: VRRP moves that address; add virtual_address = "a.b.c.d" to [agent]`)
	}
	v.VRID = uint8(d.intIn(rv.VRID, DefaultVRID, 1, 255))
	v.Priority = DefaultVRRPPriority
	if owner {
		v.Priority = 255
	}
	if f := rv.Priority; f.Set {
		switch {
		case f.V == 255 && !owner:
			d.errorf(f.Line, f.Key, "255 is reserved for the address owner (agent.virtual_address = agent.address, RFC 5798 §6.1): use 1..254")
		case f.V != 255 && owner && v.Enabled:
			d.errorf(f.Line, f.Key, "%d: this agent owns the virtual address (agent.virtual_address = agent.address), so its priority is 255 (RFC 5798 §6.1): remove the key", f.V)
		case f.V == 255:
		default:
			v.Priority = uint8(d.intIn(f, DefaultVRRPPriority, 1, 254))
		}
	}
	v.AdvertInterval = d.durIn(rv.AdvertInterval, DefaultVRRPAdvertInterval, 10*time.Millisecond, 4095*10*time.Millisecond)
	if f := rv.AdvertInterval; f.Set && v.AdvertInterval%(10*time.Millisecond) != 0 {
		d.errorf(f.Line, f.Key, "%s is not a multiple of 10ms: VRRPv3 counts in centiseconds (RFC 5798 §5.2.7)", f.V)
		v.AdvertInterval = DefaultVRRPAdvertInterval
	}
	v.Preempt = d.boolOr(rv.Preempt, true)
	v.PreemptDelay = d.durIn(rv.PreemptDelay, 0, 0, time.Hour)
	v.Accept = d.boolOr(rv.Accept, true)
	v.GARPCount = int(d.intIn(rv.GARPCount, DefaultGARPCount, 0, 100))
	// The delay before one repeat burst (keepalived's garp_master_delay);
	// 0 sends none, which vrrp.Config.GARPRepeat understands.
	v.GARPInterval = d.durIn(rv.GARPInterval, DefaultGARPInterval, 0, time.Minute)
	v.Reclaim = d.buildReclaim(&rv.Reclaim)
	v.UseVirtualMAC = d.boolOr(rv.UseVirtualMAC, false)
	for _, rt := range rv.Track {
		t := Track{Interface: d.ifname(rt.Interface, "", `the tracked interface, e.g. interface = "eth1"`)}
		t.Weight = int(d.intIn(rt.Weight, 0, 0, 254))
		if t.Interface != "" && slices.ContainsFunc(v.TrackInterfaces, func(o Track) bool { return o.Interface == t.Interface }) {
			d.errorf(rt.Interface.Line, rt.Interface.Key, "%s is tracked twice", clip.Quote(t.Interface))
			continue
		}
		v.TrackInterfaces = append(v.TrackInterfaces, t)
	}
	if f := rv.NotifyCommand; f.Set && f.V != "" {
		if path.IsAbs(f.V) {
			v.NotifyCommand = f.V
		} else {
			d.errorf(f.Line, f.Key, "%s must be an absolute path (there is no shell and no PATH search)", clip.Quote(f.V))
		}
	}
}

func (d *decoder) buildHSRP(r *rawConfig, c *Config) {
	rh, h, a := &r.HSRP, &c.HSRP, &c.Agent
	h.Enabled = d.boolOr(rh.Enabled, false)
	if h.Enabled {
		switch {
		case !r.Agent.VirtualAddress.Set:
			d.errorf(rh.Enabled.Line, rh.Enabled.Key, `is true but agent.virtual_address is not set: HSRP moves that address; add virtual_address = "a.b.c.d" to [agent]`)
		case a.VirtualAddress.IsValid() && a.VirtualAddress == a.Address:
			d.errorf(rh.Enabled.Line, rh.Enabled.Key, "is true but agent.virtual_address equals agent.address: HSRP's virtual address must not be any router's own address (RFC 2281)")
		}
	}
	h.Group = uint8(d.intIn(rh.Group, 0, 0, 255))
	h.Priority = uint8(d.intIn(rh.Priority, DefaultHSRPPriority, 0, 255))
	var helloOK, holdOK bool
	h.Hello, helloOK = d.wholeSeconds(rh.Hello, DefaultHSRPHello)
	h.Hold, holdOK = d.wholeSeconds(rh.Hold, DefaultHSRPHold)
	// Compared only when HSRP runs (a disabled section is inert) and both
	// values are the operator's or the defaults: a default stood in for an
	// invalid value would add a second, false, error.
	if h.Enabled && helloOK && holdOK {
		d.hsrpTimers(rh, h.Hello, h.Hold)
	}
	if !rh.Hello.Set && !rh.Hold.Set {
		h.Hello, h.Hold = 0, 0 // learnt from the active router (RFC 2281 §5.1)
	}
	h.Reclaim = d.buildReclaim(&rh.Reclaim)
	h.Preempt = d.boolOr(rh.Preempt, false)
	h.Auth = DefaultHSRPAuth
	if f := rh.Auth; f.Set {
		if len(f.V) > 8 {
			d.errorf(f.Line, f.Key, "is %d bytes long: HSRPv1 authentication data is at most 8 bytes (RFC 2281 §5)", len(f.V))
		} else {
			h.Auth = f.V
		}
	}
	// RFC 2281 §6.1: the active router answers with the virtual MAC;
	// false announces the interface's own (Cisco's "standby use-bia").
	h.UseVirtualMAC = d.boolOr(rh.UseVirtualMAC, true)
}

// wholeSeconds reads an HSRPv1 timer: one octet of seconds on the wire. ok
// is false when the value was invalid (reported) and def stands in for it.
func (d *decoder) wholeSeconds(f field[string], def time.Duration) (v time.Duration, ok bool) {
	n := len(d.errs)
	v = d.durIn(f, def, time.Second, maxHSRPTimer)
	if f.Set && v%time.Second != 0 {
		d.errorf(f.Line, f.Key, "%s is not a whole number of seconds: HSRPv1 timers are in seconds (RFC 2281 §5)", f.V)
		return def, false
	}
	return v, len(d.errs) == n
}

// maxHSRPTimer is the largest hello or hold time: one octet of seconds.
const maxHSRPTimer = 255 * time.Second

// hsrpTimers checks hold against hello (RFC 2281 §5: hold > hello, usually
// 3 × hello so that one lost hello does not cause a takeover). The message
// sits on hold's line, or on hello's when hold is the default.
func (d *decoder) hsrpTimers(rh *rawHSRP, hello, hold time.Duration) {
	if hold >= 3*hello {
		return
	}
	at := rh.Hold
	if !at.Set && rh.Hello.Set {
		at = rh.Hello
	}
	show := func(f field[string], v time.Duration) string {
		if f.Set {
			return f.V // as written: "90s", not 1m30s
		}
		return fmtDur(v) + " (default)"
	}
	var fix string
	if 3*hello <= maxHSRPTimer {
		fix = fmt.Sprintf("set hold to at least 3 × hello, e.g. %q", fmtDur(3*hello))
	} else {
		fix = fmt.Sprintf("lower hello, so that hold (at most %ds) can be 3 × hello", maxHSRPTimer/time.Second)
	}
	if hold <= hello {
		d.errorf(at.Line, rh.Hold.Key, "%s must be longer than hsrp.hello %s: %s", show(rh.Hold, hold), show(rh.Hello, hello), fix)
		return
	}
	d.warnf(at.Line, rh.Hold.Key, "%s is less than 3 × hsrp.hello %s: one lost hello can cause a takeover; %s", show(rh.Hold, hold), show(rh.Hello, hello), fix)
}

// reservedProtocols are rtm_protocol values of the kernel and other routing
// daemons (linux/rtnetlink.h, /etc/iproute2/rt_protos): the datapath lists
// and flushes routes by protocol, so sharing one would delete theirs.
var reservedProtocols = map[int64]string{
	0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 8: "gated", 9: "ra", 10: "mrt",
	11: "zebra", 12: "bird", 13: "dnrouted", 14: "xorp", 15: "ntk", 16: "dhcp", 17: "mrouted",
	18: "keepalived", 42: "babel", 99: "openr", 186: "bgp", 187: "isis", 188: "ospf", 189: "rip",
	192: "eigrp",
}

func (d *decoder) buildDatapath(r *rawConfig, c *Config) {
	rd, p := &r.Datapath, &c.Datapath
	p.Enabled = d.boolOr(rd.Enabled, true)
	p.TunnelDevice = DefaultTunnelDevice
	if rd.TunnelDevice.Set {
		if n := d.ifname(rd.TunnelDevice, DefaultTunnelDevice, ""); n == c.Agent.Interface {
			d.errorf(rd.TunnelDevice.Line, rd.TunnelDevice.Key, "%s is agent.interface: the tunnel device is a separate device the agent creates", clip.Quote(n))
		} else {
			p.TunnelDevice = n
		}
	}
	p.RouteProtocol = DefaultRouteProtocol
	if f := rd.RouteProtocol; f.Set {
		if name, ok := reservedProtocols[f.V]; ok {
			d.errorf(f.Line, f.Key, "%d is the route protocol of %q: the agent flushes its routes by protocol; pick an unused number such as %d", f.V, name, DefaultRouteProtocol)
		} else {
			p.RouteProtocol = uint8(d.intIn(f, DefaultRouteProtocol, 5, 255))
		}
	}
	p.ProxyARP = d.boolOr(rd.ProxyARP, true)
	p.ProxyARPMode = ProxyARPEntries
	if f := rd.ProxyARPMode; f.Set {
		switch f.V {
		case ProxyARPEntries, ProxyARPInterface:
			p.ProxyARPMode = f.V
		default:
			d.errorf(f.Line, f.Key, "%s: want %q (one proxy entry per away node) or %q (proxy_arp on agent.interface)", clip.Quote(f.V), ProxyARPEntries, ProxyARPInterface)
		}
	}
	// The kernel keeps proxy entries in 16 hash buckets: installing N of
	// them costs O(N²) (docs/datapath.md: 100,000 took 25 s).
	if p.Enabled && p.ProxyARP && p.ProxyARPMode == ProxyARPEntries && c.Agent.Capacity > ProxyEntriesAdvice {
		// On the key if written, else on [datapath] (where it would go),
		// else on agent.capacity, which is written whenever this fires.
		line := rd.Line
		switch {
		case rd.ProxyARPMode.Set:
			line = rd.ProxyARPMode.Line
		case line == 0:
			line = r.Agent.Capacity.Line
		}
		d.warnf(line, "datapath.proxy_arp_mode", "%q with agent.capacity %d: the kernel installs proxy entries in O(N²) (100,000 take 25 s, a takeover waits for them); use %q beyond %d bindings",
			ProxyARPEntries, c.Agent.Capacity, ProxyARPInterface, ProxyEntriesAdvice)
	}
	p.ReverseCheck = d.boolOr(rd.ReverseCheck, true)
	p.ReconcileInterval = d.durIn(rd.ReconcileInterval, DefaultReconcileInterval, time.Second, time.Hour)
}

func (d *decoder) buildAdvert(r *rawConfig, c *Config) {
	ra, v := &r.Advert, &c.Advert
	v.Enabled = d.boolOr(ra.Enabled, false)
	v.Interval = d.durIn(ra.Interval, DefaultAdvertInterval, time.Second, 30*time.Minute)
	if f := ra.Interval; f.Set && v.Interval%time.Second != 0 {
		d.errorf(f.Line, f.Key, "%s is not a whole number of seconds", f.V)
		v.Interval = DefaultAdvertInterval
	}
	v.Lifetime = d.durIn(ra.Lifetime, max(DefaultAdvertLifetime, 3*v.Interval), time.Second, 65535*time.Second)
	if f := ra.Lifetime; f.Set {
		switch {
		case v.Lifetime%time.Second != 0:
			d.errorf(f.Line, f.Key, "%s is not a whole number of seconds: the ICMP lifetime field counts seconds", f.V)
			v.Lifetime = DefaultAdvertLifetime
		case v.Lifetime < v.Interval:
			d.errorf(f.Line, f.Key, "%s is shorter than advertise.interval %s: nodes would forget the agent between advertisements (3 × interval is usual)", fmtDur(v.Lifetime), fmtDur(v.Interval))
		}
	}
	v.Destination = netip.MustParseAddr(DefaultAdvertDestination)
	if f := ra.Destination; f.Set {
		if a := d.ipv4(f, true, ""); a.IsValid() {
			if a == netip.MustParseAddr("224.0.0.1") || a == netip.MustParseAddr("255.255.255.255") {
				v.Destination = a
			} else {
				d.errorf(f.Line, f.Key, "%s: advertisements go to 224.0.0.1 (all systems) or 255.255.255.255 (RFC 5944 §2.1)", a)
			}
		}
	}
}

// ---- value helpers: each reports its own problem and returns a usable value.

func (d *decoder) required(key string, line int, hint string) {
	if d.mistyped[key] {
		return // present with the wrong type, reported as such
	}
	if hint == "" {
		d.errorf(line, key, "is required")
		return
	}
	d.errorf(line, key, "is required: %s", hint)
}

func (d *decoder) boolOr(f field[bool], def bool) bool {
	if f.Set {
		return f.V
	}
	return def
}

func (d *decoder) intIn(f field[int64], def, lo, hi int64) int64 {
	if !f.Set {
		return def
	}
	if f.V < lo || f.V > hi {
		d.errorf(f.Line, f.Key, "%d out of range %d..%d", f.V, lo, hi)
		return def
	}
	return f.V
}

func (d *decoder) durIn(f field[string], def, lo, hi time.Duration) time.Duration {
	if !f.Set {
		return def
	}
	v, err := time.ParseDuration(f.V)
	if err != nil {
		d.errorf(f.Line, f.Key, "%s is not a duration: write a number with a unit, e.g. \"500ms\", \"90s\", \"5m\", \"1h30m\"", clip.Quote(f.V))
		return def
	}
	if v < lo || v > hi {
		d.errorf(f.Line, f.Key, "%s out of range %s..%s", f.V, fmtDur(lo), fmtDur(hi))
		return def
	}
	return v
}

// fmtDur prints 5m rather than 5m0s.
func fmtDur(v time.Duration) string {
	s := v.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func (d *decoder) ipv4(f field[string], required bool, hint string) netip.Addr {
	if !f.Set {
		if required {
			d.required(f.Key, f.Line, hint)
		}
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(f.V)
	if err != nil {
		d.errorf(f.Line, f.Key, "%s is not an IP address: write a dotted quad, e.g. \"192.0.2.1\"", clip.Quote(f.V))
		return netip.Addr{}
	}
	if !a.Is4() {
		d.errorf(f.Line, f.Key, "%s is not IPv4: hagent is an IPv4 Home Agent (RFC 5944); write a dotted quad", f.V)
		return netip.Addr{}
	}
	return a
}

func (d *decoder) unicast4(f field[string], required bool, hint string) netip.Addr {
	a := d.ipv4(f, required, hint)
	if a.IsValid() && (a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
		d.errorf(f.Line, f.Key, "%s is not a unicast address", a)
		return netip.Addr{}
	}
	return a
}

func (d *decoder) prefix4(f field[string], required bool, hint string) netip.Prefix {
	if !f.Set {
		if required {
			d.required(f.Key, f.Line, hint)
		}
		return netip.Prefix{}
	}
	p, err := netip.ParsePrefix(f.V)
	if err != nil {
		d.errorf(f.Line, f.Key, "%s is not a prefix: write address/length, e.g. \"192.0.2.0/24\"", clip.Quote(f.V))
		return netip.Prefix{}
	}
	if !p.Addr().Is4() {
		d.errorf(f.Line, f.Key, "%s is not IPv4: hagent is an IPv4 Home Agent (RFC 5944)", f.V)
		return netip.Prefix{}
	}
	if p.Bits() == 0 {
		d.errorf(f.Line, f.Key, "%s is the whole Internet: give the real prefix length", f.V)
		return netip.Prefix{}
	}
	if m := p.Masked(); m != p {
		d.errorf(f.Line, f.Key, "%s has host bits set: write %s", f.V, m)
		return netip.Prefix{}
	}
	return p
}

// onHomeLink checks that an address lies inside the home network and is not
// its network or broadcast address. It reports whether the address is fine
// (or could not be checked because the home network is itself invalid).
func (d *decoder) onHomeLink(f field[string], a netip.Addr, home netip.Prefix, why string) bool {
	if !a.IsValid() || !home.IsValid() {
		return a.IsValid()
	}
	if !home.Contains(a) {
		d.errorf(f.Line, f.Key, "%s is outside agent.home_network %s: %s", a, home, why)
		return false
	}
	if home.Bits() <= 30 {
		b := a.As4()
		hostBits := 32 - home.Bits()
		host := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) & (1<<hostBits - 1)
		switch host {
		case 0:
			d.errorf(f.Line, f.Key, "%s is the network address of %s, not a host address", a, home)
			return false
		case 1<<hostBits - 1:
			d.errorf(f.Line, f.Key, "%s is the broadcast address of %s, not a host address", a, home)
			return false
		}
	}
	return true
}

// notAgent reports (as an error) an address that is one of the agent's own;
// whose names what the address was given as ("a mobile node's").
func (d *decoder) notAgent(f field[string], a netip.Addr, ag *Agent, whose string) bool {
	switch {
	case ag.Address.IsValid() && a == ag.Address:
		d.errorf(f.Line, f.Key, "%s is agent.address: the Home Agent's own address cannot be %s", a, whose)
		return false
	case ag.VirtualAddress.IsValid() && a == ag.VirtualAddress:
		d.errorf(f.Line, f.Key, "%s is agent.virtual_address: the group's address cannot be %s", a, whose)
		return false
	}
	return true
}

func (d *decoder) ifname(f field[string], def, hint string) string {
	if !f.Set {
		if def == "" {
			d.required(f.Key, f.Line, hint)
		}
		return def
	}
	switch {
	case f.V == "" || len(f.V) > ifNameMax:
		d.errorf(f.Line, f.Key, "%s must be an interface name of 1..%d bytes", clip.Quote(f.V), ifNameMax)
	case f.V == "." || f.V == ".." || strings.ContainsAny(f.V, "/: \t\n"):
		d.errorf(f.Line, f.Key, "%s is not a valid interface name (no '/', ':' or spaces)", clip.Quote(f.V))
	default:
		return f.V
	}
	return def
}

func (d *decoder) spi(f field[int64]) uint32 {
	if !f.Set {
		d.required(f.Key, f.Line, "the security parameter index the node puts in its authentication extension, 256 or more")
		return 0
	}
	if f.V >= 0 && f.V < MinSPI {
		d.errorf(f.Line, f.Key, "%d is reserved: SPIs 0..255 are reserved (RFC 5944 §3.5.1); use 256..4294967295", f.V)
		return 0
	}
	return uint32(d.intIn(f, 0, MinSPI, 1<<32-1))
}

func (d *decoder) algorithm(f field[string]) string {
	if f.Set && f.V != DefaultAlgorithm {
		d.errorf(f.Line, f.Key, "%s is not supported: the only algorithm is \"hmac-md5\" (RFC 5944 §3.5.1)", clip.Quote(f.V))
	}
	return DefaultAlgorithm
}

// exampleKeys are the secrets written in rootfs/etc/hagent.toml. The
// firmware ships that file, so a router could run with keys anyone can read;
// a test keeps this list equal to the file's keys.
var exampleKeys = []string{
	"hex:00112233445566778899aabbccddeeff",
	"text:example-secret-sensor-7",
	"hex:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978",
	"hex:a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
	"hex:5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e",
	"hex:0badc0de0badc0de0badc0de0badc0de",
}

// secret decodes "hex:..." or "text:..." key material. The value is never
// echoed in messages: they end up on consoles and in logs.
func (d *decoder) secret(f field[string], required bool) []byte {
	if !f.Set {
		if required {
			d.required(f.Key, f.Line, `the shared secret, key = "hex:00112233..." or key = "text:..."`)
		}
		return nil
	}
	var k []byte
	switch {
	case strings.HasPrefix(f.V, "hex:"):
		h := f.V[len("hex:"):]
		b, err := hex.DecodeString(h)
		if err != nil {
			if len(h)%2 == 1 {
				d.errorf(f.Line, f.Key, "has an odd number of hex digits (%d): each byte is two digits", len(h))
			} else {
				d.errorf(f.Line, f.Key, "is not valid hex after \"hex:\" (digits 0-9, a-f only, no spaces or colons)")
			}
			return nil
		}
		k = b
	case strings.HasPrefix(f.V, "text:"):
		k = []byte(f.V[len("text:"):])
	default:
		d.errorf(f.Line, f.Key, `must start with "hex:" or "text:" (e.g. key = "hex:00112233445566778899aabbccddeeff"): a plain string is ambiguous`)
		return nil
	}
	if len(k) == 0 || len(k) > maxKeyBytes {
		d.errorf(f.Line, f.Key, "is %d bytes: use 1..%d (16..64 recommended)", len(k), maxKeyBytes)
		return nil
	}
	if slices.Contains(exampleKeys, f.V) {
		d.warn(f, "is an example key published with hagent's reference config: replace it with a secret of your own")
	}
	if len(k) < recommendedMinKeyBytes {
		d.warn(f, "is "+strconv.Itoa(len(k))+" bytes; 16 or more are recommended")
	}
	return k
}

// warn records advice; Parse only fills Config.Warnings when there is no error.
func (d *decoder) warn(f field[string], msg string) {
	d.warnf(f.Line, f.Key, "%s", msg)
}

// warnf records advice about key at line, formatted like an Error: the line
// is left out rather than printed as 0 when there is none.
func (d *decoder) warnf(line int, key, format string, args ...any) {
	w := (&Error{File: d.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}).Error()
	d.warnings = append(d.warnings, strings.TrimPrefix(w, "config: "))
}
