package config

import (
	"log/slog"
	"net/netip"
	"path"
	"slices"
	"time"

	"github.com/hagent/hagent/ha/internal/clip"
)

// This file is step two: raw values → a validated Config. Each problem is
// its own error; a bad value is replaced by its default so that checks
// depending on it still run and report what else is wrong.

func (d *decoder) build(r *rawConfig) *Config {
	c := &Config{}
	d.buildAgent(r, c)
	d.buildNAT(r, c) // before the nodes: their udp_tunnel defaults to it
	d.buildNodes(r, c)
	d.buildForeignAgents(r, c)
	d.buildGroup(r, c)
	d.buildVRRP(r, c)
	d.buildHSRP(r, c)
	d.deriveHeartbeat(r, c)
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
	a.SharedHomeAddresses = d.sharedHomes(ra.SharedHomeAddresses, a)
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
