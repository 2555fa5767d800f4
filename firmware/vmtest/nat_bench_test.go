package vmtest

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/firmware/vm"
)

// ipipHome is a home address of the reference config's pool "fleet",
// registered IP-in-IP from the lab's care-of namespace.
const (
	ipipHome   = "192.0.2.130"
	fleetSPI   = "300"
	fleetKey   = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978"
	benchRound = 5 * time.Second
	benchPairs = 4
)

// BenchmarkGuestUDPTunnelVsIPIP measures how many packets per second the
// arm64 guest (TCG, its Debian kernel) forwards into the RFC 3519 UDP
// tunnel (the LWT eBPF encapsulation) against plain IP-in-IP (the kernel's
// ipip device), in one run on one guest: laptop-1 registered behind the
// NAT with UDP tunnelling, a pool address registered IP-in-IP from a
// care-of namespace. The far correspondent offers 64-byte UDP datagrams
// at HAGENT_BENCH_PPS (default 40,000/s, above what the guest forwards)
// to one home for benchRound, then to the other, benchPairs times;
// arrivals are counted on the receiving veth (the NAT's uplink, the
// care-of namespace's), less what the other one received meanwhile (the
// group's multicast reaches both). The NAT drops the tunnel data it
// receives so that the node's userspace tunnel does not compete for the
// host's cores. Run as root:
//
//	go test -run '^$' -bench GuestUDPTunnelVsIPIP -benchtime 1x ./firmware/vmtest/
func BenchmarkGuestUDPTunnelVsIPIP(b *testing.B) {
	need(b, true, "ip", "depmod", "xz", "ping", "nft")
	img := natImage(b)
	n := newNATLab(b)
	m := n.natGuest(b, img, "ha1", 0)
	waitReady(b, m, "ha1")
	waitRole(b, m, "ha1", "active", 30*time.Second) // alone in its group
	n.startNode(b)
	waitUDPBinding(b, m, "ha1", 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	out, err := vm.Exec(ctx, n.mnNS, n.mnsim, "register", "-ha", haAddr, "-home", ipipHome, "-coa", coa,
		"-spi", fleetSPI, "-key-hex", fleetKey, "-lifetime", "600", "-timeout", "3s")
	cancel()
	if err != nil {
		b.Fatalf("registering %s IP-in-IP: %v\n%s", ipipHome, err, out)
	}
	if out, err := vm.Exec(context.Background(), n.natNS, "nft",
		"add table ip bench; add chain ip bench pre { type filter hook prerouting priority -300; }; "+
			"add rule ip bench pre ip saddr "+vip+" udp sport 434 @th,64,8 4 drop"); err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	pps := 40000
	if s := os.Getenv("HAGENT_BENCH_PPS"); s != "" {
		if pps, err = strconv.Atoi(s); err != nil || pps <= 0 {
			b.Fatalf("HAGENT_BENCH_PPS=%q: want a positive number", s)
		}
	}
	rx := func(ns string) int64 {
		out, err := vm.Exec(context.Background(), ns, "cat", "/sys/class/net/eth0/statistics/rx_packets")
		if err != nil {
			b.Fatal(err)
		}
		v, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	round := func(home, at, other string) (got, offered float64) {
		a0, o0 := rx(at), rx(other)
		sent, d := flood(b, n.farNS, home, pps, benchRound)
		time.Sleep(200 * time.Millisecond) // the guest's queues drain
		a1, o1 := rx(at), rx(other)
		return float64((a1-a0)-(o1-o0)) / d.Seconds(), float64(sent) / d.Seconds()
	}
	var udp, ipip []float64
	b.ResetTimer()
	for i := 0; i < benchPairs; i++ {
		g, o := round(ipipHome, n.mnNS, n.natNS)
		fmt.Fprintf(os.Stderr, "round %d: IP-in-IP %.0f pps forwarded of %.0f offered\n", i+1, g, o)
		ipip = append(ipip, g)
		g, o = round(homeAddr, n.natNS, n.mnNS)
		fmt.Fprintf(os.Stderr, "round %d: UDP tunnel %.0f pps forwarded of %.0f offered\n", i+1, g, o)
		udp = append(udp, g)
	}
	b.StopTimer()
	st := run(b, m, "hactl show stats")
	if counter(st, "udp tunnel encapsulated") <= 0 {
		b.Fatalf("the UDP tunnel encapsulated nothing:\n%s", st)
	}
	mu, mi := median(udp), median(ipip)
	b.ReportMetric(mi, "ipip-pps")
	b.ReportMetric(mu, "udp-pps")
	b.ReportMetric(100*mu/mi, "udp-%-of-ipip")
	b.ReportMetric(slices.Max(ipip), "ipip-best-pps")
	b.ReportMetric(slices.Max(udp), "udp-best-pps")
	// A benchmark's log is cut after ten lines: the rounds go to stderr.
	fmt.Fprintf(os.Stderr, "GuestUDPTunnelVsIPIP rounds (pps): IP-in-IP %.0f, UDP tunnel %.0f\n", ipip, udp)
	poweroff(b, m, "ha1")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// flood sends 64-byte UDP datagrams from namespace ns to home:9 at about
// pps per second for d, in bursts every millisecond, and returns how many
// it sent and how long it took.
func flood(tb testing.TB, ns, home string, pps int, d time.Duration) (int, time.Duration) {
	tb.Helper()
	var c net.Conn
	if err := inNetNS(ns, func() error {
		var err error
		c, err = net.Dial("udp4", net.JoinHostPort(home, "9"))
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	payload := make([]byte, 64)
	burst := cmp.Or(pps/1000, 1)
	start := time.Now()
	sent := 0
	for tick := start; time.Since(start) < d; {
		for i := 0; i < burst; i++ {
			if _, err := c.Write(payload); err == nil {
				sent++
			}
		}
		tick = tick.Add(time.Millisecond)
		time.Sleep(time.Until(tick))
	}
	return sent, time.Since(start)
}
