//go:build linux

package datapath

import (
	"net/netip"
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
// routers × 4 prefixes (/24s): 400,000 prefix routes into an empty table in
// one ApplyPrefixes call, with the reverse check's trie (VXLAN stand-in for
// the tunnel device), then their removal by Withdraw.
func BenchmarkNetnsInstallPrefixes400k(b *testing.B) {
	const n = benchRouters * benchPrefixes
	nets := make([]MobileNet, n)
	for i := range nets {
		nets[i] = MobileNet{Prefix: benchPrefix(i), CareOf: netip.AddrFrom4([4]byte{192, 0, 2 + byte(i>>18), byte(i >> 10)}), Encap: IPIP}
	}
	var withdraw time.Duration
	for range b.N {
		b.StopTimer()
		ns := newNetns(b)
		ns.ip(b, "link", "add", "vx0", "type", "vxlan", "external", "dstport", "4789")
		ns.ip(b, "link", "set", "vx0", "up")
		dp, err := Open(Config{HomeIfname: "home0", TunnelName: "vx0", Protocol: 77,
			Local: netip.MustParseAddr("10.0.0.1"), NetNS: ns.fd, anyTunnel: true,
			ReverseCheck: true, Capacity: benchRouters})
		if err != nil {
			b.Fatal(err)
		}
		if err := dp.Setup(); err != nil {
			b.Fatal(err)
		}
		k := dp.(*kernel)
		b.StartTimer()
		if errs := k.ApplyPrefixes(nets, nil); errs != nil {
			b.Fatal(errs[0])
		}
		b.StopTimer()
		if k.PrefixRoutes() != n {
			b.Fatalf("%d prefix routes, want %d", k.PrefixRoutes(), n)
		}
		start := time.Now()
		if err := dp.Withdraw(); err != nil {
			b.Fatal(err)
		}
		withdraw += time.Since(start)
		dp.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(withdraw.Milliseconds())/float64(b.N), "withdraw-ms")
}
