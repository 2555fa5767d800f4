package sim

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"
)

// batchConn reads and writes many datagrams per system call with recvmmsg and
// sendmmsg (Linux ≥ 3.0). The syscall package has the per-architecture
// msghdr and iovec layouts; only the two syscall numbers are missing on some
// architectures (sysnum_linux_*.go). Reading and writing may run
// concurrently from two goroutines: each direction has its own headers.
type batchConn struct {
	c  *net.UDPConn
	rc syscall.RawConn
	rd mmsgState
	wr mmsgState
}

// mmsghdr is struct mmsghdr: a msghdr and the byte count the kernel fills
// in. Go pads it to the C size on every architecture.
type mmsghdr struct {
	hdr syscall.Msghdr
	n   uint32
}

type mmsgState struct {
	hdrs  []mmsghdr
	iovs  []syscall.Iovec
	names []syscall.RawSockaddrInet4
	// Call state, kept here so that the RawConn callbacks are built once
	// and calling them allocates nothing.
	cnt   int
	done  int
	errno syscall.Errno
	fn    func(fd uintptr) bool
}

func newBatchConn(c *net.UDPConn, size int) (*batchConn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	b := &batchConn{c: c, rc: rc}
	for _, s := range []*mmsgState{&b.rd, &b.wr} {
		s.hdrs = make([]mmsghdr, size)
		s.iovs = make([]syscall.Iovec, size)
		s.names = make([]syscall.RawSockaddrInet4, size)
	}
	b.rd.fn = func(fd uintptr) bool { return b.rd.call(fd, sysRecvmmsg) }
	b.wr.fn = func(fd uintptr) bool { return b.wr.call(fd, sysSendmmsg) }
	return b, nil
}

func (s *mmsgState) call(fd uintptr, nr uintptr) bool {
	n, _, e := syscall.Syscall6(nr, fd, uintptr(unsafe.Pointer(&s.hdrs[0])), uintptr(s.cnt), 0, 0, 0)
	if e == syscall.EAGAIN {
		return false // wait for the poller
	}
	if e == syscall.EINTR {
		return s.call(fd, nr)
	}
	s.done, s.errno = int(n), e
	return true
}

func (s *mmsgState) prepare(msgs []message, names bool) {
	if len(msgs) > len(s.hdrs) {
		msgs = msgs[:len(s.hdrs)]
	}
	for i := range msgs {
		m := &msgs[i]
		iov := &s.iovs[i]
		iov.Base = unsafe.SliceData(m.buf)
		iov.SetLen(len(m.buf))
		h := &s.hdrs[i]
		h.hdr = syscall.Msghdr{Iov: iov, Iovlen: 1}
		h.n = 0
		if names {
			h.hdr.Name = (*byte)(unsafe.Pointer(&s.names[i]))
			h.hdr.Namelen = syscall.SizeofSockaddrInet4
		}
	}
	s.cnt = len(msgs)
}

// readBatch receives up to len(msgs) datagrams (at least one, waiting for
// it); msgs[i].buf is the buffer to fill, and on return msgs[i].n and
// msgs[i].addr describe datagram i.
func (b *batchConn) readBatch(msgs []message) (int, error) {
	s := &b.rd
	s.prepare(msgs, true)
	if err := b.rc.Read(s.fn); err != nil {
		return 0, err
	}
	if s.errno != 0 {
		return 0, s.errno
	}
	for i := 0; i < s.done; i++ {
		msgs[i].n = int(s.hdrs[i].n)
		sa := &s.names[i]
		port := (*[2]byte)(unsafe.Pointer(&sa.Port))
		msgs[i].addr = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(port[0])<<8|uint16(port[1]))
	}
	return s.done, nil
}

// writeBatch sends msgs[i].buf, to msgs[i].addr when the socket is not
// connected (set withAddr), and returns how many were sent.
func (b *batchConn) writeBatch(msgs []message, withAddr bool) (int, error) {
	sent := 0
	for sent < len(msgs) {
		s := &b.wr
		part := msgs[sent:]
		s.prepare(part, withAddr)
		if withAddr {
			for i := 0; i < s.cnt; i++ {
				sa := &s.names[i]
				sa.Family = syscall.AF_INET
				sa.Addr = part[i].addr.Addr().As4()
				p := part[i].addr.Port()
				port := (*[2]byte)(unsafe.Pointer(&sa.Port))
				port[0], port[1] = byte(p>>8), byte(p)
			}
		}
		if err := b.rc.Write(s.fn); err != nil {
			return sent, err
		}
		if s.errno != 0 {
			return sent, s.errno
		}
		if s.done <= 0 {
			return sent, syscall.EIO // cannot happen: sendmmsg blocks or fails
		}
		sent += s.done
	}
	return sent, nil
}

// reusePort lets several sockets bind the same address; the kernel spreads
// flows over them by hash (SO_REUSEPORT, Linux ≥ 3.9).
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

const haveReusePort = true

// UDP generic segmentation offload (Linux ≥ 4.18): one sendmsg carries up to
// gsoMaxSegs equal-sized datagrams, which the stack splits as late as
// possible. It saves most of the per-datagram cost of the send path.
const (
	solUDP     = 17  // SOL_UDP
	udpSegment = 103 // UDP_SEGMENT
	gsoMaxSegs = 64  // UDP_MAX_SEGMENTS on older kernels
)

type gso struct {
	oob []byte
	off bool // the kernel refused: use sendmmsg
}

// newGSO returns nil when UDP GSO does not work here.
func newGSO() *gso {
	oob := make([]byte, syscall.CmsgSpace(2))
	h := (*syscall.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = solUDP, udpSegment
	h.SetLen(syscall.CmsgLen(2))
	g := &gso{oob: oob}
	if !g.probe() {
		return nil
	}
	return g
}

// probe sends a two-segment train to itself over loopback and checks that
// it arrives as two datagrams. An old kernel refuses the option; qemu-user
// drops the control message and delivers one big datagram, which is why
// asking the kernel is not enough.
func (g *gso) probe() bool {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return false
	}
	defer rx.Close()
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		return false
	}
	defer tx.Close()
	if ok, err := g.write(tx, []byte("0123456789abcdef"), 8, netip.AddrPort{}); !ok || err != nil {
		return false
	}
	rx.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	buf := make([]byte, 64)
	for _, want := range []string{"01234567", "89abcdef"} {
		n, err := rx.Read(buf)
		if err != nil || string(buf[:n]) != want {
			return false
		}
	}
	return true
}

// write sends buf as datagrams of seg bytes each (the last may be shorter)
// to addr, or to the connected peer when addr is the zero value. It reports
// false when GSO is unavailable; the caller then sends another way.
func (g *gso) write(c *net.UDPConn, buf []byte, seg int, addr netip.AddrPort) (bool, error) {
	if g.off {
		return false, nil
	}
	*(*uint16)(unsafe.Pointer(&g.oob[syscall.CmsgLen(0)])) = uint16(seg) // native endian, as the kernel reads it
	_, _, err := c.WriteMsgUDPAddrPort(buf, g.oob, addr)
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) && (errno == syscall.EINVAL || errno == syscall.EIO || errno == syscall.ENOPROTOOPT || errno == syscall.EOPNOTSUPP) {
			g.off = true
			return false, nil
		}
		return true, err
	}
	return true, nil
}
