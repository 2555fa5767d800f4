//go:build linux

package runner

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// udpSocket is an unprivileged UDP socket bound to 127.0.0.1:port (0: any).
func udpSocket(t *testing.T) (fd int, port uint16) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fd, uint16(sa.(*unix.SockaddrInet4).Port)
}

// Reader and SendTo: datagrams (an empty one included) arrive with their
// sender, neither side allocates per packet, and stop ends a reader
// waiting in the poller.
func TestReaderSendTo(t *testing.T) {
	rfd, port := udpSocket(t)
	sfd, _ := udpSocket(t)
	defer unix.Close(sfd)
	type got struct {
		n   int
		src netip.Addr
	}
	ch := make(chan got, 16)
	stop, err := Reader(rfd, 64, func(b []byte, src netip.Addr) { ch <- got{len(b), src} })
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddr("127.0.0.1")
	for _, pkt := range [][]byte{[]byte("advert"), {}} {
		if err := SendTo(sfd, pkt, lo, port); err != nil {
			t.Fatal(err)
		}
		g := <-ch
		if g.n != len(pkt) || g.src != lo {
			t.Errorf("received %d bytes from %v, want %d from %v", g.n, g.src, len(pkt), lo)
		}
	}
	pkt := []byte("hello")
	if a := testing.AllocsPerRun(100, func() {
		if err := SendTo(sfd, pkt, lo, port); err != nil {
			t.Fatal(err)
		}
		<-ch
	}); a != 0 {
		t.Errorf("SendTo + Recv: %v allocations per packet, want 0", a)
	}
	stop() // must return: the reader is waiting in the poller
	select {
	case g := <-ch:
		t.Errorf("a datagram after stop: %+v", g)
	default:
	}
}

// No datagram is lost or left behind in the socket: the reader waits for
// the next readiness only after a recvmmsg that came back with room to
// spare. Bursts of every size around the batch (several datagrams behind
// one readiness), each sent while the reader waits in the poller, must all
// be handed on, in order, before the next burst.
func TestReaderBursts(t *testing.T) {
	rfd, port := udpSocket(t)
	sfd, _ := udpSocket(t)
	defer unix.Close(sfd)
	// Room for the largest burst: none may be dropped by the kernel.
	if err := unix.SetsockoptInt(rfd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20); err != nil {
		t.Fatal(err)
	}
	got := make(chan byte, 64)
	stop, err := Reader(rfd, 8, func(b []byte, _ netip.Addr) { got <- b[0] })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	lo := netip.MustParseAddr("127.0.0.1")
	seq := byte(0)
	for round := range 20 {
		for size := 1; size <= 3*rxBatch+1; size++ {
			first := seq
			for range size {
				if err := SendTo(sfd, []byte{seq}, lo, port); err != nil {
					t.Fatal(err)
				}
				seq++
			}
			for i := range size {
				select {
				case b := <-got:
					if want := first + byte(i); b != want {
						t.Fatalf("round %d, burst of %d: datagram %d is #%d, want #%d", round, size, i, b, want)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("round %d, burst of %d: datagram %d of it not handed on within 5 s", round, size, i)
				}
			}
		}
	}
}
