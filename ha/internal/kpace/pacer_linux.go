package kpace

import (
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// User data of the chain's entries (the low byte; a send's index above it).
const (
	udTimeout = 1 + iota
	udSend
	udLast // the chain's last send: the one entry that posts on success
	udProbe
	udPoll // WaitRing's poll of the eventfd, on the second ring
)

// MaxBatch bounds the sends one chain queues (two entries each).
const MaxBatch = 64

// Pacer sends a datagram on a socket every interval, batch at a time, the
// kernel keeping the time (package comment). It belongs to one goroutine,
// locked to its OS thread (runtime.LockOSThread): the kernel runs the
// chain's timeouts and sends as task work of the thread that submitted
// them, and that thread is the one that must sleep meanwhile.
type Pacer struct {
	r *ring
	// efd is an eventfd the kernel signals when it posts a completion; ef
	// and rc hold it in the runtime's poller (not with WaitRing).
	efd    int
	ef     *os.File
	rc     syscall.RawConn
	waitFn func(uintptr) bool
	fd     int
	batch  int
	ts     kernelTimespec
	name   unix.RawSockaddrInet4
	iov    unix.Iovec
	hdr    unix.Msghdr
	evbuf  uint64
	rb     *ring // WaitRing's second ring
	nopFn  func(uint64, int32)
	o      Options
	tfd    int    // TimerFD's periodic timerfd
	tbuf   uint64 // where its reads land
	// the completions seen by the current Chain (reapFn's)
	sent, failed int
	last         bool
	err          error
	reapFn       func(uint64, int32)
}

// New opens a ring for chains of batch sends of the datagram given to
// Chain, on fd to dst (IPv4; the port for UDP, 0 for a raw socket), one
// every interval. It fails with an error wrapping ErrUnavailable when the
// kernel cannot do it.
func New(fd int, dst netip.AddrPort, interval time.Duration, batch int) (*Pacer, error) {
	return NewWith(fd, dst, interval, batch, Options{})
}

// Options choose how the chain keeps time and how Chain waits: the
// variants docs/performance.md compares ("Kernel-paced adverts").
type Options struct {
	// TimerFD: each send is linked to a read of a periodic timerfd instead
	// of a relative IORING_OP_TIMEOUT. The cadence is then absolute. Before
	// Linux 6.8 (timerfd without FMODE_NOWAIT) each read is punted to an
	// io-wq worker thread.
	TimerFD bool
	// WaitInEnter: Chain waits in io_uring_enter on the chain's ring. With
	// timeouts that wait ends at every expiry (io_should_wake counts them),
	// so it returns to Go at every send.
	WaitInEnter bool
	// WaitRing: Chain waits in io_uring_enter on a second ring, for a poll
	// of the eventfd: the thread sleeps in the kernel and runs the chain's
	// task work there, without returning to user space per send.
	WaitRing bool
}

// NewWith is New with options.
func NewWith(fd int, dst netip.AddrPort, interval time.Duration, batch int, o Options) (*Pacer, error) {
	if batch < 1 || batch > MaxBatch {
		return nil, fmt.Errorf("kpace: batch %d out of range 1..%d", batch, MaxBatch)
	}
	if interval <= 0 || !dst.Addr().Is4() {
		return nil, fmt.Errorf("kpace: interval %v and destination %v must be positive and IPv4", interval, dst)
	}
	r, err := newRing(uint32(2*MaxBatch + 8))
	if err != nil {
		return nil, err
	}
	p := &Pacer{r: r, fd: fd, batch: batch, o: o, tfd: -1, efd: -1}
	p.reapFn = p.reapOne
	p.nopFn = func(uint64, int32) {}
	p.ts = kernelTimespec{sec: int64(interval / time.Second), nsec: int64(interval % time.Second)}
	p.name = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: dst.Addr().As4()}
	// Port is in network byte order in memory.
	pb := (*[2]byte)(unsafe.Pointer(&p.name.Port))
	pb[0], pb[1] = byte(dst.Port()>>8), byte(dst.Port())
	p.hdr.Name = (*byte)(unsafe.Pointer(&p.name))
	p.hdr.Namelen = unix.SizeofSockaddrInet4
	p.hdr.Iov = &p.iov
	p.hdr.SetIovlen(1)
	if err := p.probe(); err != nil {
		r.close()
		return nil, err
	}
	// By default Chain waits for the eventfd in the runtime's poller, not
	// in io_uring_enter (WaitInEnter), and not in a blocking read(2)
	// either, whose system-call bookkeeping wakes the runtime's monitor
	// thread at each chain. The locked thread then sleeps in a futex, and
	// each send's task work interrupts that wait, which the kernel
	// restarts without returning to Go.
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		r.close()
		return nil, fmt.Errorf("kpace: eventfd: %w", err)
	}
	if err := r.registerEventfd(efd); err != nil {
		unix.Close(efd)
		r.close()
		return nil, err
	}
	p.efd = efd
	if o.WaitRing {
		// Not in the runtime's poller: its epoll would wake too.
		if p.rb, err = newRing(8); err != nil {
			p.Close()
			return nil, err
		}
	} else {
		p.ef = os.NewFile(uintptr(efd), "io_uring eventfd")
		if p.rc, err = p.ef.SyscallConn(); err != nil {
			p.Close()
			return nil, fmt.Errorf("kpace: the eventfd's raw connection: %w", err)
		}
	}
	p.waitFn = p.wait
	if o.TimerFD {
		if p.tfd, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK); err != nil {
			p.Close()
			return nil, err
		}
		iv := unix.NsecToTimespec(int64(interval))
		if err := unix.TimerfdSettime(p.tfd, 0, &unix.ItimerSpec{Interval: iv, Value: iv}, nil); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

// probe checks that an expired timeout lets its link go on
// (IORING_TIMEOUT_ETIME_SUCCESS): without it a timeout's expiry is a
// failure that cancels the send linked to it.
func (p *Pacer) probe() error {
	ts := kernelTimespec{nsec: 1}
	t := p.r.next()
	t.opcode, t.flags, t.addr, t.len, t.opFlags, t.userData = opTimeout, sqeIOLink, uint64(uintptr(unsafe.Pointer(&ts))), 1, timeoutETimeSucces, udTimeout
	n := p.r.next()
	n.opcode, n.userData = opNop, udProbe
	if _, err := p.r.enter(p.r.publish(), 2); err != nil {
		return fmt.Errorf("%w: io_uring_enter: %v", ErrUnavailable, err)
	}
	var nop int32 = 1
	for got := 0; got < 2; {
		got += p.r.reap(func(ud uint64, res int32) {
			if ud == udProbe {
				nop = res
			}
		})
		if got < 2 {
			if _, err := p.r.enter(0, 1); err != nil && err != unix.EINTR {
				return fmt.Errorf("%w: io_uring_enter: %v", ErrUnavailable, err)
			}
		}
	}
	if nop != 0 {
		return fmt.Errorf("%w: a linked timeout's expiry cancels its link (no IORING_TIMEOUT_ETIME_SUCCESS; Linux 5.16 or later): %v", ErrUnavailable, errno(nop))
	}
	return nil
}

// Chain queues batch sends of msg, the first an interval from now and
// each next an interval after the one before completed (TimerFD: on the
// timerfd's cadence), and returns when the last has been sent or the
// chain broke (a send failed: err). sent counts the datagrams sent. msg
// must not change until Chain returns. Allocates nothing.
func (p *Pacer) Chain(msg []byte) (sent int, err error) {
	p.iov.Base = &msg[0]
	p.iov.SetLen(len(msg))
	p.sent, p.failed, p.last, p.err = 0, 0, false, nil
	for i := 0; i < p.batch; i++ {
		t := p.r.next()
		if p.o.TimerFD {
			t.opcode, t.fd, t.flags, t.userData = opRead, int32(p.tfd), sqeIOLink|sqeCQESkipSuccess, udTimeout|uint64(i)<<8
			t.addr, t.len, t.off = uint64(uintptr(unsafe.Pointer(&p.tbuf))), 8, ^uint64(0)
		} else {
			t.opcode, t.flags, t.opFlags, t.userData = opTimeout, sqeIOLink|sqeCQESkipSuccess, timeoutETimeSucces, udTimeout|uint64(i)<<8
			t.addr, t.len = uint64(uintptr(unsafe.Pointer(&p.ts))), 1
		}
		s := p.r.next()
		s.opcode, s.fd, s.addr, s.len, s.opFlags = opSendmsg, int32(p.fd), uint64(uintptr(unsafe.Pointer(&p.hdr))), 1, unix.MSG_DONTWAIT
		if i < p.batch-1 {
			s.flags, s.userData = sqeIOLink|sqeCQESkipSuccess, udSend|uint64(i)<<8
		} else {
			s.userData = udLast | uint64(i)<<8
		}
	}
	_, err = p.r.enter(p.r.publish(), 0)
	if err != nil {
		return 0, fmt.Errorf("kpace: io_uring_enter (submit): %w", err)
	}
	if p.o.WaitRing {
		for !p.last && p.failed == 0 {
			ps := p.rb.next()
			ps.opcode, ps.fd, ps.opFlags, ps.userData = opPollAdd, int32(p.efd), poll32(unix.POLLIN), udPoll
			if _, err := p.rb.enter(p.rb.publish(), 1); err != nil && err != unix.EINTR {
				return p.sent, fmt.Errorf("kpace: io_uring_enter (wait ring): %w", err)
			}
			p.rb.reap(p.nopFn)
			_, _, _ = unix.RawSyscall(unix.SYS_READ, uintptr(p.efd), uintptr(unsafe.Pointer(&p.evbuf)), 8)
			p.r.reap(p.reapFn)
		}
		return p.sent, p.err
	}
	if p.o.WaitInEnter {
		for !p.last && p.failed == 0 {
			if _, err := p.r.enter(0, 1); err != nil && err != unix.EINTR {
				return p.sent, fmt.Errorf("kpace: io_uring_enter (wait): %w", err)
			}
			p.r.reap(p.reapFn)
		}
		return p.sent, p.err
	}
	if err := p.rc.Read(p.waitFn); err != nil {
		return p.sent, fmt.Errorf("kpace: waiting for the chain: %w", err)
	}
	return p.sent, p.err
}

// wait is Chain's RawConn.Read callback: it consumes the eventfd's count
// and the posted completions, and asks to wait again until the chain is
// over.
func (p *Pacer) wait(fd uintptr) bool {
	_, _, _ = unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&p.evbuf)), 8)
	p.r.reap(p.reapFn)
	return p.last || p.failed > 0
}

// reapOne reads one completion: the chain's last send, or a failure. A
// failed entry posts its completion and cancels the rest of the chain
// without posting theirs (req_set_fail: REQ_F_SKIP_LINK_CQES), so the
// sends that went out are those before it.
func (p *Pacer) reapOne(ud uint64, res int32) {
	i := int(ud >> 8)
	switch ud & 0xff {
	case udLast:
		p.last = true
		if res >= 0 {
			p.sent = i + 1
			return
		}
	case udTimeout, udSend:
	default:
		return
	}
	if res < 0 && p.failed == 0 {
		p.failed++
		p.sent = i
		p.err = fmt.Errorf("kpace: chain broken at send %d: %w", i, errno(res))
	}
}

// Close releases the rings and descriptors. Not while Chain runs: the
// rings' memory goes with it.
func (p *Pacer) Close() error {
	err := p.r.close()
	if p.rb != nil {
		p.rb.close()
	}
	if p.ef != nil {
		p.ef.Close()
	} else if p.efd >= 0 {
		unix.Close(p.efd)
	}
	if p.tfd >= 0 {
		unix.Close(p.tfd)
	}
	return err
}
