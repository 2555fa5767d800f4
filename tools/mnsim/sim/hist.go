package sim

import (
	"math/bits"
	"time"
)

// hist is a log-linear latency histogram: values below 2^subBits
// nanoseconds are exact, larger ones fall into buckets 1/2^subBits of their
// power of two wide (≤ 3.2 % relative error). Recording allocates nothing.
type hist struct {
	counts [64 << subBits]uint64
	total  uint64
	max    int64
}

const subBits = 5

func bucketOf(v int64) int {
	if v < 1<<subBits {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - subBits - 1 // shift that leaves subBits+1 bits
	return (e+1)<<subBits | int(uint64(v)>>e)&(1<<subBits-1)
}

// lowOf is the smallest value in bucket i.
func lowOf(i int) int64 {
	if i < 1<<subBits {
		return int64(i)
	}
	e := i>>subBits - 1
	return (int64(1)<<subBits | int64(i&(1<<subBits-1))) << e
}

func (h *hist) record(d int64) {
	h.counts[bucketOf(d)]++
	h.total++
	if d > h.max {
		h.max = d
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// quantile returns the upper edge of the bucket holding quantile q (0..1),
// capped at the exact maximum.
func (h *hist) quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(q*float64(h.total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			hi := lowOf(i+1) - 1
			return time.Duration(min(hi, h.max))
		}
	}
	return time.Duration(h.max)
}
