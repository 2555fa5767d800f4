//go:build linux

package hsrp

import (
	"fmt"
	"net/netip"

	"github.com/hagent/hagent/ha/internal/role/vipnet"
	"golang.org/x/sys/unix"
)

// vmac is the active router's virtual MAC 0000.0c07.acXX (RFC 2281 §6.1),
// when Config.UseVirtualMAC: a macvlan with that MAC carries the virtual
// address while Active (so the kernel answers ARP for it with the virtual
// MAC), gratuitous ARPs announce it, and hellos leave from it (so switches
// learn where it lives). A group with a Cisco router then keeps one MAC for
// the address across failovers, as the hosts there expect.
type vmac struct {
	dev *vipnet.VMAC
	tx  int // UDP socket bound to the macvlan: hellos while Active
}

// vmacName is the macvlan's name: unique per group, at most 15 bytes.
func vmacName(group uint8) string { return fmt.Sprintf("hsrp-vmac-%d", group) }

func (r *Runner) openVMAC() (*vmac, error) {
	mac := VirtualMAC(r.cfg.Machine.Group)
	dev, err := vipnet.OpenVMAC(r.sh.Ifi, vmacName(r.cfg.Machine.Group), mac)
	if err != nil {
		return nil, fmt.Errorf("hsrp: %w (hsrp.use_virtual_mac = false announces the interface's own MAC)", err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("hsrp: udp socket: %w", err)
	}
	for _, s := range []struct {
		what string
		err  error
	}{
		{"SO_REUSEADDR", unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)},
		{"SO_BINDTODEVICE", unix.BindToDevice(fd, dev.Ifi.Name)},
		// The primary address as source, port 1985 (what peers expect);
		// a specific address receives none of the group's multicast.
		{"bind primary:1985", unix.Bind(fd, &unix.SockaddrInet4{Addr: r.cfg.Machine.Primary.As4(), Port: Port})},
		{"IP_MULTICAST_IF", unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(dev.Ifi.Index)})},
		{"IP_MULTICAST_TTL", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 1)},
		{"IP_MULTICAST_LOOP", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0)},
		{"IP_TOS", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TOS, 0xc0)},
	} {
		if s.err != nil {
			unix.Close(fd)
			dev.Close()
			return nil, fmt.Errorf("hsrp: %s on %s: %w", s.what, dev.Ifi.Name, s.err)
		}
	}
	r.sh.VIPMAC = mac
	return &vmac{dev: dev, tx: fd}, nil
}

func (v *vmac) close() error {
	unix.Close(v.tx)
	return v.dev.Close()
}

// addVIP brings the macvlan up and puts the address on it (/32: the
// parent keeps the connected route).
func (v *vmac) addVIP(a netip.Addr) error {
	if err := v.dev.SetUp(true); err != nil {
		return err
	}
	return vipnet.AddAddr(v.dev.Ifi.Index, netip.PrefixFrom(a, 32))
}

// delVIP removes the address and takes the macvlan down: the NIC stops
// accepting the virtual MAC, which the new active router now owns.
func (v *vmac) delVIP(a netip.Addr) error {
	err := vipnet.DelAddr(v.dev.Ifi.Index, netip.PrefixFrom(a, 32))
	if e := v.dev.SetUp(false); err == nil {
		err = e
	}
	return err
}
