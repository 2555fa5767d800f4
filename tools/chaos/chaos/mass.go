package chaos

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hagent/hagent/tools/lab"
)

// The mass de-registration scenario: a fleet comes home. Every member holds
// N live bindings (capacity N, the default tombstone capacity N/4), then
// every node de-registers while one backup (ha3) misses some of it: a
// deterministic share of the group datagrams sent to it dropped, and/or its
// cable cut for a while (shorter or longer than the 15.75 s retransmission
// budget). After the heal, the model built from the nodes' replies judges:
// no de-registered binding live again on any member, no accepted binding
// missing, every member's live table the same. Optionally it then forges
// Binding Updates with the group key (the tool knows it) for addresses no
// member may bind — outside the home network, outside every pool, the
// members' and the virtual address — and checks that no member stored one.

// MassOptions configure RunMass.
type MassOptions struct {
	Seed uint64
	N    int // bindings, and each member's capacity; 0: 10,000
	// LossEvery drops every LossEvery-th group datagram (UDP 4343/4344) sent to
	// ha3 while the nodes de-register and 5 s after (20: 5 %); the first
	// one dropped depends on the seed. 0: no loss.
	LossEvery int
	Cut       time.Duration // ha3's cable cut from the first de-registration for this long; 0: none
	Forge     bool          // afterwards, forged updates for addresses no member may bind
	Converge  time.Duration // 0: 60 s
	Bins      string
	LogDir    string
	Logger    *slog.Logger
	Out       io.Writer
}

// MassResult are the figures of a run (also on a violation).
type MassResult struct {
	Resurrected int       // de-registered homes (confirmed by their node's reply) live on some member
	Lost        int       // accepted, unexpired bindings missing on some member
	Unequal     bool      // the members' live tables differ
	Evicted     [3]uint64 // each member's "tombstones evicted early"
	Refused     [3]uint64 // each member's records.refused_not_admitted
	Planted     int       // forged records some member stored
}

func (m MassResult) String() string {
	return fmt.Sprintf("resurrected %d, lost %d, tables unequal %v, tombstones evicted early %v, records refused %v, forged records stored %d",
		m.Resurrected, m.Lost, m.Unequal, m.Evicted, m.Refused, m.Planted)
}

func massConfig(n int) func(i int, require bool) string {
	return func(i int, require bool) string {
		c := memberConfig(i, require)
		c = strings.Replace(c, "capacity = 4096", fmt.Sprintf("capacity = %d", n), 1)
		return strings.Replace(c, `pool = "10.1.4.0/22"`, `pool = "10.1.64.0/18"`, 1)
	}
}

// RunMass runs the scenario; a broken invariant is a *Violation, the
// figures come back either way.
func RunMass(ctx context.Context, o MassOptions) (res MassResult, err error) {
	if o.N == 0 {
		o.N = 10000
	}
	if o.N > 16000 {
		return res, fmt.Errorf("chaos: mass: %d bindings: the pool 10.1.64.0/18 holds 16,000", o.N)
	}
	if why := lab.Skip(); why != "" {
		return res, fmt.Errorf("chaos: cannot build a lab here: %s", why)
	}
	co := Options{Seed: o.Seed, Nodes: o.N, Converge: o.Converge, Bins: o.Bins, LogDir: o.LogDir, Logger: o.Logger, Out: o.Out}
	if co.Converge == 0 {
		co.Converge = 60 * time.Second
	}
	if co.Out == nil {
		co.Out = io.Discard
	}
	if co.Logger == nil {
		co.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &run{o: co, log: co.Logger, out: co.Out, model: NewModel(), stats: map[string]int{},
		conf: massConfig(o.N), base: netip.MustParseAddr("10.1.64.1")}
	if r.dir, err = os.MkdirTemp("", "hagent-chaos"); err != nil {
		return res, fmt.Errorf("chaos: temp dir: %w", err)
	}
	defer os.RemoveAll(r.dir)
	if r.bins = o.Bins; r.bins == "" {
		if r.bins, err = build(r.dir); err != nil {
			return res, err
		}
	}
	if r.l, err = lab.New(); err != nil {
		return res, err
	}
	defer r.l.Close()
	r.lanNS = r.l.Prefix + "-lan"
	if err := r.setup(); err != nil {
		return res, err
	}
	defer r.rc.close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.rc.run(stop) }()
	defer func() { close(stop); wg.Wait() }()
	return r.mass(ctx, o)
}

func (r *run) mass(ctx context.Context, o MassOptions) (res MassResult, err error) {
	r.start = time.Now()
	fmt.Fprintf(r.out, "chaos mass: seed %d, %d bindings, loss every %d, cut %s, forge %v, lab %s\n", o.Seed, o.N, o.LossEvery, o.Cut, o.Forge, r.l.Prefix)
	if v, err := r.converge(ctx, 0); v != nil || err != nil {
		return res, firstErr(v, err)
	}
	t := time.Now()
	r.writeAll(ctx, true)
	r.note("registered %d nodes in %s (%s)", o.N, time.Since(t).Round(time.Millisecond), statLine(r.stats))
	if v, err := r.converge(ctx, 1); v != nil || err != nil {
		return res, firstErr(v, err)
	}

	ha3 := r.ms[2].host.Veth
	if o.LossEvery > 0 {
		name := tableName(2, 0)
		k := int(o.Seed % uint64(o.LossEvery))
		if err := nft(r.lanNS, groupLossTable(name, ha3, o.LossEvery, k)); err != nil {
			return res, err
		}
		r.tables = append(r.tables, "bridge "+name)
		r.note("  inject every %d-th group datagram to ha3 dropped (from the %d-th)", o.LossEvery, k)
	}
	if o.Cut > 0 {
		name := tableName(2, 1)
		if err := nft(r.lanNS, lossTable(name, ha3, 100)); err != nil {
			return res, err
		}
		r.tables = append(r.tables, "bridge "+name)
		r.note("  inject ha3 cut off for %s", o.Cut)
	}
	t = time.Now()
	r.writeAll(ctx, false)
	r.note("de-registered %d nodes in %s (%s)", o.N, time.Since(t).Round(time.Millisecond), statLine(r.stats))
	after := 5 * time.Second // retransmissions still meet the loss
	if o.Cut > 0 {
		after = max(0, o.Cut-time.Since(t))
	}
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(after):
	}
	if err := r.heal(); err != nil {
		return res, err
	}
	v, err := r.converge(ctx, 2)
	res, problems := r.massFigures()
	r.note("figures: %s", res)
	if err != nil {
		return res, err
	}
	if v != nil {
		problems = append(problems, v.Problems...)
	}
	if o.Forge {
		if err := r.forge(o, &res, &problems); err != nil {
			return res, err
		}
	}
	if len(problems) > 0 {
		return res, r.violation(2, problems)
	}
	return res, nil
}

// forge sends Binding Updates forged with the group key, one per invented
// agent id, for addresses no member may bind, and adds to problems every
// member that stored one or did not count the refusals.
func (r *run) forge(o MassOptions, res *MassResult, problems *[]string) error {

	forged := []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr(vip), netip.MustParseAddr("10.1.0.99"),
		netip.MustParseAddr("10.1.0.11"), netip.MustParseAddr("10.1.0.12"), netip.MustParseAddr("10.1.0.13")}
	a, err := r.provenForger()
	if err != nil {
		return err
	}
	defer a.close()
	var recs [][]byte
	for k, h := range forged {
		recs = append(recs, forgedRecord(a.fakeID(), h, netip.MustParseAddr("198.51.100.66"), uint64(1)<<62+uint64(k)))
	}
	a.sendForged(recs)
	r.note("  inject %d forged Binding Updates with the group key for %v", len(recs), forged)
	time.Sleep(2 * time.Second)
	res2, _ := r.massFigures()
	res.Refused = res2.Refused
	for _, m := range r.ms {
		rows, err := liveRows(m.socket)
		if err != nil {
			return err
		}
		for _, row := range rows {
			for _, h := range forged {
				if row.Home == h {
					res.Planted++
					*problems = append(*problems, fmt.Sprintf("ha%d stored the forged record %v → %v", m.i+1, h, row.CareOf))
				}
			}
		}
	}
	for i, n := range res.Refused {
		if n < uint64(len(forged)) {
			*problems = append(*problems, fmt.Sprintf("ha%d counted %d refused records, %d forged were sent", i+1, n, len(forged)))
		}
	}
	r.note("figures after forging: %s", res)
	return nil
}

func firstErr(v *Violation, err error) error {
	if v != nil {
		return v
	}
	return err
}

// writeAll registers (live) or de-registers every home once, 32 at a time
// from the mobile-node host, recording each outcome in the model.
func (r *run) writeAll(ctx context.Context, live bool) {
	ch := make(chan netip.Addr)
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = inNetNS("/var/run/netns/"+r.mn.NS, func() error {
				for h := range ch {
					if live {
						r.exchange(ctx, h, netip.MustParseAddr("198.51.100.7"), 300, time.Second)
					} else {
						r.exchange(ctx, h, netip.Addr{}, 0, time.Second)
					}
				}
				return nil
			})
		}()
	}
	for _, h := range r.homes {
		ch <- h
	}
	close(ch)
	wg.Wait()
}

// groupLossTable drops every every-th group datagram (UDP groupPort, and
// groupPort+1 for the heartbeats) the
// bridge sends out of port, starting with the k-th: a loss rate that does
// not depend on a random generator.
func groupLossTable(name, port string, every, k int) string {
	return fmt.Sprintf(`table bridge %s {
	chain filt {
		type filter hook forward priority -10; policy accept;
		oifname "%s" udp dport { %d, %d } numgen inc mod %d %d counter drop
	}
}
`, name, port, groupPort, groupPort+1, every, k)
}

// massFigures counts, from the members' live tables and the model:
// de-registered homes live again, accepted bindings missing, whether the
// tables are equal, and each member's eviction and refusal counters.
func (r *run) massFigures() (MassResult, []string) {
	var res MassResult
	var problems []string
	now := time.Now()
	resurrected, lost := map[netip.Addr]bool{}, map[netip.Addr]bool{}
	var tables []string
	for _, m := range r.ms {
		if c, err := consoleCounters(m.socket, "show stats", "tombstones evicted early"); err == nil {
			res.Evicted[m.i] = c
		} else {
			problems = append(problems, err.Error())
		}
		if c, err := consoleCounters(m.socket, "show redundancy", "records.refused_not_admitted"); err == nil {
			res.Refused[m.i] = c
		} else {
			problems = append(problems, err.Error())
		}
		rows, err := liveRows(m.socket)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		held := map[netip.Addr]bool{}
		var keys []string
		r.model.mu.Lock()
		for _, row := range rows {
			held[row.Home] = true
			keys = append(keys, fmt.Sprintf("%v %v %#x", row.Home, row.CareOf, row.ID))
			n := r.model.nodes[row.Home]
			if n == nil || n.confirmed == nil || n.confirmed.Live {
				continue
			}
			maybe := false // an unanswered later write could be this row
			for _, u := range n.uncertain {
				if u.Live && u.ID == row.ID {
					maybe = true
				}
			}
			if !maybe && row.ID < n.confirmed.ID && !resurrected[row.Home] {
				resurrected[row.Home] = true
				problems = append(problems, fmt.Sprintf("ha%d: %v de-registered (id %#x) but live again: coa %v id %#x", m.i+1, row.Home, n.confirmed.ID, row.CareOf, row.ID))
			}
		}
		for h, n := range r.model.nodes {
			if n.confirmed != nil && n.confirmed.Live && len(n.uncertain) == 0 && n.confirmed.expiry().After(now.Add(slack)) && !held[h] && !lost[h] {
				lost[h] = true
				problems = append(problems, fmt.Sprintf("ha%d: %v accepted (id %#x) but missing", m.i+1, h, n.confirmed.ID))
			}
		}
		r.model.mu.Unlock()
		sort.Strings(keys)
		tables = append(tables, strings.Join(keys, "\n"))
	}
	for _, t := range tables[1:] {
		if t != tables[0] {
			res.Unequal = true
		}
	}
	if res.Unequal {
		problems = append(problems, "the members' live tables differ")
	}
	for i, n := range res.Evicted {
		if n != 0 {
			problems = append(problems, fmt.Sprintf("ha%d: %d tombstones evicted early (the bound is capacity + tombstone_capacity homes)", i+1, n))
		}
	}
	res.Resurrected, res.Lost = len(resurrected), len(lost)
	return res, problems
}

// consoleCounters returns the counter named name from a console answer
// (show stats: any section; show redundancy: its counters).
func consoleCounters(socket, cmd, name string) (uint64, error) {
	c, err := net.DialTimeout("unix", socket, 3*time.Second)
	if err != nil {
		return 0, fmt.Errorf("console %s: %w", socket, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	b, _ := json.Marshal(consoleRequest{Cmd: cmd})
	if _, err := c.Write(append(b, '\n')); err != nil {
		return 0, fmt.Errorf("console %s: %w", socket, err)
	}
	line, err := bufio.NewReaderSize(c, 1<<20).ReadBytes('\n')
	if err != nil {
		return 0, fmt.Errorf("console %s: reading: %w", socket, err)
	}
	type counter struct {
		Key   string `json:"key"`
		Name  string `json:"name"`
		Value uint64 `json:"value"`
	}
	var resp struct {
		Stats      map[string]json.RawMessage `json:"stats"`
		Redundancy *struct {
			Counters []struct {
				Key      string    `json:"key"`
				Counters []counter `json:"counters"`
			} `json:"counter_groups"`
		} `json:"redundancy"`
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		return 0, fmt.Errorf("console %s: bad answer: %w", socket, err)
	}
	var all []counter
	for _, raw := range resp.Stats {
		var cs []counter
		if json.Unmarshal(raw, &cs) == nil { // the sections; uptime and notes are not counters
			all = append(all, cs...)
		}
	}
	if resp.Redundancy != nil { // grouped: named by the dotted key, "records.refused_not_admitted"
		for _, g := range resp.Redundancy.Counters {
			for _, c := range g.Counters {
				all = append(all, counter{Name: g.Key + "." + c.Key, Value: c.Value})
			}
		}
	}
	for _, x := range all {
		if x.Name == name {
			return x.Value, nil
		}
	}
	return 0, fmt.Errorf("console %s: %s has no counter %q", socket, cmd, name)
}
