//go:build linux

package datapath

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Tables larger than one chunk of ApplyPrefixes (prefixChunk) and one batch
// of the trie (lpmBatchLen), on the host kernel: every route carries our
// protocol and a metric of its own, the trie holds exactly the routed
// prefixes, ReconcilePrefixes finds every kind of drift, removal in any
// order and Withdraw leave nothing.
func TestNetnsPrefixesAcrossChunks(t *testing.T) {
	n := newNetns(t)
	k := vxlanDatapath(t, n, 1024).(*kernel)
	const count = 3*prefixChunk + 5
	nets := benchNets(count)
	if errs := k.ApplyPrefixes(nets, nil); errs != nil {
		t.Fatal(firstErr(errs))
	}
	checkPrefixTable(t, n, k, nets)

	// Drift: three routes gone, one moved to another care-of behind our
	// back, a stray one of ours; a trie entry lost, a stray one.
	for _, i := range []int{0, prefixChunk, count - 1} {
		n.ip(t, "route", "del", nets[i].Prefix.String(), "proto", "77", "metric", fmt.Sprint(k.prefixes.metrics[pfxOf(nets[i].Prefix)]))
	}
	moved := nets[7]
	n.ip(t, "route", "replace", moved.Prefix.String(), "proto", "77", "metric", fmt.Sprint(k.prefixes.metrics[pfxOf(moved.Prefix)]),
		"encap", "ip", "dst", "198.51.100.1", "dev", "vx0")
	n.ip(t, "route", "add", "10.250.0.0/16", "proto", "77", "metric", fmt.Sprint(PrefixMetricBase+count+100),
		"encap", "ip", "dst", "198.51.100.2", "dev", "vx0")
	if err := k.rev.delPrefix(nets[9].Prefix); err != nil {
		t.Fatal(err)
	}
	if err := k.rev.putPrefix(netip.MustParsePrefix("10.251.0.0/16"), netip.MustParseAddr("198.51.100.3")); err != nil {
		t.Fatal(err)
	}
	added, removed, err := k.ReconcilePrefixes(slices.Values(nets))
	if err != nil || added != 4 || removed != 1 {
		t.Fatalf("ReconcilePrefixes: added %d removed %d err %v, want 4 1 nil", added, removed, err)
	}
	checkPrefixTable(t, n, k, nets)

	// Removal of most, in a shuffled order, with one never installed.
	order := rand.Perm(count)
	var dels []netip.Prefix
	for _, i := range order[:count-10] {
		dels = append(dels, nets[i].Prefix)
	}
	dels = append(dels, netip.MustParsePrefix("10.252.0.0/16"))
	if errs := k.ApplyPrefixes(nil, dels); errs != nil {
		t.Fatal(firstErr(errs))
	}
	var left []MobileNet
	for _, i := range order[count-10:] {
		left = append(left, nets[i])
	}
	checkPrefixTable(t, n, k, left)

	if err := k.Withdraw(); err != nil {
		t.Fatal(err)
	}
	checkPrefixTable(t, n, k, nil)
}

// checkPrefixTable: the namespace's protocol 77 routes are exactly want's,
// through vx0 to their care-of addresses, each with a distinct metric in
// the prefix range; the trie holds exactly want's prefixes.
func checkPrefixTable(t *testing.T, n *netns, k *kernel, want []MobileNet) {
	t.Helper()
	byPrefix := make(map[string]string, len(want))
	for _, m := range want {
		byPrefix[m.Prefix.String()] = m.CareOf.String()
	}
	metrics := make(map[string]bool)
	out := strings.TrimSpace(n.ip(t, "-4", "route", "show", "proto", "77"))
	var lines []string
	if out != "" {
		lines = strings.Split(out, "\n")
	}
	if len(lines) != len(want) {
		t.Fatalf("%d routes of protocol 77, want %d", len(lines), len(want))
	}
	for _, l := range lines {
		f := strings.Fields(l)
		dst := f[0]
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		coa, ok := byPrefix[dst]
		if !ok {
			t.Fatalf("route %q: not wanted", l)
		}
		if !strings.Contains(l, " dst "+coa+" ") || !strings.Contains(l, " dev vx0 ") {
			t.Fatalf("route %q: want encap dst %s dev vx0", l, coa)
		}
		m := f[slices.Index(f, "metric")+1]
		var v uint32
		if _, err := fmt.Sscan(m, &v); err != nil || v < PrefixMetricBase {
			t.Fatalf("route %q: metric %s outside the prefix range", l, m)
		}
		if metrics[m] {
			t.Fatalf("route %q: metric %s used twice", l, m)
		}
		metrics[m] = true
	}
	if k.PrefixRoutes() != len(want) {
		t.Fatalf("PrefixRoutes %d, want %d", k.PrefixRoutes(), len(want))
	}
	trie, err := k.rev.listPrefixes()
	if err != nil {
		t.Fatal(err)
	}
	if len(trie) != len(want) {
		t.Fatalf("%d trie entries, want %d", len(trie), len(want))
	}
	for _, p := range trie {
		if _, ok := byPrefix[p.String()]; !ok {
			t.Fatalf("trie entry %v: not wanted", p)
		}
	}
}

// The trie's batches: a batch the kernel stops at a refused entry (the trie
// full) fails exactly the refused ones and keeps the rest; removals pass
// over absent prefixes; the one-call-each path of older kernels does the
// same. Root (bpf), no namespace.
func TestRevPrefixBatches(t *testing.T) {
	requireRoot(t)
	for _, oneByOne := range []bool{false, true} {
		t.Run(fmt.Sprint("oneByOne=", oneByOne), func(t *testing.T) {
			f, err := newRevFilter(lpmBatchLen / lpmPerBinding) // room for one batch
			if err != nil {
				t.Fatal(err)
			}
			defer f.close()
			f.pb.init()
			f.pb.off = oneByOne
			const n = lpmBatchLen + 300
			coa := netip.MustParseAddr("192.0.2.1")
			var refused []int
			f.putPrefixes(n, func(i int) (netip.Prefix, netip.Addr, bool) { return benchPrefix(i), coa, i%3 != 1 },
				func(i int, err error) {
					if !errors.Is(err, unix.ENOSPC) && !errors.Is(err, unix.E2BIG) || !strings.Contains(err.Error(), "full") {
						t.Fatalf("entry %d: %v, want the map full", i, err)
					}
					refused = append(refused, i)
				})
			var in, wantRefused []int
			for i := range n {
				if i%3 == 1 {
					continue
				}
				if len(in) < lpmBatchLen {
					in = append(in, i)
				} else {
					wantRefused = append(wantRefused, i)
				}
			}
			if !slices.Equal(refused, wantRefused) {
				t.Fatalf("refused %v, want %v", refused, wantRefused)
			}
			have, err := f.listPrefixes()
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, p := range have {
				a := p.Addr().As4()
				got = append(got, int(a[0]-20)<<16|int(a[1])<<8|int(a[2]))
			}
			slices.Sort(got)
			if !slices.Equal(got, in) {
				t.Fatalf("trie holds %d entries, want %d (first %v, want %v)", len(got), len(in), got[:min(5, len(got))], in[:5])
			}
			f.delPrefixes(n, func(i int) (netip.Prefix, bool) { return benchPrefix(i), true },
				func(i int, err error) { t.Fatalf("removing %d: %v", i, err) })
			if have, err := f.listPrefixes(); err != nil || len(have) != 0 {
				t.Fatalf("after removing all: %d left, err %v", len(have), err)
			}
		})
	}
}

// pfx keys tell apart prefixes that share an address, and give everything
// that is not a masked IPv4 prefix the one key no route has.
func TestPfxKey(t *testing.T) {
	seen := map[pfx]string{}
	for _, s := range []string{"0.0.0.0/0", "10.0.0.0/8", "10.0.0.0/16", "10.0.0.0/32", "10.0.0.1/32", "255.255.255.255/32"} {
		k := pfxOf(netip.MustParsePrefix(s))
		if k == badPfx || seen[k] != "" {
			t.Fatalf("%s: key %#x (also %q)", s, k, seen[k])
		}
		seen[k] = s
	}
	for _, p := range []netip.Prefix{{}, netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("2001:db8::/32")} {
		if k := pfxOf(p); k != badPfx {
			t.Fatalf("%v: key %#x, want badPfx", p, k)
		}
	}
}

// A mobile router's re-registration (its prefixes moved to a new care-of),
// de-registration and registration allocate nothing once the state has
// grown, reverse check on, on a real kernel: ApplyPrefixes is on the
// registration path like Apply.
func TestNetnsApplyPrefixesAllocatesNothing(t *testing.T) {
	n := newNetns(t)
	k := vxlanDatapath(t, n, 1024).(*kernel)
	if k.raw == nil {
		t.Fatal("the kernel datapath has no raw socket: the batch path under test is not in use")
	}
	nets := benchNets(8)
	moved := benchNets(8)
	for i := range moved {
		moved[i].CareOf = netip.MustParseAddr("198.51.100.9")
	}
	sets := [2][]MobileNet{nets[:4], moved[:4]}
	if errs := k.ApplyPrefixes(nets, nil); errs != nil {
		t.Fatal(firstErr(errs))
	}
	i := 0
	if a := testing.AllocsPerRun(200, func() {
		i++
		if errs := k.ApplyPrefixes(sets[i%2], nil); errs != nil {
			t.Fatal(firstErr(errs))
		}
	}); a != 0 {
		t.Errorf("a re-registration's ApplyPrefixes: %v allocations, want 0", a)
	}
	dels := []netip.Prefix{nets[4].Prefix, nets[5].Prefix, nets[6].Prefix, nets[7].Prefix}
	if a := testing.AllocsPerRun(200, func() {
		if errs := k.ApplyPrefixes(nil, dels); errs != nil {
			t.Fatal(firstErr(errs))
		}
		if errs := k.ApplyPrefixes(nets[4:], nil); errs != nil {
			t.Fatal(firstErr(errs))
		}
	}); a != 0 {
		t.Errorf("a de-registration and a registration: %v allocations, want 0", a)
	}
	checkPrefixTable(t, n, k, append(slices.Clone(sets[i%2]), nets[4:]...))
}
