// Package failover measures how long a redundancy group takes to fail over,
// hagent and keepalived side by side, in network namespaces it creates and
// removes (tools/lab): a bridge (the home LAN), the group's members and a
// mobile-node host.
//
// hagent: three agents (VRRP, group sync on) while mobile nodes keep
// renewing on the virtual address (mnsim's library, from the mobile node's
// namespace). A trial takes the active member out and measures, from that
// moment (the fault), the time until a renewal sent after the cut is
// accepted on the virtual address; then it checks through the new active
// member's console that every binding is still there, and, once the VRRP
// timers have run, that exactly one reachable member is active. The cut is
// when the old member can no longer answer: after SIGKILL, once it is dead
// and its link down; after link down, at once; after SIGTERM, once its
// kernel has released the address or it has exited. Answers to requests
// sent before the cut are ignored: they may come from the old member.
//
// keepalived: two instances (VRRPv3) with the same intervals in the same
// topology; the time until an ICMP echo to the virtual address, sent from
// the mobile node's namespace after the cut, is answered (keepalived has
// no state to serve: this is "the address moved and answers").
//
// For both, the time until the kernel address appears on the new master is
// reported as well.
//
// TODO(datapath): the issue also wants a correspondent sending to a mobile
// node through the tunnel during the failover. The agent's datapath (tunnel,
// routes, proxy ARP) is not wired yet and this kernel has no ipip module
// (tier 3); add a correspondent host and measure tunnelled delivery here
// once it is. Nothing in this package pretends to measure it.
package failover

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"
)

// Kind is how the active member is taken out.
type Kind string

const (
	// KillLinkDown: SIGKILL, then its link down (a crash of the box: the
	// dead process's kernel would otherwise keep the address).
	KillLinkDown Kind = "kill+linkdown"
	// LinkDown: the link goes down, the process keeps running, isolated.
	LinkDown Kind = "linkdown"
	// Term: graceful stop (SIGTERM: VRRP priority 0).
	Term Kind = "sigterm"
)

// Kinds lists every kind, in table order.
var Kinds = []Kind{KillLinkDown, LinkDown, Term}

// Config says what to measure.
type Config struct {
	// Bins holds the hagent binary (go build ./ha/cmd/hagent).
	Bins      string
	Trials    int             // per scenario; default 7
	Intervals []time.Duration // VRRP advertisement intervals; default 100ms, 1s
	Kinds     []Kind          // default all
	Nodes     int             // mobile nodes renewing; default 50, at most 120
	// Heartbeat is hagent's group.heartbeat_interval (0: its default;
	// negative: heartbeat off, VRRP alone detects the failure).
	Heartbeat time.Duration
	Hagent    bool // measure hagent
	// Keepalived measures keepalived too (skipped with a note in the
	// report when the binary is missing).
	Keepalived bool
	Log        *slog.Logger // nil: discard
}

// Trial is one measured failover.
type Trial struct {
	Impl     string `json:"impl"` // "hagent" or "keepalived"
	Interval string `json:"advert_interval"`
	Kind     Kind   `json:"kind"`
	N        int    `json:"trial"`
	// AnswerMS: fault → first answer on the virtual address to a request
	// sent after the fault (hagent: an accepted renewal; keepalived: an
	// ICMP echo reply). Negative when none came.
	AnswerMS float64 `json:"answer_ms"`
	// AddrMS: fault → the virtual address appears in the new master's
	// kernel (negative when it did not within the trial).
	AddrMS float64 `json:"addr_ms"`
	// hagent only: live bindings before the fault and on the new active
	// member when it first answered; Missing lists homes it lacked.
	Before  int      `json:"bindings_before,omitempty"`
	After   int      `json:"bindings_after,omitempty"`
	Missing []string `json:"missing,omitempty"`
	// Actives: reachable members holding the active role (hagent) or the
	// address (keepalived) once the VRRP timers have run after the answer.
	Actives int `json:"actives"`
	// ExitMS: graceful stop only, fault → the old process exited (-1:
	// not a graceful stop, or not within 5 s).
	ExitMS float64 `json:"exit_ms"`
	// DoubleMS: from the fault to the end of the trial (every backup's
	// Master_Down_Interval run), how long two or more reachable members
	// held the virtual address at once. SteadyDoubleMS: the same over the
	// steady state before the fault, all members counted (a spurious
	// takeover shows here).
	DoubleMS       float64 `json:"double_master_ms"`
	SteadyDoubleMS float64 `json:"steady_double_master_ms"`
	t0, end        time.Time
	// Log: what the surviving members printed during the trial, kept when
	// the trial failed or the answer came before the address (to diagnose).
	Log []string `json:"log,omitempty"`
	Err string   `json:"error,omitempty"`
}

// OK reports whether the trial failed over correctly: an answer, no
// binding lost, exactly one active member.
func (t Trial) OK() bool {
	return t.Err == "" && t.AnswerMS >= 0 && t.Actives == 1 && len(t.Missing) == 0 && t.After == t.Before
}

// Summary aggregates one scenario (impl × interval × kind).
type Summary struct {
	Impl     string  `json:"impl"`
	Interval string  `json:"advert_interval"`
	Kind     Kind    `json:"kind"`
	Trials   int     `json:"trials"`
	OK       int     `json:"ok"`
	Median   float64 `json:"answer_median_ms"`
	P90      float64 `json:"answer_p90_ms"`
	Max      float64 `json:"answer_max_ms"`
	AddrMed  float64 `json:"addr_median_ms"`
	Lost     int     `json:"bindings_lost"`
	// Double-master time after the fault (median, max over the trials)
	// and the total seen in the steady states before the faults.
	DoubleMed    float64 `json:"double_master_median_ms"`
	DoubleMax    float64 `json:"double_master_max_ms"`
	SteadyDouble float64 `json:"steady_double_master_total_ms"`
}

// Report is the outcome of Run.
type Report struct {
	Started   time.Time `json:"started"`
	LoadStart string    `json:"loadavg_start"`
	LoadEnd   string    `json:"loadavg_end"`
	Trials    []Trial   `json:"trials"`
	Summary   []Summary `json:"summary"`
	Notes     []string  `json:"notes,omitempty"`
}

func (c *Config) defaults() error {
	if c.Trials <= 0 {
		c.Trials = 7
	}
	if len(c.Intervals) == 0 {
		c.Intervals = []time.Duration{100 * time.Millisecond, time.Second}
	}
	if len(c.Kinds) == 0 {
		c.Kinds = Kinds
	}
	if c.Nodes <= 0 {
		c.Nodes = 50
	}
	if c.Nodes > 120 {
		return fmt.Errorf("failover: %d nodes: at most 120 fit the pool 192.0.2.128/25", c.Nodes)
	}
	for _, iv := range c.Intervals {
		if iv < 10*time.Millisecond || iv%(10*time.Millisecond) != 0 {
			return fmt.Errorf("failover: advert interval %v: VRRPv3 needs a multiple of 10ms", iv)
		}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// Run measures every scenario of cfg, one after the other (never two groups
// at once: they would share the CPU), and summarises.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	rep := &Report{Started: time.Now(), LoadStart: loadavg()}
	for _, iv := range cfg.Intervals {
		for _, k := range cfg.Kinds {
			if cfg.Hagent {
				ts, err := runHagent(ctx, cfg, iv, k)
				rep.Trials = append(rep.Trials, ts...)
				if err != nil {
					return rep, err
				}
			}
			if cfg.Keepalived {
				ts, err := runKeepalived(ctx, cfg, iv, k)
				rep.Trials = append(rep.Trials, ts...)
				if err != nil {
					if err == errNoKeepalived {
						rep.Notes = append(rep.Notes, "keepalived not measured: "+err.Error())
						cfg.Keepalived = false
						continue
					}
					return rep, err
				}
			}
		}
	}
	rep.LoadEnd = loadavg()
	rep.Summary = Summarise(rep.Trials)
	return rep, nil
}

// Summarise groups trials by scenario. Percentiles are nearest-rank over
// the trials that answered (p90 of 7 trials is the maximum).
func Summarise(trials []Trial) []Summary {
	var out []Summary
	idx := map[string]int{}
	var answers, addrs, doubles [][]float64
	for _, t := range trials {
		key := t.Impl + "|" + t.Interval + "|" + string(t.Kind)
		i, ok := idx[key]
		if !ok {
			i = len(out)
			idx[key] = i
			out = append(out, Summary{Impl: t.Impl, Interval: t.Interval, Kind: t.Kind})
			answers, addrs, doubles = append(answers, nil), append(addrs, nil), append(doubles, nil)
		}
		s := &out[i]
		s.Trials++
		if t.OK() {
			s.OK++
		}
		if t.Before > t.After {
			s.Lost += t.Before - t.After
		}
		if t.AnswerMS >= 0 {
			answers[i] = append(answers[i], t.AnswerMS)
		}
		if t.AddrMS >= 0 {
			addrs[i] = append(addrs[i], t.AddrMS)
		}
		doubles[i] = append(doubles[i], t.DoubleMS)
		s.SteadyDouble += t.SteadyDoubleMS
	}
	for i := range out {
		out[i].Median = rank(answers[i], 0.5)
		out[i].P90 = rank(answers[i], 0.9)
		out[i].Max = rank(answers[i], 1)
		out[i].AddrMed = rank(addrs[i], 0.5)
		out[i].DoubleMed = rank(doubles[i], 0.5)
		out[i].DoubleMax = rank(doubles[i], 1)
	}
	return out
}

// rank is the nearest-rank percentile (-1 for no samples).
func rank(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return -1
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Table prints the summary for people.
func (r *Report) Table(w io.Writer) {
	sum := slices.Clone(r.Summary)
	slices.SortStableFunc(sum, func(a, b Summary) int {
		return cmp.Or(cmp.Compare(durOf(a.Interval), durOf(b.Interval)),
			cmp.Compare(slices.Index(Kinds, a.Kind), slices.Index(Kinds, b.Kind)))
	})
	fmt.Fprintf(w, "%-10s %-8s %-14s %6s %9s %9s %9s %9s %9s %9s %9s %s\n", "impl", "advert", "fault", "ok/n", "median", "p90", "max", "addr-med", "2master", "2max", "2steady", "bindings lost")
	for _, s := range sum {
		lost := "-"
		if s.Impl == "hagent" {
			lost = fmt.Sprint(s.Lost)
		}
		fmt.Fprintf(w, "%-10s %-8s %-14s %6s %9s %9s %9s %9s %9s %9s %9s %s\n", s.Impl, s.Interval, s.Kind,
			fmt.Sprintf("%d/%d", s.OK, s.Trials), ms(s.Median), ms(s.P90), ms(s.Max), ms(s.AddrMed),
			ms(s.DoubleMed), ms(s.DoubleMax), ms(s.SteadyDouble), lost)
	}
	fmt.Fprintf(w, "answer = fault → first answer on the virtual address to a request sent after the cut (old member dead/cut off/address released; hagent: accepted renewal, keepalived: ICMP echo reply)\n")
	fmt.Fprintf(w, "addr-med = fault → address in the new master's kernel (median); load average %s → %s\n", r.LoadStart, r.LoadEnd)
	fmt.Fprintf(w, "2master/2max = time two or more reachable members held the address at once after the fault (median/max); 2steady = the same summed over the steady states before the faults, every member counted\n")
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	for _, t := range r.Trials {
		if !t.OK() {
			fmt.Fprintf(w, "failed: %s %s %s #%d: answer %s, bindings %d→%d missing %v, actives %d, %s\n",
				t.Impl, t.Interval, t.Kind, t.N, ms(t.AnswerMS), t.Before, t.After, t.Missing, t.Actives, t.Err)
		}
	}
}

func durOf(s string) time.Duration { d, _ := time.ParseDuration(s); return d }

func ms(v float64) string {
	if v < 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fms", v)
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// randomPhase waits one advertisement interval plus a random fraction of
// one before a fault. Without it the fault lands a fixed few tens of
// milliseconds after the restored master's first advertisement (steady
// state is reached right after the preemption), so every backup would run
// almost its whole Master_Down_Interval: at 1 s adverts every trial was the
// worst case. Real crashes come at any phase of the advertisement cycle.
func randomPhase(iv time.Duration) {
	time.Sleep(iv + time.Duration(rand.Int64N(int64(iv))))
}

// masterDown is RFC 5798's Master_Down_Interval for a backup of priority p.
func masterDown(iv time.Duration, p int) time.Duration {
	return 3*iv + time.Duration(256-p)*iv/256
}
