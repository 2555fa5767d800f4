//go:build linux

// Package udpio is zero-allocation batched UDP/IPv4 I/O for the
// registration path. It learns the destination address of every datagram
// (IP_PKTINFO) and sets the source address of every reply, because a Home
// Agent must answer from the address the request was sent to (RFC 5944
// §3.8.3.1), which later is a VRRP virtual address.
//
// The standard library and x/net allocate per packet; here recvmmsg(2) and
// sendmmsg(2) run over message headers, iovecs, socket addresses and
// control buffers preallocated at Listen, and the control messages are
// parsed by hand. The socket is non-blocking and registered with the Go
// runtime's poller (through os.File), so a blocked ReadBatch parks only its
// goroutine and Close wakes it reliably.
package udpio

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

// ErrClosed is returned by ReadBatch and WriteBatch after Close (it is
// net.ErrClosed, so errors.Is(err, net.ErrClosed) works).
var ErrClosed = net.ErrClosed

// Packet is one datagram. For ReadBatch the caller provides Buf (its
// capacity bounds the datagram); the rest is filled in. For WriteBatch,
// Buf[:N] is sent to Src from Dst: a received packet can be answered in
// place by rewriting Buf and N.
type Packet struct {
	Buf []byte
	N   int
	// Src is the remote end: where the datagram came from, where a
	// written packet goes.
	Src netip.AddrPort
	// Dst is the local address: the datagram's destination address (from
	// IP_PKTINFO ipi_addr; a multicast or broadcast address when it was sent
	// to one), or the source address to send from (invalid or unspecified:
	// the kernel chooses).
	Dst netip.Addr
	// Local is the local address the kernel would route a reply from
	// (ipi_spec_dst): the one to answer a broadcast or multicast from.
	Local netip.Addr
	// Ifindex is the interface the datagram arrived on. On write, non-zero
	// forces the outgoing interface (Options.SendIfindex must be set).
	Ifindex int
	// Trunc reports a datagram larger than Buf (only len(Buf) bytes kept).
	Trunc bool
}

// Options tune Listen. The zero value is usable.
type Options struct {
	Device      string // SO_BINDTODEVICE (needs CAP_NET_RAW), "" for none
	RecvBuf     int    // SO_RCVBUF bytes (SO_RCVBUFFORCE first when permitted), 0 = kernel default
	SendBuf     int    // SO_SNDBUF bytes, 0 = kernel default
	Batch       int    // most packets per ReadBatch/WriteBatch call, default 64
	Transparent bool   // IP_TRANSPARENT (CAP_NET_ADMIN): send from an address not (yet) configured here
	ReusePort   bool   // SO_REUSEPORT
	// SendIfindex makes WriteBatch honour Packet.Ifindex (pin the outgoing
	// interface); by default routing alone decides.
	SendIfindex bool
}

const (
	defaultBatch = 64
	// maxBatch bounds the preallocation (UIO_MAXIOV is 1024).
	maxBatch = 1024
)

var (
	sizeofCmsghdr = unix.SizeofCmsghdr
	cmsgAlign     = int(unsafe.Sizeof(uintptr(0))) // CMSG_ALIGN on Linux: sizeof(long)
	// Receive room per packet: one IP_PKTINFO plus slack for options the
	// kernel may add, so an unexpected one is skipped rather than MSG_CTRUNC.
	rctlSpace = align(unix.CmsgSpace(unix.SizeofInet4Pktinfo) * 2)
	wctlSpace = unix.CmsgSpace(unix.SizeofInet4Pktinfo)
)

func align(n int) int { return (n + cmsgAlign - 1) &^ (cmsgAlign - 1) }

// half is the preallocated state for one direction: reader and writer can
// run concurrently in two goroutines, each on its own half.
type half struct {
	hdrs  []unix.Mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet4
	ctl   []byte // rctlSpace or wctlSpace per packet, cmsg-aligned

	// Arguments and results of the callback given to the poller, kept
	// here so the callback is a method value created once (no allocation).
	n     int // packets for this syscall
	off   int // first header for this syscall (a partial sendmmsg resumes)
	count int
	errno syscall.Errno
}

func (h *half) init(batch, space int) {
	h.hdrs = make([]unix.Mmsghdr, batch)
	h.iovs = make([]unix.Iovec, batch)
	h.names = make([]unix.RawSockaddrInet4, batch)
	words := make([]uint64, (batch*space+7)/8) // uint64 backing: aligned for any cmsghdr
	h.ctl = unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), batch*space)
}

// Conn is one AF_INET SOCK_DGRAM socket. ReadBatch may be called from one
// goroutine and WriteBatch from another concurrently; neither from two at a
// time. Close may be called from anywhere, any number of times.
type Conn struct {
	f       *os.File
	rc      syscall.RawConn
	local   netip.AddrPort
	batch   int
	sendIfx bool
	closed  atomic.Bool

	r, w    half
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
}

// Listen opens a UDP socket bound to addr (IPv4; port 0 picks one) with
// SO_REUSEADDR and IP_PKTINFO on.
func Listen(addr netip.AddrPort, opts Options) (*Conn, error) {
	a := addr.Addr().Unmap()
	if !a.Is4() {
		return nil, fmt.Errorf("udpio: listen %v: not an IPv4 address (use 0.0.0.0:port for any)", addr)
	}
	batch := opts.Batch
	if batch <= 0 {
		batch = defaultBatch
	}
	batch = min(batch, maxBatch)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return nil, fmt.Errorf("udpio: listen %v: socket: %w", addr, err)
	}
	fail := func(what string, err error) (*Conn, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("udpio: listen %v: %s: %w", addr, what, err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fail("SO_REUSEADDR", err)
	}
	if opts.ReusePort {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
			return fail("SO_REUSEPORT", err)
		}
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
		return fail("IP_PKTINFO", err)
	}
	if opts.Transparent {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TRANSPARENT, 1); err != nil {
			return fail("IP_TRANSPARENT (needs CAP_NET_ADMIN)", err)
		}
	}
	if opts.Device != "" {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, opts.Device); err != nil {
			return fail("SO_BINDTODEVICE "+opts.Device+" (needs CAP_NET_RAW and an existing interface)", err)
		}
	}
	if opts.RecvBuf > 0 {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, opts.RecvBuf) != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, opts.RecvBuf); err != nil {
				return fail("SO_RCVBUF", err)
			}
		}
	}
	if opts.SendBuf > 0 {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, opts.SendBuf) != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, opts.SendBuf); err != nil {
				return fail("SO_SNDBUF", err)
			}
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: a.As4()}); err != nil {
		return fail("bind", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fail("getsockname", err)
	}
	sa4, ok := sa.(*unix.SockaddrInet4)
	if !ok {
		return fail("getsockname", errors.New("not an IPv4 address"))
	}
	// A non-blocking descriptor makes os.NewFile register it with the
	// runtime poller: reads park the goroutine, Close wakes it.
	f := os.NewFile(uintptr(fd), "udp4:"+addr.String())
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("udpio: listen %v: %w", addr, err)
	}
	c := &Conn{
		f:       f,
		rc:      rc,
		local:   netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(sa4.Port)),
		batch:   batch,
		sendIfx: opts.SendIfindex,
	}
	c.r.init(batch, rctlSpace)
	c.w.init(batch, wctlSpace)
	c.readFn = c.recv
	c.writeFn = c.send
	return c, nil
}

// LocalAddr is the bound address (with the port the kernel chose for 0).
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// Batch is the most packets one ReadBatch or WriteBatch call handles.
func (c *Conn) Batch() int { return c.batch }

// Close closes the socket and wakes a blocked ReadBatch or WriteBatch,
// which return ErrClosed. Further calls return ErrClosed too.
func (c *Conn) Close() error {
	c.closed.Store(true)
	if err := c.f.Close(); err != nil {
		return c.mapErr(err)
	}
	return nil
}

// File gives access to the socket for options this package does not wrap
// (setsockopt through SyscallConn). Do not read or write through it.
func (c *Conn) File() *os.File { return c.f }

// mapErr turns the poller's "use of closed file" (internal/poll, not
// matchable with errors.Is) into ErrClosed.
func (c *Conn) mapErr(err error) error {
	if c.closed.Load() || errors.Is(err, os.ErrClosed) {
		return ErrClosed
	}
	return err
}

// ReadBatch blocks until at least one datagram is there, then fills up to
// min(len(pkts), Batch()) packets and returns how many. Each pkts[i].Buf
// must have room (len > 0): it is where the datagram goes.
func (c *Conn) ReadBatch(pkts []Packet) (int, error) {
	n := min(len(pkts), c.batch)
	if n == 0 {
		return 0, nil
	}
	h := &c.r
	for i := range n {
		b := pkts[i].Buf
		if len(b) == 0 {
			return 0, fmt.Errorf("udpio: ReadBatch: pkts[%d].Buf is empty: give every packet a buffer", i)
		}
		h.iovs[i].Base = &b[0]
		h.iovs[i].SetLen(len(b))
		m := &h.hdrs[i].Hdr
		m.Name = (*byte)(unsafe.Pointer(&h.names[i]))
		m.Namelen = unix.SizeofSockaddrInet4
		m.Iov = &h.iovs[i]
		m.SetIovlen(1)
		m.Control = &h.ctl[i*rctlSpace]
		m.SetControllen(rctlSpace)
		m.Flags = 0
		h.hdrs[i].Len = 0
	}
	h.n, h.count, h.errno = n, 0, 0
	if err := c.rc.Read(c.readFn); err != nil {
		return 0, c.mapErr(err)
	}
	if h.errno != 0 {
		return 0, fmt.Errorf("udpio: recvmmsg on %v: %w", c.local, h.errno)
	}
	for i := range h.count {
		p := &pkts[i]
		hd := &h.hdrs[i]
		p.N = int(hd.Len)
		p.Trunc = hd.Hdr.Flags&unix.MSG_TRUNC != 0
		sa := &h.names[i]
		port := (*[2]byte)(unsafe.Pointer(&sa.Port)) // network byte order in memory
		p.Src = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(port[0])<<8|uint16(port[1]))
		ctl := h.ctl[i*rctlSpace : i*rctlSpace+int(hd.Hdr.Controllen)]
		p.Dst, p.Local, p.Ifindex = netip.Addr{}, netip.Addr{}, 0
		if pi, ok := parsePktinfo(ctl); ok {
			p.Dst, p.Local, p.Ifindex = pi.addr, pi.specDst, pi.ifindex
		}
	}
	return h.count, nil
}

// recv runs under the poller: false means "would block, wait and call again".
func (c *Conn) recv(fd uintptr) bool {
	h := &c.r
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&h.hdrs[0])), uintptr(h.n), 0, 0, 0)
	switch e {
	case 0:
		h.count = int(r)
		return true
	case unix.EAGAIN, unix.EINTR:
		return false
	}
	h.errno = e
	return true
}

// WriteBatch sends pkts[i].Buf[:N] to pkts[i].Src from pkts[i].Dst, for up
// to min(len(pkts), Batch()) packets, blocking while the socket buffer is
// full. It returns how many were sent from the start; on an error, pkts[n]
// is the packet that failed (the caller may skip it and send the rest).
func (c *Conn) WriteBatch(pkts []Packet) (int, error) {
	n := min(len(pkts), c.batch)
	h := &c.w
	for i := range n {
		p := &pkts[i]
		if p.N < 0 || p.N > len(p.Buf) {
			return 0, fmt.Errorf("udpio: WriteBatch: pkts[%d].N = %d outside Buf (len %d)", i, p.N, len(p.Buf))
		}
		to := p.Src.Addr().Unmap()
		if !to.Is4() {
			return 0, fmt.Errorf("udpio: WriteBatch: pkts[%d].Src %v is not an IPv4 address", i, p.Src)
		}
		sa := &h.names[i]
		sa.Family = unix.AF_INET
		port := (*[2]byte)(unsafe.Pointer(&sa.Port))
		port[0], port[1] = byte(p.Src.Port()>>8), byte(p.Src.Port())
		sa.Addr = to.As4()
		m := &h.hdrs[i].Hdr
		m.Name = (*byte)(unsafe.Pointer(sa))
		m.Namelen = unix.SizeofSockaddrInet4
		if p.N > 0 {
			h.iovs[i].Base = &p.Buf[0]
		} else {
			h.iovs[i].Base = nil
		}
		h.iovs[i].SetLen(p.N)
		m.Iov = &h.iovs[i]
		m.SetIovlen(1)
		ifx := 0
		if c.sendIfx {
			ifx = p.Ifindex
		}
		from := p.Dst.Unmap()
		if (from.Is4() && !from.IsUnspecified()) || ifx != 0 {
			ctl := h.ctl[i*wctlSpace : (i+1)*wctlSpace]
			var src [4]byte
			if from.Is4() {
				src = from.As4()
			}
			putPktinfo(ctl, ifx, src)
			m.Control = &ctl[0]
			m.SetControllen(wctlSpace)
		} else {
			m.Control = nil
			m.SetControllen(0)
		}
		m.Flags = 0
		h.hdrs[i].Len = 0
	}
	sent := 0
	for sent < n {
		h.n, h.count, h.errno = n-sent, 0, 0
		h.off = sent
		if err := c.rc.Write(c.writeFn); err != nil {
			return sent, c.mapErr(err)
		}
		if h.errno != 0 {
			return sent, fmt.Errorf("udpio: sendmmsg from %v to %v: %w", pkts[sent].Dst, pkts[sent].Src, h.errno)
		}
		sent += h.count
	}
	return sent, nil
}

func (c *Conn) send(fd uintptr) bool {
	h := &c.w
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&h.hdrs[h.off])), uintptr(h.n), 0, 0, 0)
	switch e {
	case 0:
		h.count = int(r)
		return true
	case unix.EAGAIN, unix.EINTR:
		return false
	}
	h.errno = e
	return true
}

// pktinfo is struct in_pktinfo.
type pktinfo struct {
	ifindex int
	specDst netip.Addr
	addr    netip.Addr
}

// parsePktinfo walks a control-message buffer (native byte order, as the
// kernel writes it) and returns the IP_PKTINFO, if any.
func parsePktinfo(b []byte) (pktinfo, bool) {
	hdrSpace := align(sizeofCmsghdr)
	for len(b) >= sizeofCmsghdr {
		var clen int
		if sizeofCmsghdr == 16 { // 64-bit: size_t cmsg_len
			clen = int(binary.NativeEndian.Uint64(b))
		} else {
			clen = int(binary.NativeEndian.Uint32(b))
		}
		off := sizeofCmsghdr - 8
		level := int32(binary.NativeEndian.Uint32(b[off:]))
		typ := int32(binary.NativeEndian.Uint32(b[off+4:]))
		if clen < sizeofCmsghdr || clen > len(b) {
			return pktinfo{}, false
		}
		if level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO && clen >= hdrSpace+unix.SizeofInet4Pktinfo {
			d := b[hdrSpace:]
			return pktinfo{
				ifindex: int(int32(binary.NativeEndian.Uint32(d))),
				specDst: netip.AddrFrom4([4]byte(d[4:8])),
				addr:    netip.AddrFrom4([4]byte(d[8:12])),
			}, true
		}
		next := align(clen)
		if next >= len(b) {
			break
		}
		b = b[next:]
	}
	return pktinfo{}, false
}

// putPktinfo writes one IP_PKTINFO control message into b
// (len(b) >= CmsgSpace(SizeofInet4Pktinfo)): send from src, out of ifindex
// when not 0.
func putPktinfo(b []byte, ifindex int, src [4]byte) {
	clear(b)
	clen := align(sizeofCmsghdr) + unix.SizeofInet4Pktinfo
	if sizeofCmsghdr == 16 {
		binary.NativeEndian.PutUint64(b, uint64(clen))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(clen))
	}
	off := sizeofCmsghdr - 8
	binary.NativeEndian.PutUint32(b[off:], uint32(unix.IPPROTO_IP))
	binary.NativeEndian.PutUint32(b[off+4:], uint32(unix.IP_PKTINFO))
	d := b[align(sizeofCmsghdr):]
	binary.NativeEndian.PutUint32(d, uint32(int32(ifindex)))
	copy(d[4:8], src[:]) // ipi_spec_dst: the source address
}
