package datapath

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// fwdUsePMTU makes the kernel fragment a forwarded packet at the path MTU
// it learned for the packet's route, not at the device's MTU.
//
// With the outer DF set (Config.TunnelDF) a hop beyond the agent narrower
// than the uplink answers a full-size tunnel packet with ICMP; the tunnel
// device records the path MTU, answers the next DF packet's sender with it
// and stores it on the /32 route of the home address. A packet without DF
// would still be fragmented by ip_forward at the tunnel device's MTU (the
// kernel default ignores learned MTUs when forwarding), each piece
// encapsulated with DF, too big for the path and dropped by the agent's own
// stack: measured in the arm64 guest (TestTunnelDF), only the last, small
// fragment of a 1,500-byte ping reached the node. With the sysctl on, the
// pieces are cut at the learned MTU and all arrive.
const fwdUsePMTU = "/proc/sys/net/ipv4/ip_forward_use_pmtu"

// setupTunnelDF turns fwdUsePMTU on when the plain tunnels set DF. It is a
// setting of the whole network namespace (other forwarded traffic then
// honours learned path MTUs too, as a host's own traffic does); a failure
// is logged, not fatal: DF senders are answered either way.
func (k *kernel) setupTunnelDF() {
	if !k.cfg.TunnelDF || k.tun[IPIP] == 0 && k.tun[GRE] == 0 || k.sysctl == nil {
		return
	}
	if err := k.sysctl(fwdUsePMTU, "1"); err != nil {
		k.log.Warn("cannot make forwarding honour learned path MTUs: packets without DF larger than a narrower path beyond the agent are lost (set datapath.tunnel_df = false, or net.ipv4.ip_forward_use_pmtu = 1 by hand)",
			"err", err)
		return
	}
	// A namespace-wide setting changed by a daemon must be visible to the
	// operator who wonders why forwarding behaves differently.
	k.log.Info("net.ipv4.ip_forward_use_pmtu = 1 (datapath.tunnel_df): forwarded packets are cut at learned path MTUs")
}

// writeSysctl writes val to the /proc/sys file path of network namespace
// netns (0: the caller's). /proc/sys/net shows the namespace of the thread
// that opens it, so with netns the write runs on a thread of its own that
// joins the namespace and is discarded afterwards (never unlocked).
func writeSysctl(netns int, path, val string) error {
	if netns == 0 {
		return os.WriteFile(path, []byte(val), 0)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(netns, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		errc <- os.WriteFile(path, []byte(val), 0)
	}()
	return <-errc
}
