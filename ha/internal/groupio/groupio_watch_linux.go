//go:build linux

package groupio

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A lazy socket is read when its owner is awake anyway, which suits a
// member that knows when it must have heard something (a periodic peer's
// expiry). While it expects nothing in particular, every wake-up of its
// own becomes a read for nothing: then an arrival should wake it instead.
// Watch puts a duplicate of the socket's descriptor in the runtime's
// poller for that time; closing the duplicate takes it out again
// (EPOLL_CTL_DEL), and arrivals wake nobody. Both descriptors share the
// one socket and its queue, so nothing is lost or read twice in the
// switch, and the owner still reads every datagram through ReadQueued
// (arrival time, TTL, interface): the watcher only learns that one is
// queued.

// Watcher waits for datagrams on a lazy socket without reading them.
type Watcher struct {
	f      *os.File
	rc     syscall.RawConn
	closed atomic.Bool
	peek   [1]byte
	errno  syscall.Errno
	fn     func(fd uintptr) bool
}

// Watch returns a Watcher on c, a socket opened with Options.Lazy. Close
// it when arrivals need not wake anyone any more.
func (c *Conn) Watch() (*Watcher, error) {
	if !c.lazy {
		return nil, errors.New("groupio: Watch on a socket opened without Options.Lazy: use Read")
	}
	dup, derr := -1, error(nil)
	if err := c.rc.Control(func(fd uintptr) { dup, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, fmt.Errorf("groupio: watch port %d: %w", c.port, c.mapErr(err))
	}
	if derr != nil {
		return nil, fmt.Errorf("groupio: watch port %d: dup: %w", c.port, derr)
	}
	// The duplicate shares the socket's O_NONBLOCK, so os.NewFile
	// registers it with the poller.
	f := os.NewFile(uintptr(dup), fmt.Sprintf("groupio:%d:watch", c.port))
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("groupio: watch port %d: %w", c.port, err)
	}
	w := &Watcher{f: f, rc: rc}
	w.fn = w.queued
	return w, nil
}

// Wait blocks until a datagram is queued on the socket (nil), reading
// nothing, or until Close (ErrClosed). Called again before the datagram
// was read, it returns at once. One goroutine at a time.
func (w *Watcher) Wait() error {
	w.errno = 0
	if err := w.rc.Read(w.fn); err != nil {
		if w.closed.Load() || errors.Is(err, os.ErrClosed) {
			return ErrClosed
		}
		return err
	}
	if w.errno != 0 {
		return fmt.Errorf("groupio: watch: recvfrom(MSG_PEEK): %w", w.errno)
	}
	return nil
}

// queued runs under the poller: true when a datagram (or an error) is
// queued. Each RawConn.Read forgets the readiness recorded before it, so
// the queue is looked at before waiting, not after.
func (w *Watcher) queued(fd uintptr) bool {
	for {
		_, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&w.peek[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		// A pending socket error is cleared by this call; the reader
		// finds the queue as it is.
		w.errno = e
		return true
	}
}

// Close takes the duplicate out of the poller and closes it; a Wait in
// progress returns ErrClosed. The socket itself stays open.
func (w *Watcher) Close() error {
	w.closed.Store(true)
	return w.f.Close()
}
