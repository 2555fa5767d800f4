//go:build linux

package groupio

import (
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A drain of a lazy socket that took one datagram at a time ended with a
// read that found nothing, EAGAIN: two system calls for the one heartbeat
// that usually waits, on a guest where every kernel entry is dear. One
// recvmmsg with room for one more datagram than it is asked for takes the
// datagram and proves the queue empty behind it in one call (Drained); a
// second datagram it took is kept for the next ReadQueued, which then
// makes no call at all.

// queued is a lazy socket's batch: slot 0 reads into the caller's buffer,
// slot 1 into spare, kept until the next ReadQueued (owned by the reading
// goroutine, as the receive state).
type queued struct {
	hdrs    [2]unix.Mmsghdr
	iovs    [2]unix.Iovec
	names   [2]unix.RawSockaddrInet4
	ctls    [2][]byte
	spare   []byte
	kept    bool // slot 1 holds a datagram not returned yet
	drained bool // the last ReadQueued found the queue empty behind what it returned
	calls   uint64
	err     unix.Errno
	n       int
	fn      func(fd uintptr) bool
}

func (q *queued) init() {
	q.ctls[0], q.ctls[1] = alignedBuf(rctlSpace), alignedBuf(rctlSpace)
	for i := range q.hdrs {
		h := &q.hdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&q.names[i]))
		h.Iov = &q.iovs[i]
		h.SetIovlen(1)
		h.Control = &q.ctls[i][0]
	}
	q.fn = q.recv
}

// recv runs under RawConn.Read (which keeps the descriptor open
// meanwhile); it never waits.
func (q *queued) recv(fd uintptr) bool {
	for {
		q.calls++
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&q.hdrs[0])), 2,
			unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		q.n, q.err = int(r), e
		return true
	}
}

// ReadQueued is Read on a lazy socket: it never waits. ok is false when
// nothing is queued. at is the kernel's arrival time (Unix ns, the
// realtime clock; 0 when the kernel gave none). After a datagram, Drained
// says whether the queue was empty behind it: a drain stops there without
// another call. Allocates nothing (but once, the spare buffer of the
// caller's size).
func (c *Conn) ReadQueued(buf []byte) (n int, src netip.Addr, ttl uint8, at int64, ok bool, err error) {
	if !c.lazy {
		return 0, netip.Addr{}, 0, 0, false, errors.New("groupio: ReadQueued on a socket opened without Options.Lazy: use Read")
	}
	if len(buf) == 0 {
		return 0, netip.Addr{}, 0, 0, false, errors.New("groupio: ReadQueued: empty buffer: pass hasync.MaxDatagram bytes or more")
	}
	q := &c.q
	for {
		if q.kept {
			q.kept, q.drained = false, false // the batch was full: more may wait
			h := &q.hdrs[1]
			if n, src, ttl, at, ok = c.slot(h, &q.names[1], q.ctls[1], len(buf)); ok {
				return copy(buf, q.spare[:n]), src, ttl, at, true, nil
			}
			continue
		}
		if len(q.spare) < len(buf) {
			q.spare = make([]byte, len(buf))
		}
		q.iovs[0].Base, q.iovs[1].Base = &buf[0], &q.spare[0]
		q.iovs[0].SetLen(len(buf))
		q.iovs[1].SetLen(len(buf))
		for i := range q.hdrs {
			h := &q.hdrs[i].Hdr
			h.Namelen = unix.SizeofSockaddrInet4
			h.SetControllen(rctlSpace)
			h.Flags = 0
		}
		if err := c.rc.Read(q.fn); err != nil {
			return 0, netip.Addr{}, 0, 0, false, c.mapErr(err)
		}
		switch q.err {
		case 0:
		case unix.EAGAIN:
			q.drained = true
			return 0, netip.Addr{}, 0, 0, false, nil
		default:
			return 0, netip.Addr{}, 0, 0, false, fmt.Errorf("groupio: recvmmsg on port %d: %w", c.port, q.err)
		}
		q.kept, q.drained = q.n == 2, q.n < 2
		if n, src, ttl, at, ok = c.slot(&q.hdrs[0], &q.names[0], q.ctls[0], len(buf)); ok {
			return n, src, ttl, at, true, nil
		}
		if q.drained {
			return 0, netip.Addr{}, 0, 0, false, nil
		}
	}
}

// Drained reports whether the last ReadQueued found the lazy socket's
// queue empty behind what it returned (or nothing at all).
func (c *Conn) Drained() bool { return c.q.drained && !c.q.kept }

// slot checks one received datagram as Read does: too long for the
// caller's buffer (size) or from another interface, it is dropped and
// counted (ok false).
func (c *Conn) slot(h *unix.Mmsghdr, name *unix.RawSockaddrInet4, ctl []byte, size int) (n int, src netip.Addr, ttl uint8, at int64, ok bool) {
	if h.Hdr.Flags&unix.MSG_TRUNC != 0 || int(h.Len) > size {
		c.trunc.Add(1)
		return 0, netip.Addr{}, 0, 0, false
	}
	ttl, ifindex, stamp, ok := parseCmsgs(ctl[:h.Hdr.Controllen])
	if !ok || ifindex != c.ifindex {
		c.wrongIf.Add(1)
		return 0, netip.Addr{}, 0, 0, false
	}
	return int(h.Len), netip.AddrFrom4(name.Addr), ttl, stamp, true
}
