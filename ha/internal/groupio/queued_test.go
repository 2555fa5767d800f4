//go:build linux

package groupio

import (
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rmem is the memory the lazy socket's queue holds (SO_MEMINFO): it grows
// by one datagram's truesize per datagram queued.
func rmem(t *testing.T, c *Conn) uint32 {
	t.Helper()
	var info [unix.SK_MEMINFO_VARS]uint32
	l := uint32(unsafe.Sizeof(info))
	var e unix.Errno
	if err := c.rc.Control(func(fd uintptr) {
		_, _, e = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&l)), 0)
	}); err != nil || e != 0 {
		t.Fatalf("SO_MEMINFO: %v %v", err, e)
	}
	return info[unix.SK_MEMINFO_RMEM_ALLOC]
}

// queueOf sends ps to b's lazy socket from a and returns when all are
// queued (the queue's memory is len(ps) times one datagram's).
func queueOf(t *testing.T, a, b *Conn, ps ...string) {
	t.Helper()
	if got := rmem(t, b); got != 0 {
		t.Fatalf("the lazy socket holds %d bytes before the test's datagrams", got)
	}
	var one uint32
	for i, p := range ps {
		if err := a.SendTo([]byte(p), b.Local()); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			m := rmem(t, b)
			if i == 0 && m > 0 {
				one = m
				break
			}
			if i > 0 && m >= uint32(i+1)*one {
				break
			}
			if time.Now().After(end) {
				t.Fatalf("datagram %d of %d not queued after 5 s", i+1, len(ps))
			}
		}
	}
}

// A drain of the lazy socket makes one system call for the one datagram
// that usually waits, not a second one that finds the queue empty: the
// datagram comes with Drained. Two queued cost one call for both and one
// that finds the queue empty; each comes whole, in order, from its
// sender, with its arrival time.
func TestReadQueuedDrainsInOneCall(t *testing.T) {
	a, b := lazyPair(t)
	buf := make([]byte, 64)
	drain := func(want ...string) (calls uint64) {
		t.Helper()
		from := b.q.calls
		for i := 0; ; i++ {
			n, src, ttl, at, ok, err := b.ReadQueued(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				if i != len(want) {
					t.Fatalf("%d datagrams read, want %v", i, want)
				}
				break
			}
			if i >= len(want) || string(buf[:n]) != want[i] || src != a.Local() || ttl != TTL || at == 0 {
				t.Fatalf("read %q from %v ttl %d at %d, want %q from %v with its arrival time", buf[:n], src, ttl, at, want, a.Local())
			}
			if b.Drained() {
				if i != len(want)-1 {
					t.Fatalf("Drained after %q with %v queued", buf[:n], want[i+1:])
				}
				break
			}
		}
		return b.q.calls - from
	}
	queueOf(t, a, b, "one")
	if calls := drain("one"); calls != 1 {
		t.Errorf("one datagram drained in %d recvmmsg, want 1", calls)
	}
	queueOf(t, a, b, "first", "second")
	if calls := drain("first", "second"); calls != 2 {
		t.Errorf("two datagrams drained in %d recvmmsg, want 2", calls)
	}
	queueOf(t, a, b, "x", "y", "z")
	if calls := drain("x", "y", "z"); calls != 2 {
		t.Errorf("three datagrams drained in %d recvmmsg, want 2", calls)
	}
	if _, _, _, _, ok, err := b.ReadQueued(buf); ok || err != nil || !b.Drained() {
		t.Fatalf("empty queue: ok %v err %v drained %v", ok, err, b.Drained())
	}
}

// A datagram longer than the caller's buffer is dropped and counted,
// whichever slot of the batch took it, and the others still come.
func TestReadQueuedTruncated(t *testing.T) {
	a, b := lazyPair(t)
	buf := make([]byte, 8)
	queueOf(t, a, b, "short", "much too long", "fits")
	var got []string
	for {
		n, _, _, _, ok, err := b.ReadQueued(buf)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, string(buf[:n]))
		if b.Drained() {
			break
		}
	}
	if len(got) != 2 || got[0] != "short" || got[1] != "fits" || b.Stats().Truncated != 1 {
		t.Fatalf("read %q, %d truncated; want [short fits], 1", got, b.Stats().Truncated)
	}
}

// Reading a lazy socket allocates nothing, whether the datagram comes
// from the kernel or from the batch's spare slot.
func TestReadQueuedAllocs(t *testing.T) {
	a, b := lazyPair(t)
	buf := make([]byte, 64)
	pkt := []byte("heartbeat")
	queueOf(t, a, b, "warm")
	b.ReadQueued(buf) // the spare buffer, once
	var rerr error
	allocs := testing.AllocsPerRun(100, func() {
		for range 2 {
			if err := a.SendTo(pkt, b.Local()); err != nil {
				rerr = err
			}
		}
		for {
			_, _, _, _, ok, err := b.ReadQueued(buf)
			if err != nil {
				rerr = err
			}
			if !ok || b.Drained() {
				break
			}
		}
	})
	if rerr != nil {
		t.Fatal(rerr)
	}
	if allocs != 0 {
		t.Fatalf("SendTo+ReadQueued: %v allocations per round, want 0", allocs)
	}
}
