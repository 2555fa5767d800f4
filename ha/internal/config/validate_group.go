package config

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"time"

	"github.com/hagent/hagent/ha/internal/clip"
)

func (d *decoder) buildGroup(r *rawConfig, c *Config) {
	rg, g := &r.Group, &c.Group
	g.Enabled = d.boolOr(rg.Enabled, false)
	d.groupAddress(r, c)
	d.groupPeers(rg, c)
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
	d.groupAcceptKeys(rg, g)
}

// groupAddress checks the group's multicast address and port, which must
// not be the agent's own port.
func (d *decoder) groupAddress(r *rawConfig, c *Config) {
	rg, g := &r.Group, &c.Group
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
	// The heartbeat port, group.port + 1 (hasync-spec §2), is bound too.
	if g.Enabled || rg.Port.Set {
		f := rg.Port
		if !f.Set {
			f = field[int64]{Key: "group.port", Line: rg.Line}
		}
		switch {
		case g.Port == 65535:
			d.errorf(f.Line, f.Key, "is 65535: the group heartbeat uses group.port + 1; choose a port below 65535")
		case g.Port+1 == c.Agent.ListenPort:
			d.errorf(f.Line, f.Key, "%d + 1 is agent.listen_port: the group heartbeat uses group.port + 1; choose ports two apart", g.Port)
		}
	}
}

// groupPeers checks the unicast peers: each once, none of them this agent.
func (d *decoder) groupPeers(rg *rawGroup, c *Config) {
	g := &c.Group
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
}

// groupAcceptKeys checks the keys accepted besides group.key: each with an
// id of its own.
func (d *decoder) groupAcceptKeys(rg *rawGroup, g *Group) {
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
