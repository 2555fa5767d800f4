package failover

import (
	"strings"
	"testing"
	"time"
)

func TestRankNearest(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3, 7, 6}
	for _, c := range []struct{ p, want float64 }{{0.5, 4}, {0.9, 7}, {1, 7}, {0.1, 1}} {
		if got := rank(xs, c.p); got != c.want {
			t.Errorf("rank(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if rank(nil, 0.5) != -1 {
		t.Error("rank of no samples must be -1")
	}
}

func TestSummariseCountsLossAndFailures(t *testing.T) {
	ts := []Trial{
		{Impl: "hagent", Interval: "100ms", Kind: Term, AnswerMS: 70, AddrMS: 60, Before: 5, After: 5, Actives: 1},
		{Impl: "hagent", Interval: "100ms", Kind: Term, AnswerMS: 90, AddrMS: 80, Before: 5, After: 4, Missing: []string{"x"}, Actives: 1},
		{Impl: "hagent", Interval: "100ms", Kind: Term, AnswerMS: -1, AddrMS: -1, Err: "no answer"},
	}
	s := Summarise(ts)
	if len(s) != 1 || s[0].Trials != 3 || s[0].OK != 1 || s[0].Lost != 1 || s[0].Median != 70 || s[0].Max != 90 {
		t.Fatalf("summary %+v", s)
	}
	var b strings.Builder
	(&Report{Summary: s, Trials: ts}).Table(&b)
	if !strings.Contains(b.String(), "1/3") || !strings.Contains(b.String(), "failed:") {
		t.Fatalf("table:\n%s", b.String())
	}
}

func TestConfigs(t *testing.T) {
	if c := HagentConfig(1, 100*time.Millisecond, "/tmp/s"); !strings.Contains(c, `advert_interval = "100ms"`) || !strings.Contains(c, "priority = 120") {
		t.Fatalf("hagent config:\n%s", c)
	}
	if c := KeepalivedConfig(0, time.Second); !strings.Contains(c, "advert_int 1\n") || !strings.Contains(c, "priority 130") {
		t.Fatalf("keepalived config:\n%s", c)
	}
	if c := KeepalivedConfig(0, 100*time.Millisecond); !strings.Contains(c, "advert_int 0.1\n") {
		t.Fatalf("keepalived config:\n%s", c)
	}
	if d := masterDown(100*time.Millisecond, 120); d != 353125*time.Microsecond {
		t.Fatalf("master down %v", d)
	}
}

func TestOverlap(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	w := &holdWatch{spans: make([][][2]time.Time, 3), open: make([]time.Time, 3)}
	w.spans[0] = [][2]time.Time{{at(0), at(100)}}
	w.spans[1] = [][2]time.Time{{at(80), at(200)}, {at(300), at(310)}}
	w.open[2] = at(305) // still holding
	for _, c := range []struct {
		from, to int
		members  []int
		want     time.Duration
	}{
		{0, 1000, []int{0, 1, 2}, 25 * time.Millisecond}, // 80-100 and 305-310
		{0, 1000, []int{1, 2}, 5 * time.Millisecond},
		{90, 1000, []int{0, 1}, 10 * time.Millisecond},
		{0, 1000, []int{2}, 0},
		{0, 306, []int{1, 2}, time.Millisecond},
	} {
		if got := w.overlap(at(c.from), at(c.to), c.members); got != c.want {
			t.Errorf("overlap [%d,%d] %v: %v, want %v", c.from, c.to, c.members, got, c.want)
		}
	}
}
