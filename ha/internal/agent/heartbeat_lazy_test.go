package agent

import (
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/internal/role"
)

// A pair at the default (100 ms × 3 at 100 ms adverts, so both members in
// demand mode) whose heartbeat parameters are known to each other: the
// peer's demand refreshes (about one a second) do not turn the owner loop
// when they arrive; they wait in the socket and are read at the member's
// next turn (here its own refresh timer: no advertisement, no console
// request), each counted at its kernel arrival time. Before, each refresh
// woke the owner on its arrival.
func TestDemandRefreshesReadAtOwnTurns(t *testing.T) {
	needGroupSockets(t)
	base := heartbeatLoopConfig(t)
	start := func(id uint32, self, peer string) (*Agent, func()) {
		cfg := heartbeatLoopConfig(t)
		cfg.Agent.AgentID = id
		cfg.Group.Port = base.Group.Port
		cfg.Agent.Address = netip.MustParseAddr(self)
		cfg.Group.Peers = []netip.Addr{netip.MustParseAddr(peer)}
		a, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		el := &tickElector{tick: make(chan int), done: make(chan struct{})}
		a.testElector = func(awake func()) role.Elector { el.awake = awake; return el }
		return a, runAgent(t, a, 5*time.Second)
	}
	a, stopA := start(1, "127.0.0.1", "127.0.0.3")
	defer stopA()
	b, stopB := start(3, "127.0.0.3", "127.0.0.1")
	defer stopB()
	ask := func(x *Agent, cmd string) *console.Response { return x.consoleAnswer(console.Request{Cmd: cmd}) }
	sent := func(x *Agent) uint64 {
		r := ask(x, "show redundancy").Redundancy
		for _, c := range r.Flat() {
			if c.Key == "members.heartbeats_sent" {
				return c.Value
			}
		}
		t.Fatal("no heartbeats_sent counter")
		return 0
	}
	st := &a.grp.hbStats
	// Up, and one of b's heartbeats read: its parameters are known.
	eventually(t, "the peer up with a heartbeat read", func() bool {
		r := ask(a, "show redundancy").Redundancy
		return len(r.Peers) == 1 && strings.HasPrefix(r.Peers[0].State, "up") && st.datagrams.Load() > 0
	})
	time.Sleep(100 * time.Millisecond) // the owner's state after the last turn above

	// b sends at least two refreshes (75–100 % of a second apart); a
	// asked nothing meanwhile.
	turns, read := st.arrivalTurns.Load(), st.datagrams.Load()
	from := sent(b)
	for sent(b) < from+2 {
		time.Sleep(20 * time.Millisecond)
	}
	at := time.Now() // b's second refresh left before this
	time.Sleep(300 * time.Millisecond)
	if n := st.arrivalTurns.Load() - turns; n != 0 {
		t.Errorf("%d owner turns on an arrival for 2 refreshes of a peer whose parameters are known", n)
	}
	// Read at the member's own turns: its refresh timer (at most a second
	// apart), or this console request, which reads the socket first.
	asked := time.Now()
	r := ask(a, "show redundancy").Redundancy
	if got := st.datagrams.Load() - read; got < 2 {
		t.Fatalf("%d of the peer's refreshes read, want 2 or more", got)
	}
	ago, err := time.ParseDuration(strings.TrimSuffix(r.Peers[0].LastHeard, " ago"))
	if err != nil {
		t.Fatalf("last heard %q: %v", r.Peers[0].LastHeard, err)
	}
	// Heard when it arrived (before at, about 300 ms before the request),
	// not when it was read; b sent nothing else meanwhile (a refresh a
	// second, no advertisement, digests hourly).
	if min := asked.Sub(at) - 2*time.Millisecond; ago < min {
		t.Fatalf("last heard %v ago, want %v or more: counted when read, not at its arrival", ago, min)
	}
}
