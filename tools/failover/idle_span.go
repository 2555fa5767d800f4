package failover

import (
	"fmt"
	"io"
	"slices"
)

// IdleWindow is one window of a multi-window idle measurement.
type IdleWindow struct {
	Members []IdleMember `json:"members"`
}

// IdleRatio compares hagent's CPU with keepalived's for one role over the
// windows: each window's ratio (hagent / keepalived, both measured in that
// window), their median, and in how many windows hagent was at or below.
type IdleRatio struct {
	Role        string    `json:"role"`
	Ratios      []float64 `json:"ratios"`
	Median      float64   `json:"median"`
	AtOrBelow   int       `json:"at_or_below"`
	HagentMedCP float64   `json:"hagent_median_cpu_percent"`
	KeepMedCP   float64   `json:"keepalived_median_cpu_percent"`
}

// idleRatios pairs hagent's and keepalived's member of each role in each
// window; a window missing either is skipped.
func idleRatios(ws []IdleWindow) []IdleRatio {
	var out []IdleRatio
	for _, role := range []string{"master", "backup"} {
		r := IdleRatio{Role: role}
		var hs, ks []float64
		for _, w := range ws {
			h, hok := findMember(w.Members, "hagent", role)
			k, kok := findMember(w.Members, "keepalived", role)
			if !hok || !kok || k.CPUPercent <= 0 {
				continue
			}
			r.Ratios = append(r.Ratios, h.CPUPercent/k.CPUPercent)
			hs, ks = append(hs, h.CPUPercent), append(ks, k.CPUPercent)
			if h.CPUPercent <= k.CPUPercent {
				r.AtOrBelow++
			}
		}
		if len(r.Ratios) == 0 {
			continue
		}
		r.Median, r.HagentMedCP, r.KeepMedCP = Median(r.Ratios), Median(hs), Median(ks)
		out = append(out, r)
	}
	return out
}

func findMember(ms []IdleMember, impl, role string) (IdleMember, bool) {
	for _, m := range ms {
		if m.Impl == impl && m.Role == role {
			return m, true
		}
	}
	return IdleMember{}, false
}

// Median of xs (not modified); 0 for none.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// windowsTable prints each window's CPU per member and the ratios.
func (r *IdleReport) windowsTable(w io.Writer) {
	if len(r.Windows) == 0 {
		return
	}
	fmt.Fprintf(w, "%d windows of %.0f s each, CPU per member:\n", len(r.Windows), r.Seconds/float64(len(r.Windows)))
	for i, win := range r.Windows {
		fmt.Fprintf(w, "  window %2d:", i+1)
		for _, m := range win.Members {
			fmt.Fprintf(w, "  %s %s %.3f%% (%.1f/s)", m.Impl, m.Role, m.CPUPercent, m.WakeupsPerS)
		}
		fmt.Fprintln(w)
	}
	for _, q := range r.Ratios {
		fmt.Fprintf(w, "%s: hagent / keepalived median %.2f × (hagent %.3f %%, keepalived %.3f %%); at or below in %d of %d windows; each:",
			q.Role, q.Median, q.HagentMedCP, q.KeepMedCP, q.AtOrBelow, len(q.Ratios))
		for _, x := range q.Ratios {
			fmt.Fprintf(w, " %.2f", x)
		}
		fmt.Fprintln(w)
	}
}
