//go:build linux

package datapath

import (
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"
)

// The reverse check's prefix trie against its home hash map, at the issue's
// scale: 100,000 routers × 4 prefixes (/24s) in the trie, 100,000 homes in
// the hash. Lookups go through bpf(2) from user space, so each figure is the
// map's lookup plus the same syscall overhead: the difference between the
// two is what the trie adds to a packet from a mobile network (a home
// address's packet never reaches the trie). Root (bpf), no namespace.

const benchRouters, benchPrefixes = 100_000, 4

func benchRevFilter(b *testing.B) *revFilter {
	requireRoot(b)
	f, err := newRevFilter(benchRouters)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(f.close)
	return f
}

func benchPrefix(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(20 + i>>16), byte(i >> 8), byte(i), 0}), 24)
}

// BenchmarkRevPrefixPut: one prefix → care-of update of the trie, filled to
// 400,000 prefixes.
func BenchmarkRevPrefixPut(b *testing.B) {
	f := benchRevFilter(b)
	coa := netip.MustParseAddr("192.0.2.1")
	const n = benchRouters * benchPrefixes
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if err := f.putPrefix(benchPrefix(i%n), coa); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRevLookup compares a lookup of an inner source in the full trie
// (longest match) with one in the full home hash.
func BenchmarkRevLookup(b *testing.B) {
	f := benchRevFilter(b)
	coa := netip.MustParseAddr("192.0.2.1")
	for i := range benchRouters * benchPrefixes {
		if err := f.putPrefix(benchPrefix(i), coa); err != nil {
			b.Fatal(err)
		}
	}
	for i := range benchRouters {
		if err := f.put(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), coa); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("trie", func(b *testing.B) {
		var key [lpmKeyLen]byte
		for i := range b.N {
			p := benchPrefix(i % (benchRouters * benchPrefixes))
			lpmKey(&key, netip.PrefixFrom(p.Addr().Next(), 32))
			if err := f.attr.op(bpfMapLookup, f.nets, key[:], f.val[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hash", func(b *testing.B) {
		var key [4]byte
		for i := range b.N {
			j := i % benchRouters
			key = [4]byte{10, byte(j >> 16), byte(j >> 8), byte(j)}
			if err := f.attr.op(bpfMapLookup, f.homes, key[:], f.val[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkNetnsInstallPrefixes400k: the scale, 100,000 mobile
// routers × 4 prefixes (/24s): 400,000 prefix routes and their reverse-check
// trie entries into an empty table in one ApplyPrefixes call (the
// benchmark's time; VXLAN stand-in for the tunnel device, see netns_test.go),
// then, each reported per round:
//   - trie-ms: the trie's share, the same 400,000 entries written again;
//   - reconcile-ms: ReconcilePrefixes with nothing to change (the dump, the
//     trie rewritten and read back);
//   - withdraw-ms: Withdraw, every route and trie entry removed;
//   - alloc-MB: what ApplyPrefixes allocated, go-heap-MB: what it retained
//     (the prefix → metric map), kernel-slab-MB: the kernel's share.
//
// docs/performance.md ("Mobile networks at scale") has figures and method.
func BenchmarkNetnsInstallPrefixes400k(b *testing.B) {
	const n = benchRouters * benchPrefixes
	nets := benchNets(n)
	var trie, reconcile, withdraw time.Duration
	var allocMB, heapMB, slabMB float64
	for range b.N {
		b.StopTimer()
		k := benchPrefixKernel(b)
		runtime.GC()
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		s0 := slabKB()
		b.StartTimer()
		if errs := k.ApplyPrefixes(nets, nil); errs != nil {
			b.Fatal(firstErr(errs))
		}
		b.StopTimer()
		slabMB += float64(slabKB()-s0) / 1024
		runtime.ReadMemStats(&m1)
		allocMB += float64(m1.TotalAlloc-m0.TotalAlloc) / (1 << 20)
		runtime.GC()
		runtime.ReadMemStats(&m1)
		heapMB += (float64(m1.HeapAlloc) - float64(m0.HeapAlloc)) / (1 << 20)
		if k.PrefixRoutes() != n {
			b.Fatalf("%d prefix routes, want %d", k.PrefixRoutes(), n)
		}
		start := time.Now()
		k.rev.putPrefixes(n, func(i int) (netip.Prefix, netip.Addr, bool) { return nets[i].Prefix, nets[i].CareOf, true },
			func(i int, err error) { b.Fatal(nets[i].Prefix, err) })
		trie += time.Since(start)
		start = time.Now()
		if a, r, err := k.ReconcilePrefixes(slices.Values(nets)); err != nil || a+r != 0 {
			b.Fatalf("ReconcilePrefixes on an unchanged table: added %d removed %d err %v", a, r, err)
		}
		reconcile += time.Since(start)
		start = time.Now()
		if err := k.Withdraw(); err != nil {
			b.Fatal(err)
		}
		withdraw += time.Since(start)
		b.StartTimer()
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N) }
	b.ReportMetric(per(trie), "trie-ms")
	b.ReportMetric(per(reconcile), "reconcile-ms")
	b.ReportMetric(per(withdraw), "withdraw-ms")
	b.ReportMetric(allocMB/float64(b.N), "alloc-MB")
	b.ReportMetric(heapMB/float64(b.N), "go-heap-MB")
	b.ReportMetric(slabMB/float64(b.N), "kernel-slab-MB")
}

// benchNets is n mobile networks, four /24s per care-of address.
func benchNets(n int) []MobileNet {
	nets := make([]MobileNet, n)
	for i := range nets {
		nets[i] = MobileNet{Prefix: benchPrefix(i), CareOf: netip.AddrFrom4([4]byte{192, 0, 2 + byte(i>>18), byte(i >> 10)}), Encap: IPIP}
	}
	return nets
}

// benchPrefixKernel is a datapath in a namespace of its own with the
// reverse check on, sized for the benchmark's routers; a VXLAN device in
// external mode stands in for the tunnel.
func benchPrefixKernel(b *testing.B) *kernel {
	ns := newNetns(b)
	ns.ip(b, "link", "add", "vx0", "type", "vxlan", "external", "dstport", "4789")
	ns.ip(b, "link", "set", "vx0", "up")
	dp, err := Open(Config{HomeIfname: "home0", TunnelName: "vx0", Protocol: 77,
		Local: netip.MustParseAddr("10.0.0.1"), NetNS: ns.fd, anyTunnel: true,
		ReverseCheck: true, Capacity: benchRouters})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dp.Close() })
	if err := dp.Setup(); err != nil {
		b.Fatal(err)
	}
	return dp.(*kernel)
}
