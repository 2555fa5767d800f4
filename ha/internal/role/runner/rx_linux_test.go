//go:build linux

package runner

import (
	"net/netip"
	"testing"

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

// Reader's RX and SendTo: datagrams (an empty one included) arrive with
// their sender, neither side allocates per packet, and stop wakes a Recv
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
	stop, err := Reader(rfd, func(x *RX) {
		buf := make([]byte, 64)
		for {
			n, src, ok := x.Recv(buf)
			if !ok {
				close(ch)
				return
			}
			ch <- got{n, src}
		}
	})
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
	stop() // must return: Recv is waiting in the poller
	if _, open := <-ch; open {
		t.Error("the reader did not end after stop")
	}
}
