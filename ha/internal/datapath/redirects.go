package datapath

// ICMP redirects, off on every interface the agent forwards on.
//
// A Home Agent is often one-armed: a correspondent's packet for an away
// node arrives on the home link and leaves through it again (the UDP
// tunnel's routes go out of the uplink, by default the home interface), and
// a packet a node reverse-tunnels to another node enters and leaves the
// same tunnel device. The kernel marks such a packet for a redirect when
// its source is on the link (__mkroute_input: out_dev == in_dev and
// fib_validate_source found the source directly connected) and, in
// ip_forward, sends one naming the destination itself as the next hop:
// "10.1.0.5 is on your link". That is false (the node is away, the agent is
// its router, RFC 5944 §4.6), tells the home link where the node is not,
// and, for a node's own packet, is tunnelled back to it. The kernel sends a
// redirect if send_redirects is on for "all" OR for the interface
// (IN_DEV_TX_REDIRECTS is IN_DEV_ORCONF in include/linux/inetdevice.h), so
// both must be 0: "all" by /proc/sys (netlink cannot set it), and each
// forwarding interface with the forwarding setting itself. "default" is
// left alone: every interface the agent forwards on gets its own 0 at each
// Setup, and interfaces that appear later are the host's.
//
// accept_redirects goes to 0 on the same interfaces: a redirect may move
// the agent's own routes through a gateway (the outer packets towards
// care-of addresses and NATs), and a host on the home link that forges one
// from the router's address would draw a node's tunnel to itself; a
// router takes no routes from redirects (RFC 1812 §4.3.3.2). The kernel
// accepts one on a forwarding interface only if "all" AND the interface
// say so (IN_DEV_RX_REDIRECTS), so the interface's 0 suffices and "all"
// stays as the host has it. The /32 routes themselves have no gateway and no
// redirect moves them (__ip_do_redirect wants the route's gateway to be the
// sender).
//
// Config.SendRedirects leaves all of this as the host has it. Like
// ip_forward_use_pmtu, nothing is restored at exit: the namespace is the
// agent's to run.

const (
	devconfAcceptRedirects = 4 // IPV4_DEVCONF_ACCEPT_REDIRECTS
	devconfSendRedirects   = 6 // IPV4_DEVCONF_SEND_REDIRECTS
)

const allSendRedirects = "/proc/sys/net/ipv4/conf/all/send_redirects"

// forwardConf is the devconf of an interface the agent forwards on:
// forwarding, extra, and no redirects either way unless
// Config.SendRedirects.
func (k *kernel) forwardConf(extra ...[2]uint32) [][2]uint32 {
	conf := append([][2]uint32{{devconfForwarding, 1}}, extra...)
	if k.cfg.SendRedirects {
		return conf
	}
	return append(conf, [2]uint32{devconfSendRedirects, 0}, [2]uint32{devconfAcceptRedirects, 0})
}

// setupRedirects turns send_redirects off namespace-wide (the interfaces'
// own settings came with forwardConf). A failure is logged, not fatal: the
// agent forwards either way.
func (k *kernel) setupRedirects() {
	if k.cfg.SendRedirects || k.sysctl == nil {
		return
	}
	if err := k.sysctl(allSendRedirects, "0"); err != nil {
		k.log.Warn("cannot turn ICMP redirects off: hosts on the home link and nodes may be told to bypass the agent (set net.ipv4.conf.all.send_redirects = 0 by hand)",
			"err", err)
		return
	}
	// A namespace-wide setting changed by a daemon must be visible to the
	// operator who wonders why the host stopped sending redirects.
	k.log.Info("net.ipv4.conf.all.send_redirects = 0, and send_redirects = accept_redirects = 0 on the interfaces the agent forwards on (datapath.send_redirects): the agent forwards out of the interface a packet came in on, and a redirect would send hosts around it")
}
