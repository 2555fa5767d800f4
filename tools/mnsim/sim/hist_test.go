package sim

import (
	"testing"
	"time"
)

func TestHist(t *testing.T) {
	for _, v := range []int64{0, 1, 31, 32, 33, 63, 64, 1000, 123456789, 1 << 40} {
		i := bucketOf(v)
		if lo, hi := lowOf(i), lowOf(i+1); v < lo || v >= hi {
			t.Errorf("%d in bucket %d [%d,%d)", v, i, lo, hi)
		}
	}
	var h hist
	for i := int64(1); i <= 1000; i++ {
		h.record(i * int64(time.Microsecond))
	}
	for q, want := range map[float64]time.Duration{0.5: 500 * time.Microsecond, 0.99: 990 * time.Microsecond, 1: time.Millisecond} {
		got := h.quantile(q)
		if got < want || float64(got) > float64(want)*1.04 {
			t.Errorf("q%v = %v, want ≈ %v", q, got, want)
		}
	}
	if h.quantile(1) != time.Millisecond {
		t.Errorf("max %v", h.quantile(1))
	}
}
