package config

import "time"

// Reclaim is the re-announcement of the virtual address that [vrrp] and
// [hsrp] share: gratuitous ARP when the active member learns that another
// member may have claimed the address (it hears a lower-priority master or
// active router, or its own messages were late enough for a backup to take
// over), rate-limited, and an optional periodic refresh.
type Reclaim struct {
	LowerPrioCount    int           // garp_lower_prio_count: per burst, default 3; 0 = never
	LowerPrioInterval time.Duration // garp_lower_prio_interval: least time between bursts, default 1s
	Refresh           time.Duration // garp_refresh: period of the refresh, default 0 = none
	RefreshCount      int           // garp_refresh_count: per refresh, default 1
}

// Defaults of the re-announcement keys.
const (
	DefaultGARPLowerPrioCount    = 3
	DefaultGARPLowerPrioInterval = time.Second
	DefaultGARPRefreshCount      = 1
)

func reclaimKeys(t *table) rawReclaim {
	return rawReclaim{
		LowerPrioCount:    t.integer("garp_lower_prio_count"),
		LowerPrioInterval: t.duration("garp_lower_prio_interval"),
		Refresh:           t.duration("garp_refresh"),
		RefreshCount:      t.integer("garp_refresh_count"),
	}
}

func (d *decoder) buildReclaim(r *rawReclaim) Reclaim {
	return Reclaim{
		LowerPrioCount: int(d.intIn(r.LowerPrioCount, DefaultGARPLowerPrioCount, 0, 100)),
		// At least 10 ms: the interval is what bounds the frames a flood
		// of forged adverts can draw from us.
		LowerPrioInterval: d.durIn(r.LowerPrioInterval, DefaultGARPLowerPrioInterval, 10*time.Millisecond, time.Minute),
		Refresh:           d.durIn(r.Refresh, 0, 0, time.Hour),
		RefreshCount:      int(d.intIn(r.RefreshCount, DefaultGARPRefreshCount, 1, 100)),
	}
}
