//go:build linux

package groupio

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/lab"
	"golang.org/x/sys/unix"
)

type dgram struct {
	data []byte
	src  netip.Addr
	ttl  uint8
}

// reader drains c into a channel until c is closed (at cleanup).
func reader(t *testing.T, c *Conn) <-chan dgram {
	ch := make(chan dgram, 64)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, src, ttl, err := c.Read(buf)
			if err != nil {
				close(ch)
				return
			}
			ch <- dgram{bytes.Clone(buf[:n]), src, ttl}
		}
	}()
	return ch
}

func expect(t *testing.T, who string, ch <-chan dgram, data string, src netip.Addr, ttl uint8) {
	t.Helper()
	select {
	case d, ok := <-ch:
		if !ok {
			t.Fatalf("%s: connection closed while waiting for %q", who, data)
		}
		if string(d.data) != data || d.src != src || d.ttl != ttl {
			t.Fatalf("%s: got %q from %v ttl %d, want %q from %v ttl %d", who, d.data, d.src, d.ttl, data, src, ttl)
		}
	case <-time.After(3 * time.Second):
		t.Fatalf("%s: nothing within 3s, want %q from %v", who, data, src)
	}
}

func nsPath(h *lab.Host) string { return "/var/run/netns/" + h.NS }

// rawSend sends one datagram from inside h with the given TTL (unicast and
// multicast TTL both), from an ephemeral port: a sender that is not a Conn.
func rawSend(t *testing.T, h *lab.Host, payload string, to netip.Addr, port uint16, ttl int) {
	t.Helper()
	err := InNetNS(nsPath(h), func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, ttl)
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, ttl)
		if to.IsMulticast() {
			ifi, err := interfaceIndex("eth0")
			if err != nil {
				return err
			}
			if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi)}); err != nil {
				return err
			}
		}
		return unix.Sendto(fd, []byte(payload), 0, &unix.SockaddrInet4{Port: int(port), Addr: to.As4()})
	})
	if err != nil {
		t.Fatalf("sending %q from %s: %v", payload, h.Name, err)
	}
}

func TestNetNSGroup(t *testing.T) {
	l := lab.NewT(t)
	// Host a's primary address is a "virtual address": the Conn must still
	// send from its Local (secondary) address.
	ha := l.HostT(t, "a", "192.0.2.100/24", "192.0.2.11/24")
	hb := l.HostT(t, "b", "192.0.2.12/24")
	hc := l.HostT(t, "c", "192.0.2.13/24")
	group := netip.MustParseAddr("224.0.0.240")
	const port = 4340
	addrA, addrB, addrC := netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("192.0.2.12"), netip.MustParseAddr("192.0.2.13")

	open := func(h *lab.Host, local netip.Addr) *Conn {
		t.Helper()
		var c *Conn
		err := InNetNS(nsPath(h), func() (err error) {
			c, err = Open(Options{Interface: "eth0", Local: local, Group: group, Port: port})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b, c := open(ha, addrA), open(hb, addrB), open(hc, addrC)
	ra, rb, rc := reader(t, a), reader(t, b), reader(t, c)
	t.Logf("rcvbuf granted %d", a.RcvBuf())

	// The port is exclusive: a second socket on it (which would steal the
	// unicast) cannot bind, even with SO_REUSEADDR. A bystander on another
	// port joins another group: with IP_MULTICAST_ALL=0 b's Conn must not
	// receive that group's datagrams sent to the group port.
	err := InNetNS(nsPath(hb), func() error {
		if _, err := Open(Options{Interface: "eth0", Local: addrB, Group: group, Port: port}); err == nil {
			t.Error("second Open on the same port in one namespace succeeded")
		} else {
			t.Logf("second Open: %v", err)
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		t.Cleanup(func() { unix.Close(fd) })
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: addrB.As4()}); err == nil {
			t.Error("bystander bound the group port")
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port + 1}); err != nil {
			return err
		}
		return unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP,
			&unix.IPMreqn{Multiaddr: [4]byte{224, 0, 0, 241}, Ifindex: int32(b.Ifindex())})
	})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("multicast reaches b and c with ttl 255, not a itself", func(t *testing.T) {
		if err := a.SendGroup([]byte("update-1")); err != nil {
			t.Fatal(err)
		}
		expect(t, "b", rb, "update-1", addrA, 255)
		expect(t, "c", rc, "update-1", addrA, 255)
	})
	t.Run("unicast both ways with ttl 255", func(t *testing.T) {
		if err := b.SendTo([]byte("ack-1"), addrA); err != nil {
			t.Fatal(err)
		}
		// a's first datagram is this ack: its own multicast did not loop back.
		expect(t, "a", ra, "ack-1", addrB, 255)
		if err := a.SendTo([]byte("retx-1"), addrC); err != nil {
			t.Fatal(err)
		}
		expect(t, "c", rc, "retx-1", addrA, 255)
	})
	t.Run("ttl 1 is reported as 1", func(t *testing.T) {
		rawSend(t, ha, "low-ttl-unicast", addrB, port, 1)
		expect(t, "b", rb, "low-ttl-unicast", netip.MustParseAddr("192.0.2.100"), 1)
		rawSend(t, ha, "low-ttl-multicast", group, port, 1)
		expect(t, "b", rb, "low-ttl-multicast", netip.MustParseAddr("192.0.2.100"), 1)
		expect(t, "c", rc, "low-ttl-multicast", netip.MustParseAddr("192.0.2.100"), 1)
	})
	t.Run("other groups and other interfaces are not read", func(t *testing.T) {
		rawSend(t, hc, "other-group", netip.MustParseAddr("224.0.0.241"), port, 255)
		rawSend(t, hb, "via-loopback", netip.MustParseAddr("127.0.0.1"), port, 255)
		if err := c.SendTo([]byte("marker"), addrB); err != nil {
			t.Fatal(err)
		}
		expect(t, "b", rb, "marker", addrC, 255)
		if s := b.Stats(); s.WrongInterface != 1 {
			t.Fatalf("b stats %+v, want 1 wrong-interface drop (the loopback datagram)", s)
		}
	})
}

func TestInNetNSRestoresThread(t *testing.T) {
	l := lab.NewT(t)
	h := l.HostT(t, "a", "192.0.2.11/24")
	var inside, after string
	if err := InNetNS(nsPath(h), func() (err error) {
		inside, err = readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	outside, err := readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	after, _ = readlink("/proc/thread-self/ns/net")
	if inside == outside || after != outside {
		t.Fatalf("namespaces: process %s, inside %s, after %s", outside, inside, after)
	}
	if err := InNetNS("/var/run/netns/does-not-exist-hagent", func() error { return nil }); err == nil {
		t.Fatal("missing namespace: no error")
	}
}
