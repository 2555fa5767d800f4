package deadline

import (
	"testing"
	"time"
)

func TestWallStep(t *testing.T) {
	const s = int64(time.Second)
	base := int64(1_800_000_000) * s
	steps := []struct {
		name       string
		wall, mono int64
		want       bool
	}{
		{"first read", base, 5 * s, true},
		{"both clocks moved alike", base + s, 6 * s, true},
		{"slewed 3 ms in 1 s", base + 2*s + 3e6, 7 * s, true},
		{"stepped 2 s forward", base + 5*s, 8 * s, false},
		{"steady after the step", base + 6*s, 9 * s, true},
		{"stepped 1 s back", base + 6*s, 10 * s, false},
		{"steady again", base + 7*s, 11 * s, true},
		{"slewed 40 ms over 60 s", base + 67*s + 40e6, 71 * s, true},
		{"stepped 50 ms within 1 s", base + 68*s + 90e6, 72 * s, false},
	}
	var w WallStep
	for _, c := range steps {
		if got := w.Steady(c.wall, c.mono); got != c.want {
			t.Errorf("%s: Steady = %v, want %v", c.name, got, c.want)
		}
	}
}
