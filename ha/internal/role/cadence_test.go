package role

import (
	"testing"
	"time"
)

func TestNextPeriodic(t *testing.T) {
	const ms = time.Millisecond
	for _, c := range []struct {
		prev, now, want time.Duration
	}{
		{100 * ms, 100 * ms, 200 * ms},     // on time
		{100 * ms, 103 * ms, 200 * ms},     // late by the wake-up latency: on the grid
		{100 * ms, 150 * ms, 200 * ms},     // late by half an interval: still on it
		{100 * ms, 150*ms + 1, 250*ms + 1}, // later: a whole interval from now
		{100 * ms, 370 * ms, 470 * ms},     // a stall of several intervals: one, not a burst
		{100 * ms, 99 * ms, 200 * ms},      // early (cannot happen): on the grid
	} {
		if got := NextPeriodic(c.prev, c.now, 100*ms); got != c.want {
			t.Errorf("NextPeriodic(%v, %v, 100ms) = %v, want %v", c.prev, c.now, got, c.want)
		}
	}
}
