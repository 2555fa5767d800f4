// Package kpace sends one datagram at a fixed interval with the kernel
// keeping the time: a chain of io_uring timeouts, each linked to a send of
// the same bytes, queued N at a time. The process wakes once per N
// datagrams (and at a failure) instead of once per datagram.
//
// Why: an idle VRRP master's only work is its advertisement, and on a
// small or virtualised router each wake-up of a Go process (the poller's
// epoll_pwait, the timer's read, the scheduler's park) costs more than the
// send itself. Each timeout is relative and armed only when the link
// before it completed, so the cadence restarts from the last send: a
// process that was stopped (SIGSTOP) sends nothing while stopped (the
// timeout's completion runs as task work on the submitting thread, which a
// stopped task does not run) and, on SIGCONT, one overdue datagram at
// most, not a burst.
//
// The ring, its memory layout and the submission entries are written by
// hand over io_uring_setup and io_uring_enter (no cgo, no module).
package kpace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The kernel's io_uring ABI (include/uapi/linux/io_uring.h).
const (
	opNop         = 0
	opPollAdd     = 6
	opSendmsg     = 9
	opTimeout     = 11
	opAsyncCancel = 14
	opRead        = 22

	sqeIOLink          = 1 << 2
	sqeCQESkipSuccess  = 1 << 6
	timeoutETimeSucces = 1 << 5 // IORING_TIMEOUT_ETIME_SUCCESS (Linux 5.16)

	enterGetEvents = 1 << 0

	featSingleMmap = 1 << 0
	featNoDrop     = 1 << 1
	featCQESkip    = 1 << 11 // Linux 5.17

	registerEventfd = 4

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000
)

type sqringOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqringOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqringOffsets
	cqOff                                                                  cqringOffsets
}

// sqe is struct io_uring_sqe (64 bytes).
type sqe struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32
	userData    uint64
	bufIndex    uint16
	personality uint16
	spliceFdIn  int32
	addr3       uint64
	pad         uint64
}

// cqe is struct io_uring_cqe (16 bytes, no CQE32).
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// kernelTimespec is struct __kernel_timespec (64-bit fields on every
// architecture, unlike unix.Timespec on 32-bit ones).
type kernelTimespec struct {
	sec, nsec int64
}

// ring is one io_uring instance: its descriptor and its three mappings.
// One producer at a time (the caller serialises); the consumer likewise.
type ring struct {
	fd      int
	sqMem   []byte
	cqMem   []byte // == sqMem with a single mapping
	sqeMem  []byte
	sqHead  *uint32
	sqTail  *uint32
	sqMask  uint32
	sqArray unsafe.Pointer
	sqes    unsafe.Pointer
	nSQE    uint32
	cqHead  *uint32
	cqTail  *uint32
	cqMask  uint32
	cqes    unsafe.Pointer
	feat    uint32
	// sqLocal is the tail the producer has filled up to, not yet
	// published to the kernel.
	sqLocal uint32
}

// ErrUnavailable wraps every reason io_uring cannot be used here (no
// kernel support, disabled by sysctl, refused by seccomp, a kernel too old
// for a feature the chain needs), so that a caller can fall back.
var ErrUnavailable = errors.New("kpace: io_uring unavailable")

func newRing(entries uint32) (*ring, error) {
	var p params
	fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		why := ""
		switch e {
		case unix.ENOSYS:
			why = " (kernel without CONFIG_IO_URING)"
		case unix.EPERM:
			why = " (kernel.io_uring_disabled, or a seccomp filter)"
		}
		return nil, fmt.Errorf("%w: io_uring_setup: %v%s", ErrUnavailable, e, why)
	}
	r := &ring{fd: int(fd), feat: p.features}
	unix.CloseOnExec(r.fd)
	if p.features&featSingleMmap == 0 || p.features&featNoDrop == 0 || p.features&featCQESkip == 0 {
		unix.Close(r.fd)
		return nil, fmt.Errorf("%w: the kernel's io_uring lacks single mmap, no-drop or CQE skip (features %#x; Linux 5.17 or later)", ErrUnavailable, p.features)
	}
	sqSize := p.sqOff.array + p.sqEntries*4
	cqSize := p.cqOff.cqes + p.cqEntries*uint32(unsafe.Sizeof(cqe{}))
	size := max(sqSize, cqSize)
	var err error
	if r.sqMem, err = unix.Mmap(r.fd, offSQRing, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		unix.Close(r.fd)
		return nil, fmt.Errorf("kpace: mmap of the io_uring rings: %w", err)
	}
	r.cqMem = r.sqMem
	if r.sqeMem, err = unix.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(sqe{})), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		unix.Munmap(r.sqMem)
		unix.Close(r.fd)
		return nil, fmt.Errorf("kpace: mmap of the io_uring submission entries: %w", err)
	}
	base := unsafe.Pointer(&r.sqMem[0])
	r.sqHead = (*uint32)(unsafe.Add(base, p.sqOff.head))
	r.sqTail = (*uint32)(unsafe.Add(base, p.sqOff.tail))
	r.sqMask = *(*uint32)(unsafe.Add(base, p.sqOff.ringMask))
	r.sqArray = unsafe.Add(base, p.sqOff.array)
	r.sqes = unsafe.Pointer(&r.sqeMem[0])
	r.nSQE = p.sqEntries
	r.cqHead = (*uint32)(unsafe.Add(base, p.cqOff.head))
	r.cqTail = (*uint32)(unsafe.Add(base, p.cqOff.tail))
	r.cqMask = *(*uint32)(unsafe.Add(base, p.cqOff.ringMask))
	r.cqes = unsafe.Add(base, p.cqOff.cqes)
	r.sqLocal = atomic.LoadUint32(r.sqTail)
	return r, nil
}

// next returns the next free submission entry, zeroed, or nil when the
// submission queue is full.
func (r *ring) next() *sqe {
	head := atomic.LoadUint32(r.sqHead)
	if r.sqLocal-head >= r.nSQE {
		return nil
	}
	i := r.sqLocal & r.sqMask
	*(*uint32)(unsafe.Add(r.sqArray, 4*uintptr(i))) = i
	s := (*sqe)(unsafe.Add(r.sqes, uintptr(i)*unsafe.Sizeof(sqe{})))
	*s = sqe{}
	r.sqLocal++
	return s
}

// publish makes the filled entries visible to the kernel and returns how
// many there are to submit.
func (r *ring) publish() uint32 {
	n := r.sqLocal - atomic.LoadUint32(r.sqTail)
	atomic.StoreUint32(r.sqTail, r.sqLocal)
	return n
}

// enter is io_uring_enter: submit n entries and, with wait > 0, sleep in
// the kernel until wait completions are posted. A submission alone does
// not block (the chain's first timeout is armed, nothing waits) and goes
// without the scheduler's system-call bookkeeping, whose entry wakes the
// runtime's monitor thread (sysmon) when it sleeps; a wait goes through
// it, so that the runtime may give the P away meanwhile.
func (r *ring) enter(n, wait uint32) (int, error) {
	var c uintptr
	var e syscall.Errno
	if wait == 0 {
		c, _, e = unix.RawSyscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), 0, 0, 0, 0)
	} else {
		c, _, e = unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), uintptr(wait), enterGetEvents, 0, 0)
	}
	if e != 0 {
		return int(c), e
	}
	return int(c), nil
}

// reap calls f for each posted completion and consumes them.
func (r *ring) reap(f func(userData uint64, res int32)) int {
	head := *r.cqHead
	tail := atomic.LoadUint32(r.cqTail)
	n := 0
	for ; head != tail; head++ {
		c := (*cqe)(unsafe.Add(r.cqes, uintptr(head&r.cqMask)*unsafe.Sizeof(cqe{})))
		f(c.userData, c.res)
		n++
	}
	atomic.StoreUint32(r.cqHead, head)
	return n
}

// registerEventfd has the kernel signal efd when a completion is posted
// (IORING_REGISTER_EVENTFD).
func (r *ring) registerEventfd(efd int) error {
	v := int32(efd)
	_, _, e := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), registerEventfd, uintptr(unsafe.Pointer(&v)), 1, 0, 0)
	if e != 0 {
		return fmt.Errorf("%w: io_uring_register eventfd: %v", ErrUnavailable, e)
	}
	return nil
}

func (r *ring) close() error {
	unix.Munmap(r.sqeMem)
	unix.Munmap(r.sqMem)
	return unix.Close(r.fd)
}

// poll32 is a poll mask as sqe.poll32_events: the kernel swaps its half
// words on big-endian machines (where the old 16-bit poll_events field is
// the upper half).
func poll32(ev uint32) uint32 {
	if bigEndian {
		return ev<<16 | ev>>16
	}
	return ev
}

var bigEndian = binary.NativeEndian.Uint16([]byte{0, 1}) == 1

// errno turns a negative completion result into an error.
func errno(res int32) error {
	if res >= 0 {
		return nil
	}
	return syscall.Errno(-res)
}
