// Package chaos is the fault-injection test of issue 7: three hagent
// members and a mobile-node host in network namespaces (tools/lab), mobile
// nodes registering, renewing and de-registering through the virtual
// address, and a seeded schedule of faults (SIGKILL and restart, link
// flaps, 30 % loss, partitions, duplicated group datagrams, reordered
// datagrams). After each
// round the faults are healed and an invariant checker that shares no code
// with the agents compares every member's table with a model built from the
// replies the mobile nodes received, checks that at most one member is
// active and holds the virtual address, and that no request was answered
// twice. The fault schedule depends on the seed only, so a failing seed
// replays the same faults.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hagent/hagent/ha/mip"
	"github.com/hagent/hagent/tools/lab"
	"github.com/hagent/hagent/tools/lab/reap"
	"github.com/hagent/hagent/tools/mnsim/sim"
)

// Options configure a run.
type Options struct {
	Duration time.Duration // fault rounds start until this much time has passed
	Seed     uint64
	Nodes    int    // mobile nodes (home addresses from the pool); 0: 300
	Bins     string // directory holding a built hagent; "": built into a temp dir
	LogDir   string // agents' logs are written here on a violation; "": os.TempDir()
	Logger   *slog.Logger
	// Converge bounds the wait after a heal for one active member, every
	// member synced and every table equal to the model.
	Converge time.Duration // 0: 60s
	Out      io.Writer     // the schedule, progress lines; nil: io.Discard
	// IsolatedCrash lets the schedule kill an agent while both others are
	// cut off. group.require_replication survives that fault whatever the
	// isolation's length (the default refuses only while the isolated member
	// still counts its peers up, 35 s; then it serves alone and its last
	// acceptances die with it: issue 7), so it turns RequireReplication on;
	// off, the schedule leaves that case out.
	IsolatedCrash bool
	// RequireReplication runs the agents with group.require_replication =
	// true (no "accepted" without a peer's ack; a lone member refuses
	// everything). Off, they run the shipped default.
	RequireReplication bool
	// Attacks adds to most rounds one attack on the group protocol from a
	// host on the LAN (attack.go): a member restarted and the captured
	// datagrams of earlier sessions replayed, or a key holder posing as many
	// members that never acknowledge. Drawn from their own stream: the
	// other faults of a seed stay the same.
	Attacks bool
	// Rounds, when above 0, ends the run after that many rounds whatever
	// the duration (to replay a failing round: rounds depend on the seed,
	// their timing on the machine).
	Rounds int
}

// Violation is an invariant the agents broke; Error gives the seed, the
// schedule so far and what each member disagreed on.
type Violation struct {
	Seed     uint64
	Round    int
	Schedule []string
	Problems []string
	Logs     []string // files holding the agents' output
}

func (v *Violation) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "chaos: invariant violated in round %d (seed %d; replay: go run ./tools/chaos -seed %d -rounds %d, plus -isolated-crash, -require-replication or -attacks if given)\n", v.Round, v.Seed, v.Seed, v.Round)
	b.WriteString("fault schedule so far:\n")
	for _, s := range v.Schedule {
		b.WriteString("  " + s + "\n")
	}
	b.WriteString("violations:\n")
	for i, p := range v.Problems {
		if i == 200 {
			fmt.Fprintf(&b, "  … %d more\n", len(v.Problems)-i)
			break
		}
		b.WriteString("  " + p + "\n")
	}
	if len(v.Logs) > 0 {
		b.WriteString("agent logs: " + strings.Join(v.Logs, " ") + "\n")
	}
	return b.String()
}

const (
	vip       = "10.1.0.1"
	mnAddr    = "10.1.0.50"
	groupPort = 4343
	spi       = 300
	key       = "chaos-fleet-secret-0123"
	slack     = 4 * time.Second // expiry tolerance: lifetimes start at receipt and travel in whole seconds
	// splitBrainBound: VRRP with 100 ms adverts resolves two masters in
	// well under a second; 2 s leaves room for a loaded 2-core machine.
	splitBrainBound = 2 * time.Second
)

func memberConfig(i int, requireReplication bool) string {
	return fmt.Sprintf(`
[agent]
interface = "eth0"
address = "10.1.0.1%d"
virtual_address = %q
home_network = "10.1.0.0/16"
console_socket = "@SOCKET@"
log_level = "info"
capacity = 4096
max_lifetime = 300

[[node]]
name = "fleet"
pool = "10.1.4.0/22"
spi = %d
key = "text:%s"

[group]
enabled = true
port = %d
key = "text:chaos-group-secret-0123456789"
anti_entropy_interval = "2s"
require_replication = %v

[vrrp]
enabled = true
vrid = 51
priority = %d
advert_interval = "100ms"
garp_count = 1

[datapath]
enabled = false
`, i, vip, spi, key, groupPort, requireReplication, 140-10*i)
}

type member struct {
	i      int
	host   *lab.Host
	proc   *lab.Proc
	config string
	socket string
	dead   bool
	down   bool
	logs   []string // output of earlier incarnations
}

type run struct {
	o      Options
	log    *slog.Logger
	out    io.Writer
	l      *lab.Lab
	lanNS  string
	bins   string
	dir    string
	mn     *lab.Host
	ms     []*member
	model  *Model
	rc     *replyCounter
	homes  []netip.Addr
	sched  []string
	start  time.Time
	gate   sync.RWMutex // traffic holds it shared per exchange; a check holds it exclusively
	tables []string     // nftables tables in force
	qdiscs []string     // bridge ports carrying the reorder qdisc

	statMu   sync.Mutex
	stats    map[string]int
	authBads []string

	conf func(i int, requireReplication bool) string // member config; nil: memberConfig
	base netip.Addr                                  // first home address; zero: 10.1.4.1

	att *attacker // Options.Attacks
}

// Run builds the lab, runs fault rounds for o.Duration and returns a
// *Violation on a broken invariant, another error when the lab could not be
// run, nil when every check passed. The lab is removed on every path.
func Run(ctx context.Context, o Options) (err error) {
	if o.Nodes == 0 {
		o.Nodes = 300
	}
	if o.Converge == 0 {
		o.Converge = 60 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.IsolatedCrash {
		o.RequireReplication = true
	}
	if o.Nodes > 1000 {
		return fmt.Errorf("chaos: -nodes %d: the pool 10.1.4.0/22 holds 1000 nodes at most", o.Nodes)
	}
	if why := lab.Skip(); why != "" {
		return fmt.Errorf("chaos: cannot build a lab here: %s", why)
	}
	r := &run{o: o, log: o.Logger, out: o.Out, model: NewModel(), stats: map[string]int{}}
	r.dir, err = reap.TempDir("hagent-chaos") // a killed run's goes with the next run
	if err != nil {
		return fmt.Errorf("chaos: temp dir: %w", err)
	}
	defer os.RemoveAll(r.dir)
	r.bins = o.Bins
	if r.bins == "" {
		if r.bins, err = build(r.dir); err != nil {
			return err
		}
	}
	r.l, err = lab.New()
	if err != nil {
		return err
	}
	defer r.l.Close()
	r.lanNS = r.l.Prefix + "-lan"
	if err := r.setup(); err != nil {
		return err
	}
	defer r.rc.close()
	if o.Attacks {
		if r.att, err = r.startAttacker(); err != nil {
			return err
		}
		defer r.att.close()
	}
	return r.loop(ctx)
}

// build compiles hagent into dir (once per run, as ha/itest does).
func build(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("chaos: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("chaos: run me inside the hagent module (go run ./tools/chaos)")
	}
	bins := filepath.Join(dir, "bin")
	cmd := exec.Command("go", "build", "-o", bins+"/", "./ha/cmd/hagent")
	cmd.Dir = filepath.Dir(mod)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("chaos: building hagent: %v\n%s", err, b)
	}
	return bins, nil
}

func (r *run) setup() error {
	var err error
	for i := 0; i < 3; i++ {
		h, err := r.l.Host(fmt.Sprintf("ha%d", i+1), fmt.Sprintf("10.1.0.1%d/16", i+1))
		if err != nil {
			return err
		}
		m := &member{i: i, host: h, config: filepath.Join(r.dir, fmt.Sprintf("ha%d.toml", i+1)), socket: filepath.Join(r.dir, fmt.Sprintf("ha%d.sock", i+1))}
		conf := memberConfig
		if r.conf != nil {
			conf = r.conf
		}
		cfg := strings.ReplaceAll(conf(i+1, r.o.RequireReplication), "@SOCKET@", m.socket)
		if err := os.WriteFile(m.config, []byte(cfg), 0o600); err != nil {
			return fmt.Errorf("chaos: writing %s: %w", m.config, err)
		}
		r.ms = append(r.ms, m)
	}
	if r.mn, err = r.l.Host("mn", mnAddr+"/16"); err != nil {
		return err
	}
	for _, m := range r.ms {
		if err := r.startAgent(m); err != nil {
			return err
		}
	}
	r.rc, err = openReplyCounter("/var/run/netns/" + r.mn.NS)
	if err != nil {
		return err
	}
	base := r.base
	if !base.IsValid() {
		base = netip.MustParseAddr("10.1.4.1")
	}
	for h, k := base, 0; k < r.o.Nodes; k++ {
		r.homes = append(r.homes, h)
		h = h.Next()
	}
	return nil
}

func (r *run) startAgent(m *member) error {
	if m.proc != nil {
		m.logs = append(m.logs, m.proc.Output())
	}
	p, err := m.host.Start(filepath.Join(r.bins, "hagent"), "-config", m.config)
	if err != nil {
		return err
	}
	m.proc, m.dead = p, false
	if err := p.WaitFor(`msg="hagent ready"`, 20*time.Second); err != nil {
		return fmt.Errorf("chaos: ha%d did not start: %w", m.i+1, err)
	}
	return nil
}

func (r *run) say(format string, args ...any) {
	line := fmt.Sprintf("[%7s] ", time.Since(r.start).Round(100*time.Millisecond)) + fmt.Sprintf(format, args...)
	fmt.Fprintln(r.out, line)
}

func (r *run) note(format string, args ...any) {
	line := fmt.Sprintf("[%7s] ", time.Since(r.start).Round(100*time.Millisecond)) + fmt.Sprintf(format, args...)
	r.sched = append(r.sched, line)
	fmt.Fprintln(r.out, line)
}

func (r *run) loop(ctx context.Context) error {
	r.start = time.Now()
	fmt.Fprintf(r.out, "chaos: seed %d, duration %s, %d mobile nodes, lab %s, isolated crash %v, require_replication %v\n",
		r.o.Seed, r.o.Duration, r.o.Nodes, r.l.Prefix, r.o.IsolatedCrash, r.o.RequireReplication)
	// The reorder fault needs htb; say so before the first round rather
	// than fail in the middle of one.
	if err := reorderQdisc(r.lanNS, "lo", true); err != nil {
		return fmt.Errorf("%w (the reorder fault needs CONFIG_NET_SCH_HTB)", err)
	}
	if err := reorderQdisc(r.lanNS, "lo", false); err != nil {
		return err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.rc.run(stop) }()
	tctx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); close(stop); wg.Wait() }()

	// Settle the initial election before traffic and faults begin.
	r.gate.Lock()
	if v, err := r.converge(ctx, 0); v != nil || err != nil {
		r.gate.Unlock()
		if v != nil {
			return v
		}
		return err
	}
	r.gate.Unlock()

	const workers = 6
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := inNetNS("/var/run/netns/"+r.mn.NS, func() error { r.traffic(tctx, w, workers); return nil })
			if err != nil {
				r.log.Error("traffic worker", "err", err)
			}
		}()
	}

	faults := rand.New(rand.NewPCG(r.o.Seed, 0x6661756c7473)) // the schedule's own stream
	rounds := 0
	attacks := attackStream(r.o.Seed)
	for n := 1; (r.o.Rounds > 0 && n <= r.o.Rounds) || (r.o.Rounds == 0 && time.Since(r.start) < r.o.Duration); n++ {
		rd := planRound(faults, n, r.o.IsolatedCrash)
		if r.o.Attacks {
			rd.Faults = append(rd.Faults, planAttack(attacks, rd)...)
		}
		r.note("round %d: window %s", n, rd.Window)
		if err := r.inject(ctx, rd); err != nil {
			return err
		}
		r.gate.Lock() // traffic pauses for the check
		v, err := r.converge(ctx, n)
		r.gate.Unlock()
		if v != nil {
			return v
		}
		if err != nil {
			return err
		}
		rounds = n
	}
	cancel()
	r.statMu.Lock()
	defer r.statMu.Unlock()
	rep, acc := r.rc.total()
	live, gone := r.model.Count(time.Now())
	fmt.Fprintf(r.out, "chaos: seed %d passed: %d rounds, %s; %d replies seen (%d acceptances), model %d live / %d gone\n",
		r.o.Seed, rounds, statLine(r.stats), rep, acc, live, gone)
	return nil
}

func statLine(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// inject applies the round's faults at their times, clears each when its
// time is up, and heals everything at the end of the window.
func (r *run) inject(ctx context.Context, rd Round) error {
	type ev struct {
		at    time.Duration
		apply bool
		f     Fault
		idx   int
	}
	var evs []ev
	for i, f := range rd.Faults {
		evs = append(evs, ev{f.At, true, f, i}, ev{f.At + f.For, false, f, i})
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
	t0 := time.Now()
	for _, e := range evs {
		if d := time.Until(t0.Add(e.at)); d > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(d):
			}
		}
		var err error
		if e.apply {
			r.note("  inject %s", e.f)
			err = r.apply(e.f, rd.N, e.idx)
		} else {
			// What the fault did, as the agents saw it, before it ends.
			extra := "roles " + r.snapshot()
			if t := nftTable(e.f.Kind, rd.N, e.idx); t != "" {
				if n, err := nftPackets(r.lanNS, t); err == nil {
					extra += fmt.Sprintf("; nft counted %d packets", n)
				}
			}
			r.note("  clear  %s on %s (%s)", e.f.Kind, targetName(e.f.Target), extra)
			err = r.clear(e.f, rd.N, e.idx)
		}
		if err != nil {
			return err
		}
	}
	if d := time.Until(t0.Add(rd.Window)); d > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	return r.heal()
}

func (r *run) host(i int) *lab.Host {
	if i == 3 {
		return r.mn
	}
	return r.ms[i].host
}

func tableName(round, idx int) string { return fmt.Sprintf("chaos_r%d_f%d", round, idx) }

// nftTable is the family-qualified nftables table that fault idx of round
// puts in force: the bridge family for loss and partitions, netdev for the
// per-port hooks of duplication and reordering; "" for faults without one.
func nftTable(k Kind, round, idx int) string {
	switch k {
	case Loss, Partition:
		return "bridge " + tableName(round, idx)
	case Duplicate, Reorder:
		return "netdev " + tableName(round, idx)
	}
	return ""
}

func (r *run) apply(f Fault, round, idx int) error {
	h := r.host(f.Target)
	switch f.Kind {
	case OldSessionReplay, FakePeers:
		return r.applyAttack(f)
	case KillRestart, Crash:
		m := r.ms[f.Target]
		at := time.Now()
		if err := m.proc.Signal(syscall.SIGKILL); err != nil {
			return fmt.Errorf("chaos: SIGKILL ha%d: %w", f.Target+1, err)
		}
		<-m.proc.Done()
		m.dead = true
		r.killed(m, at)
		if f.Kind == Crash {
			m.down = true
			return h.LinkDown()
		}
	case LinkFlap:
		if f.Target < 3 {
			r.ms[f.Target].down = true
		}
		return h.LinkDown()
	case Loss, Partition:
		pct := 30
		if f.Kind == Partition {
			pct = 100
		}
		name := tableName(round, idx)
		if err := nft(r.lanNS, lossTable(name, h.Veth, pct)); err != nil {
			return err
		}
		r.tables = append(r.tables, nftTable(f.Kind, round, idx))
	case Duplicate:
		var others []string
		for j, m := range r.ms {
			if j != f.Target {
				others = append(others, m.host.Veth)
			}
		}
		name := tableName(round, idx)
		if err := nft(r.lanNS, dupTable(name, h.Veth, others, groupPort)); err != nil {
			return err
		}
		r.tables = append(r.tables, nftTable(f.Kind, round, idx))
	case Reorder:
		if err := reorderQdisc(r.lanNS, h.Veth, true); err != nil {
			return err
		}
		r.qdiscs = append(r.qdiscs, h.Veth)
		name := tableName(round, idx)
		if err := nft(r.lanNS, reorderTable(name, h.Veth, groupPort)); err != nil {
			return err
		}
		r.tables = append(r.tables, nftTable(f.Kind, round, idx))
	}
	return nil
}

func (r *run) clear(f Fault, round, idx int) error {
	h := r.host(f.Target)
	switch f.Kind {
	case OldSessionReplay, FakePeers:
		return r.clearAttack(f, round)
	case KillRestart, Crash:
		m := r.ms[f.Target]
		if m.down {
			if err := h.LinkUp(); err != nil {
				return err
			}
			m.down = false
		}
		return r.startAgent(m)
	case LinkFlap:
		if f.Target < 3 {
			r.ms[f.Target].down = false
		}
		return h.LinkUp()
	case Loss, Partition, Duplicate, Reorder:
		if f.Kind == Reorder {
			for i, q := range r.qdiscs {
				if q == h.Veth {
					r.qdiscs = append(r.qdiscs[:i], r.qdiscs[i+1:]...)
					if err := reorderQdisc(r.lanNS, q, false); err != nil {
						return err
					}
					break
				}
			}
		}
		t := nftTable(f.Kind, round, idx)
		for i, x := range r.tables {
			if x == t {
				r.tables = append(r.tables[:i], r.tables[i+1:]...)
				break
			}
		}
		return nft(r.lanNS, "delete table "+t+"\n")
	}
	return nil
}

// heal clears whatever is still in force (faults end within the window,
// but a canceled run or an error may leave some).
func (r *run) heal() error {
	for _, t := range r.tables {
		if err := nft(r.lanNS, "delete table "+t+"\n"); err != nil {
			return err
		}
	}
	r.tables = nil
	for _, q := range r.qdiscs {
		if err := reorderQdisc(r.lanNS, q, false); err != nil {
			return err
		}
	}
	r.qdiscs = nil
	if err := r.mn.LinkUp(); err != nil {
		return err
	}
	for _, m := range r.ms {
		if err := m.host.LinkUp(); err != nil {
			return err
		}
		m.down = false
		if m.dead {
			if err := r.startAgent(m); err != nil {
				return err
			}
		}
	}
	r.note("  healed")
	return nil
}

func (r *run) count(what string) {
	r.statMu.Lock()
	r.stats[what]++
	r.statMu.Unlock()
}

// traffic is one worker: it owns the homes k with k % workers == w, so one
// node never has two requests in flight (a real node does not either).
func (r *run) traffic(ctx context.Context, w, workers int) {
	rng := rand.New(rand.NewPCG(r.o.Seed^0x74726166, uint64(w))) // traffic's own stream
	var mine []netip.Addr
	for k, h := range r.homes {
		if k%workers == w {
			mine = append(mine, h)
		}
	}
	for ctx.Err() == nil {
		home := mine[rng.IntN(len(mine))]
		live := r.model.Live(home, time.Now())
		var coa netip.Addr
		lifetime := uint16(0)
		switch p := rng.IntN(100); {
		case !live && p < 80, live && p < 70:
			lifetime = uint16(15 + rng.IntN(76))
			coa = netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + rng.IntN(250))})
		case live && p < 95:
			// de-register (care-of = home)
		default:
			time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
			continue
		}
		r.gate.RLock()
		r.exchange(ctx, home, coa, lifetime, 600*time.Millisecond)
		r.gate.RUnlock()
		time.Sleep(time.Duration(5+rng.IntN(30)) * time.Millisecond)
	}
}

// exchange sends one write and records what the reply proves.
func (r *run) exchange(ctx context.Context, home, coa netip.Addr, lifetime uint16, timeout time.Duration) bool {
	now := time.Now()
	id := r.model.NextID(home, mip.Timestamp(now))
	w := write{Live: lifetime > 0, CareOf: coa, ID: id, Sent: now, Life: time.Duration(lifetime) * time.Second}
	r.model.Sent(home, w)
	res, err := sim.Exchange(ctx, sim.Options{
		HA: netip.AddrPortFrom(netip.MustParseAddr(vip), mip.Port), Home: home, CareOf: coa,
		SPI: spi, Key: []byte(key), Lifetime: lifetime, ID: id, Timeout: timeout,
	})
	switch {
	case errors.Is(err, sim.ErrReplyAuth):
		r.count("bad-auth")
		r.statMu.Lock()
		r.authBads = append(r.authBads, fmt.Sprintf("%v id %#x: %v", home, id, err))
		r.statMu.Unlock()
		return false
	case err != nil:
		r.count("no-reply")
		return false
	}
	switch replyOutcome(res.Reply.Code, res.Reply.ID == id) {
	case written:
		r.count("accepted")
		r.model.Accepted(home, id, time.Duration(res.Reply.Lifetime)*time.Second)
		return true
	case unknown:
		r.count(fmt.Sprintf("denied-%d", res.Reply.Code))
		return false // the write stays uncertain, like one whose reply was lost
	default:
		r.count(fmt.Sprintf("denied-%d", res.Reply.Code))
		r.model.Denied(home, id)
		return false
	}
}

// outcome is what a reply proves about the write it answers.
type outcome int

const (
	written    outcome = iota // accepted: the group holds it (or something newer)
	notWritten                // denied: it changed nothing
	unknown                   // it may or may not be in the members' tables
)

// replyOutcome classifies a reply. 130 (insufficient resources) is what a
// member answers when no peer acknowledged a write it has already made
// (docs/redundancy.md, require_replication): the binding may stay in the
// tables, so a 130 proves neither "accepted" nor "de-registered"; the node's
// next acceptance defines its state again. Every other denial is a write
// refused before it was made.
func replyOutcome(code mip.Code, idMatches bool) outcome {
	switch {
	case code.Accepted() && idMatches:
		return written
	case code == mip.CodeInsufficientResources:
		return unknown
	}
	return notWritten
}

// settle re-sends, once each, a write for every node whose state is
// uncertain, so that the check can demand exact equality. It runs with the
// traffic paused.
func (r *run) settle(ctx context.Context) {
	homes := r.model.Uncertain()
	if len(homes) == 0 {
		return
	}
	var wg sync.WaitGroup
	ch := make(chan netip.Addr)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = inNetNS("/var/run/netns/"+r.mn.NS, func() error {
				for h := range ch {
					r.model.mu.Lock()
					n := r.model.nodes[h]
					if len(n.uncertain) == 0 {
						r.model.mu.Unlock()
						continue
					}
					last := n.uncertain[len(n.uncertain)-1]
					r.model.mu.Unlock()
					var lt uint16
					if last.Live {
						lt = uint16(last.Life / time.Second)
					}
					r.exchange(ctx, h, last.CareOf, lt, time.Second)
				}
				return nil
			})
		}()
	}
	for _, h := range homes {
		ch <- h
	}
	close(ch)
	wg.Wait()
}

// converge waits, after a heal, for every member to be up and synced, one
// active member, every table equal to the model; it returns a *Violation
// when that does not happen within o.Converge, or when a safety invariant
// (two active members once the election has settled, a second answer to one
// request) is broken. The caller holds the traffic gate.
func (r *run) converge(ctx context.Context, round int) (*Violation, error) {
	// Split brain ends within the election timers once the network is
	// whole: a partitioned member that made itself active hears the
	// others' adverts within a few 100 ms intervals.
	healed := time.Now()
	for {
		active, holders := r.holders()
		if len(active) <= 1 && len(holders) <= 1 {
			break
		}
		if time.Since(healed) > splitBrainBound {
			return r.violation(round, []string{fmt.Sprintf("%s after the heal still %d active members %v, virtual address on %v (bound %s)",
				time.Since(healed).Round(time.Millisecond), len(active), active, holders, splitBrainBound)}), nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	deadline := time.Now().Add(r.o.Converge)
	var problems []string
	for {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		r.settle(ctx)
		problems = r.check()
		if len(problems) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return r.violation(round, append([]string{fmt.Sprintf("not converged within %s after the heal:", r.o.Converge)}, problems...)), nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Converged. Safety: the election stays settled (sampled for a second),
	// nothing was answered twice, no acceptance failed authentication.
	for k := 0; k < 5; k++ {
		if p := r.roles(); len(p) > 0 {
			return r.violation(round, append([]string{"after convergence:"}, p...)), nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	var safety []string
	if d := r.rc.duplicates(); len(d) > 0 {
		safety = append(safety, "requests answered more than once:")
		safety = append(safety, d...)
	}
	r.statMu.Lock()
	if len(r.authBads) > 0 {
		safety = append(safety, "replies that failed MN-HA authentication:")
		safety = append(safety, r.authBads...)
	}
	r.statMu.Unlock()
	if len(safety) > 0 {
		return r.violation(round, safety), nil
	}
	live, gone := r.model.Count(time.Now())
	r.statMu.Lock()
	r.say("round %d checked: tables equal the model (%d live, %d gone), one active member; traffic so far: %s", round, live, gone, statLine(r.stats))
	r.statMu.Unlock()
	return nil, nil
}

// holders lists the members whose console says active and those whose
// eth0 carries the virtual address.
func (r *run) holders() (active, holders []string) {
	for _, m := range r.ms {
		if resp, err := consoleCall(m.socket, consoleRequest{Cmd: "show redundancy"}, time.Second); err == nil && resp.Redundancy != nil &&
			strings.HasPrefix(resp.Redundancy.Role, "active") {
			active = append(active, fmt.Sprintf("ha%d", m.i+1))
		}
		out, err := exec.Command("ip", "-n", m.host.NS, "-o", "-4", "addr", "show", "dev", "eth0").CombinedOutput()
		if err == nil && strings.Contains(string(out), " "+vip+"/") {
			holders = append(holders, fmt.Sprintf("ha%d", m.i+1))
		}
	}
	return active, holders
}

// snapshot is every member's role, briefly asked ("-" when unreachable).
func (r *run) snapshot() string {
	var s []string
	for _, m := range r.ms {
		role := "-"
		if !m.dead {
			if resp, err := consoleCall(m.socket, consoleRequest{Cmd: "show redundancy"}, 500*time.Millisecond); err == nil && resp.Redundancy != nil {
				role = strings.Fields(resp.Redundancy.Role + " ?")[0]
			}
		}
		s = append(s, fmt.Sprintf("ha%d %s", m.i+1, role))
	}
	return strings.Join(s, ", ")
}

// roles returns what is wrong with the election: not exactly one active
// member, a member not synced, or the virtual address on more or fewer
// than one member's eth0.
func (r *run) roles() []string {
	var p []string
	var active, holders []string
	for _, m := range r.ms {
		resp, err := consoleCall(m.socket, consoleRequest{Cmd: "show redundancy"}, 3*time.Second)
		if err != nil || resp.Redundancy == nil {
			p = append(p, fmt.Sprintf("ha%d: show redundancy: %v", m.i+1, err))
			continue
		}
		if strings.HasPrefix(resp.Redundancy.Role, "active") {
			active = append(active, fmt.Sprintf("ha%d", m.i+1))
		}
		if !resp.Redundancy.Synced {
			p = append(p, fmt.Sprintf("ha%d: not synced (role %s)", m.i+1, resp.Redundancy.Role))
		}
		out, err := exec.Command("ip", "-n", m.host.NS, "-o", "-4", "addr", "show", "dev", "eth0").CombinedOutput()
		if err != nil {
			p = append(p, fmt.Sprintf("ha%d: ip addr: %v %s", m.i+1, err, out))
		} else if strings.Contains(string(out), " "+vip+"/") {
			holders = append(holders, fmt.Sprintf("ha%d", m.i+1))
		}
	}
	if len(active) != 1 {
		p = append(p, fmt.Sprintf("%d active members %v (want exactly one)", len(active), active))
	}
	if len(holders) > 1 {
		p = append(p, fmt.Sprintf("virtual address %s on %d members %v", vip, len(holders), holders))
	}
	return p
}

// check compares every member with the model and the election rules.
func (r *run) check() []string {
	p := r.roles()
	for _, m := range r.ms {
		before := time.Now()
		rows, err := liveRows(m.socket)
		if err != nil {
			p = append(p, fmt.Sprintf("ha%d: %v", m.i+1, err))
			continue
		}
		// The rows were read between before and now: an expiry inside that
		// span is as uncertain as one inside the slack.
		sl := slack + time.Since(before)
		for _, d := range r.model.Diff(rows, before, sl) {
			p = append(p, fmt.Sprintf("ha%d: %s", m.i+1, d))
		}
	}
	return p
}

func (r *run) violation(round int, problems []string) *Violation {
	v := &Violation{Seed: r.o.Seed, Round: round, Schedule: append([]string(nil), r.sched...), Problems: problems}
	dir := r.o.LogDir
	if dir == "" {
		dir = os.TempDir()
	}
	for _, m := range r.ms {
		var all []string
		all = append(all, m.logs...)
		all = append(all, m.proc.Output())
		path := filepath.Join(dir, fmt.Sprintf("chaos-%d-ha%d.log", r.o.Seed, m.i+1))
		if err := os.WriteFile(path, []byte(strings.Join(all, "\n--- restarted ---\n")), 0o644); err == nil {
			v.Logs = append(v.Logs, path)
		}
	}
	return v
}
