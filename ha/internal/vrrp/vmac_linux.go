//go:build linux

package vrrp

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/hagent/hagent/ha/internal/role/vipnet"
	"golang.org/x/sys/unix"
)

// VirtualMAC is the virtual router MAC address 00-00-5E-00-01-{VRID}
// (RFC 5798 §7.3).
func VirtualMAC(vrid uint8) net.HardwareAddr {
	return net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, vrid}
}

// vmac is the master's virtual MAC, when Config.UseVirtualMAC: a macvlan
// with that MAC carries the virtual addresses while Master (the kernel
// answers ARP for them with it), gratuitous ARPs announce it and adverts
// leave from it (§7.3), so the addresses keep one MAC across failovers and
// a backup that steps down leaves nothing wrong in the hosts' caches.
type vmac struct {
	dev *vipnet.VMAC
	tx  int // raw socket bound to the macvlan: adverts while Master
	up  bool
}

func vmacName(vrid uint8) string { return fmt.Sprintf("vrrp-vmac-%d", vrid) }

func (r *Runner) openVMAC() (*vmac, error) {
	mc := &r.cfg.Machine
	mac := VirtualMAC(mc.VRID)
	dev, err := vipnet.OpenVMAC(r.sh.Ifi, vmacName(mc.VRID), mac)
	if err != nil {
		return nil, fmt.Errorf("vrrp: %w (vrrp.use_virtual_mac = false announces the interface's own MAC)", err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, IPProtocol)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("vrrp: raw socket (protocol 112): %w", err)
	}
	for _, s := range []struct {
		what string
		err  error
	}{
		{"bind primary", unix.Bind(fd, &unix.SockaddrInet4{Addr: mc.Primary.As4()})},
		{"SO_BINDTODEVICE", unix.BindToDevice(fd, dev.Ifi.Name)},
		{"IP_MULTICAST_IF", unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(dev.Ifi.Index)})},
		{"IP_MULTICAST_TTL", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, TTL)},
		{"IP_MULTICAST_LOOP", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0)},
		{"IP_TOS", unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TOS, 0xc0)},
		// Only a sender: nothing may queue up on it.
		{"SO_RCVBUF", unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 0)},
	} {
		if s.err != nil {
			unix.Close(fd)
			dev.Close()
			return nil, fmt.Errorf("vrrp: %s on %s: %w", s.what, dev.Ifi.Name, s.err)
		}
	}
	r.sh.VIPMAC = mac
	return &vmac{dev: dev, tx: fd}, nil
}

func (v *vmac) close() error {
	unix.Close(v.tx)
	return v.dev.Close()
}

// addVIP brings the macvlan up and puts the addresses on it (/32: the
// parent keeps the connected route).
func (v *vmac) addVIP(addrs []netip.Addr) error {
	if err := v.dev.SetUp(true); err != nil {
		return err
	}
	v.up = true
	var err error
	for _, a := range addrs {
		if e := vipnet.AddAddr(v.dev.Ifi.Index, netip.PrefixFrom(a, 32)); e != nil {
			err = e
		}
	}
	return err
}

// delVIP removes the addresses and takes the macvlan down: the NIC stops
// accepting the virtual MAC, which the new master now owns.
func (v *vmac) delVIP(addrs []netip.Addr) error {
	var err error
	for _, a := range addrs {
		if e := vipnet.DelAddr(v.dev.Ifi.Index, netip.PrefixFrom(a, 32)); e != nil {
			err = e
		}
	}
	if e := v.dev.SetUp(false); err == nil {
		err = e
	}
	v.up = false
	return err
}
