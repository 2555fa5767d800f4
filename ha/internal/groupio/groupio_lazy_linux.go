//go:build linux

package groupio

import (
	"fmt"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
)

// A lazy socket exists for the group heartbeat. A standby that reads every
// heartbeat when it arrives wakes once per heartbeat: three or more times
// per election advertisement, each wake-up as dear as the advertisement's
// (docs/performance.md, "Idle cost"). Its verdict needs no such haste: a
// peer is down only when nothing arrived from it for the detection time,
// and the kernel stamps every datagram with its arrival. So the socket is
// kept out of the runtime's poller (an arrival wakes no thread) and the
// owner reads what waits when it is awake anyway, and at the peer's
// expiry at the latest, taking each datagram's kernel arrival time as when
// it was heard. Every datagram is still checked in full (TTL, interface,
// HMAC, replay window) before it counts: the kernel only queues and
// stamps.

// openLazy finishes Open for Options.Lazy: fd is blocking, so os.NewFile
// does not register it with the poller; it becomes non-blocking after.
func openLazy(fd int, o Options, ifi *net.Interface, local, group netip.Addr, granted int, where string) (*Conn, error) {
	f := os.NewFile(uintptr(fd), fmt.Sprintf("groupio:%s:%d:lazy", o.Interface, o.Port))
	if err := unix.SetNonblock(fd, true); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: O_NONBLOCK: %w", where, err)
	}
	// Best effort: without it (qemu-user, kernels before 5.1) ReadQueued
	// reports no stamp and the caller takes the time it reads.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS_NEW, 1)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	c := newConn(f, rc, o, ifi, local, group, granted)
	c.lazy = true
	c.q.init()
	return c, nil
}
