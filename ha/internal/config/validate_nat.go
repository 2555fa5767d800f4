package config

import "time"

// NAT traversal (RFC 3519): [nat], and each node's udp_tunnel.

// NAT is [nat]: Mobile IP traversal of NAT devices (RFC 3519), the UDP
// tunnelling a node behind a NAT needs, since IP-in-IP and GRE do not cross
// one.
type NAT struct {
	// UDPTunnel: UDP tunnelling is offered at all (default false): the U
	// flag of agent advertisements, UDP Tunnel Replies, the UDP data path
	// on the agent's port. It is the default of every node's udp_tunnel.
	UDPTunnel bool
	// AcceptForced: a request whose UDP Tunnel Request has the F flag set
	// gets UDP tunnelling although no NAT is detected (its source address
	// is its care-of address), and the reply's F flag says so (RFC 3519
	// §3.1.1, §3.2: for a node behind a firewall that only UDP crosses).
	// Default true; false: such a request is denied with 129
	// (administratively prohibited), as Cisco StarOS does by default.
	AcceptForced bool
	// Keepalive is the interval the UDP Tunnel Reply announces: the node
	// sends a keepalive when it has sent nothing for this long, holding
	// its NAT mapping open. Whole seconds; default 110s, RFC 3519's
	// default; 1s..65535s (the field is 16 bits; 0 on the wire would tell
	// the node to use its own default).
	Keepalive time.Duration
	// Uplink is the interface tunnel data arrives on and leaves by (the UDP
	// tunnel's routes go out of it); default agent.interface. Correspondents
	// on the home link reach a UDP-tunnelled node only when it is another
	// interface: the kernel answers proxy ARP only for an address routed
	// out of an interface other than the one the request came in on.
	Uplink string
}

// KeepaliveSeconds is Keepalive as the UDP Tunnel Reply carries it.
func (n *NAT) KeepaliveSeconds() uint16 { return uint16(n.Keepalive / time.Second) }

// Defaults of [nat].
const (
	DefaultNATKeepalive = 110 * time.Second // RFC 3519 §4.9
	MaxNATKeepalive     = 65535 * time.Second
	// natIdleAdvice: Linux conntrack forgets a UDP flow seen both ways
	// after 120 s of silence (nf_conntrack_udp_timeout_stream), and
	// carrier NATs are often shorter.
	natIdleAdvice = 120 * time.Second
)

type rawNAT struct {
	Line         int
	UDPTunnel    field[bool]
	AcceptForced field[bool]
	Keepalive    field[string]
	Uplink       field[string]
}

// readNAT reads [nat].
func readNAT(root *table, r *rawConfig) {
	t := root.sub("nat")
	r.NAT = rawNAT{
		Line:         t.line,
		UDPTunnel:    t.boolean("udp_tunnel"),
		AcceptForced: t.boolean("accept_forced"),
		Keepalive:    t.duration("keepalive_interval"),
		Uplink:       t.str("uplink_interface"),
	}
	t.done()
}

func (d *decoder) buildNAT(r *rawConfig, c *Config) {
	rn, n := &r.NAT, &c.NAT
	n.UDPTunnel = d.boolOr(rn.UDPTunnel, false)
	n.AcceptForced = d.boolOr(rn.AcceptForced, true)
	n.Keepalive = d.durIn(rn.Keepalive, DefaultNATKeepalive, time.Second, MaxNATKeepalive)
	n.Uplink = c.Agent.Interface
	if rn.Uplink.Set {
		n.Uplink = d.ifname(rn.Uplink, c.Agent.Interface, "")
	}
	if f := rn.Keepalive; f.Set {
		switch {
		case n.Keepalive%time.Second != 0:
			d.errorf(f.Line, f.Key, "%s is not a whole number of seconds: the UDP Tunnel Reply carries seconds", f.V)
			n.Keepalive = DefaultNATKeepalive
		case n.Keepalive > natIdleAdvice:
			d.warnf(f.Line, f.Key, "%s is longer than %s: many NATs drop a silent UDP mapping sooner (Linux conntrack after 120 s, carrier NATs often after 30-60 s), and a node behind one loses its tunnel until it re-registers; RFC 3519's default is 110s",
				fmtDur(n.Keepalive), fmtDur(natIdleAdvice))
		}
	}
}

// nodeUDPTunnel reads the node's udp_tunnel: only where [nat] offers it.
func (d *decoder) nodeUDPTunnel(rn *rawNode, n *Node, nat *NAT) {
	n.UDPTunnel = d.boolOr(rn.UDPTunnel, nat.UDPTunnel)
	if f := rn.UDPTunnel; f.Set && f.V && !nat.UDPTunnel {
		d.errorf(f.Line, f.Key, "is true but nat.udp_tunnel is false: the UDP tunnel is not set up at all; set nat.udp_tunnel = true (and udp_tunnel = false on the nodes that must not use it)")
		n.UDPTunnel = false
	}
}
