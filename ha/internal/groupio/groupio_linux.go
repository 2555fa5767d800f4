//go:build linux

// Package groupio is the socket layer of the Home Agents' group protocol
// (package hasync, docs/hasync-spec.md §2): one UDP/IPv4 socket on the home
// interface that receives the group's multicast and the peers' unicast,
// reports every datagram's source address and IP TTL (the state machine
// drops anything whose TTL is not 255: proof the sender is on-link), and
// sends to the group or to one peer with TTL 255.
//
// Why one socket bound to INADDR_ANY:Port (multicast mode): the machine
// answers to the source address of what it received and a Conn has to take
// both kinds of datagram in one blocking Read; two sockets would need a
// poller of our own or a second reader goroutine. What the wildcard bind lets
// in too much is filtered:
//   - IP_MULTICAST_ALL=0: only the groups this socket joined are delivered,
//     not those any other socket of the namespace joined (two agents in one
//     namespace, or keepalived/VRRP on the same host);
//   - IP_PKTINFO: Read drops datagrams that did not arrive on the home
//     interface (a TTL-255 datagram sent from another link would otherwise
//     pass the on-link check), counted in Stats.WrongInterface.
//   - no SO_REUSEADDR: the port is exclusive in the namespace. With it, any
//     later socket bound to the same port (a second agent started by
//     mistake, a debugging tool) would silently receive the peers' unicast
//     acks instead of us (Linux delivers a unicast datagram to one of the
//     equally specific sockets: the newest). Without it that socket fails to
//     bind, and so does a second Open, loudly. UDP has no TIME_WAIT, so a
//     restarted agent rebinds at once.
//
// In unicast-only mode (Options.Group invalid: a static peer list) nothing
// multicast is needed, so the socket binds Local:Port, which also lets two
// Conns of one namespace (tests on loopback) share the port.
//
// Sends use sendmsg with an IP_PKTINFO control message that pins the source
// address to Options.Local: with a VRRP/HSRP virtual address on the same
// interface the kernel could otherwise pick it, and peers, which answer to
// the source address, would send their acks to whichever member holds the
// virtual address.
//
// Nothing here allocates per datagram: message headers, iovecs, socket
// addresses and control buffers are preallocated at Open and control
// messages are parsed by hand (AllocsPerRun tests prove it). The socket is
// non-blocking and registered with the Go runtime's poller through os.File,
// so a blocked Read parks only its goroutine and Close wakes it reliably.
//
// Sends never block: a full send buffer is an error (ErrSendBufferFull) the
// caller counts; the protocol's retransmissions repair the loss. The owner
// loop must never stall behind a slow link.
package groupio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TTL is the IP TTL of everything a Conn sends (hasync.RequiredTTL).
const TTL = 255

// DefaultRcvBuf is the receive buffer asked for when Options.RcvBuf is 0: a
// table download is a burst of up to hundreds of full-MTU replies.
const DefaultRcvBuf = 4 << 20

// DefaultSndBuf is the send buffer: a download served to a peer and an
// update multicast can leave together.
const DefaultSndBuf = 1 << 20

// ErrClosed is returned by every call after Close (it is net.ErrClosed).
var ErrClosed = net.ErrClosed

// ErrSendBufferFull is returned (wrapped) by SendGroup and SendTo when the
// socket's send buffer is full. The datagram is not sent; count it and let
// retransmission repair it.
var ErrSendBufferFull = errors.New("groupio: send buffer full, datagram dropped (retransmission repairs it; raise net.core.wmem_max if it persists)")

// Options configure Open.
type Options struct {
	// Interface is the home interface: multicast is joined and sent there,
	// and only datagrams that arrive on it are read. Required.
	Interface string
	// Local is this agent's IPv4 address on that interface: the source of
	// everything sent (and the bound address in unicast-only mode).
	Local netip.Addr
	// Group is the multicast group (config group.address). The zero value
	// means unicast-only mode: SendGroup fails and the caller sends a copy
	// to each configured peer with SendTo.
	Group netip.Addr
	// Port is the group port, source and destination (hasync.DefaultPort).
	Port uint16
	// Lazy keeps the socket out of the Go runtime's poller: a datagram
	// that arrives wakes nobody, and ReadQueued takes what waits, with the
	// kernel's arrival time, when the owner is awake anyway (the group
	// heartbeat's socket: groupio_lazy_linux.go). Read must not be used.
	Lazy bool
	// RcvBuf is SO_RCVBUF in bytes; 0 means DefaultRcvBuf. SO_RCVBUFFORCE
	// is tried first (needs CAP_NET_ADMIN), else the kernel caps the value at
	// net.core.rmem_max: see Conn.RcvBuf for what was granted.
	RcvBuf int
}

// Stats are counters of datagrams Read dropped before returning one.
type Stats struct {
	WrongInterface uint64 // arrived on another interface than Options.Interface
	Truncated      uint64 // longer than the caller's buffer
}

// Conn is the group socket. One goroutine may Read while another sends
// (SendGroup and SendTo, from one goroutine at a time: they share the
// preallocated send state); Close and Stats may be called from anywhere.
type Conn struct {
	f       *os.File
	rc      syscall.RawConn
	ifindex int
	local   netip.Addr
	group   netip.Addr
	port    uint16
	rcvbuf  int
	lazy    bool

	// Receive state (owned by the reading goroutine).
	rhdr  unix.Msghdr
	riov  unix.Iovec
	rname unix.RawSockaddrInet4
	rctl  []byte
	rn    int
	rerr  syscall.Errno
	q     queued // a lazy socket's batch (ReadQueued)

	// Send state (owned by the sending goroutine).
	whdr   unix.Msghdr
	wiov   unix.Iovec
	wname  unix.RawSockaddrInet4
	wgroup unix.RawSockaddrInet4
	wctl   []byte // one IP_PKTINFO with ipi_spec_dst = Local, built at Open
	werr   syscall.Errno

	readFn, writeFn func(fd uintptr) bool

	wrongIf, trunc atomic.Uint64
	closed         atomic.Bool
}

var (
	// Receive control room: IP_TTL (int), IP_PKTINFO and, on a lazy
	// socket, SO_TIMESTAMPNS_NEW (two int64), plus slack so an unexpected
	// message is skipped rather than cut (MSG_CTRUNC).
	rctlSpace = 2 * (unix.CmsgSpace(4) + unix.CmsgSpace(unix.SizeofInet4Pktinfo) + unix.CmsgSpace(16))
	wctlSpace = unix.CmsgSpace(unix.SizeofInet4Pktinfo)
)

// alignedBuf returns n bytes backed by uint64s: aligned for any cmsghdr.
func alignedBuf(n int) []byte {
	words := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n)
}

// Open creates the socket in the calling thread's network namespace (see
// InNetNS), binds it, joins the group on the interface and sets TTL 255.
func Open(o Options) (*Conn, error) {
	where := fmt.Sprintf("groupio: open %s port %d on %q", o.Local, o.Port, o.Interface)
	local, group, err := checkOptions(o, where)
	if err != nil {
		return nil, err
	}
	nonblock := unix.SOCK_NONBLOCK
	if o.Lazy {
		nonblock = 0 // blocking at os.NewFile: not registered with the poller (openLazy)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|nonblock|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("%s: socket: %w", where, err)
	}
	ifi, err := lookupIf(fd, o.Interface)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: interface %q not found in this network namespace (%v): check the name with `ip link`", where, o.Interface, err)
	}
	if err := checkAddrOn(ifi, local); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if group.IsValid() && ifi.Flags&net.FlagMulticast == 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: interface %s has no MULTICAST flag: `ip link set %s multicast on`, or configure a unicast peer list", where, o.Interface, o.Interface)
	}
	granted, what, err := setupSocket(fd, o, ifi, local, group)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %s: %w", where, what, err)
	}
	if o.Lazy {
		return openLazy(fd, o, ifi, local, group, granted, where)
	}
	// A non-blocking descriptor makes os.NewFile register it with the
	// runtime poller: Read parks the goroutine, Close wakes it.
	f := os.NewFile(uintptr(fd), fmt.Sprintf("groupio:%s:%d", o.Interface, o.Port))
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return newConn(f, rc, o, ifi, local, group, granted), nil
}

// checkOptions refuses options no socket could be opened with.
func checkOptions(o Options, where string) (local, group netip.Addr, err error) {
	local = o.Local.Unmap()
	if o.Interface == "" {
		return local, group, fmt.Errorf("%s: no interface given: set the home interface", where)
	}
	if !local.Is4() || local.IsUnspecified() || local.IsMulticast() {
		return local, group, fmt.Errorf("%s: local address %v is not a unicast IPv4 address: set this agent's address on the home link", where, o.Local)
	}
	group = o.Group.Unmap()
	if group.IsValid() && (!group.Is4() || !group.IsMulticast()) {
		return local, group, fmt.Errorf("%s: group %v is not an IPv4 multicast address (224.0.0.0/4; the default is 224.0.0.240)", where, o.Group)
	}
	if o.Port == 0 {
		return local, group, fmt.Errorf("%s: port 0: set the group port (default 4343), the same on every member", where)
	}
	return local, group, nil
}

// setupSocket sets fd's options and buffers, binds it and, in multicast
// mode, joins the group. It returns the receive buffer granted, or what
// failed and why.
func setupSocket(fd int, o Options, ifi *net.Interface, local, group netip.Addr) (granted int, what string, err error) {
	type opt struct {
		name       string
		level, opt int
		val        int
	}
	for _, s := range []opt{
		{"IP_TTL", unix.IPPROTO_IP, unix.IP_TTL, TTL},
		{"IP_MULTICAST_TTL", unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, TTL},
		// Our own multicast would come back to us; the machine would drop it
		// (own agent id) but only after the HMAC. Not sending it is cheaper.
		{"IP_MULTICAST_LOOP", unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0},
		{"IP_RECVTTL", unix.IPPROTO_IP, unix.IP_RECVTTL, 1},
		{"IP_PKTINFO", unix.IPPROTO_IP, unix.IP_PKTINFO, 1},
	} {
		if err := unix.SetsockoptInt(fd, s.level, s.opt, s.val); err != nil {
			return 0, s.name, err
		}
	}
	rcv := o.RcvBuf
	if rcv <= 0 {
		rcv = DefaultRcvBuf
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcv) != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcv); err != nil {
			return 0, "SO_RCVBUF", err
		}
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, DefaultSndBuf) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, DefaultSndBuf) // best effort
	}
	granted, _ = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF)

	bindAddr := [4]byte{} // INADDR_ANY: multicast and unicast on one socket
	if !group.IsValid() {
		bindAddr = local.As4()
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(o.Port), Addr: bindAddr}); err != nil {
		what := fmt.Sprintf("bind %v:%d", netip.AddrFrom4(bindAddr), o.Port)
		if err == unix.EADDRINUSE {
			what += fmt.Sprintf(" (another process or agent in this network namespace holds UDP port %d: `ss -lunp sport = %d`; the group port is exclusive)", o.Port, o.Port)
		}
		return 0, what, err
	}
	if group.IsValid() {
		// Only in multicast mode: a socket bound to a unicast address gets
		// no multicast anyway (and qemu-user, where the MIPS tests run,
		// does not know this option).
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_ALL, 0); err != nil {
			return 0, "IP_MULTICAST_ALL 0 (Linux >= 2.6.31)", err
		}
		// ip_mreqn with the ifindex: the interface's address may change, its
		// index does not (until it is deleted: then reopen).
		mc := &unix.IPMreqn{Address: local.As4(), Ifindex: int32(ifi.Index)}
		if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, mc); err != nil {
			return 0, "IP_MULTICAST_IF " + o.Interface, err
		}
		join := &unix.IPMreqn{Multiaddr: group.As4(), Ifindex: int32(ifi.Index)}
		if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, join); err != nil {
			return 0, fmt.Sprintf("IP_ADD_MEMBERSHIP %v on %s (net.ipv4.igmp_max_memberships reached?)", group, o.Interface), err
		}
	}
	return granted, "", nil
}

// newConn builds the Conn around the opened socket, with its message
// headers prepared once so that reads and writes allocate nothing.
func newConn(f *os.File, rc syscall.RawConn, o Options, ifi *net.Interface, local, group netip.Addr, granted int) *Conn {
	c := &Conn{
		f: f, rc: rc, ifindex: ifi.Index, local: local, group: group, port: o.Port, rcvbuf: granted,
		rctl: alignedBuf(rctlSpace),
		wctl: alignedBuf(wctlSpace),
	}
	c.rhdr.Name = (*byte)(unsafe.Pointer(&c.rname))
	c.rhdr.Iov = &c.riov
	c.rhdr.SetIovlen(1)
	c.rhdr.Control = &c.rctl[0]

	setSockaddr(&c.wname, netip.IPv4Unspecified(), o.Port)
	if group.IsValid() {
		setSockaddr(&c.wgroup, group, o.Port)
	}
	c.whdr.Namelen = unix.SizeofSockaddrInet4
	c.whdr.Iov = &c.wiov
	c.whdr.SetIovlen(1)
	putPktinfo(c.wctl, local.As4())
	c.whdr.Control = &c.wctl[0]
	c.whdr.SetControllen(wctlSpace)

	c.readFn = c.recv
	c.writeFn = c.send
	return c
}

// ifreq is struct ifreq for SIOCGIFINDEX (int) and SIOCGIFFLAGS (short).
// Not unix.Ifreq: that is a byte array and its Uint32 is an unaligned load,
// which faults on MIPS (SIGBUS under qemu-user, a kernel fix-up trap on
// hardware).
type ifreq struct {
	Name [unix.IFNAMSIZ]byte
	Val  int32 // ifr_ifindex, or ifr_flags in the first two bytes
	_    [20]byte
}

// lookupIf gets the interface's index and flags by ioctl: no netlink, so it
// also works under qemu-user, which does not translate netlink for a
// big-endian guest (how the MIPS tests run).
func lookupIf(fd int, name string) (*net.Interface, error) {
	if len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("name longer than %d bytes", unix.IFNAMSIZ-1)
	}
	var r ifreq
	ioctl := func(req uint) error {
		r.Val = 0
		copy(r.Name[:], name)
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&r))); e != 0 {
			return e
		}
		return nil
	}
	if err := ioctl(unix.SIOCGIFINDEX); err != nil {
		return nil, err
	}
	ifi := &net.Interface{Index: int(r.Val), Name: name}
	if err := ioctl(unix.SIOCGIFFLAGS); err != nil {
		return nil, err
	}
	fl := *(*uint16)(unsafe.Pointer(&r.Val)) // short ifr_flags at the union's start
	for _, f := range []struct {
		sys uint16
		net net.Flags
	}{{unix.IFF_UP, net.FlagUp}, {unix.IFF_LOOPBACK, net.FlagLoopback}, {unix.IFF_MULTICAST, net.FlagMulticast}} {
		if fl&f.sys != 0 {
			ifi.Flags |= f.net
		}
	}
	return ifi, nil
}

// checkAddrOn reports whether a is configured on ifi (netlink, at Open only).
// When the addresses cannot be listed (qemu-user), it falls back to asking
// whether a is local at all, by binding a throwaway socket to it.
func checkAddrOn(ifi *net.Interface, a netip.Addr) error {
	notOn := func(have any) error {
		return fmt.Errorf("address %v is not configured on %s (%v): add it (`ip addr add %v/<len> dev %s`) or fix the local address in the config", a, ifi.Name, have, a, ifi.Name)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		fd, err2 := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err2 != nil {
			return fmt.Errorf("listing addresses of %s: %w", ifi.Name, err)
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: a.As4()}); err != nil {
			return notOn(err)
		}
		return nil
	}
	var have []string
	for _, x := range addrs {
		if p, ok := x.(*net.IPNet); ok {
			ip, ok := netip.AddrFromSlice(p.IP)
			if ok && ip.Unmap() == a {
				return nil
			}
			// On a loopback interface the whole prefix is local (127.0.0.2
			// works without being configured): tests use that.
			ones, _ := p.Mask.Size()
			if ok && ifi.Flags&net.FlagLoopback != 0 && netip.PrefixFrom(ip.Unmap(), ones).Contains(a) {
				return nil
			}
			have = append(have, x.String())
		}
	}
	return notOn(fmt.Sprintf("it has %v", have))
}

func setSockaddr(sa *unix.RawSockaddrInet4, a netip.Addr, port uint16) {
	sa.Family = unix.AF_INET
	p := (*[2]byte)(unsafe.Pointer(&sa.Port)) // network byte order in memory
	p[0], p[1] = byte(port>>8), byte(port)
	sa.Addr = a.As4()
}

// putPktinfo writes one cmsghdr{IPPROTO_IP, IP_PKTINFO} with in_pktinfo
// {ifindex 0, spec_dst src, addr 0}: source address src, route as usual.
func putPktinfo(b []byte, src [4]byte) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.IPPROTO_IP
	h.Type = unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&b[unix.CmsgLen(0)]))
	*pi = unix.Inet4Pktinfo{Spec_dst: src}
}

// Ifindex is the home interface's index.
func (c *Conn) Ifindex() int { return c.ifindex }

// Local is the source address of everything sent.
func (c *Conn) Local() netip.Addr { return c.local }

// Group is the multicast group, invalid in unicast-only mode.
func (c *Conn) Group() netip.Addr { return c.group }

// RcvBuf is the receive buffer the kernel granted (getsockopt SO_RCVBUF:
// twice the usable size, as Linux reports it). Less than twice the asked-for
// size means the process lacks CAP_NET_ADMIN and net.core.rmem_max capped it.
func (c *Conn) RcvBuf() int { return c.rcvbuf }

// Stats returns the drop counters. Safe from any goroutine.
func (c *Conn) Stats() Stats {
	return Stats{WrongInterface: c.wrongIf.Load(), Truncated: c.trunc.Load()}
}

// Close closes the socket and wakes a blocked Read, which returns
// ErrClosed. Further calls return ErrClosed too.
func (c *Conn) Close() error {
	c.closed.Store(true)
	return c.mapErr(c.f.Close())
}

// mapErr turns the poller's "use of closed file" (internal/poll's
// ErrFileClosing, which RawConn returns unwrapped) into ErrClosed.
func (c *Conn) mapErr(err error) error {
	if err != nil && (c.closed.Load() || errors.Is(err, os.ErrClosed)) {
		return ErrClosed
	}
	return err
}

// Read blocks until a datagram from the home interface arrives, copies it
// into buf and returns its length, source address and IP TTL. Datagrams from
// other interfaces and datagrams longer than buf (use hasync.MaxDatagram or
// more) are dropped and counted in Stats. Not on a lazy socket (outside
// the poller, it cannot wait): ReadQueued. Allocates nothing.
func (c *Conn) Read(buf []byte) (n int, src netip.Addr, ttl uint8, err error) {
	if c.lazy {
		return 0, netip.Addr{}, 0, errors.New("groupio: Read on a socket opened with Options.Lazy: use ReadQueued")
	}
	if len(buf) == 0 {
		return 0, netip.Addr{}, 0, errors.New("groupio: Read: empty buffer: pass hasync.MaxDatagram bytes or more")
	}
	for {
		c.riov.Base = &buf[0]
		c.riov.SetLen(len(buf))
		c.rhdr.Namelen = unix.SizeofSockaddrInet4
		c.rhdr.SetControllen(rctlSpace)
		c.rhdr.Flags = 0
		c.rn, c.rerr = 0, 0
		if err := c.rc.Read(c.readFn); err != nil {
			return 0, netip.Addr{}, 0, c.mapErr(err)
		}
		if c.rerr != 0 {
			return 0, netip.Addr{}, 0, fmt.Errorf("groupio: recvmsg on port %d: %w", c.port, c.rerr)
		}
		if c.rhdr.Flags&unix.MSG_TRUNC != 0 {
			c.trunc.Add(1)
			continue
		}
		ttl, ifindex, _, ok := parseCmsgs(c.rctl[:c.rhdr.Controllen])
		if !ok || ifindex != c.ifindex {
			c.wrongIf.Add(1)
			continue
		}
		return c.rn, netip.AddrFrom4(c.rname.Addr), ttl, nil
	}
}

// recv runs under the poller: false means "would block, wait and call again".
// The descriptor is non-blocking, so RawSyscall is enough: the scheduler's
// system-call bookkeeping (Syscall) wakes the runtime's monitor thread at
// every call, which then polls every 20 µs until the process is idle
// again; on an idle group that was most of the process's context switches.
func (c *Conn) recv(fd uintptr) bool {
	r, _, e := unix.RawSyscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.rhdr)), unix.MSG_TRUNC)
	switch e {
	case 0:
		c.rn = int(r)
		return true
	case unix.EINTR:
		return false
	case unix.EAGAIN:
		return false
	}
	c.rerr = e
	return true
}

// parseCmsgs walks the control messages for IP_TTL and IP_PKTINFO, and the
// kernel arrival time (SO_TIMESTAMPNS_NEW, Unix ns; 0 when absent).
// ok is false when either is missing (the kernel always gives both: the
// socket asked for them).
func parseCmsgs(b []byte) (ttl uint8, ifindex int, stamp int64, ok bool) {
	var haveTTL, havePI bool
	hl := unix.CmsgLen(0)
	for len(b) >= hl {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		l := int(h.Len)
		if l < hl || l > len(b) {
			break
		}
		data := b[hl:l]
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMPNS_NEW && len(data) >= 16 {
			// struct __kernel_timespec: two 64-bit fields on every arch.
			stamp = int64(binary.NativeEndian.Uint64(data))*1e9 + int64(binary.NativeEndian.Uint64(data[8:]))
		}
		if h.Level == unix.IPPROTO_IP {
			switch h.Type {
			case unix.IP_TTL:
				if len(data) >= 4 {
					// An int in host byte order; the TTL fits its low byte.
					ttl, haveTTL = uint8(binary.NativeEndian.Uint32(data)), true
				}
			case unix.IP_PKTINFO:
				if len(data) >= unix.SizeofInet4Pktinfo {
					ifindex, havePI = int(int32(binary.NativeEndian.Uint32(data))), true
				}
			}
		}
		sp := unix.CmsgSpace(l - hl)
		if sp > len(b) {
			break
		}
		b = b[sp:]
	}
	return ttl, ifindex, stamp, haveTTL && havePI
}

// SendGroup sends pkt to Group:Port on the home interface with TTL 255.
// In unicast-only mode it fails: send a copy to each peer with SendTo.
func (c *Conn) SendGroup(pkt []byte) error {
	if !c.group.IsValid() {
		return errors.New("groupio: SendGroup in unicast-only mode (no group configured): send to each peer with SendTo")
	}
	c.whdr.Name = (*byte)(unsafe.Pointer(&c.wgroup))
	return c.write(pkt, c.group)
}

// SendTo sends pkt to to:Port (unicast) with TTL 255. Allocates nothing.
func (c *Conn) SendTo(pkt []byte, to netip.Addr) error {
	to = to.Unmap()
	if !to.Is4() {
		return fmt.Errorf("groupio: SendTo %v: not an IPv4 address", to)
	}
	c.wname.Addr = to.As4()
	c.whdr.Name = (*byte)(unsafe.Pointer(&c.wname))
	return c.write(pkt, to)
}

func (c *Conn) write(pkt []byte, to netip.Addr) error {
	if len(pkt) > 0 {
		c.wiov.Base = &pkt[0]
	} else {
		c.wiov.Base = nil
	}
	c.wiov.SetLen(len(pkt))
	c.werr = 0
	if err := c.rc.Write(c.writeFn); err != nil {
		return c.mapErr(err)
	}
	switch c.werr {
	case 0:
		return nil
	case unix.EAGAIN:
		return fmt.Errorf("groupio: send to %v:%d: %w", to, c.port, ErrSendBufferFull)
	}
	return fmt.Errorf("groupio: send to %v:%d from %v: %w", to, c.port, c.local, c.werr)
}

// send never asks the poller to wait: a full buffer is reported, not waited
// out (the owner loop must not block). RawSyscall: see recv.
func (c *Conn) send(fd uintptr) bool {
	for {
		_, _, e := unix.RawSyscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&c.whdr)), 0)
		if e == unix.EINTR {
			continue
		}
		c.werr = e
		return true
	}
}
