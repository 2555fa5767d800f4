package binding

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestDeadlineBound: never later than the exact deadline, exact again after
// an Expire, whatever mix of inserts, renewals, deletes and tombstones.
func TestDeadlineBound(t *testing.T) {
	const sec = int64(time.Second)
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		tb := New(256, 64)
		now := int64(1000) * sec
		for step := 0; step < 3000; step++ {
			home := uint32(rng.IntN(300) + 1)
			switch rng.IntN(10) {
			case 0, 1, 2, 3, 4:
				lt := int64(rng.IntN(120)+1) * sec
				_, _ = tb.Put(Entry{Home: home, ID: uint64(step), Expires: now + lt, Registered: now})
			case 5:
				tb.Delete(home)
			case 6:
				tb.Tombstone(home, uint64(step), 1, now+int64(rng.IntN(60)+1)*sec)
			case 7:
				now += int64(rng.IntN(5000)) * int64(time.Millisecond)
				tb.Expire(now, nil)
				b, okB := tb.DeadlineBound()
				d, okD := tb.NextDeadline()
				if okB != okD || b != d {
					t.Fatalf("seed %d step %d: after Expire bound %d %v, exact %d %v", seed, step, b, okB, d, okD)
				}
			default:
				now += int64(rng.IntN(200)) * int64(time.Millisecond)
			}
			b, okB := tb.DeadlineBound()
			d, okD := tb.NextDeadline()
			if okB != okD || (okB && b > d) {
				t.Fatalf("seed %d step %d: bound %d %v later than exact %d %v", seed, step, b, okB, d, okD)
			}
		}
	}
}

// BenchmarkRenewalStormDeadline: a fleet registered in the same second
// renews its earliest member over and over; the owner loop asks for its
// next deadline after each. DeadlineBound must stay O(1).
func BenchmarkRenewalStormDeadline(b *testing.B) {
	for _, name := range []string{"NextDeadline", "DeadlineBound"} {
		b.Run(name, func(b *testing.B) {
			const n = 10000
			tb := New(n, 64)
			now := int64(time.Hour)
			for i := 1; i <= n; i++ {
				_, _ = tb.Put(Entry{Home: uint32(i), Expires: now + 600*int64(time.Second) + int64(i), Registered: now})
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h := uint32(i%n + 1)
				_, _ = tb.Put(Entry{Home: h, Expires: now + 601*int64(time.Second) + int64(i), Registered: now})
				if name == "NextDeadline" {
					tb.NextDeadline()
				} else {
					tb.DeadlineBound()
				}
			}
		})
	}
}
