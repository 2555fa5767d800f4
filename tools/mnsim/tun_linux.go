package main

import (
	"fmt"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// openTUN creates TUN device name (IPv4 packets without a packet-info
// header), gives it home as a /32 and brings it up. The device lives as long
// as the returned file: closing it, or the process ending however it ends,
// removes it.
func openTUN(name string, home netip.Addr) (*os.File, error) {
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
	if err := ifUp(name, home); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ifUp sets the address and the up flag with the classic ioctls.
func ifUp(name string, home netip.Addr) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
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
