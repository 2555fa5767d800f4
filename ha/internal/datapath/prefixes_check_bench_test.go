//go:build linux

package datapath

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkNetnsPeriodicCheckPrefixes400k: the periodic check over 400,000
// mobile networks' routes with nothing to repair, as the agent runs it:
// read-ms, the kernel read (ScanKernel, off the owner loop); slice-max-ms and slice-mean-ms, the
// longest and mean ConvergePrefixes of 6,554 networks (the networks of one
// owner-loop slice: 8,192 units, a router with 4 networks counting 5);
// finish-ms, FinishPrefixes. Root; a namespace of its
// own.
func BenchmarkNetnsPeriodicCheckPrefixes400k(b *testing.B) {
	const n, slice = benchRouters * benchPrefixes, 8192 * benchPrefixes / (1 + benchPrefixes)
	nets := benchNets(n)
	k := benchPrefixKernel(b)
	if errs := k.ApplyPrefixes(nets, nil); errs != nil {
		b.Fatal(firstErr(errs))
	}
	var read, longest, finish, all time.Duration
	nslices := 0
	b.ResetTimer()
	for range b.N {
		s := k.BeginScan()
		k.ScanKernel(s)
		read += s.Took()
		if err := k.ConvergeStart(s); err != nil {
			b.Fatal(err)
		}
		if err := k.ConvergeSome(s, slices.Values([]Binding(nil))); err != nil {
			b.Fatal(err)
		}
		for lo := 0; lo < n; lo += slice {
			start := time.Now()
			if err := k.ConvergePrefixes(s, nets[lo:min(lo+slice, n)]); err != nil {
				b.Fatal(err)
			}
			longest = max(longest, time.Since(start))
			all += time.Since(start)
			nslices++
		}
		start := time.Now()
		a, r, err := k.FinishPrefixes(s)
		finish += time.Since(start)
		if err != nil || a+r != 0 {
			b.Fatalf("FinishPrefixes on an unchanged table: +%d -%d %v", a, r, err)
		}
		if _, _, err := k.ConvergeFinish(s); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(per(read), "read-ms")
	b.ReportMetric(float64(longest.Microseconds())/1000, "slice-max-ms")
	b.ReportMetric(float64(all.Microseconds())/1000/float64(nslices), "slice-mean-ms")
	b.ReportMetric(per(finish), "finish-ms")
}
