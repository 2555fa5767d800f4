package config

import (
	"time"

	"github.com/hagent/hagent/ha/internal/clip"
)

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
	p.TunnelDF = d.boolOr(rd.TunnelDF, true)
	p.SendRedirects = d.boolOr(rd.SendRedirects, false)
	p.ReconcileInterval = d.durIn(rd.ReconcileInterval, DefaultReconcileInterval, time.Second, time.Hour)
}
