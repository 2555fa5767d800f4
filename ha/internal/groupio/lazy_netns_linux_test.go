//go:build linux

package groupio

import (
	"net/netip"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/lab"
)

// A lazy socket queues what arrives without anyone reading, and reports
// each datagram's kernel arrival time: a reader that comes late learns
// when the peer spoke, not when it looked.
func TestNetNSLazyArrivalTime(t *testing.T) {
	l := lab.NewT(t)
	ha := l.HostT(t, "a", "192.0.2.11/24")
	hb := l.HostT(t, "b", "192.0.2.12/24")
	group := netip.MustParseAddr("224.0.0.240")
	const port = 4350
	addrA, addrB := netip.MustParseAddr("192.0.2.11"), netip.MustParseAddr("192.0.2.12")
	open := func(h *lab.Host, local netip.Addr, lazy bool) *Conn {
		t.Helper()
		var c *Conn
		err := InNetNS(nsPath(h), func() (err error) {
			c, err = Open(Options{Interface: "eth0", Local: local, Group: group, Port: port, Lazy: lazy})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := open(ha, addrA, false), open(hb, addrB, true)
	buf := make([]byte, 2048)
	if _, _, _, _, ok, err := b.ReadQueued(buf); ok || err != nil {
		t.Fatalf("empty lazy socket: ok %v err %v, want nothing and no error", ok, err)
	}
	if _, _, _, _, _, err := a.ReadQueued(buf); err == nil {
		t.Fatal("ReadQueued on a socket opened without Lazy: no error")
	}
	sent := time.Now()
	for _, p := range []string{"hb-1", "hb-2"} {
		if err := a.SendGroup([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(150 * time.Millisecond)
	read := time.Now()
	for _, want := range []string{"hb-1", "hb-2"} {
		n, src, ttl, at, ok, err := b.ReadQueued(buf)
		if err != nil || !ok {
			t.Fatalf("reading %q: ok %v err %v", want, ok, err)
		}
		if string(buf[:n]) != want || src != addrA || ttl != TTL {
			t.Fatalf("got %q from %v ttl %d, want %q from %v ttl %d", buf[:n], src, ttl, want, addrA, TTL)
		}
		// The stamp lies between the send and the read; closer to the
		// send (the read came 150 ms later).
		if at < sent.UnixNano() || at > read.UnixNano() || at-sent.UnixNano() > read.UnixNano()-at {
			t.Fatalf("%q stamped %v after the send, read %v after it: want the arrival time",
				want, time.Duration(at-sent.UnixNano()), read.Sub(sent))
		}
	}
	if _, _, _, _, ok, _ := b.ReadQueued(buf); ok {
		t.Fatal("a third datagram queued")
	}
}
