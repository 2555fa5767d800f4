package itest

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/internal/groupio"
	"github.com/hagent/hagent/ha/internal/hasync"
	"github.com/hagent/hagent/tools/lab"
)

// Benchmarks of the group protocol (docs/performance.md, "Group protocol").
// They need root and build network namespaces like the tests; run them with
//
//	go test ./ha/itest -run '^$' -bench Sync -benchtime 3x
//
// Each reports its figure with ReportMetric; ns/op is not the figure.

// BenchmarkSyncDownload100k: member 1 holds 100,000 bindings (registered by
// mnsim load); each iteration starts member 2 with an empty table and
// measures until it logs "binding table initialized from the group".
// Metrics: ms-exec = from exec of hagent to that line as the benchmark sees
// it (process start, config, sockets, request, download); ms-log = from the
// agent's own "hagent ready" line to the "initialized" line, by the log
// timestamps (1 ms resolution): the download itself.
func BenchmarkSyncDownload100k(b *testing.B) {
	l := lab.NewT(b)
	mn := l.HostT(b, "mn", "10.0.0.50"+syncMaskLen)
	const n = 100000
	a1 := StartAgent(b, syncHost(b, l, 1), syncConfig(1, false, 120000, ""))
	if err := a1.Proc.WaitFor("binding table initialized from the group", 15*time.Second); err != nil {
		b.Fatal(err)
	}
	// Alone, member 1 replicates nothing: the load only fills its table.
	for try := 0; bindingsLive(b, a1) < n; try++ {
		if try == 3 {
			b.Fatalf("member 1 holds %d of %d bindings after 3 loads", bindingsLive(b, a1), n)
		}
		syncLoad(b, mn, syncAddr(1), n, 50000, 3*time.Second)
	}
	h2 := syncHost(b, l, 2)
	var exec, logged []float64
	for b.Loop() {
		t0 := time.Now()
		a2 := StartAgent(b, h2, syncConfig(2, false, 120000, ""))
		if err := a2.Proc.WaitFor("binding table initialized from the group", 30*time.Second); err != nil {
			b.Fatal(err)
		}
		exec = append(exec, float64(time.Since(t0).Microseconds())/1000)
		out := a2.Proc.Output()
		ready, init := logTime(b, out, `msg="hagent ready"`), logTime(b, out, "binding table initialized from the group")
		logged = append(logged, float64(init.Sub(ready).Microseconds())/1000)
		if got := bindingsLive(b, a2); got != n {
			b.Fatalf("member 2 initialized with %d bindings, want %d", got, n)
		}
		if !strings.Contains(out, "bindings="+fmt.Sprint(n)) {
			b.Logf("initialized line does not show %d bindings:\n%s", n, out)
		}
		if err := a2.Proc.Stop(5 * time.Second); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(mean(exec), "ms-exec")
	b.ReportMetric(mean(logged), "ms-log")
	b.ReportMetric(slices.Max(exec), "ms-exec-max")
	b.Logf("download of %d bindings: exec→initialized %v ms; ready→initialized (log) %v ms", n, exec, logged)
}

var timeRE = regexp.MustCompile(`time=(\S+)`)

// logTime is the slog time of the first line containing s.
func logTime(t testing.TB, out, s string) time.Time {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, s) {
			if m := timeRE.FindStringSubmatch(line); m != nil {
				tm, err := time.Parse(time.RFC3339Nano, m[1])
				if err != nil {
					t.Fatalf("log time %q: %v", m[1], err)
				}
				return tm
			}
		}
	}
	t.Fatalf("no log line with %q:\n%s", s, out)
	return time.Time{}
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// BenchmarkSyncTrafficPerRegistration: three agents (group-only mode, no
// VRRP), mnsim load of 5,000 nodes for 1 s at 5,000/s on member 1; an nftables counter
// on the bridge's prerouting hook counts every group datagram (UDP port
// 4343) as it enters the bridge, once. Metrics: group datagrams and bytes
// (as nft counts them: IP packet, no Ethernet header) per registration.
// Digests (1,072-byte payload, every 30 s per member) fall in the window
// too; at 5,000 registrations they add well under 1 byte each.
func BenchmarkSyncTrafficPerRegistration(b *testing.B) {
	l := lab.NewT(b)
	requireNft(b)
	mn := l.HostT(b, "mn", "10.0.0.50"+syncMaskLen)
	var agents []*Agent
	for i := 1; i <= 3; i++ {
		agents = append(agents, StartAgent(b, syncHost(b, l, i), syncConfig(i, false, 20000, "")))
	}
	for i, a := range agents {
		waitUntil(b, 15*time.Second, fmt.Sprintf("member %d initialized with 2 peers", i+1), func() (bool, string) {
			r := redundancyTB(b, a)
			return r.Synced && len(r.Peers) == 2, fmt.Sprintf("%+v", r)
		})
	}
	lanNft(b, l, fmt.Sprintf(`table bridge hagent_itest {
	chain tally {
		type filter hook prerouting priority -200; policy accept;
		udp dport %d counter
	}
}
`, syncPort))
	const n = 5000
	var perPkt, perByte, retx []float64
	for b.Loop() {
		// Each iteration renews the same 5,000 (newer identifications).
		p0, b0 := lanNftCounter(b, l, "tally")
		r0 := redundancyTB(b, agents[0])
		syncLoad(b, mn, syncAddr(1), n, 5000, time.Second)
		// Settled: both peers hold member 1's table, and member 1's acks
		// and failures stopped moving for a second (an update superseded
		// by the node's next registration before a peer got it is acked
		// once, for the newer one).
		want := tableKey(allBindings(b, agents[0]))
		var last string
		stable := time.Now()
		waitUntil(b, 30*time.Second, "peers hold member 1's table and acks settled", func() (bool, string) {
			r := redundancyTB(b, agents[0])
			st := fmt.Sprint(counter(b, r, "updates.acks_received"), counter(b, r, "updates.failed"),
				counter(b, r, "updates.sent_total"))
			if st != last {
				last, stable = st, time.Now()
			}
			for _, a := range agents[1:] {
				if tableKey(allBindings(b, a)) != want {
					return false, "tables differ; " + st
				}
			}
			return time.Since(stable) > time.Second, st
		})
		r1 := redundancyTB(b, agents[0])
		upd := float64(counter(b, r1, "updates.sent") - counter(b, r0, "updates.sent"))
		p1, b1 := lanNftCounter(b, l, "tally")
		perPkt = append(perPkt, float64(p1-p0)/upd)
		perByte = append(perByte, float64(b1-b0)/upd)
		retx = append(retx, float64(counter(b, r1, "updates.sent_total")-counter(b, r0, "updates.sent_total"))/upd-1)
	}
	r := redundancyTB(b, agents[0])
	b.ReportMetric(mean(perPkt), "datagrams/reg")
	b.ReportMetric(mean(perByte), "bytes/reg")
	b.Logf("per accepted registration (= binding update sent): datagrams %v bytes %v retransmissions %v; member 1: updates sent %d total %d acks received %d",
		perPkt, perByte, retx, counter(b, r, "updates.sent"), counter(b, r, "updates.sent_total"),
		counter(b, r, "updates.acks_received"))
}

// bmember runs one hasync Machine over a real groupio socket in a lab
// namespace: a reader goroutine and an owner goroutine (the agent's shape).
type bmember struct {
	conn *groupio.Conn
	m    *hasync.Machine
	base time.Time
	do   chan func(now int64, out []hasync.Action) []hasync.Action
	// Owner-only: when want > 0 and the acks received reach it, signal
	// acked (the benchmark's stop-watch).
	want  uint64
	acked chan struct{}
	errs  int
}

func (p *bmember) now() int64 { return int64(time.Since(p.base)) + 1 }

func (p *bmember) run() {
	type pkt struct {
		buf []byte
		n   int
		src netip.Addr
		ttl uint8
	}
	rx, free := make(chan *pkt, 64), make(chan *pkt, 64)
	for range 64 {
		free <- &pkt{buf: make([]byte, 2048)}
	}
	go func() {
		defer close(rx)
		for q := range free {
			var err error
			if q.n, q.src, q.ttl, err = p.conn.Read(q.buf); err != nil {
				return
			}
			rx <- q
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	out := p.m.Start(p.now(), make([]hasync.Action, 0, 256))
	for {
		for _, a := range out {
			var err error
			switch a.Kind {
			case hasync.ActMulticast:
				err = p.conn.SendGroup(a.Pkt)
			case hasync.ActUnicast:
				err = p.conn.SendTo(a.Pkt, a.To)
			}
			if err != nil {
				p.errs++
			}
		}
		if p.want > 0 && p.m.Counters().UpdateAcksReceived >= p.want {
			p.want = 0
			p.acked <- struct{}{}
		}
		if d := p.m.NextDeadline(); d < 1<<62 {
			timer.Reset(time.Duration(max(d-p.now(), 0)))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case q, ok := <-rx:
			if !ok {
				return
			}
			out = p.m.Receive(p.now(), q.src, q.ttl, q.buf[:q.n], out[:0])
			free <- q
		case f := <-p.do:
			out = f(p.now(), out[:0])
		case <-timer.C:
			out = p.m.Tick(p.now(), out[:0])
		}
	}
}

// call runs f in the owner goroutine and waits for it.
func (p *bmember) call(f func(now int64, out []hasync.Action) []hasync.Action) {
	done := make(chan struct{})
	p.do <- func(now int64, out []hasync.Action) []hasync.Action {
		defer close(done)
		return f(now, out)
	}
	<-done
}

// BenchmarkSyncUpdateAcked: three hasync Machines, each with a groupio
// socket in its own lab namespace on the bridge (real multicast and
// unicast over veth, TTL 255, HMAC), each run by a reader and an owner
// goroutine like the agent's. One iteration: member 1's owner registers
// one binding (Machine.Register: table, seal, multicast) and the clock
// stops when its owner has processed the Update Acks of both peers (each
// peer merged the update into its table before acking). Metrics: latency
// p50, p99, max in µs. Not the agent binary: no registration parsing, no
// console; the agent adds one channel hand-off per datagram.
func BenchmarkSyncUpdateAcked(b *testing.B) {
	l := lab.NewT(b)
	var ms []*bmember
	for i := 1; i <= 3; i++ {
		h := syncHost(b, l, i)
		addr := netip.MustParseAddr(syncAddr(i))
		var conn *groupio.Conn
		if err := groupio.InNetNS("/var/run/netns/"+h.NS, func() error {
			var err error
			conn, err = groupio.Open(groupio.Options{Interface: "eth0", Local: addr, Group: netip.MustParseAddr(syncGroup), Port: syncPort})
			return err
		}); err != nil {
			b.Fatal(err)
		}
		m, err := hasync.New(hasync.Config{ID: agentID(syncAddr(i)), Addr: addr, Session: uint32(1000 + i),
			Keys: []hasync.Key{{ID: 1, Secret: []byte(syncGroupK)}}, SendKey: 1,
			RequestTimeout: 100 * time.Millisecond, MaxLifetime: 1800 * time.Second, TombstoneTTL: time.Hour},
			binding.New(1<<16, 1<<10))
		if err != nil {
			b.Fatal(err)
		}
		p := &bmember{conn: conn, m: m, base: time.Now(), do: make(chan func(int64, []hasync.Action) []hasync.Action), acked: make(chan struct{}, 1)}
		ms = append(ms, p)
		go p.run()
		b.Cleanup(func() { conn.Close() })
		// Start one after another: the first initializes alone, the
		// others download from it.
		waitUntil(b, 10*time.Second, fmt.Sprintf("machine %d initialized", i), func() (bool, string) {
			var ok bool
			p.call(func(_ int64, out []hasync.Action) []hasync.Action { ok = p.m.Initialized(); return out })
			return ok, "not initialized"
		})
	}
	a := ms[0]
	waitUntil(b, 10*time.Second, "member 1 knows both peers", func() (bool, string) {
		var peers []hasync.PeerInfo
		a.call(func(_ int64, out []hasync.Action) []hasync.Action { peers = a.m.Peers(nil); return out })
		up := 0
		for _, p := range peers {
			if p.Up {
				up++
			}
		}
		return up == 2, fmt.Sprintf("%+v", peers)
	})
	var lat []time.Duration
	id := uint64(time.Now().Unix()) << 32
	i := 0
	for b.Loop() {
		i++
		home := agentID(syncBase) + uint32(i%50000)
		e := binding.Entry{Home: home, CareOf: agentID("198.51.100.7"), HomeAgent: agentID(syncAddr(1)), ID: id + uint64(i), Granted: 600}
		t0 := time.Now()
		a.do <- func(now int64, out []hasync.Action) []hasync.Action {
			a.want = a.m.Counters().UpdateAcksReceived + 2
			out, err := a.m.Register(now, e, out)
			if err != nil {
				b.Error(err)
			}
			return out
		}
		<-a.acked
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Nanoseconds()) / 1000 }
	b.ReportMetric(q(0.5), "µs-p50")
	b.ReportMetric(q(0.99), "µs-p99")
	b.ReportMetric(q(1), "µs-max")
	var c hasync.Counters
	a.call(func(_ int64, out []hasync.Action) []hasync.Action { c = a.m.Counters(); return out })
	b.Logf("%d updates: p50 %.0f µs p99 %.0f µs max %.0f µs; retransmissions %d, send errors %d",
		len(lat), q(0.5), q(0.99), q(1), c.UpdatesTotal-c.UpdatesSent, a.errs)
}

// bindingsLive is the live count of `show bindings` (one row fetched).
func bindingsLive(t testing.TB, a *Agent) int {
	t.Helper()
	resp, err := console.Call(a.Socket, console.Request{Cmd: "show bindings", Limit: 1}, 10*time.Second)
	if err != nil || resp.Bindings == nil {
		t.Fatalf("show bindings: %v %+v", err, resp)
	}
	return resp.Bindings.Live
}
