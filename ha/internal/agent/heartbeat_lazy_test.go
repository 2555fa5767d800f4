package agent

import (
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/internal/role"
)

// A pair at the default (100 ms × 3 at 100 ms adverts, so both members in
// demand mode) whose heartbeat parameters are known to each other: the
// peer's demand-mode heartbeats (the repeats of its announcement, a
// second apart, then a rare refresh) do not turn the owner loop when they
// arrive; they wait in the socket and are read at the member's next turn
// (here its own demand-mode turn, at most a second apart: no
// advertisement; or the console request below), each counted at its
// kernel arrival time. Before, each refresh
// woke the owner on its arrival.
func TestDemandRefreshesReadAtOwnTurns(t *testing.T) {
	needGroupSockets(t)
	a, b := newDemandPair(t, nil)
	st := &a.grp.hbStats
	ask, sent := askAgent, heartbeatsSent(t)

	// b sends at least two heartbeats (its announcement's repeats, 75–100 %
	// of a second apart, or a later refresh); a asked nothing meanwhile.
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
	// Read at the member's own turns: its demand-mode turn (at most a
	// second apart), or this console request, which reads the socket first.
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
	// not when it was read; b sent nothing else meanwhile (its heartbeats
	// at least 0.75 s apart, no advertisement, digests hourly).
	if min := asked.Sub(at) - 2*time.Millisecond; ago < min {
		t.Fatalf("last heard %v ago, want %v or more: counted when read, not at its arrival", ago, min)
	}
}

// newDemandPair starts two agents on loopback at the heartbeat's default
// (both in demand mode), a with wall as its wall clock if not nil, and
// waits until a has b up with one of its heartbeats read (b's parameters
// known). They stop with the test.
func newDemandPair(t *testing.T, wall func() int64) (a, b *Agent) {
	t.Helper()
	base := heartbeatLoopConfig(t)
	start := func(id uint32, self, peer string, wall func() int64) *Agent {
		cfg := heartbeatLoopConfig(t)
		cfg.Agent.AgentID = id
		cfg.Group.Port = base.Group.Port
		cfg.Agent.Address = netip.MustParseAddr(self)
		cfg.Group.Peers = []netip.Addr{netip.MustParseAddr(peer)}
		x, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		x.testWall = wall
		el := &tickElector{tick: make(chan int), done: make(chan struct{})}
		x.testElector = func(awake func()) role.Elector { el.awake = awake; return el }
		t.Cleanup(runAgent(t, x, 5*time.Second))
		return x
	}
	a = start(1, "127.0.0.1", "127.0.0.3", wall)
	b = start(3, "127.0.0.3", "127.0.0.1", nil)
	eventually(t, "the peer up with a heartbeat read", func() bool {
		r := askAgent(a, "show redundancy").Redundancy
		return len(r.Peers) == 1 && strings.HasPrefix(r.Peers[0].State, "up") && a.grp.hbStats.datagrams.Load() > 0
	})
	time.Sleep(100 * time.Millisecond) // the owner's state after the last turn above
	return a, b
}

func askAgent(x *Agent, cmd string) *console.Response {
	return x.consoleAnswer(console.Request{Cmd: cmd})
}

// heartbeatsSent reads an agent's heartbeats_sent counter.
func heartbeatsSent(t *testing.T) func(x *Agent) uint64 {
	return func(x *Agent) uint64 {
		t.Helper()
		for _, c := range askAgent(x, "show redundancy").Redundancy.Flat() {
			if c.Key == "members.heartbeats_sent" {
				return c.Value
			}
		}
		t.Fatal("no heartbeats_sent counter")
		return 0
	}
}

// A wall-clock step (NTP at boot) between a refresh's arrival and its lazy
// read: the kernel stamped it on the wall clock, and its age taken across
// the step would be off by the step. A step forward must not make it look
// seconds older (a live peer's heartbeat counting for nothing: a periodic
// peer declared down); it counts from its read instead.
func TestHeartbeatDrainWallStep(t *testing.T) {
	needGroupSockets(t)
	var shift atomic.Int64
	a, b := newDemandPair(t, func() int64 { return time.Now().UnixNano() + shift.Load() })
	sent := heartbeatsSent(t)
	st := &a.grp.hbStats
	heard := func() time.Time { // when a last heard b, on this clock
		r := askAgent(a, "show redundancy").Redundancy
		now := time.Now()
		ago, err := time.ParseDuration(strings.TrimSuffix(r.Peers[0].LastHeard, " ago"))
		if err != nil {
			t.Fatalf("last heard %q: %v", r.Peers[0].LastHeard, err)
		}
		return now.Add(-ago)
	}
	// b's next heartbeat waits in a's socket until a's next turn: a's
	// demand-mode turn (at most a second apart) or the request below; tried
	// again if a's own turn came first.
	const step = 2 * time.Second
	for range 5 {
		from := sent(b)
		for sent(b) == from {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(10 * time.Millisecond) // on loopback: arrived
		queued := st.datagrams.Load()
		shift.Add(int64(step))
		asked := time.Now()
		after := heard() // the console request reads the socket first
		if st.datagrams.Load() == queued {
			continue
		}
		// Counted from its read, during the request; taken as 2 s old, it
		// would move nothing, and a would have last heard b before.
		if after.Before(asked.Add(-2 * time.Millisecond)) {
			t.Fatalf("b's heartbeat read after a %v wall-clock step: a last heard b %v before the request that read it: the stamp's age was taken across the step", step, asked.Sub(after))
		}
		return
	}
	t.Skip("a's own turns read each of b's heartbeats before the request: nothing was queued across a step")
}
