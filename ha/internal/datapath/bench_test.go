//go:build linux

package datapath

// Benchmarks against the host kernel in a throw-away namespace (root).
// Run: go test -run '^$' -bench Netns -benchtime 3x ./ha/internal/datapath/
// docs/datapath.md records the figures and what exactly they measure.

import (
	"net/netip"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func bindings(n int, careOfSalt byte) []Binding {
	bs := make([]Binding, n)
	for i := range bs {
		bs[i] = bindingN(i)
		c := bs[i].CareOf.As4()
		c[3] ^= careOfSalt
		bs[i].CareOf = netip.AddrFrom4(c)
	}
	return bs
}

func slabKB() int {
	f := strings.Fields(slab())
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.Atoi(f[0])
	return v
}

// BenchmarkNetnsInstall100k: 100,000 bindings' routes into an empty
// table, one Apply call, proxy ARP by route (ProxyByRoute: proxy_arp on the
// home interface, no per-node entries). With one NTF_PROXY entry per node
// the same takes 25 s (the kernel's 16-bucket proxy hash); see
// BenchmarkNetnsInstall20k for that mode's curve.
func BenchmarkNetnsInstall100k(b *testing.B) {
	benchInstall(b, 100_000, proxyByRoute)
}

// BenchmarkNetnsTakeover10k: what a takeover does: 10,000 bindings
// (routes + one proxy entry each) into an empty table.
func BenchmarkNetnsTakeover10k(b *testing.B) {
	benchInstall(b, 10_000, proxyEntries)
}

const (
	proxyNone = iota
	proxyEntries
	proxyByRoute
)

// BenchmarkNetnsTakeover10kReverseCheck: Takeover10k with the reverse-tunnel
// check on (10,000 map updates on top; the default configuration).
func BenchmarkNetnsTakeover10kReverseCheck(b *testing.B) {
	benchInstallRev(b, 10_000, proxyEntries, true)
}

func benchInstall(b *testing.B, n int, mode int) { benchInstallRev(b, n, mode, false) }

func benchInstallRev(b *testing.B, n int, mode int, rev bool) {
	ns := newNetns(b)
	k := ns.open(b, mode != proxyNone)
	k.cfg.ProxyByRoute = mode == proxyByRoute
	if rev {
		k.cfg.ReverseCheck, k.cfg.Capacity = true, n
		if err := k.Setup(); err != nil {
			b.Fatal(err)
		}
	}
	bs := bindings(n, 0)
	var slabDelta, heapDelta int
	for i := range b.N {
		b.StopTimer()
		if err := k.Withdraw(); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		s0 := slabKB()
		b.StartTimer()
		if errs := k.Apply(bs, nil); errs != nil {
			b.Fatal(firstErr(errs))
		}
		b.StopTimer()
		if got := len(k.metrics); got != n {
			b.Fatalf("%d distinct routes installed, want %d (does the generator repeat homes?)", got, n)
		}
		slabDelta = slabKB() - s0
		if i == 0 { // later rounds reuse the cleared metric map
			runtime.GC()
			runtime.ReadMemStats(&m1)
			heapDelta = int(m1.HeapAlloc) - int(m0.HeapAlloc)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(slabDelta)/1024, "kernel-slab-MB")
	b.ReportMetric(float64(heapDelta)/(1<<20), "go-heap-MB")
	if err := k.Withdraw(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkNetnsReplace10k: 10,000 installed bindings all move to a new
// care-of address (route replace in place; the proxy entry is rewritten
// too), one Apply call.
func BenchmarkNetnsReplace10k(b *testing.B) {
	ns := newNetns(b)
	k := ns.open(b, true)
	if errs := k.Apply(bindings(10_000, 0), nil); errs != nil {
		b.Fatal(firstErr(errs))
	}
	sets := [2][]Binding{bindings(10_000, 1), bindings(10_000, 2)}
	b.ResetTimer()
	for i := range b.N {
		if errs := k.Apply(sets[i%2], nil); errs != nil {
			b.Fatal(firstErr(errs))
		}
	}
}

// BenchmarkNetnsReconcile100k: Reconcile with 100,000 bindings installed
// and nothing to change (the periodic check's cost: two dumps + diff).
func BenchmarkNetnsReconcile100k(b *testing.B) {
	ns := newNetns(b)
	k := ns.open(b, true)
	k.cfg.ProxyByRoute = true
	bs := bindings(100_000, 0)
	if errs := k.Apply(bs, nil); errs != nil {
		b.Fatal(firstErr(errs))
	}
	b.ResetTimer()
	for range b.N {
		a, r, err := k.Reconcile(slices.Values(bs))
		if err != nil || a != 0 || r != 0 {
			b.Fatal(a, r, err)
		}
	}
	b.StopTimer()
	start := time.Now()
	if err := k.Withdraw(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds()), "withdraw-100k-ms")
}

// BenchmarkNetnsReconcile100kReverseCheck: the periodic reconcile of the
// default config at 100,000 bindings: two dumps, the reverse-tunnel map
// read back in batches, nothing to change.
func BenchmarkNetnsReconcile100kReverseCheck(b *testing.B) {
	ns := newNetns(b)
	k := ns.openReverse(b, 100_000)
	bs := bindings(100_000, 0)
	if a, _, err := k.Reconcile(slices.Values(bs)); err != nil || a != 200_000 {
		b.Fatal(a, err)
	}
	b.ResetTimer()
	for range b.N {
		a, r, err := k.Reconcile(slices.Values(bs))
		if err != nil || a != 0 || r != 0 {
			b.Fatal(a, r, err)
		}
	}
}

// BenchmarkNetnsPeriodicScan100k: the periodic check as the agent runs
// it at 100,000 bindings with the reverse check: ScanKernel (off the owner
// loop) reported as read-ms, the whole convergence on it as the
// benchmark's time (the agent spreads it over slices of 8,192 bindings),
// its finish, the one step that is not sliced, as finish-ms.
func BenchmarkNetnsPeriodicScan100k(b *testing.B) {
	ns := newNetns(b)
	k := ns.openReverse(b, 100_000)
	bs := bindings(100_000, 0)
	if _, _, err := k.Reconcile(slices.Values(bs)); err != nil {
		b.Fatal(err)
	}
	var read, finish time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		s := k.BeginScan()
		k.ScanKernel(s)
		read += s.Took()
		b.StartTimer()
		if err := k.ConvergeStart(s); err != nil {
			b.Fatal(err)
		}
		if err := k.ConvergeSome(s, slices.Values(bs)); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		a, r, err := k.ConvergeFinish(s)
		finish += time.Since(t0)
		if err != nil || a != 0 || r != 0 {
			b.Fatal(a, r, err)
		}
	}
	b.ReportMetric(float64(read.Milliseconds())/float64(b.N), "read-ms")
	b.ReportMetric(float64(finish.Microseconds())/1000/float64(b.N), "finish-ms")
}

func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// BenchmarkNetnsInstall20k: 20,000 bindings with one proxy entry each, to
// show how the proxy table's cost grows (10k: see Takeover10k).
func BenchmarkNetnsInstall20k(b *testing.B) {
	benchInstall(b, 20_000, proxyEntries)
}

// BenchmarkNetnsInstall100kReverseCheck: Install100k with the reverse-tunnel
// check on (one bpf(2) map update per binding after the routes).
func BenchmarkNetnsInstall100kReverseCheck(b *testing.B) {
	ns := newNetns(b)
	k := ns.openReverse(b, 100_000)
	bs := bindings(100_000, 0)
	var mapTime time.Duration
	for range b.N {
		b.StopTimer()
		if err := k.Withdraw(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if errs := k.Apply(bs, nil); errs != nil {
			b.Fatal(firstErr(errs))
		}
		b.StopTimer()
		// The map's share: the same puts again (replace in place).
		start := time.Now()
		for i := range bs {
			if err := k.rev.put(bs[i].Home, bs[i].CareOf); err != nil {
				b.Fatal(err)
			}
		}
		mapTime = time.Since(start)
		b.StartTimer()
	}
	b.ReportMetric(float64(mapTime.Milliseconds()), "map-puts-ms")
}

// BenchmarkRevMapPut: one home → care-of update of the reverse-tunnel map
// (a bpf(2) call; no namespace needed, root for bpf).
func BenchmarkRevMapPut(b *testing.B) {
	requireRoot(b)
	f, err := newRevFilter(1 << 16)
	if err != nil {
		b.Fatal(err)
	}
	defer f.close()
	bs := bindings(1<<16, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		x := &bs[i&(1<<16-1)]
		if err := f.put(x.Home, x.CareOf); err != nil {
			b.Fatal(err)
		}
	}
}
