//go:build linux

package datapath

// Forwarding through the UDP tunnel against plain routing, on the host
// kernel, in the namespaces of TestNetnsUDPTunnelDatapath:
//
//	go test -run '^$' -bench 'NetnsUDPTunnel' -benchtime 10x ./ha/internal/datapath/
//
// A sender in cn writes 64-byte UDP datagrams as fast as it can to a home
// address; ha forwards them either by a plain route (10.1.0.6 via rt) or
// through the encapsulating program (10.1.0.5 → 192.0.2.50:40000); a
// socket in rt counts what arrives. Over veth the whole path runs in the
// sender's system call, so the time per datagram is the path's cost per
// packet, and pps = 1/that. Sender, Home Agent and receiver share the
// machine's cores: read the ratio, not the absolutes.

import (
	"net"
	"net/netip"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/groupio"
)

func BenchmarkNetnsUDPTunnelForward(b *testing.B) {
	n := newUDNet(b)
	k := n.openUDP(b)
	if errs := k.Apply([]Binding{{Home: netip.MustParseAddr("10.1.0.5"), CareOf: netip.MustParseAddr("172.16.0.2"),
		Encap: UDP, NAT: netip.MustParseAddrPort("192.0.2.50:40000")}}, nil); errs != nil {
		b.Fatal(firstErr(errs))
	}
	for _, c := range [][]string{
		{"ip", "-n", n.ha, "route", "add", "10.1.0.6/32", "via", "192.0.2.50"},
		{"ip", "-n", n.rt, "addr", "add", "10.1.0.6/32", "dev", "lo"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v: %s", c, err, out)
		}
	}
	// The machine is shared: the two paths alternate in rounds of
	// roundPkts and each keeps its best round, so that a burst of other
	// load spoils a round of either, not one side of the comparison.
	const roundPkts = 50_000
	paths := []struct{ dst, rx string }{{"10.1.0.6:9999", "10.1.0.6:9999"}, {"10.1.0.5:9999", "192.0.2.50:40000"}}
	best := [2]time.Duration{1 << 62, 1 << 62}
	var lost [2]int64
	for i := 0; i < b.N; i++ {
		for p, path := range paths {
			took, l := forwardRound(b, n, path.dst, path.rx, roundPkts)
			best[p] = min(best[p], took)
			lost[p] += l
		}
	}
	ns := func(p int) float64 { return float64(best[p].Nanoseconds()) / roundPkts }
	b.ReportMetric(ns(0), "plain-ns/pkt")
	b.ReportMetric(ns(1), "udp-ns/pkt")
	b.ReportMetric(100*ns(0)/ns(1), "udp-pps-%-of-plain")
	b.ReportMetric(float64(lost[0]+lost[1]), "lost")
}

// forwardRound sends pkts datagrams from cn to dst and returns how long
// the sending took (over veth the whole path, the Home Agent's forwarding
// included, runs in the sender's system call) and how many did not arrive
// at rx.
func forwardRound(b *testing.B, n udNet, dst, rx string, pkts int) (time.Duration, int64) {
	var rc, sc *net.UDPConn
	if err := groupio.InNetNS("/run/netns/"+n.rt, func() error {
		var err error
		rc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(rx)))
		if err == nil {
			err = rc.SetReadBuffer(8 << 20)
		}
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	if err := groupio.InNetNS("/run/netns/"+n.cn, func() error {
		var err error
		sc, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			// The end of the run is a pause of 300 ms with nothing to read.
			_ = rc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, _, err := rc.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	payload := make([]byte, 64)
	start := time.Now()
	for range pkts {
		_, _ = sc.Write(payload) // ENOBUFS etc. count as loss
	}
	took := time.Since(start)
	<-done
	return took, int64(pkts) - got.Load()
}

// BenchmarkNetnsInstallUDP20k: 20,000 UDP-tunnelled bindings (encap bpf
// routes, each with its own metric, plus their endpoints) in one Apply, to
// an empty table: whether routes sharing one LWT program escape the
// fib_info O(N²) as the IP encap routes do with distinct metrics.
//
//	go test -run '^$' -bench NetnsInstallUDP20k -benchtime 1x ./ha/internal/datapath/
func BenchmarkNetnsInstallUDP20k(b *testing.B) {
	const count = 20_000
	n := newUDNet(b)
	k := n.openUDP(b, func(c *Config) { c.Capacity = count })
	bs := make([]Binding, count)
	for i := range bs {
		bs[i] = bindingN(i)
		bs[i].Encap, bs[i].NAT = UDP, netip.AddrPortFrom(bs[i].CareOf, uint16(1024+i))
	}
	homes := make([]netip.Addr, count)
	for i := range bs {
		homes[i] = bs[i].Home
	}
	var took time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if errs := k.Apply(bs, nil); errs != nil {
			b.Fatal(firstErr(errs))
		}
		took += time.Since(start)
		b.StopTimer()
		if errs := k.Apply(nil, homes); errs != nil {
			b.Fatal(firstErr(errs))
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(took.Milliseconds())/float64(b.N), "ms/20k")
}
