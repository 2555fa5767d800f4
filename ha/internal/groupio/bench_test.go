//go:build linux

package groupio

import (
	"testing"
)

// BenchmarkRoundTrip is a ping-pong between two Conns on loopback: a
// SendTo, the peer's Read and SendTo back (in its own goroutine, as the
// agent's reader and owner are), and the Read of the answer. The metric
// rtt/s is round trips per second.
func BenchmarkRoundTrip(bm *testing.B) {
	for _, size := range []int{68, 1472} { // a Binding Update; a full Table Reply
		bm.Run(sizeName(size), func(bm *testing.B) {
			a, b := pair(bm)
			go func() {
				buf := make([]byte, 2048)
				for {
					n, src, _, err := b.Read(buf)
					if err != nil {
						return
					}
					if b.SendTo(buf[:n], src) != nil {
						return
					}
				}
			}()
			pkt := make([]byte, size)
			buf := make([]byte, 2048)
			to := b.Local()
			bm.SetBytes(int64(2 * size))
			bm.ReportAllocs()
			bm.ResetTimer()
			for bm.Loop() {
				if err := a.SendTo(pkt, to); err != nil {
					bm.Fatal(err)
				}
				if _, _, _, err := a.Read(buf); err != nil {
					bm.Fatal(err)
				}
			}
			bm.ReportMetric(float64(bm.N)/bm.Elapsed().Seconds(), "rtt/s")
		})
	}
}

// BenchmarkSendRead is one SendTo and one Read in the same goroutine: the
// cost of the two syscalls and their bookkeeping, without scheduling.
func BenchmarkSendRead(bm *testing.B) {
	a, b := pair(bm)
	pkt := make([]byte, 68)
	buf := make([]byte, 2048)
	to := b.Local()
	bm.ReportAllocs()
	for bm.Loop() {
		if err := a.SendTo(pkt, to); err != nil {
			bm.Fatal(err)
		}
		if _, _, _, err := b.Read(buf); err != nil {
			bm.Fatal(err)
		}
	}
}

func sizeName(n int) string {
	if n == 68 {
		return "update68"
	}
	return "mtu1472"
}
