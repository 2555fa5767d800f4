package main

import (
	"fmt"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// openTUN creates TUN device name (IPv4 packets without a packet-info
// header) with MTU mtu, gives it home as a /32 and brings it up. The device
// lives as long as the returned file: closing it, or the process ending
// however it ends, removes it.
func openTUN(name string, home netip.Addr, mtu int) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF: %w", err)
	}
	f := os.NewFile(uintptr(fd), "/dev/net/tun:"+name) // non-blocking: Close ends a pending Read
	if err := ifUp(name, home, mtu); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ifUp sets the MTU, the address and the up flag with the classic ioctls.
func ifUp(name string, home netip.Addr, mtu int) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint32(uint32(mtu))
	if err := unix.IoctlIfreq(s, unix.SIOCSIFMTU, ifr); err != nil {
		return fmt.Errorf("setting MTU %d: %w", mtu, err)
	}
	if err := ifr.SetInet4Addr(home.AsSlice()); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCSIFADDR, ifr); err != nil {
		return fmt.Errorf("setting address %v: %w", home, err)
	}
	if err := ifr.SetInet4Addr([]byte{255, 255, 255, 255}); err != nil {
		return err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCSIFNETMASK, ifr); err != nil {
		return fmt.Errorf("setting netmask: %w", err)
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing %s up: %w", name, err)
	}
	return nil
}

// tunnelMTU is the largest inner packet the UDP tunnel carries without
// fragmenting the outer one: the path MTU towards the home agent (the
// route's, read with IP_MTU from a connected socket that sends nothing)
// less the tunnel's 32 bytes (RFC 3519 §4.8).
func tunnelMTU(ha netip.AddrPort) (int, error) {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(ha))
	if err != nil {
		return 0, fmt.Errorf("no route to the home agent %v for the tunnel MTU: %w", ha, err)
	}
	defer c.Close()
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var mtu int
	var serr error
	if err := raw.Control(func(fd uintptr) { mtu, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU) }); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("the path MTU towards the home agent %v: %w", ha, serr)
	}
	if mtu-tunnelOverhead < 68 {
		return 0, fmt.Errorf("the path towards the home agent %v has MTU %d: too small for the tunnel's %d bytes", ha, mtu, tunnelOverhead)
	}
	return mtu - tunnelOverhead, nil
}
