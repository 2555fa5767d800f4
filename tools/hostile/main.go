// Command hostile sends hostile input to a Home Agent, at a bounded rate for
// a bounded time, and reports what it sent per mode:
//
//	hostile -target 10.77.0.1 -duration 20s -rate 2000 -seed 1 [-modes udp434,group,vrrp,flood]
//
// Modes: udp434 (mutated and random registration datagrams seeded from
// ha/mip's goldens and any -corpus), group (group-protocol messages with a
// wrong or unknown key, IP TTL 1, replays of one valid message when -group-key
// is given, truncations, bit flips), vrrp (malformed VRRPv3 adverts to
// 224.0.0.18 over a raw socket: wrong checksum, TTL, VRID, version, …) and
// flood (well-formed registrations for unknown nodes and distinct home
// addresses; with -pool-key also correctly authenticated ones that fill the
// table).
//
// Safety: the target must be in 127.0.0.0/8 unless the tool runs inside a
// network namespace other than the host's (/proc/self/ns/net differs from
// /proc/1/ns/net); mode vrrp always needs such a namespace. Anything else is
// refused before a socket is opened.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hagent/hagent/tools/hostile/attack"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func parseKey(flagName, s string) ([]byte, error) {
	switch {
	case s == "":
		return nil, nil
	case strings.HasPrefix(s, "hex:"):
		b, err := hex.DecodeString(s[4:])
		if err != nil {
			return nil, fmt.Errorf("hostile: -%s: %v", flagName, err)
		}
		return b, nil
	case strings.HasPrefix(s, "text:"):
		return []byte(s[5:]), nil
	}
	return []byte(s), nil
}

// readCorpus reads Go fuzz corpus files (`go test fuzz v1` then one
// []byte("...") line) from dir; a missing dir is no error.
func readCorpus(dir string) ([][]byte, error) {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hostile: -corpus %s: %w", dir, err)
	}
	var out [][]byte
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("hostile: -corpus: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if v, ok := strings.CutPrefix(line, "[]byte("); ok {
				s, err := strconv.Unquote(strings.TrimSuffix(v, ")"))
				if err == nil && len(s) > 0 {
					out = append(out, []byte(s))
				}
			}
		}
	}
	return out, nil
}

func run(args []string) int {
	fs := flag.NewFlagSet("hostile", flag.ContinueOnError)
	target := fs.String("target", "", "the agent's address (127.0.0.0/8, or any inside a lab network namespace)")
	duration := fs.Duration("duration", 10*time.Second, "how long to send")
	rate := fs.Int("rate", 1000, "datagrams per second, all modes together")
	seed := fs.Uint64("seed", 1, "random seed (a run is reproducible from it)")
	modes := fs.String("modes", "udp434,group,vrrp,flood", "comma-separated: udp434, group, vrrp, flood")
	port := fs.Uint("port", 434, "registration port")
	gport := fs.Uint("group-port", 4343, "group protocol port (config group.port)")
	gkey := fs.String("group-key", "", "group key (text:… or hex:…) to build the replayed valid message; empty: no replay")
	gkeyID := fs.Uint("group-key-id", 1, "group key id (config group.key_id)")
	vrid := fs.Uint("vrid", 1, "the agent's VRID (so the other defects are the only ones)")
	vip := fs.String("vip", "", "the agent's virtual address (default: -target)")
	iface := fs.String("iface", "", "interface for VRRP multicast (default: the one on the target's subnet)")
	poolBase := fs.String("pool-base", "", "first home address of a pool configured on the agent (flood)")
	poolN := fs.Int("pool-n", 0, "addresses in that pool")
	poolSPI := fs.Uint("pool-spi", 0, "the pool's SPI")
	poolKey := fs.String("pool-key", "", "the pool's key (text:… or hex:…): the flood then also sends correctly authenticated registrations")
	unknown := fs.String("unknown-base", "203.0.113.0", "first of the home addresses no node owns")
	corpus := fs.String("corpus", "", "comma-separated Go fuzz corpus dirs of registration requests to mutate too (e.g. ha/mip/testdata/fuzz/FuzzRequest)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	t, err := netip.ParseAddr(*target)
	if err != nil {
		return fail(fmt.Errorf("hostile: -target %q: %v (give the agent's IPv4 address)", *target, err))
	}
	ms, err := attack.ParseModes(*modes)
	if err != nil {
		return fail(err)
	}
	o := attack.Options{Target: t, Port: uint16(*port), GroupPort: uint16(*gport), Modes: ms, Duration: *duration,
		Rate: *rate, Seed: *seed, Iface: *iface}
	g := &o.Gen
	g.GroupKeyID, g.VRID, g.PoolN, g.PoolSPI = uint8(*gkeyID), uint8(*vrid), *poolN, uint32(*poolSPI)
	if g.GroupKey, err = parseKey("group-key", *gkey); err != nil {
		return fail(err)
	}
	if g.PoolKey, err = parseKey("pool-key", *poolKey); err != nil {
		return fail(err)
	}
	for _, a := range []struct {
		s   string
		dst *netip.Addr
		fl  string
	}{{*vip, &g.VIP, "vip"}, {*poolBase, &g.PoolBase, "pool-base"}, {*unknown, &g.UnknownBase, "unknown-base"}} {
		if a.s == "" {
			continue
		}
		if *a.dst, err = netip.ParseAddr(a.s); err != nil || !a.dst.Is4() {
			return fail(fmt.Errorf("hostile: -%s %q: not an IPv4 address", a.fl, a.s))
		}
	}
	if g.PoolKey != nil && (!g.PoolBase.IsValid() || g.PoolN <= 0 || g.PoolSPI == 0) {
		return fail(fmt.Errorf("hostile: -pool-key needs -pool-base, -pool-n and -pool-spi"))
	}
	for _, d := range strings.Split(*corpus, ",") {
		if d == "" {
			continue
		}
		s, err := readCorpus(d)
		if err != nil {
			return fail(err)
		}
		g.Seeds = append(g.Seeds, s...)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := attack.Run(ctx, o)
	if err != nil {
		return fail(err)
	}
	if *asJSON {
		b, _ := json.Marshal(rep)
		fmt.Println(string(b))
		return 0
	}
	fmt.Printf("hostile → %s  seed %d  rate %d/s  %s  sent %d  (%s)\n", rep.Target, rep.Seed, rep.Rate, rep.Elapsed, rep.TotalOut, rep.NetNS)
	for _, m := range ms.List() {
		mr := rep.Modes[m.String()]
		fmt.Printf("%-7s sent %d (%d bytes, %d send errors)  %s", m, mr.Sent, mr.Bytes, mr.SendErrors, kv(mr.Kinds))
		if m == attack.ModeUDP434 || m == attack.ModeFlood {
			fmt.Printf("  replies %d by code: %s", mr.Replies, kv(mr.ReplyCodes))
		}
		fmt.Println()
	}
	return 0
}

func kv(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}
