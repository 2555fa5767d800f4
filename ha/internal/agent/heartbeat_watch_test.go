package agent

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/internal/groupio"
	"github.com/hagent/hagent/ha/internal/hasync"
	"github.com/hagent/hagent/ha/internal/role"
)

// tickElector stands in for the VRRP runner: it calls the agent's Awake
// hook as the runner does after each advertisement, n times when told,
// and never changes role.
type tickElector struct {
	awake func()
	tick  chan int
	done  chan struct{}
}

func (e *tickElector) Run(ctx context.Context) error {
	for {
		select {
		case n := <-e.tick:
			for range n {
				e.awake()
				time.Sleep(5 * time.Millisecond) // the owner serves each
			}
			e.done <- struct{}{}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
func (e *tickElector) Changes() <-chan role.Change { return nil }
func (e *tickElector) Current() role.Change        { return role.Change{Role: role.Passive} }
func (e *tickElector) SetHold(bool)                {}
func (e *tickElector) SetPriority(uint8)           {}
func (e *tickElector) Announce([]netip.Addr) error { return nil }

// heartbeatLoopConfig: a member on loopback with a VRRP election at 100 ms
// adverts and the default heartbeat (100 ms × 3), its one peer silent.
func heartbeatLoopConfig(t *testing.T) *config.Config {
	cfg := loopbackConfig(t, 8)
	cfg.Group = config.Group{Enabled: true, Port: freeUDPPort(t), Peers: []netip.Addr{netip.MustParseAddr("127.0.0.3")},
		Key: []byte("group-key-0123456789"), KeyID: 1, AckTimeout: 20 * time.Millisecond, MaxRetries: 1,
		AntiEntropyInterval: time.Hour, AckBeforeReply: true,
		Heartbeat: true, HeartbeatInterval: 100 * time.Millisecond, HeartbeatMultiplier: 3, HeartbeatFailover: true}
	cfg.VRRP = config.VRRP{Enabled: true, VRID: 1, Priority: 100, AdvertInterval: 100 * time.Millisecond}
	return cfg
}

// eventually polls cond every 5 ms for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s: not within 5 s", what)
		}
	}
}

// A member that expects no periodic heartbeat (no peer heartbeats
// periodically, as in a pair at the default) does not turn its owner loop
// at each advertisement to read the heartbeat socket: an arrival wakes it
// instead, and is read with nothing else happening (no advertisement, no
// timer of the member's due for an hour). Before, every advertisement
// cost a turn and an empty read, and a heartbeat that came waited for the
// next one. A flood of more than one drain's bound while the loop is busy
// is read in bounded turns, all of it.
func TestHeartbeatArrivalWakesOwnerNotAdverts(t *testing.T) {
	needGroupSockets(t)
	cfg := heartbeatLoopConfig(t)
	a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	el := &tickElector{tick: make(chan int), done: make(chan struct{})}
	a.testElector = func(awake func()) role.Elector { el.awake = awake; return el }
	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	a.onSlice = func(*bindingsWalk) { blocked <- struct{}{}; <-release }
	stop := runAgent(t, a, 5*time.Second)
	defer stop()
	ask := func(cmd string) *console.Response { return a.consoleAnswer(console.Request{Cmd: cmd}) }
	eventually(t, "table initialized (peer silent)", func() bool { return ask("show redundancy").Redundancy.Synced })
	st := &a.grp.hbStats

	// 40 advertisements.
	const adverts = 40
	turns := st.awakeTurns.Load()
	el.tick <- adverts
	<-el.done
	ask("show redundancy") // the owner is past every nudge
	if n := st.awakeTurns.Load() - turns; n > adverts/4 {
		t.Fatalf("%d owner turns for %d advertisements with no periodic heartbeat expected", n, adverts)
	}

	// A datagram to the heartbeat port, nothing else going on.
	hb, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(cfg.Group.Port) + hasync.HeartbeatPortOffset})
	if err != nil {
		t.Fatal(err)
	}
	defer hb.Close()
	read := st.datagrams.Load()
	if _, err := hb.Write([]byte("heartbeat?")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the datagram read on its arrival", func() bool { return st.datagrams.Load() == read+1 })
	if st.arrivalTurns.Load() == 0 {
		t.Fatal("read, but not on an arrival")
	}

	// A flood while the loop is busy: more than one drain reads.
	go ask("show bindings")
	<-blocked
	const flood = 2*heartbeatDrainMax + 10
	for range flood {
		if _, err := hb.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	eventually(t, "the flood read", func() bool { return st.datagrams.Load() == read+1+flood })
	if st.cut.Load() < 2 {
		t.Fatalf("%d drains cut at the bound for %d datagrams queued", st.cut.Load(), flood)
	}
	// The watcher waits again: the next arrival is read too.
	if _, err := hb.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an arrival after the flood read", func() bool { return st.datagrams.Load() == read+2+flood })
}

// One drain reads at most heartbeatDrainMax datagrams and, stopped there,
// nudges the owner to read on at its next turn (the rest stays queued in
// the socket, nothing is lost): a flood to the heartbeat port cannot keep
// the owner loop from its other events for longer than one bound.
func TestDrainHeartbeatsBounded(t *testing.T) {
	needGroupSockets(t)
	h := newReplHarnessWith(t, false, nil)
	port := freeUDPPort(t)
	if err := openHeartbeat(h.a.grp, groupio.Options{Interface: "lo", Local: netip.MustParseAddr("127.0.0.1"), Port: port}); err != nil {
		t.Fatal(err)
	}
	defer h.a.grp.hb.Close()
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port) + hasync.HeartbeatPortOffset})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const queued = heartbeatDrainMax + 40
	for range queued {
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	g := h.a.grp
	eventually(t, "the datagrams queued", func() bool { // loopback delivers in the send, as a rule
		_, _, _, _, ok, _ := g.hb.ReadQueued(g.hbBuf)
		return ok
	})
	if cut := h.a.drainHeartbeats(); !cut || g.hbStats.datagrams.Load() != heartbeatDrainMax {
		t.Fatalf("first drain: cut %v after %d datagrams, want cut after %d", cut, g.hbStats.datagrams.Load(), heartbeatDrainMax)
	}
	select {
	case <-g.hbReady:
	default:
		t.Fatal("drain cut at the bound without nudging the owner")
	}
	if cut := h.a.drainHeartbeats(); cut || g.hbStats.datagrams.Load() != queued-1 {
		t.Fatalf("second drain: cut %v, %d read in all, want the rest (%d)", cut, g.hbStats.datagrams.Load(), queued-1)
	}
}

// needGroupSockets skips a test that opens real group sockets (groupio)
// in -short runs: the big-endian tier runs -short under qemu-user, whose
// translation of groupio's rtnetlink queries and control messages fails
// (the Makefile leaves groupio out of it for the same reason); the full
// run (make test) runs them natively.
func needGroupSockets(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("opens real group sockets on loopback: not in -short (qemu-user cannot carry groupio)")
	}
}
