package failover

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hagent/hagent/tools/lab"
)

// IdleConfig says what the idle-cost measurement runs: a pair of each
// implementation at advertisement interval Interval, nothing registering,
// both pairs at once (in two labs: the same VRID on one bridge would make
// one group), measured over Duration once the roles have settled.
type IdleConfig struct {
	Bins      string        // directory holding the hagent binary
	Interval  time.Duration // VRRP advertisement interval; default 100ms
	Duration  time.Duration // measured span; default 30s
	Heartbeat time.Duration // hagent's group.heartbeat_interval (0: its default, < 0: heartbeat off)
	// Keepalived also measures keepalived's VRRP child (skipped with a
	// note when the binary is missing).
	Keepalived bool
	// Windows: how many consecutive spans of Duration to measure (default
	// 1). Each window is reported on its own with hagent's CPU as a
	// multiple of keepalived's in it, so that a comparison "in the same
	// run" has several samples taken under the same load for both.
	Windows int
}

// IdleMember is one process's cost over the measured span.
type IdleMember struct {
	Impl string `json:"impl"`
	Role string `json:"role"` // "master" or "backup"
	PID  int    `json:"pid"`
	// CPUPercent: time on CPU of all the process's threads
	// (/proc/PID/task/*/schedstat, first field), as a share of one CPU.
	CPUPercent float64 `json:"cpu_percent"`
	// TxBytesPerS, TxPacketsPerS: what the member's namespace sent on its
	// LAN interface (/proc/PID/net/dev, eth0): adverts, heartbeats, digests.
	TxBytesPerS   float64 `json:"tx_bytes_per_s"`
	TxPacketsPerS float64 `json:"tx_packets_per_s"`
	// Wakeups: voluntary + involuntary context switches of all threads per
	// second (/proc/PID/task/*/status): how often it left the CPU.
	WakeupsPerS float64 `json:"switches_per_s"`
	RSSKiB      int64   `json:"rss_kib"`
	// Threads: the same per thread (those alive at both samples), in
	// thread-id order.
	Threads []IdleThread `json:"threads,omitempty"`
}

// IdleThread is one thread's share of an IdleMember.
type IdleThread struct {
	TID         int     `json:"tid"`
	CPUPercent  float64 `json:"cpu_percent"`
	WakeupsPerS float64 `json:"switches_per_s"`
}

// IdleReport is the outcome of Idle.
type IdleReport struct {
	Interval  string       `json:"advert_interval"`
	Heartbeat string       `json:"heartbeat_interval"`
	Seconds   float64      `json:"seconds"`
	LoadStart string       `json:"loadavg_start"`
	LoadEnd   string       `json:"loadavg_end"`
	Members   []IdleMember `json:"members"`
	// RoleChanges: role changes the hagent members logged during the
	// measured span (a spurious takeover shows here).
	RoleChanges int `json:"role_changes"`
	// Events: the hagent members' role changes and peer-down lines while idle.
	Events []string `json:"events,omitempty"`
	// Windows: with IdleConfig.Windows > 1, each window's members (Members
	// is then the whole span), and Ratios per role over the windows.
	Windows []IdleWindow `json:"windows,omitempty"`
	Ratios  []IdleRatio  `json:"ratios,omitempty"`
	Notes   []string     `json:"notes,omitempty"`
}

// Idle measures what an idle pair costs: hagent (VRRP + group protocol
// with its heartbeat) and keepalived (VRRP only) side by side.
func Idle(ctx context.Context, cfg IdleConfig) (*IdleReport, error) {
	if cfg.Interval == 0 {
		cfg.Interval = 100 * time.Millisecond
	}
	if cfg.Duration == 0 {
		cfg.Duration = 30 * time.Second
	}
	cfg.Windows = max(cfg.Windows, 1)
	rep := &IdleReport{Interval: cfg.Interval.String(), Heartbeat: hbString(cfg.Heartbeat), LoadStart: loadavg()}
	dir, err := os.MkdirTemp("", "failover-idle-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	// hagent pair
	hl, err := lab.New()
	if err != nil {
		return nil, err
	}
	defer hl.Close()
	type member struct {
		impl, role string
		pid        int
		proc       *lab.Proc
	}
	var ms []member
	var hprocs []*lab.Proc
	var socks []string
	for i := 0; i < 2; i++ {
		h, err := hl.Host(fmt.Sprintf("ha%d", i+1), fmt.Sprintf("192.0.2.1%d/24", i+1))
		if err != nil {
			return nil, err
		}
		sock := filepath.Join(dir, fmt.Sprintf("ha%d.sock", i+1))
		socks = append(socks, sock)
		conf := filepath.Join(dir, fmt.Sprintf("ha%d.toml", i+1))
		// The shipped anti-entropy interval (30 s), not the failover runs'
		// 2 s (there it speeds up the resync of a restarted member): an
		// idle member's cost is measured as it ships.
		text := HagentConfigHB(i, cfg.Interval, cfg.Heartbeat, sock)
		if !strings.Contains(text, fastAntiEntropy) {
			return nil, fmt.Errorf("failover: idle: the hagent config no longer has %q to remove", fastAntiEntropy)
		}
		text = strings.Replace(text, fastAntiEntropy, "", 1)
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			return nil, err
		}
		p, err := h.Start(filepath.Join(cfg.Bins, "hagent"), "-config", conf)
		if err != nil {
			return nil, err
		}
		defer p.Stop(5 * time.Second)
		if err := p.WaitFor(`msg="hagent ready"`, 15*time.Second); err != nil {
			return nil, err
		}
		hprocs = append(hprocs, p)
		ms = append(ms, member{impl: "hagent", role: []string{"master", "backup"}[i], pid: p.Cmd.Process.Pid, proc: p})
	}

	// keepalived pair, in a lab of its own
	if cfg.Keepalived {
		if _, err := exec.LookPath("keepalived"); err != nil {
			rep.Notes = append(rep.Notes, "keepalived not measured: "+err.Error())
		} else {
			kl, err := lab.New()
			if err != nil {
				return nil, err
			}
			defer kl.Close()
			for i := 0; i < 2; i++ {
				h, err := kl.Host(fmt.Sprintf("k%d", i+1), fmt.Sprintf("192.0.2.1%d/24", i+1))
				if err != nil {
					return nil, err
				}
				p := &kpeer{host: h, conf: filepath.Join(dir, fmt.Sprintf("k%d.conf", i+1)),
					pidfile: filepath.Join(dir, fmt.Sprintf("k%d.pid", i+1)), vrrpid: filepath.Join(dir, fmt.Sprintf("k%d-vrrp.pid", i+1))}
				if err := os.WriteFile(p.conf, []byte(KeepalivedConfig(i, cfg.Interval)), 0o644); err != nil {
					return nil, err
				}
				if err := p.start(); err != nil {
					return nil, err
				}
				defer p.crash()
				ms = append(ms, member{impl: "keepalived", role: []string{"master", "backup"}[i], pid: readPid(p.vrrpid)})
			}
		}
	}

	// Settle: elections done (member 2's hold released, member 1 active,
	// member 2 standby and in sync), then one more second for the first
	// digests.
	if err := hprocs[1].WaitFor("hold released", 30*time.Second); err != nil {
		return nil, fmt.Errorf("failover: idle hagent member 2: %w", err)
	}
	for end := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r1, _, err1 := role(socks[0])
		r2, synced, err2 := role(socks[1])
		if err1 == nil && err2 == nil && strings.HasPrefix(r1, "active") && strings.HasPrefix(r2, "standby") && synced {
			break
		}
		if time.Now().After(end) || ctx.Err() != nil {
			return nil, fmt.Errorf("failover: idle hagent pair not settled within 30 s: member 1 %q %v, member 2 %q synced=%v %v", r1, err1, r2, synced, err2)
		}
	}
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	marks := make([]int, len(hprocs))
	for i, p := range hprocs {
		marks[i] = strings.Count(p.Output(), "\n") + 1 // lines so far (Output joins them with "\n")
	}
	type sample struct {
		cpu, sw  int64
		threads  map[int][2]int64 // tid → cpu, switches
		txB, txP int64
		err      error
		at       time.Time
		rss      int64
	}
	take := func() []sample {
		out := make([]sample, len(ms))
		var wg sync.WaitGroup
		for i, m := range ms {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := &out[i]
				s.at = time.Now()
				s.cpu, s.sw, s.threads, s.err = procCPU(m.pid)
				if s.err == nil {
					s.txB, s.txP, s.err = procTx(m.pid, "eth0")
				}
				s.rss, _ = rssKiB(m.pid)
			}()
		}
		wg.Wait()
		return out
	}
	samples := [][]sample{take()}
	for range cfg.Windows {
		select {
		case <-time.After(cfg.Duration):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		samples = append(samples, take())
	}
	// members is what happened between samples a and b; notes only once.
	members := func(a, b []sample, note bool) []IdleMember {
		var out []IdleMember
		for i, m := range ms {
			if a[i].err != nil || b[i].err != nil {
				if note {
					rep.Notes = append(rep.Notes, fmt.Sprintf("%s %s (pid %d): %v %v", m.impl, m.role, m.pid, a[i].err, b[i].err))
				}
				continue
			}
			s := b[i].at.Sub(a[i].at).Seconds()
			out = append(out, IdleMember{Impl: m.impl, Role: m.role, PID: m.pid,
				CPUPercent:    float64(b[i].cpu-a[i].cpu) / 1e9 / s * 100,
				TxBytesPerS:   float64(b[i].txB-a[i].txB) / s,
				TxPacketsPerS: float64(b[i].txP-a[i].txP) / s,
				WakeupsPerS:   float64(b[i].sw-a[i].sw) / s,
				RSSKiB:        b[i].rss, Threads: threadDeltas(a[i].threads, b[i].threads, s)})
		}
		return out
	}
	rep.Seconds = cfg.Duration.Seconds() * float64(cfg.Windows)
	rep.Members = members(samples[0], samples[len(samples)-1], true)
	if cfg.Windows > 1 {
		for k := 1; k < len(samples); k++ {
			rep.Windows = append(rep.Windows, IdleWindow{Members: members(samples[k-1], samples[k], false)})
		}
		rep.Ratios = idleRatios(rep.Windows)
	}
	for i, p := range hprocs {
		lines := strings.Split(p.Output(), "\n")
		for _, l := range lines[min(marks[i], len(lines)):] {
			if strings.Contains(l, `msg="role change"`) {
				rep.RoleChanges++
			}
			if strings.Contains(l, `msg="role change"`) || strings.Contains(l, "peer down") || strings.Contains(l, "peer up") {
				rep.Events = append(rep.Events, fmt.Sprintf("member %d: %s", i+1, l))
			}
		}
	}
	rep.LoadEnd = loadavg()
	return rep, nil
}

// fastAntiEntropy is the failover runs' anti-entropy line (HagentConfigHB).
const fastAntiEntropy = "anti_entropy_interval = \"2s\"\n"

func hbString(d time.Duration) string {
	switch {
	case d < 0:
		return "off"
	case d == 0:
		return "default (the advert interval, at most 100ms)"
	}
	return d.String()
}

// procCPU sums the time on CPU (ns) and the context switches of every
// thread of pid, and gives them per thread too.
func procCPU(pid int) (cpu, switches int64, threads map[int][2]int64, err error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0, 0, nil, err
	}
	threads = make(map[int][2]int64, len(tasks))
	for _, t := range tasks {
		var tc, ts int64
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
		if err != nil {
			continue // the thread exited meanwhile
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			tc, _ = strconv.ParseInt(f[0], 10, 64)
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(st), "\n") {
			if strings.HasPrefix(l, "voluntary_ctxt_switches:") || strings.HasPrefix(l, "nonvoluntary_ctxt_switches:") {
				n, _ := strconv.ParseInt(strings.TrimSpace(l[strings.IndexByte(l, ':')+1:]), 10, 64)
				ts += n
			}
		}
		cpu, switches = cpu+tc, switches+ts
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			threads[tid] = [2]int64{tc, ts}
		}
	}
	return cpu, switches, threads, nil
}

// threadDeltas is each thread's CPU share and switches per second between
// two samples s seconds apart, for the threads in both, by thread id.
func threadDeltas(a, b map[int][2]int64, s float64) []IdleThread {
	var out []IdleThread
	for tid, y := range b {
		if x, ok := a[tid]; ok {
			out = append(out, IdleThread{TID: tid, CPUPercent: float64(y[0]-x[0]) / 1e9 / s * 100,
				WakeupsPerS: float64(y[1]-x[1]) / s})
		}
	}
	slices.SortFunc(out, func(p, q IdleThread) int { return p.TID - q.TID })
	return out
}

// procTx reads dev's transmitted bytes and packets in pid's namespace.
func procTx(pid int, dev string) (bytes, packets int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(name) != dev {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 10 {
			break
		}
		bytes, _ = strconv.ParseInt(f[8], 10, 64)
		packets, _ = strconv.ParseInt(f[9], 10, 64)
		return bytes, packets, nil
	}
	return 0, 0, fmt.Errorf("failover: no %s in /proc/%d/net/dev", dev, pid)
}

func rssKiB(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				return strconv.ParseInt(f[1], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("failover: no VmRSS for pid %d", pid)
}

// Table prints the idle report for people.
func (r *IdleReport) Table(w io.Writer) {
	fmt.Fprintf(w, "idle pair, %s adverts, hagent heartbeat %s, %.0f s; load average %s → %s\n", r.Interval, r.Heartbeat, r.Seconds, r.LoadStart, r.LoadEnd)
	fmt.Fprintf(w, "%-10s %-7s %8s %10s %9s %11s %8s\n", "impl", "role", "cpu", "tx B/s", "tx pkt/s", "switches/s", "RSS")
	for _, m := range r.Members {
		fmt.Fprintf(w, "%-10s %-7s %7.3f%% %10.0f %9.1f %11.1f %6.1fMB\n", m.Impl, m.Role, m.CPUPercent, m.TxBytesPerS, m.TxPacketsPerS, m.WakeupsPerS, float64(m.RSSKiB)/1024)
		for _, t := range m.Threads {
			if t.WakeupsPerS >= 0.05 {
				fmt.Fprintf(w, "%-10s %-7s %7.3f%% %10s %9s %11.1f   tid %d\n", "", "", t.CPUPercent, "", "", t.WakeupsPerS, t.TID)
			}
		}
	}
	r.windowsTable(w)
	fmt.Fprintf(w, "hagent role changes while idle: %d\n", r.RoleChanges)
	for _, e := range r.Events {
		fmt.Fprintln(w, "  ", e)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}
