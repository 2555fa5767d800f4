//go:build linux

package datapath

import (
	"fmt"
	"net"
	"net/netip"
	"unsafe"

	"github.com/hagent/hagent/ha/internal/role/vipnet"
	"golang.org/x/sys/unix"
)

// announceBatch is how many frames one sendmmsg(2) carries: a UDP batch of
// registrations (64) in one call.
const announceBatch = 64

// garpFrameLen is a gratuitous ARP frame: a minimum Ethernet frame without
// FCS (vipnet.GratuitousFrame pads to it).
const garpFrameLen = 60

// Announcer sends the gratuitous ARP of newly registered nodes (RFC 5944
// §4.6) on the home interface, after each batch of registrations. Opening a
// socket per batch costs a netlink dump of every link (net.InterfaceByName),
// an AF_PACKET socket and a sendto(2) per node, each allocating: about 70
// system calls per batch of 64 under a registration storm. An Announcer keeps the socket, the interface's index and MAC
// and its frames from one call to the next and sends up to announceBatch
// frames per sendmmsg(2), allocation-free. It opens on first use, in the
// caller's network namespace; Close drops what it knows of the interface
// (the owner calls it when the home interface changes) and the next
// Announce opens again. Owned by one goroutine.
type Announcer struct {
	ifname string
	fd     int // -1: closed
	ifi    *net.Interface
	sa     *unix.RawSockaddrLinklayer // broadcast, ETH_P_ARP, the interface
	frames []byte
	iovs   []unix.Iovec
	hdrs   []unix.Mmsghdr
	// Calls and Frames count sendmmsg(2) calls and frames sent, for tests
	// and benchmarks.
	Calls, Frames uint64
}

// NewAnnouncer announces on ifname; nothing is opened until Announce.
func NewAnnouncer(ifname string) *Announcer { return &Announcer{ifname: ifname, fd: -1} }

func (a *Announcer) open() error {
	ifi, err := net.InterfaceByName(a.ifname)
	if err != nil {
		return fmt.Errorf("datapath: gratuitous ARP on %s: %w", a.ifname, err)
	}
	if len(ifi.HardwareAddr) != 6 {
		return fmt.Errorf("datapath: gratuitous ARP on %s: the interface has no Ethernet address", a.ifname)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0) // protocol 0: send only
	if err != nil {
		return fmt.Errorf("datapath: AF_PACKET socket for gratuitous ARP on %s: %w (needs CAP_NET_RAW)", a.ifname, err)
	}
	if a.hdrs == nil {
		a.frames = make([]byte, announceBatch*garpFrameLen)
		a.iovs = make([]unix.Iovec, announceBatch)
		a.hdrs = make([]unix.Mmsghdr, announceBatch)
		a.sa = &unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Halen: 6}
		for i := range a.hdrs {
			a.iovs[i].Base = &a.frames[i*garpFrameLen]
			a.iovs[i].SetLen(garpFrameLen)
			h := &a.hdrs[i].Hdr
			h.Name = (*byte)(unsafe.Pointer(a.sa))
			h.Namelen = unix.SizeofSockaddrLinklayer
			h.Iov = &a.iovs[i]
			h.SetIovlen(1)
		}
	}
	a.sa.Protocol = htons(unix.ETH_P_ARP)
	a.sa.Ifindex = int32(ifi.Index)
	a.sa.Addr = [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	a.fd, a.ifi = fd, ifi
	return nil
}

// Announce sends one gratuitous ARP for each address of addrs (IPv4; the
// others are skipped and named in the error). A failed send closes the
// socket, so that the next call finds the interface again.
func (a *Announcer) Announce(addrs []netip.Addr) error {
	if len(addrs) == 0 {
		return nil
	}
	if a.fd < 0 {
		if err := a.open(); err != nil {
			return err
		}
	}
	var bad netip.Addr
	for len(addrs) > 0 {
		n := 0
		for len(addrs) > 0 && n < announceBatch {
			ip := addrs[0]
			addrs = addrs[1:]
			if !ip.Is4() {
				bad = ip
				continue
			}
			at := n * garpFrameLen
			vipnet.GratuitousFrame(a.frames[at:at:at+garpFrameLen], a.ifi.HardwareAddr, ip)
			n++
		}
		if err := a.send(n); err != nil {
			a.Close()
			return fmt.Errorf("datapath: gratuitous ARP on %s: %w", a.ifname, err)
		}
	}
	if bad.IsValid() {
		return fmt.Errorf("datapath: gratuitous ARP for %v: not IPv4", bad)
	}
	return nil
}

// send writes frames [0, n) with as few sendmmsg(2) calls as the kernel
// takes them in.
func (a *Announcer) send(n int) error {
	for off := 0; off < n; {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(a.fd), uintptr(unsafe.Pointer(&a.hdrs[off])), uintptr(n-off), 0, 0, 0)
		if e == unix.EINTR {
			continue
		}
		a.Calls++
		if e != 0 {
			return e
		}
		off += int(r)
		a.Frames += uint64(r)
	}
	return nil
}

// Close closes the socket; the next Announce opens it again.
func (a *Announcer) Close() {
	if a.fd >= 0 {
		_ = unix.Close(a.fd)
		a.fd, a.ifi = -1, nil
	}
}
