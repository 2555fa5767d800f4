//go:build linux

package groupio

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// InNetNS runs fn on an OS thread that has entered the network namespace at
// path (for example "/var/run/netns/"+lab.Host.NS), then moves the thread
// back. It is how one test process (or one agent) puts sockets into several
// namespaces: a socket belongs to the namespace of the thread that created
// it, for its whole life, whatever thread later reads or writes it.
//
// So fn should create sockets (Open, net.ListenUDP, netlink) and return;
// using them afterwards from any goroutine is fine. fn must not start
// goroutines that expect to be in the namespace (they run on other threads).
// Needs CAP_SYS_ADMIN (setns).
//
// If the thread cannot be moved back, it stays locked to this goroutine and
// the runtime ends it when the goroutine exits, so no other goroutine ever
// runs in the wrong namespace. Call InNetNS from a goroutine that will exit
// (a test's goroutine is fine) if that matters; the error reports it.
func InNetNS(path string, fn func() error) error {
	runtime.LockOSThread()
	// Thread-level namespace of this very thread (not the process's).
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("groupio: InNetNS %s: opening this thread's namespace: %w", path, err)
	}
	defer unix.Close(orig)
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("groupio: InNetNS: opening %s (does the namespace exist? `ip netns list`): %w", path, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("groupio: InNetNS: setns %s (needs CAP_SYS_ADMIN): %w", path, err)
	}
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with this goroutine.
		return fmt.Errorf("groupio: InNetNS %s: returning to the original namespace failed (thread retired): %w (fn: %v)", path, err, ferr)
	}
	runtime.UnlockOSThread()
	return ferr
}
