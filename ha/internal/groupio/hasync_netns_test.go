//go:build linux

package groupio

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/hasync"
	"github.com/hagent/hagent/tools/lab"
)

// member is a minimal runner: one Conn, a reader goroutine and an owner
// goroutine that alone touches the Machine (the shape the agent has).
type member struct {
	name string
	conn *Conn
	m    *hasync.Machine
	tab  *binding.Table
	do   chan func(now int64, out []hasync.Action) []hasync.Action
	done chan struct{}
	t    *testing.T
	base time.Time
	sent int // send errors
}

func (p *member) now() int64 { return int64(time.Since(p.base)) + 1 }

func (p *member) run(out []hasync.Action) {
	defer close(p.done)
	rx := reader(p.t, p.conn)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	out = p.m.Start(p.now(), out[:0])
	for {
		p.act(out)
		if d := p.m.NextDeadline(); d < 1<<62 {
			timer.Reset(time.Duration(max(d-p.now(), 0)))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case d, ok := <-rx:
			if !ok {
				return
			}
			out = p.m.Receive(p.now(), d.src, d.ttl, d.data, out[:0])
		case f, ok := <-p.do:
			if !ok {
				return
			}
			out = f(p.now(), out[:0])
		case <-timer.C:
			out = p.m.Tick(p.now(), out[:0])
		}
	}
}

func (p *member) act(out []hasync.Action) {
	for _, a := range out {
		var err error
		switch a.Kind {
		case hasync.ActMulticast:
			err = p.conn.SendGroup(a.Pkt)
		case hasync.ActUnicast:
			err = p.conn.SendTo(a.Pkt, a.To)
		}
		if err != nil {
			p.sent++
			p.t.Logf("%s: %v", p.name, err)
		}
	}
}

// call runs f in the owner goroutine and waits for it.
func (p *member) call(f func(now int64, out []hasync.Action) []hasync.Action) {
	ok := make(chan struct{})
	p.do <- func(now int64, out []hasync.Action) []hasync.Action {
		defer close(ok)
		return f(now, out)
	}
	<-ok
}

// TestNetNSHasync runs the group protocol over real sockets: a starts alone
// and takes a registration, b and c start and download the table, a's next
// registration reaches them as a Binding Update, and an update that arrives
// with TTL 1 is rejected by the machine as a TTL violation.
func TestNetNSHasync(t *testing.T) {
	l := lab.NewT(t)
	keys := []hasync.Key{{ID: 1, Secret: bytes.Repeat([]byte("k"), 32)}}
	group := netip.MustParseAddr(hasync.DefaultGroup)
	base := time.Now()
	start := func(name string, last byte) *member {
		addr := netip.AddrFrom4([4]byte{192, 0, 2, last})
		h := l.HostT(t, name, addr.String()+"/24")
		p := &member{name: name, tab: binding.New(64, 64), do: make(chan func(int64, []hasync.Action) []hasync.Action), done: make(chan struct{}), t: t, base: base}
		err := InNetNS(nsPath(h), func() (err error) {
			p.conn, err = Open(Options{Interface: "eth0", Local: addr, Group: group, Port: hasync.DefaultPort})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		p.m, err = hasync.New(hasync.Config{
			ID: binding.AddrU32(addr), Addr: addr, Session: uint32(time.Now().UnixNano()) | 1,
			Keys: keys, SendKey: 1,
			AckTimeout: 50 * time.Millisecond, RequestTimeout: 100 * time.Millisecond, StallTimeout: 300 * time.Millisecond,
		}, p.tab)
		if err != nil {
			t.Fatal(err)
		}
		go p.run(make([]hasync.Action, 0, 256))
		t.Cleanup(func() { p.conn.Close(); <-p.done })
		return p
	}
	waitFor := func(p *member, what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			var ok bool
			var cnt hasync.Counters
			p.call(func(_ int64, out []hasync.Action) []hasync.Action { ok, cnt = cond(), p.m.Counters(); return out })
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s not within 5s; counters %+v", p.name, what, cnt)
			}
		}
	}
	register := func(p *member, home string, id uint64) {
		t.Helper()
		var err error
		p.call(func(now int64, out []hasync.Action) []hasync.Action {
			out, err = p.m.Register(now, binding.Entry{
				Home: binding.AddrU32(netip.MustParseAddr(home)), CareOf: binding.AddrU32(netip.MustParseAddr("198.51.100.7")),
				HomeAgent: binding.AddrU32(p.conn.Local()), ID: id, Granted: 600, Node: -1,
			}, out)
			return out
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	has := func(p *member, home string) func() bool {
		return func() bool {
			e := p.tab.Get(binding.AddrU32(netip.MustParseAddr(home)))
			return e != nil && !e.Tombstone()
		}
	}

	a := start("a", 11)
	waitFor(a, "initialized alone", a.m.Initialized)
	register(a, "192.0.2.201", 1)

	b, c := start("b", 12), start("c", 13)
	for _, p := range []*member{b, c} {
		waitFor(p, "table downloaded", p.m.Initialized)
		waitFor(p, "binding from the download", has(p, "192.0.2.201"))
	}
	register(a, "192.0.2.202", 1)
	for _, p := range []*member{b, c} {
		waitFor(p, "binding from the update", has(p, "192.0.2.202"))
	}
	waitFor(a, "acks from b and c", func() bool { return a.m.Counters().UpdateAcksReceived >= 2 })

	// A valid message re-sent with TTL 1 (as from off-link): same bytes,
	// only the IP TTL differs, and the machine must refuse it.
	var upd []byte
	b.call(func(now int64, out []hasync.Action) []hasync.Action {
		out, _ = b.m.Register(now, binding.Entry{Home: binding.AddrU32(netip.MustParseAddr("192.0.2.203")), ID: 1, Granted: 600, Node: -1}, out)
		for _, x := range out {
			if x.Kind == hasync.ActMulticast {
				upd = bytes.Clone(x.Pkt)
			}
		}
		return out[:0] // not sent: only the TTL-1 copy below goes out
	})
	if upd == nil {
		t.Fatal("b's Register produced no multicast")
	}
	rawSend(t, &lab.Host{NS: l.Prefix + "-b", Name: "b"}, string(upd), c.conn.Local(), hasync.DefaultPort, 1)
	waitFor(c, "TTL violation counted", func() bool { return c.m.Counters().BadTTL == 1 })
	// b never got c's ack, so it retransmits by unicast with TTL 255: that
	// copy is accepted.
	waitFor(c, "binding from b's retransmission", has(c, "192.0.2.203"))
	for _, p := range []*member{a, b, c} {
		var n int
		p.call(func(_ int64, out []hasync.Action) []hasync.Action { n = p.sent; return out })
		if n != 0 {
			t.Errorf("%s: %d send errors", p.name, n)
		}
	}
}
