//go:build linux

package datapath

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/hagent/hagent/ha/internal/role/vipnet"
)

// GratuitousARP announces addrs on ifname with the interface's own MAC,
// count times each: on registration of an away node (RFC 5944 §4.6, so that
// hosts on the home link send to the Home Agent) and for every away node on
// takeover. It reuses the redundancy runners' AF_PACKET sender (package
// vipnet) so that both announce with one frame layout. Needs CAP_NET_RAW;
// works in the caller's network namespace.
func GratuitousARP(ifname string, addrs []netip.Addr, count int) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("datapath: gratuitous ARP on %s: %w", ifname, err)
	}
	a, err := vipnet.OpenARP(ifi)
	if err != nil {
		return fmt.Errorf("datapath: %w", err)
	}
	defer a.Close()
	for _, ip := range addrs {
		if err := a.Gratuitous(ip, count); err != nil {
			return fmt.Errorf("datapath: %w", err)
		}
	}
	return nil
}
