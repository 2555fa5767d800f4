// Command benchreport measures hagent's performance figures in one run and
// writes them, each with the command or method that produced it, to a
// markdown report with PNG plots next to it (issue 7: `make bench`).
//
//	go run ./tools/benchreport -o docs/bench-report.md [-quick]
//
// Run it as root from the module root: the RSS comparison with keepalived
// and the failover and table-download figures use network namespaces. A
// step that fails writes "not measured: <reason>" and the report goes on.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hagent/hagent/tools/failover"
	"github.com/hagent/hagent/tools/lab"
	"github.com/hagent/hagent/tools/lab/reap"
	"github.com/hagent/hagent/tools/mnsim/sim"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

type report struct {
	quick  bool
	bin    string // built binaries
	imgDir string // where PNGs go
	imgRel string // imgDir relative to the report
	log    io.Writer
	md     bytes.Buffer
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "docs/bench-report.md", "write the markdown report here; PNGs go to img/ beside it")
	quick := fs.Bool("quick", false, "a shorter run: the table download measured once instead of 3 times, and one failover scenario (kill+linkdown at a 100ms advertisement interval) instead of four, and 10 s of idle cost instead of 30; the report's footer says how long the run took")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if _, err := os.Stat("go.mod"); err != nil {
		fmt.Fprintln(stderr, "benchreport: run it from the hagent module root (no go.mod here)")
		return 2
	}
	r := &report{quick: *quick, log: stderr, imgDir: filepath.Join(filepath.Dir(*out), "img"), imgRel: "img"}
	if err := os.MkdirAll(r.imgDir, 0o755); err != nil {
		fmt.Fprintln(stderr, "benchreport:", err)
		return 1
	}
	dir, err := reap.TempDir("benchreport") // a killed run's goes with the next run
	if err != nil {
		fmt.Fprintln(stderr, "benchreport:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	r.bin = dir

	started := time.Now()
	loadBefore := loadavg()
	r.header(started, *quick)
	r.logf("building binaries into %s", dir)
	build := exec.Command("go", "build", "-o", dir+"/", "./ha/cmd/hagent", "./ha/cmd/hactl", "./tools/mnsim", "./tools/failover/cmd/failover")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	buildOut, buildErr := build.CombinedOutput()

	steps := []struct {
		title string
		fn    func() error
	}{
		{"Registration in process", r.inProcess},
		{"Registration over UDP on loopback", r.overUDP},
		{"Memory (RSS) by number of bindings", r.rss},
		{"Table download, agent to agent", r.download},
		{"Failover against keepalived", r.failover},
		{"Idle cost against keepalived", r.idle},
		{"Image size per board", r.images},
	}
	for _, s := range steps {
		fmt.Fprintf(&r.md, "\n## %s\n\n", s.title)
		r.logf("step: %s", s.title)
		t0 := time.Now()
		var err error
		if buildErr != nil && s.title != "Registration in process" && s.title != "Image size per board" && s.title != "Table download, agent to agent" {
			err = fmt.Errorf("go build of hagent, hactl, mnsim, failover failed: %v: %s", buildErr, bytes.TrimSpace(buildOut))
		} else {
			err = s.fn()
		}
		if err != nil {
			fmt.Fprintf(&r.md, "\nnot measured: %s\n", oneLine(err.Error()))
			r.logf("  not measured: %v", err)
		}
		fmt.Fprintf(&r.md, "\n_(step took %s)_\n", time.Since(t0).Round(time.Second))
	}
	fmt.Fprintf(&r.md, "\n---\nRun finished %s, %s after it started. Load average before: %s; after: %s.\n",
		time.Now().UTC().Format(time.RFC3339), time.Since(started).Round(time.Second), loadBefore, loadavg())
	if err := os.WriteFile(*out, r.md.Bytes(), 0o644); err != nil {
		fmt.Fprintln(stderr, "benchreport:", err)
		return 1
	}
	r.logf("wrote %s", *out)
	return 0
}

func (r *report) logf(f string, a ...any) {
	fmt.Fprintf(r.log, "benchreport: "+f+"\n", a...)
}

func (r *report) p(f string, a ...any) { fmt.Fprintf(&r.md, f, a...) }

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func (r *report) header(started time.Time, quick bool) {
	kernel := "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	goVer := "unknown"
	if b, err := exec.Command("go", "version").Output(); err == nil {
		goVer = strings.TrimSpace(string(b))
	}
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if _, v, ok := strings.Cut(l, ":"); ok {
					cpu = strings.TrimSpace(v)
				}
				break
			}
		}
	}
	commit := "unknown"
	if b, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(b))
	}
	mode := "full"
	if quick {
		mode = "quick (`-quick`: table download once instead of 3 times, one failover scenario of four, 10 s idle)"
	}
	r.p(`# Benchmark report

Generated by `+"`make bench`"+` (= `+"`go run ./tools/benchreport -o docs/bench-report.md`"+`, as root, from the
module root). Do not edit by hand: run it again. How each figure was taken is under it; the hand-made
history of measurements and their analysis is in [performance.md](performance.md).

| machine | |
| --- | --- |
| started | %s |
| commit | %s |
| mode | %s |
| CPUs (nproc) | %d × %s |
| kernel | %s |
| Go | %s |
| load average at start | %s |

The agent and the load generator share these cores: on a 2-core machine the generator's own cost is
in every UDP figure. MB = 10^6 bytes. Single runs on a shared machine vary by up to ±2×.
`, started.UTC().Format(time.RFC3339), commit, mode, runtime.NumCPU(), cpu, kernel, goVer, loadavg())
}

// --- 1. in process -------------------------------------------------------

func (r *report) inProcess() error {
	count := "3"
	args := []string{"test", "-run", "^$", "-bench", "BenchmarkRegistration$", "-benchmem", "-count", count, "./ha/internal/agent"}
	r.p("```\ngo %s\n```\n\n", strings.Join(quoteArgs(args), " "))
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go test -bench BenchmarkRegistration: %v: %s", err, tail(out))
	}
	var ns, bytesOp, allocs []float64
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(l, "BenchmarkRegistration") {
			continue
		}
		f := strings.Fields(l)
		for i := 1; i+1 < len(f); i++ {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				ns = append(ns, v)
			case "B/op":
				bytesOp = append(bytesOp, v)
			case "allocs/op":
				allocs = append(allocs, v)
			}
		}
	}
	if len(ns) == 0 {
		return fmt.Errorf("no BenchmarkRegistration result line in the go test output: %s", tail(out))
	}
	med := failover.Median(ns)
	r.p("Parse → authenticate → replay check → binding table → reply with authenticator, 10,000 nodes in one\n")
	r.p("pool, a fresh Identification each time; one goroutine (one core).\n\n")
	r.p("| figure | value | goal |\n| --- | --- | --- |\n")
	r.p("| time per registration | median %.0f ns/op (runs: %s) | ≤ 2,000 ns |\n", med, joinF(ns, "%.0f"))
	r.p("| registrations per second per core | %s | ≥ 500,000 |\n", thousands(1e9/med))
	r.p("| allocations per registration | %s B/op, %s allocs/op (largest of the runs) | 0 |\n", thousands(slices.Max(append(bytesOp, 0))), thousands(slices.Max(append(allocs, 0))))
	return nil
}

// --- 2. over UDP ---------------------------------------------------------

// agent is a running hagent on loopback.
type agent struct {
	cmd    *exec.Cmd
	port   int
	socket string
	out    *bytes.Buffer
}

func freeUDPPort() (int, error) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free UDP port on loopback: %w", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

const fleetKey = "fleet-secret-01234"

func agentConfig(port, capacity int, socket, pool string) string {
	return fmt.Sprintf(`[agent]
interface = "lo"
address = "127.0.0.1"
home_network = "127.0.0.0/8"
listen_port = %d
capacity = %d
console_socket = %q

[[node]]
pool = %q
spi = 300
key = "text:%s"

[datapath]
enabled = false
`, port, capacity, socket, pool, fleetKey)
}

func (r *report) startAgent(capacity int, pool string) (*agent, string, error) {
	port, err := freeUDPPort()
	if err != nil {
		return nil, "", err
	}
	dir, err := reap.TempDir("benchreport-ha")
	if err != nil {
		return nil, "", err
	}
	a := &agent{port: port, socket: filepath.Join(dir, "console.sock"), out: &bytes.Buffer{}}
	conf := agentConfig(port, capacity, a.socket, pool)
	cf := filepath.Join(dir, "ha.toml")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, "", err
	}
	a.cmd = exec.Command(filepath.Join(r.bin, "hagent"), "-config", cf)
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if err := reap.Start(a.cmd); err != nil { // dies with this process
		return nil, "", fmt.Errorf("starting hagent: %w", err)
	}
	done := make(chan struct{})
	go func() { a.cmd.Wait(); close(done) }()
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(a.socket); err == nil {
			break
		}
		select {
		case <-done:
			return nil, "", fmt.Errorf("hagent exited at start-up (config %s): %s", cf, tail(a.out.Bytes()))
		default:
		}
		if time.Now().After(end) {
			a.stop()
			return nil, "", fmt.Errorf("hagent opened no console socket %s within 20 s: %s", a.socket, tail(a.out.Bytes()))
		}
	}
	return a, conf, nil
}

func (a *agent) stop() {
	if a.cmd.Process != nil {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
		t := time.AfterFunc(5*time.Second, func() { _ = a.cmd.Process.Kill() })
		for a.cmd.ProcessState == nil {
			time.Sleep(20 * time.Millisecond)
		}
		t.Stop()
	}
	os.RemoveAll(filepath.Dir(a.socket))
}

func (r *report) mnsimLoad(a *agent, base string, n int, rate float64, d time.Duration) (sim.Report, []string, error) {
	args := []string{"load", "-ha", fmt.Sprintf("127.0.0.1:%d", a.port), "-base", base, "-n", strconv.Itoa(n),
		"-rate", strconv.FormatFloat(rate, 'f', -1, 64), "-duration", d.String(), "-spi", "300", "-key", fleetKey, "-json"}
	var rep sim.Report
	out, err := exec.Command(filepath.Join(r.bin, "mnsim"), args...).Output()
	if jerr := json.Unmarshal(bytes.TrimSpace(out), &rep); jerr != nil {
		return rep, args, fmt.Errorf("mnsim %s: %v; output %q", strings.Join(args, " "), errors.Join(err, jerr), tail(out))
	}
	return rep, args, nil
}

func (r *report) overUDP() error {
	const n = 10000
	a, conf, err := r.startAgent(n, "127.1.0.0/16")
	if err != nil {
		return err
	}
	defer a.stop()
	r.p("hagent and `mnsim load` (2 sockets, window 256 each: its defaults) as separate processes on loopback\n")
	r.p("(no datapath), %s nodes in one pool,\n", thousands(n))
	r.p("each rate for 3 s, one after the other. Latency is request → authenticated reply, measured by mnsim.\n")
	r.p("Agent config (port and socket chosen per run):\n\n```toml\n%s```\n\n", conf)
	rates := []float64{20000, 50000, 100000, 0}
	r.p("| offered load | sent | answered/s | p50 | p90 | p99 | p99.9 | max | timeouts | command |\n")
	r.p("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	var series [][]float64
	var names []string
	for _, rate := range rates {
		rep, args, err := r.mnsimLoad(a, "127.1.0.1", n, rate, 3*time.Second)
		name := "unlimited"
		if rate > 0 {
			name = thousands(rate) + "/s"
		}
		if err != nil {
			r.p("| %s | not measured: %s | | | | | | | | |\n", name, oneLine(err.Error()))
			continue
		}
		r.p("| %s | %d | %s | %s | %s | %s | %s | %s | %d | `mnsim %s` |\n", name, rep.Sent, thousands(rep.RepliesPS),
			ms(rep.P50), ms(rep.P90), ms(rep.P99), ms(rep.P999), ms(rep.Max), rep.Timeouts, strings.Join(args, " "))
		series = append(series, []float64{msF(rep.P50), msF(rep.P90), msF(rep.P99), msF(rep.P999), msF(rep.Max)})
		names = append(names, name)
	}
	if rss, err := vmRSS(a.cmd.Process.Pid); err == nil {
		r.p("\nAgent RSS after these runs: %s (%s bindings).\n", mb(rss), thousands(n))
	}
	if len(series) == 0 {
		return errors.New("no load run succeeded")
	}
	png := filepath.Join(r.imgDir, "latency.png")
	if err := latencyPlot(png, series); err != nil {
		return fmt.Errorf("writing %s: %w", png, err)
	}
	cols := []string{"blue", "orange", "green", "red"}
	var key []string
	for i, nm := range names {
		key = append(key, fmt.Sprintf("%s = %s", cols[i%len(cols)], nm))
	}
	r.p("\n![latency distribution per offered load](%s/latency.png)\n\n", r.imgRel)
	r.p("_Latency distribution per offered load. x: percentile, the five tick marks are p50, p90, p99, p99.9 and max\n")
	r.p("(evenly spaced, not to scale); y: latency, logarithmic, long ticks at 0.01, 0.1, 1, 10 and 100 ms. %s._\n", strings.Join(key, ", "))
	return nil
}

// --- 3. RSS --------------------------------------------------------------

func vmRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

func (r *report) liveBindings(a *agent) (int, error) {
	out, err := exec.Command(filepath.Join(r.bin, "hactl"), "-socket", a.socket, "-json", "-limit", "1", "show", "bindings").Output()
	if err != nil {
		return 0, fmt.Errorf("hactl show bindings: %v: %s", err, tail(out))
	}
	var resp struct {
		Bindings *struct {
			Live int `json:"live"`
		} `json:"bindings"`
	}
	if err := json.Unmarshal(out, &resp); err != nil || resp.Bindings == nil {
		return 0, fmt.Errorf("hactl show bindings: unexpected answer %q (%v)", tail(out), err)
	}
	return resp.Bindings.Live, nil
}

func (r *report) rss() error {
	r.p("For each N: a fresh hagent with `capacity = N` and pool `127.64.0.0/10` (home network 127.0.0.0/8,\n")
	r.p("otherwise the config above); `mnsim load -n N -rate 0 -duration (N/50,000 s + 2 s)` sends to the\n")
	r.p("nodes in turn, again until replies ≥ N (at most 3 runs); `hactl -json -limit 1 show bindings`\n")
	r.p("gives the live count; then VmRSS of hagent from /proc/PID/status. Goal at 100,000 bindings: under 32 MB.\n\n")
	r.p("| bindings | live (hactl) | replies | hagent VmRSS | goal |\n| --- | --- | --- | --- | --- |\n")
	var at100k int64
	for _, n := range []int{10000, 100000, 1000000} {
		goal := ""
		if n == 100000 {
			goal = "< 32 MB"
		}
		rss, err := r.rssOne(n, goal)
		if n == 100000 && err == nil {
			at100k = rss
		}
		if err != nil {
			r.p("| %s | not measured: %s | | | |\n", thousands(float64(n)), oneLine(err.Error()))
		}
	}
	r.p("\nSide by side, keepalived 2.2.7 (VRRP only, one instance, 1 s adverts, in a network namespace\n")
	r.p("made by tools/lab, `keepalived -n -l -D -P -f CONF -p PID -r VRRP_PID`), VmRSS 2 s after its VRRP\n")
	r.p("child wrote its pid file:\n\n")
	k, err := r.keepalivedRSS()
	if err != nil {
		r.p("keepalived: not measured: %s\n", oneLine(err.Error()))
	}
	if k > 0 && at100k > 0 {
		r.p("\nhagent with 100,000 bindings (registration, binding table, VRRP-capable, one process): %s;\n", mb(at100k))
		r.p("keepalived alone, VRRP only, no bindings: %s.\n", mb(k))
	}
	return nil
}

func (r *report) rssOne(n int, goal string) (int64, error) {
	a, _, err := r.startAgent(n, "127.64.0.0/10")
	if err != nil {
		return 0, err
	}
	defer a.stop()
	var replies uint64
	// At ~100,000 replies/s N takes N/100k s; allow for a slow machine,
	// and repeat (the same nodes again) until every one has been answered.
	d := time.Duration(float64(n)/50000*float64(time.Second)) + 2*time.Second
	for try := 0; try < 3 && replies < uint64(n); try++ {
		rep, _, err := r.mnsimLoad(a, "127.64.0.1", n, 0, d)
		if err != nil {
			return 0, err
		}
		replies += rep.Replies
	}
	live, err := r.liveBindings(a)
	if err != nil {
		return 0, err
	}
	rss, err := vmRSS(a.cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	r.p("| %s | %s | %s | %s | %s |\n", thousands(n), thousands(live), thousands(replies), mb(rss), goal)
	return rss, nil
}

func (r *report) keepalivedRSS() (total int64, err error) {
	if _, err := exec.LookPath("keepalived"); err != nil {
		return 0, errors.New("keepalived is not installed (apt-get install keepalived)")
	}
	if s := lab.Skip(); s != "" {
		return 0, errors.New(s)
	}
	l, err := lab.New()
	if err != nil {
		return 0, err
	}
	defer l.Close()
	h, err := l.Host("k1", "192.0.2.11/24")
	if err != nil {
		return 0, err
	}
	dir, err := reap.TempDir("benchreport-k")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	conf, pidf, vrrpf := filepath.Join(dir, "k.conf"), filepath.Join(dir, "k.pid"), filepath.Join(dir, "k-vrrp.pid")
	if err := os.WriteFile(conf, []byte(failover.KeepalivedConfig(0, time.Second)), 0o644); err != nil {
		return 0, err
	}
	p, err := h.Start("keepalived", "-n", "-l", "-D", "-P", "-f", conf, "-p", pidf, "-r", vrrpf)
	if err != nil {
		return 0, err
	}
	defer func() {
		if pid := readPid(vrrpf); pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
		_ = p.Stop(5 * time.Second)
	}()
	child := 0
	for end := time.Now().Add(10 * time.Second); child == 0; time.Sleep(20 * time.Millisecond) {
		if child = readPid(vrrpf); child == 0 && time.Now().After(end) {
			return 0, fmt.Errorf("keepalived wrote no VRRP pid file within 10 s: %s", p.Output())
		}
	}
	time.Sleep(2 * time.Second)
	parent, err := vmRSS(p.Cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	cr, err := vmRSS(child)
	if err != nil {
		return 0, err
	}
	r.p("| process | VmRSS |\n| --- | --- |\n| keepalived parent | %s |\n| keepalived VRRP child | %s |\n| keepalived total | %s |\n",
		mb(parent), mb(cr), mb(parent+cr))
	return parent + cr, nil
}

func readPid(f string) int {
	b, _ := os.ReadFile(f)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// --- 4. table download ---------------------------------------------------

func (r *report) download() error {
	bt := "3x"
	if r.quick {
		bt = "1x"
	}
	args := []string{"test", "./ha/itest", "-run", "^$", "-bench", "SyncDownload", "-benchtime", bt}
	r.p("```\ngo %s\n```\n\n", strings.Join(quoteArgs(args), " "))
	r.p("Member 1 (group only, no VRRP) holds 100,000 bindings registered by mnsim; each iteration starts\n")
	r.p("member 2 with an empty table, in its own namespace on one bridge, which downloads the table.\n\n")
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go test -bench SyncDownload: %v: %s", err, tail(out))
	}
	metrics := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(l, "BenchmarkSyncDownload") {
			continue
		}
		f := strings.Fields(l)
		for i := 2; i+1 < len(f); i += 2 {
			metrics[f[i+1]] = f[i]
		}
	}
	if len(metrics) == 0 {
		return fmt.Errorf("no BenchmarkSyncDownload result line: %s", tail(out))
	}
	r.p("| figure | value | goal |\n| --- | --- | --- |\n")
	r.p("| download of 100,000 bindings, new member's `hagent ready` log line → `binding table initialized from the group` (mean) | %s ms | < 1 s |\n", metrics["ms-log"])
	r.p("| the same from exec of the binary (mean; max %s ms) | %s ms | |\n", metrics["ms-exec-max"], metrics["ms-exec"])
	return nil
}

// --- 5. failover ---------------------------------------------------------

func (r *report) failover() error {
	// 9 trials per row: the median of a crash at a random phase of the
	// advertisement cycle needs them (σ of a median of 7 ≈ 15 ms at 100 ms).
	args := []string{"-bin", r.bin, "-trials", "9", "-kinds", "kill+linkdown,sigterm", "-json"}
	if r.quick {
		args = append(args, "-intervals", "100ms", "-kinds", "kill+linkdown")
	}
	shown := append([]string{"failover"}, args...)
	shown[2] = "DIR"
	r.p("```\n%s\n```\n\n", strings.Join(shown, " "))
	r.p("Two members (hagent: two agents with the group protocol and VRRP; keepalived: two instances) and a\n")
	r.p("mobile-node namespace on one bridge (tools/failover). Fault: `kill+linkdown` = SIGKILL of the active\n")
	r.p("and its link down; `linkdown` = link down only; `sigterm` = graceful stop. Answer = fault → first\n")
	r.p("answer on the virtual address to a request sent after the fault (hagent: an accepted renewal;\n")
	r.p("keepalived: an ICMP echo reply); address = fault → address in the new master's kernel. hagent runs its\n")
	r.p("shipped default heartbeat: the advert interval, at most 100 ms, × 3 (100 ms at 100 ms adverts and\n")
	r.p("at 1 s). Double master =\n")
	r.p("time two or more reachable members held the address at once after the fault (median, max), and in\n")
	r.p("the steady states before the faults (sum), from each member's address list polled every 4 ms.\n\n")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(r.bin, "failover"), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := reap.Run(cmd) // its agents and keepalived die with it, and it with us
	out := stdout.Bytes()
	var rep failover.Report
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		return fmt.Errorf("failover: %v; %s", errors.Join(err, jerr), tail(stderr.Bytes()))
	}
	if err != nil {
		r.p("The failover tool exited with %v (a trial failed or a scenario stopped early): %s\n\n", err, oneLine(string(tail(stderr.Bytes()))))
	}
	r.p("Load average during the run: %s at start, %s at end.\n\n", rep.LoadStart, rep.LoadEnd)
	r.p("| impl | advert | fault | trials ok | answer median | p90 | max | address median | double master median / max / steady | bindings lost |\n")
	r.p("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range rep.Summary {
		r.p("| %s | %s | %s | %d/%d | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %.0f / %.0f / %.0f ms | %d |\n", s.Impl, s.Interval, s.Kind, s.OK, s.Trials,
			s.Median, s.P90, s.Max, s.AddrMed, s.DoubleMed, s.DoubleMax, s.SteadyDouble, s.Lost)
	}
	for _, n := range rep.Notes {
		r.p("\nNote: %s\n", n)
	}
	// The timeline: the crash scenario at the shortest interval, hagent
	// first, then keepalived.
	var bars []bar
	iv := ""
	for _, t := range rep.Trials {
		if t.Kind == "kill+linkdown" && (iv == "" || t.Interval == iv) {
			iv = t.Interval
		}
	}
	sorted := slices.Clone(rep.Trials)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Impl < sorted[j].Impl })
	nh, nk := 0, 0
	for _, t := range sorted {
		if t.Kind != "kill+linkdown" || t.Interval != iv {
			continue
		}
		s := 0
		if t.Impl == "keepalived" {
			s, nk = 1, nk+1
		} else {
			nh++
		}
		bars = append(bars, bar{answerMS: t.AnswerMS, addrMS: t.AddrMS, series: s})
	}
	if len(bars) == 0 {
		return nil
	}
	png := filepath.Join(r.imgDir, "failover.png")
	end, step, err := timelinePlot(png, bars)
	if err != nil {
		return fmt.Errorf("writing %s: %w", png, err)
	}
	r.p("\n![failover timeline](%s/failover.png)\n\n", r.imgRel)
	r.p("_Failover timeline, fault `kill+linkdown` at %s adverts, one row per trial: top %d rows hagent (blue),\n", iv, nh)
	r.p("then %d rows keepalived (orange). Each bar runs from the fault (left axis, 0 ms) to the first answer;\n", nk)
	r.p("the black mark is when the address appeared on the new master. x axis 0–%.0f ms, long ticks every\n", end)
	r.p("%.0f ms, short ticks halfway. A thin red line across means no answer within the trial._\n", step)
	return nil
}

// --- 6. images -----------------------------------------------------------

func (r *report) images() error {
	files, _ := filepath.Glob("build/firmware/*/sizes")
	if len(files) == 0 {
		return errors.New("no build/firmware/<board>/sizes: build an image first with firmware/mkimage.sh BOARD (e.g. qemu-arm64)")
	}
	r.p("Read from `build/firmware/<board>/sizes`, written by `firmware/mkimage.sh <board>` (not rebuilt\n")
	r.p("here). Sizes in bytes; the initramfs holds hagent, hactl and u-root.\n\n")
	r.p("| board | kernel | kernel bytes | initramfs (cpio) | initramfs (xz) | total, xz + kernel | built |\n")
	r.p("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, f := range files {
		kv := map[string]string{}
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				kv[k] = v
			}
		}
		built := "?"
		if st, err := os.Stat(f); err == nil {
			built = st.ModTime().UTC().Format("2006-01-02")
		}
		k, _ := strconv.ParseFloat(kv["KERNEL_BYTES"], 64)
		x, _ := strconv.ParseFloat(kv["XZ_BYTES"], 64)
		c, _ := strconv.ParseFloat(kv["CPIO_BYTES"], 64)
		// The directory names the build (qemu-arm64-group is the
		// qemu-arm64 board with the group image), BOARD only the board.
		board := filepath.Base(filepath.Dir(f))
		r.p("| %s | %s | %s | %s | %s | %s | %s |\n", board, kv["KERNEL"], thousands(k), thousands(c), thousands(x), thousands(k+x), built)
	}
	return nil
}

// --- helpers -------------------------------------------------------------

func tail(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if len(b) > 800 {
		b = b[len(b)-800:]
	}
	return b
}

func quoteArgs(a []string) []string {
	out := make([]string, len(a))
	for i, s := range a {
		if strings.ContainsAny(s, "^$ *") {
			s = "'" + s + "'"
		}
		out[i] = s
	}
	return out
}

func joinF(v []float64, f string) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf(f, x))
	}
	return strings.Join(s, ", ")
}

func thousands[T int | uint64 | float64](x T) string {
	v := float64(x)
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func msF(d time.Duration) float64 { return float64(d) / 1e6 }

func ms(d time.Duration) string {
	v := msF(d)
	if v < 1 {
		return fmt.Sprintf("%.2f ms", v)
	}
	return fmt.Sprintf("%.1f ms", v)
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

// --- 6. idle cost -------------------------------------------------------

func (r *report) idle() error {
	// Three windows in one run: each compares the two under the same load.
	d, windows := "10s", "3"
	if r.quick {
		d, windows = "5s", "2"
	}
	args := []string{"-bin", r.bin, "-idle", d, "-windows", windows, "-intervals", "100ms", "-json"}
	shown := append([]string{"failover"}, args...)
	shown[2] = "DIR"
	r.p("```\n%s\n```\n\n", strings.Join(shown, " "))
	r.p("A pair of each, idle (nothing registering), 100 ms adverts, both pairs at once in two labs; hagent with\n")
	r.p("its default heartbeat (100 ms × 3 at 100 ms adverts; the active member periodic, the standby in demand\n")
	r.p("mode) and the shipped anti-entropy interval (30 s). CPU = time\n")
	r.p("on CPU of all threads (/proc/PID/task/*/schedstat) over the span; keepalived: its VRRP child.\n\n")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(r.bin, "failover"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("failover -idle: %v; %s", err, tail(stderr.Bytes()))
	}
	var rep failover.IdleReport
	if err := json.Unmarshal(out, &rep); err != nil {
		return fmt.Errorf("failover -idle: %v", err)
	}
	r.p("Load average: %s at start, %s at end; %.0f s measured.\n\n", rep.LoadStart, rep.LoadEnd, rep.Seconds)
	r.p("| impl | role | CPU | bytes sent/s | packets sent/s | context switches/s | RSS |\n| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, m := range rep.Members {
		r.p("| %s | %s | %.3f %% | %.0f | %.1f | %.0f | %.1f MB |\n", m.Impl, m.Role, m.CPUPercent, m.TxBytesPerS, m.TxPacketsPerS, m.WakeupsPerS, float64(m.RSSKiB)/1024)
	}
	if len(rep.Ratios) > 0 {
		r.p("\n| role | hagent / keepalived, median of %d windows | each window | hagent at or below |\n| --- | --- | --- | --- |\n", len(rep.Windows))
		for _, q := range rep.Ratios {
			each := make([]string, len(q.Ratios))
			for i, x := range q.Ratios {
				each[i] = fmt.Sprintf("%.2f", x)
			}
			r.p("| %s | %.2f × | %s | %d of %d |\n", q.Role, q.Median, strings.Join(each, ", "), q.AtOrBelow, len(q.Ratios))
		}
	}
	r.p("\nhagent role changes while idle: %d.\n", rep.RoleChanges)
	for _, n := range rep.Notes {
		r.p("\nNote: %s\n", n)
	}
	return nil
}
