package agent

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/mnsim/sim"
)

// BenchmarkUDPLoad drives a real agent (its socket layer, owner loop and
// core) over loopback with mnsim's load generator, in one process on the
// build machine's 2 cores (the generator competes for them). Each b.N
// iteration is one second of load; the figures are custom metrics:
// registrations answered per second and the worst p99 latency of the runs.
// "max" sends as fast as mnsim's window allows (latency is then mostly
// queueing in the window); the rate=N runs hold a fixed offered load.
//
//	go test -run '^$' -bench UDPLoad -benchtime 3x ./ha/internal/agent
func BenchmarkUDPLoad(b *testing.B) {
	for _, rate := range []float64{0, 50000, 100000} {
		name := "max"
		if rate > 0 {
			name = fmt.Sprintf("rate=%.0fk", rate/1000)
		}
		b.Run(name, func(b *testing.B) { udpLoad(b, rate) })
	}
}

func udpLoad(b *testing.B, rate float64) {
	const nodes = 10000
	cfg := loopbackConfig(b, nodes)
	cfg.Nodes = cfg.Nodes[:1]
	cfg.Nodes[0].HomeAddress = netip.Addr{}
	cfg.Nodes[0].Pool = netip.MustParsePrefix("127.1.0.0/16")
	_, stop := startAgent(b, cfg)
	defer stop()

	var total, secs float64
	var worstP99 time.Duration
	for i := 0; i < b.N; i++ {
		rep, err := sim.Load(context.Background(), sim.LoadOptions{
			HA:       netip.AddrPortFrom(cfg.Agent.Address, cfg.Agent.ListenPort),
			Base:     netip.MustParseAddr("127.1.0.1"),
			N:        nodes,
			Duration: time.Second,
			Rate:     rate,
			SPI:      cfg.Nodes[0].SPI,
			Key:      cfg.Nodes[0].Key,
			Lifetime: 600,
		})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Replies == 0 || rep.BadAuth != 0 {
			b.Fatalf("load run: %s", rep)
		}
		for _, c := range rep.Codes {
			if c.Code > 1 {
				b.Fatalf("registrations refused under load: %s", rep)
			}
		}
		total += float64(rep.Replies)
		secs += rep.Elapsed.Seconds()
		if rep.P99 > worstP99 {
			worstP99 = rep.P99
		}
		b.Logf("run %d: %s", i, rep)
	}
	b.ReportMetric(total/secs, "reg/s")
	b.ReportMetric(float64(worstP99.Microseconds()), "p99-µs")
}
