//go:build linux

// Package vipnet is the small kernel side both redundancy runners need:
// adding/removing the virtual address (a minimal rtnetlink RTM_NEWADDR /
// RTM_DELADDR, until the datapath package replaces it) and sending gratuitous
// ARP from an AF_PACKET socket. Written on golang.org/x/sys/unix directly to
// keep the dependency set small; netlink is native-endian.
package vipnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

var seq atomic.Uint32

// AddrMsg builds an RTM_NEWADDR (add) or RTM_DELADDR request for an IPv4
// prefix on ifindex. Exported for golden tests.
func AddrMsg(add bool, ifindex int, p netip.Prefix, seqNo uint32) []byte {
	typ, flags := uint16(unix.RTM_DELADDR), uint16(unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	if add {
		typ = unix.RTM_NEWADDR
		flags |= unix.NLM_F_CREATE | unix.NLM_F_REPLACE
	}
	a := p.Addr().As4()
	const hdr, ifa, rta = 16, 8, 8
	n := hdr + ifa + 2*rta
	b := make([]byte, n)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(n))
	ne.PutUint16(b[4:], typ)
	ne.PutUint16(b[6:], flags)
	ne.PutUint32(b[8:], seqNo)
	// struct ifaddrmsg: family, prefixlen, flags, scope, index
	b[16] = unix.AF_INET
	b[17] = byte(p.Bits())
	b[18] = 0
	b[19] = unix.RT_SCOPE_UNIVERSE
	ne.PutUint32(b[20:], uint32(ifindex))
	for i, t := range []uint16{unix.IFA_LOCAL, unix.IFA_ADDRESS} {
		o := hdr + ifa + i*rta
		ne.PutUint16(b[o:], rta)
		ne.PutUint16(b[o+2:], t)
		copy(b[o+4:], a[:])
	}
	return b
}

// AddAddr adds p to the interface (already present: no error).
func AddAddr(ifindex int, p netip.Prefix) error {
	err := request(AddrMsg(true, ifindex, p, seq.Add(1)))
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vipnet: add %v on ifindex %d: %w", p, ifindex, err)
	}
	return nil
}

// DelAddr removes p from the interface (absent: no error).
func DelAddr(ifindex int, p netip.Prefix) error {
	err := request(AddrMsg(false, ifindex, p, seq.Add(1)))
	if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENODEV) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vipnet: delete %v on ifindex %d: %w", p, ifindex, err)
	}
	return nil
}

// HasAddr reports whether the interface holds a.
func HasAddr(ifi *net.Interface, a netip.Addr) bool {
	addrs, err := ifi.Addrs()
	if err != nil {
		return false
	}
	for _, x := range addrs {
		if n, ok := x.(*net.IPNet); ok {
			if y, ok := netip.AddrFromSlice(n.IP); ok && y.Unmap() == a {
				return true
			}
		}
	}
	return false
}

func request(msg []byte) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4 {
				if e := int32(binary.NativeEndian.Uint32(m.Data)); e != 0 {
					return unix.Errno(-e)
				}
				return nil
			}
		}
	}
}

// ARP sends gratuitous ARP on one interface.
type ARP struct {
	fd  int
	ifi *net.Interface
	buf []byte
}

// OpenARP opens an AF_PACKET socket on ifi (needs CAP_NET_RAW).
func OpenARP(ifi *net.Interface) (*ARP, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // protocol 0: send only
	if err != nil {
		return nil, fmt.Errorf("vipnet: AF_PACKET socket for gratuitous ARP on %s: %w (needs CAP_NET_RAW)", ifi.Name, err)
	}
	return &ARP{fd: fd, ifi: ifi, buf: make([]byte, 0, 64)}, nil
}

// Close releases the socket.
func (a *ARP) Close() error { return unix.Close(a.fd) }

// GratuitousFrame appends a broadcast ARP request announcing ip at mac
// (sender = target = ip, RFC 5227 §3 "ARP Announcement"). Exported for tests.
func GratuitousFrame(b []byte, mac net.HardwareAddr, ip netip.Addr) []byte {
	v := ip.As4()
	start := len(b)
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	b = append(b, mac[:6]...)
	b = append(b, 0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1) // ethertype ARP, Ethernet/IPv4, request
	b = append(b, mac[:6]...)
	b = append(b, v[:]...)
	b = append(b, 0, 0, 0, 0, 0, 0)
	b = append(b, v[:]...)
	for len(b)-start < 60 { // minimum Ethernet frame without FCS
		b = append(b, 0)
	}
	return b
}

// Gratuitous sends count announcements for ip from the interface's MAC.
func (a *ARP) Gratuitous(ip netip.Addr, count int) error { return a.GratuitousFrom(ip, nil, count) }

// GratuitousFrom announces ip at mac (nil: the interface's MAC), as the
// Ethernet source too, so that switches learn where mac lives.
func (a *ARP) GratuitousFrom(ip netip.Addr, mac net.HardwareAddr, count int) error {
	if !ip.Is4() {
		return fmt.Errorf("vipnet: gratuitous ARP for %v: not IPv4", ip)
	}
	if mac == nil {
		mac = a.ifi.HardwareAddr
	}
	a.buf = GratuitousFrame(a.buf[:0], mac, ip)
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: a.ifi.Index, Halen: 6}
	copy(sa.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	for range count {
		if err := unix.Sendto(a.fd, a.buf, 0, sa); err != nil {
			return fmt.Errorf("vipnet: gratuitous ARP for %v on %s: %w", ip, a.ifi.Name, err)
		}
	}
	return nil
}

// Announce sends count (at least 1) gratuitous ARPs for each of addrs and
// returns how many frames left, for the runners' Announce (away mobile
// nodes after a takeover).
func (a *ARP) Announce(addrs []netip.Addr, count int) (int, error) {
	n := max(count, 1)
	for i, ip := range addrs {
		if err := a.Gratuitous(ip, n); err != nil {
			return i * n, err
		}
	}
	return n * len(addrs), nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
