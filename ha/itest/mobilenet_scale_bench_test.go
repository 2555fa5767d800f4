package itest

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/datapath"
	"github.com/hagent/hagent/tools/lab"
)

// BenchmarkMobileRouters100k: the real agent (member 1, datapath on, in a
// namespace; a VXLAN device in external mode stands in for mip0 as in
// TestNetnsMobileRouterNetworks) is registered by 100,000 mobile routers
// through its socket, each claiming 4 /24s explicitly (mnsim load
// -nets-per-node 4): 100,000 home routes and 400,000 prefix routes. Then,
// each iteration, member 2 (datapath off: the download alone) starts with
// an empty table and downloads member 1's. Reported, with the load average
// in the log:
//   - reg-s: from the load's start until the kernel holds every route
//     (/proc/net/fib_triestat's main table, polled every 50 ms) and the
//     agent every live binding;
//   - rss1-MB / hwm1-MB: member 1's VmRSS and VmHWM (/proc/PID/status)
//     at that scale;
//   - dl-ms: member 2 from exec to its "binding table initialized from the
//     group" line (and, logged, from its "hagent ready" line), checked to
//     hold 100,000 bindings with 400,000 networks;
//   - dl-MB-sent / dl-MB-acks: the IP bytes of the group datagrams each
//     member sent during the download, counted on the bridge (nftables);
//   - rss2-MB: member 2's VmRSS after it;
//   - cpu1-s / cpu-mnsim-s: the agent's and the load generator's CPU time
//     (user + system) until every binding was live: on two cores their
//     sum over two bounds reg-s from below.
//
// Run as root: go test -run '^$' -bench MobileRouters100k -benchtime 1x ./ha/itest
//
// The sub-benchmark nets=0 is the same fleet as plain mobile nodes: what
// the networks add, measured in the same window.
func BenchmarkMobileRouters100k(b *testing.B) {
	for _, nets := range []int{4, 0} {
		b.Run(fmt.Sprintf("nets=%d", nets), func(b *testing.B) { mobileRouters(b, 100000, nets) })
	}
}

func mobileRouters(b *testing.B, n, nets int) {
	l := lab.NewT(b)
	requireNft(b)
	mn := l.HostT(b, "mn", "10.0.0.50"+syncMaskLen)
	h1 := syncHost(b, l, 1)
	b.Setenv(datapath.AdoptTunnelEnv, "1")
	for _, args := range [][]string{
		{"link", "add", "mip0", "type", "vxlan", "external", "dstport", "4789"},
		{"link", "set", "mip0", "up"},
	} {
		if err := h1.IP(args...); err != nil {
			b.Fatal(err)
		}
	}
	routers := func(cfg string, dp bool) string {
		if nets > 0 {
			cfg = strings.Replace(cfg, "key = \"text:"+syncKey+"\"\n",
				"key = \"text:"+syncKey+"\"\nmobile_networks = [\"32.0.0.0/5\"]\nmax_mobile_networks = 4\n", 1)
		}
		if dp {
			// Proxy ARP entries are O(N²) in the kernel beyond 20,000
			// (docs/performance.md); a fleet this size uses the interface.
			cfg = strings.Replace(cfg, "[datapath]\nenabled = false", "[datapath]\nenabled = true\nproxy_arp_mode = \"interface\"", 1)
		}
		return cfg
	}
	base := fibRoutes(b, h1)
	a1 := StartAgent(b, h1, routers(syncConfig(1, false, 120000, ""), true))
	if err := a1.Proc.WaitFor("binding table initialized from the group", 15*time.Second); err != nil {
		b.Fatal(err)
	}
	load1 := loadAvg()
	cpu0 := procCPU(b, a1.Proc.Cmd.Process.Pid)
	want := base + n*(1+nets) // a home route and 4 prefix routes per router
	t0 := time.Now()
	ld, err := mn.Start(Bins(b)+"/mnsim", "load", "-ha", syncAddr(1), "-base", syncBase, "-n", fmt.Sprint(n),
		"-duration", "60s", "-spi", "300", "-key", syncKey, "-coa", "198.51.100.7", "-lifetime", "1800", "-timeout", "2s",
		"-nets-per-node", fmt.Sprint(nets), "-net-base", "32.0.0.0/24")
	if err != nil {
		b.Fatal(err)
	}
	var routed time.Duration
	for routed == 0 {
		if time.Since(t0) > 60*time.Second {
			b.Fatalf("after 60 s the kernel holds %d routes, want %d; agent:\n%s", fibRoutes(b, h1), want, a1.Proc.Output())
		}
		if fibRoutes(b, h1) >= want {
			routed = time.Since(t0)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for bindingsLive(b, a1) < n {
		if time.Since(t0) > 60*time.Second {
			b.Fatalf("after 60 s member 1 holds %d of %d bindings", bindingsLive(b, a1), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	registered := time.Since(t0)
	cpu := procCPU(b, a1.Proc.Cmd.Process.Pid) - cpu0
	// The load generator shares the machine: the agent's CPU time and its
	// together over the cores bound the elapsed time from below.
	cpuLoad := procCPU(b, ld.Cmd.Process.Pid)
	// Interrupted, mnsim load prints its report of what it sent so far
	// (renewals after the first pass included; the requests outstanding
	// at the interrupt, a window per worker, count as timeouts).
	_ = ld.Signal(syscall.SIGINT)
	select {
	case <-ld.Done():
	case <-time.After(10 * time.Second):
		b.Fatalf("mnsim load did not stop on SIGINT:\n%s", ld.Output())
	}
	load2 := loadAvg()
	b.Logf("mnsim load:\n%s", ld.Output())
	if got := fibRoutes(b, h1); got != want {
		b.Fatalf("the kernel's main table holds %d routes, want %d (%d before + %d × (1 + %d))", got, want, base, n, nets)
	}
	rss1, hwm1 := procMem(b, a1.Proc.Cmd.Process.Pid)
	b.Logf("member 1: %d routers × %d networks: every route in the kernel %v after the load's start, every binding live %v; the agent's CPU time (user + system) meanwhile %.2f s, mnsim's %.2f s; VmRSS %.1f MB, VmHWM %.1f MB; load average %s → %s",
		n, nets, routed.Round(time.Millisecond), registered.Round(time.Millisecond), cpu.Seconds(), cpuLoad.Seconds(), rss1, hwm1, load1, load2)

	lanNft(b, l, fmt.Sprintf(`table bridge hagent_itest {
	chain from1 {
		type filter hook prerouting priority -200; policy accept;
		ip saddr %s udp dport %d counter
	}
	chain from2 {
		type filter hook prerouting priority -200; policy accept;
		ip saddr %s udp dport %d counter
	}
}
`, syncAddr(1), syncPort, syncAddr(2), syncPort))
	h2 := syncHost(b, l, 2)
	var exec, logged, sent, acks, rss2, hwm2 []float64
	for b.Loop() {
		_, s0 := lanNftCounter(b, l, "from1")
		_, k0 := lanNftCounter(b, l, "from2")
		t0 := time.Now()
		a2 := StartAgent(b, h2, routers(syncConfig(2, false, 120000, ""), false))
		if err := a2.Proc.WaitFor("binding table initialized from the group", 60*time.Second); err != nil {
			b.Fatal(err)
		}
		exec = append(exec, float64(time.Since(t0).Microseconds())/1000)
		_, s1 := lanNftCounter(b, l, "from1")
		_, k1 := lanNftCounter(b, l, "from2")
		out := a2.Proc.Output()
		ready, init := logTime(b, out, `msg="hagent ready"`), logTime(b, out, "binding table initialized from the group")
		logged = append(logged, float64(init.Sub(ready).Microseconds())/1000)
		sent = append(sent, float64(s1-s0)/1e6)
		acks = append(acks, float64(k1-k0)/1e6)
		r, h := procMem(b, a2.Proc.Cmd.Process.Pid)
		rss2, hwm2 = append(rss2, r), append(hwm2, h)
		rows := allBindings(b, a2).Rows
		nn := 0
		for _, r := range rows {
			nn += len(r.Networks)
		}
		if len(rows) != n || nn != n*nets {
			b.Fatalf("member 2 initialized with %d bindings and %d networks, want %d and %d", len(rows), nn, n, n*nets)
		}
		if err := a2.Proc.Stop(5 * time.Second); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(routed.Seconds(), "reg-s")
	b.ReportMetric(cpu.Seconds(), "cpu1-s")
	b.ReportMetric(cpuLoad.Seconds(), "cpu-mnsim-s")
	b.ReportMetric(rss1, "rss1-MB")
	b.ReportMetric(hwm1, "hwm1-MB")
	b.ReportMetric(mean(exec), "dl-ms")
	b.ReportMetric(mean(sent), "dl-MB-sent")
	b.ReportMetric(mean(acks), "dl-MB-acks")
	b.ReportMetric(mean(rss2), "rss2-MB")
	b.ReportMetric(mean(hwm2), "hwm2-MB")
	b.Logf("download of %d bindings with %d networks: exec→initialized %v ms; ready→initialized (log) %v ms; member 1 sent %v MB, member 2 %v MB (IP bytes of group datagrams); member 2 VmRSS %v MB, VmHWM %v MB; load average %s",
		n, n*nets, exec, logged, sent, acks, rss2, hwm2, loadAvg())
}

var fibPrefixes = regexp.MustCompile(`(?s)\nMain:\n.*?\tPrefixes:\s+(\d+)`)

// fibRoutes is how many prefixes h's main routing table holds, from
// /proc/net/fib_triestat: cheap at any size, unlike a dump.
func fibRoutes(t testing.TB, h *lab.Host) int {
	t.Helper()
	out, err := h.Run("cat", "/proc/net/fib_triestat")
	if err != nil {
		t.Fatalf("fib_triestat: %v %s", err, out)
	}
	m := fibPrefixes.FindStringSubmatch(out)
	if m == nil {
		return 0 // no main table yet
	}
	v, _ := strconv.Atoi(m[1])
	return v
}

// procMem is a process's VmRSS and VmHWM in MB.
func procMem(t testing.TB, pid int) (rss, hwm float64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	return rss, hwm
}

// procCPU is a process's user + system time so far (/proc/PID/stat, in
// clock ticks of 10 ms: USER_HZ is 100 on Linux).
func procCPU(t testing.TB, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:]) // after "pid (comm) ": state is f[0]
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
