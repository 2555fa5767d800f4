package advert

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Schedule is when and where advertisements go ([advertise]).
type Schedule struct {
	Interval    time.Duration // whole seconds, at least 1s
	Lifetime    time.Duration // ICMP lifetime: whole seconds, >= Interval, <= 65535s
	Destination netip.Addr    // 224.0.0.1 or 255.255.255.255
}

// Config is what the Runner advertises and where. The agent maps its
// configuration onto it; whether advertisements are enabled at all is the
// agent's business: it starts a Runner only when they are.
type Config struct {
	// Advert is the schedule, from [advertise].
	Advert Schedule
	// Interface is the home interface (agent.interface).
	Interface string
	// Address is this agent's own address (agent.address): the source of
	// advertisements when SetActive is given no address (no group).
	Address netip.Addr
	// HomeNetwork (agent.home_network) gives the Prefix-Lengths Extension's
	// value; invalid leaves the extension out.
	HomeNetwork netip.Prefix
	// RegLifetime is the longest registration lifetime accepted, seconds
	// (agent.max_lifetime); 0xffff means unlimited.
	RegLifetime uint16
	// Encapsulations (agent.encapsulations) set M ("minimal") and G ("gre");
	// IP-in-IP has no bit: RFC 5944 requires it of every agent.
	Encapsulations []string
	// NotRouter sends ICMP code 16: the agent does not route common traffic
	// on the home link (another router does). Default false: code 0.
	NotRouter bool
	// Preference is the RFC 1256 preference of the advertised router
	// address (the source address). 0 by default.
	Preference int32
	// UDPTunnel sets U: the agent offers RFC 3519 UDP tunnelling to nodes
	// behind a NAT (nat.udp_tunnel).
	UDPTunnel bool
}

// Flags are the Mobility Agent Advertisement flags this configuration
// advertises: H always (a home agent, RFC 5944 §2.1.1); M and G for the
// encapsulations it receives; U when it offers UDP tunnelling (RFC 3519);
// never F, so never R, B or T either (they are foreign-agent bits: §2.1.1
// forbids R and B without F, and T means "this foreign agent supports
// reverse tunnelling", RFC 3024 §3.1; reverse tunnelling at the home agent
// is agreed per registration instead).
func (c *Config) Flags() Flags {
	f := FlagH
	if slices.Contains(c.Encapsulations, "minimal") {
		f |= FlagM
	}
	if slices.Contains(c.Encapsulations, "gre") {
		f |= FlagG
	}
	if c.UDPTunnel {
		f |= FlagU
	}
	return f
}

// Validate checks what the Runner needs; config.Load checks the ranges of
// the [advertise] values already, this guards other callers (tests).
func (c *Config) Validate() error {
	a := &c.Advert
	switch {
	case c.Interface == "":
		return fmt.Errorf("advert: no home interface (agent.interface)")
	case a.Interval < time.Second || a.Interval%time.Second != 0:
		return fmt.Errorf("advert: interval %v: whole seconds, at least 1s (advertise.interval)", a.Interval)
	case a.Lifetime < a.Interval || a.Lifetime > 0xffff*time.Second || a.Lifetime%time.Second != 0:
		return fmt.Errorf("advert: lifetime %v: whole seconds, at least the interval %v, at most 65535s (advertise.lifetime)", a.Lifetime, a.Interval)
	case a.Destination != netip.AddrFrom4([4]byte{224, 0, 0, 1}) && a.Destination != netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("advert: destination %v: 224.0.0.1 or 255.255.255.255 only (RFC 5944 §2.1; advertise.destination)", a.Destination)
	case c.Address.IsValid() && !c.Address.Is4():
		return fmt.Errorf("advert: address %v is not IPv4 (agent.address)", c.Address)
	case c.HomeNetwork.IsValid() && !c.HomeNetwork.Addr().Is4():
		return fmt.Errorf("advert: home network %v is not IPv4 (agent.home_network)", c.HomeNetwork)
	}
	return nil
}

// template is the advertisement with everything but the per-send fields
// (source/router address, sequence, lifetime).
func (c *Config) template() Advertisement {
	a := Advertisement{Code: CodeRouter, NumRouters: 1, RegLifetime: c.RegLifetime, Flags: c.Flags()}
	if c.NotRouter {
		a.Code = CodeNotRouter
	}
	a.Routers[0].Preference = c.Preference
	if c.HomeNetwork.IsValid() {
		a.PrefixLengths = true
		a.Prefix[0] = uint8(c.HomeNetwork.Bits())
	}
	return a
}
