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
	// The kernel turns arrival stamps on for the whole system in deferred
	// work after the first socket asks; until then a datagram is stamped
	// when it is read. Wait until one is stamped before its read.
	for end := time.Now().Add(5 * time.Second); ; {
		if err := a.SendGroup([]byte("warm")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		mark := time.Now()
		_, _, _, at, ok, err := b.ReadQueued(buf)
		if err != nil {
			t.Fatal(err)
		}
		for ok { // drain what else waits
			_, _, _, _, ok, _ = b.ReadQueued(buf)
		}
		if at != 0 && at < mark.UnixNano() {
			break
		}
		if time.Now().After(end) {
			t.Fatal("the kernel never stamped an arrival before its read (5 s)")
		}
	}
	sent := time.Now()
	for _, p := range []string{"hb-1", "hb-2"} {
		if err := a.SendGroup([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	// Wait for hb-1 (a loaded machine may deliver late; nothing here
	// depends on how late), then check its stamp lies between the send
	// and the read.
	var (
		n   int
		ttl uint8
		src netip.Addr
		at  int64
		ok  bool
		err error
	)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if n, src, ttl, at, ok, err = b.ReadQueued(buf); ok || err != nil {
			break
		}
	}
	read := time.Now()
	if err != nil || !ok {
		t.Fatalf("reading hb-1: ok %v err %v (5 s)", ok, err)
	}
	if string(buf[:n]) != "hb-1" || src != addrA || ttl != TTL {
		t.Fatalf("got %q from %v ttl %d, want \"hb-1\" from %v ttl %d", buf[:n], src, ttl, addrA, TTL)
	}
	if at < sent.UnixNano() || at > read.UnixNano() {
		t.Fatalf("hb-1 stamped %v after the send, read %v after it", time.Duration(at-sent.UnixNano()), read.Sub(sent))
	}
	// hb-2 came in right behind hb-1, before this pause: read after it,
	// its stamp must still be its arrival, not the read.
	pause := time.Now()
	time.Sleep(150 * time.Millisecond)
	if n, src, ttl, at, ok, err = b.ReadQueued(buf); err != nil || !ok {
		t.Fatalf("reading hb-2: ok %v err %v", ok, err)
	}
	if string(buf[:n]) != "hb-2" || src != addrA || ttl != TTL {
		t.Fatalf("got %q from %v ttl %d, want \"hb-2\" from %v ttl %d", buf[:n], src, ttl, addrA, TTL)
	}
	if at < sent.UnixNano() || at > pause.UnixNano() {
		t.Fatalf("hb-2 stamped %v after the send, the pause began %v after it: want the arrival time, not the read",
			time.Duration(at-sent.UnixNano()), pause.Sub(sent))
	}
	if _, _, _, _, ok, _ := b.ReadQueued(buf); ok {
		t.Fatal("a third datagram queued")
	}
}
