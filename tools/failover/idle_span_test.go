package failover

import (
	"bytes"
	"strings"
	"testing"
)

func TestIdleRatiosPairsEachWindow(t *testing.T) {
	win := func(hm, km, hb, kb float64) IdleWindow {
		return IdleWindow{Members: []IdleMember{
			{Impl: "hagent", Role: "master", CPUPercent: hm}, {Impl: "hagent", Role: "backup", CPUPercent: hb},
			{Impl: "keepalived", Role: "master", CPUPercent: km}, {Impl: "keepalived", Role: "backup", CPUPercent: kb},
		}}
	}
	ws := []IdleWindow{win(0.2, 0.1, 0.05, 0.05), win(0.1, 0.2, 0.06, 0.03), win(0.3, 0.25, 0.01, 0.04),
		{Members: []IdleMember{{Impl: "hagent", Role: "master", CPUPercent: 9}}}} // no keepalived: skipped
	rs := idleRatios(ws)
	if len(rs) != 2 {
		t.Fatalf("ratios for %d roles, want 2: %+v", len(rs), rs)
	}
	m, b := rs[0], rs[1]
	if m.Role != "master" || len(m.Ratios) != 3 || m.Median != 1.2 || m.AtOrBelow != 1 || m.HagentMedCP != 0.2 || m.KeepMedCP != 0.2 {
		t.Errorf("master: %+v, want ratios 2, 0.5, 1.2, median 1.2, at or below in 1, medians 0.2/0.2", m)
	}
	if b.Role != "backup" || b.Median != 1 || b.AtOrBelow != 2 {
		t.Errorf("backup: %+v, want median 1 (ratios 1, 2, 0.25), at or below in 2", b)
	}
	r := &IdleReport{Seconds: 30, Windows: ws[:3], Ratios: rs}
	var out bytes.Buffer
	r.Table(&out)
	if !strings.Contains(out.String(), "master: hagent / keepalived median 1.20 ×") || !strings.Contains(out.String(), "at or below in 2 of 3 windows") {
		t.Errorf("table lacks the ratios:\n%s", out.String())
	}
}

func TestMedianEvenOdd(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{4, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
