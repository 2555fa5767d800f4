package vrrp

import (
	"testing"
	"time"
)

func reclaimCfg() Config {
	c := cfg(100)
	c.GARPLowerPrioCount, c.GARPLowerPrioInterval = 2, 2*sec
	return c
}

// A master that hears a lower-priority advert (its sender believes it is
// master and announced the addresses with its own MAC) answers with an
// advert, so that the sender steps down at once, and a gratuitous ARP burst,
// so that the hosts come back to us.
func TestMasterLowerPriorityReclaims(t *testing.T) {
	h := master(t, reclaimCfg())
	t0 := mdi(100, sec)
	h.advert(t0+3*sec, upper, 99, sec)
	h.want(Master, t0+4*sec, ActSendAdvert, ActGARP)
	if a := h.out[1]; a.Count != 2 || a.Reason != ReasonReclaimLower {
		t.Fatalf("%+v", a)
	}
	if h.out[0].Priority != 100 {
		t.Fatalf("advert priority %d", h.out[0].Priority)
	}
	// An equal priority from a lower address is a loser too.
	h.advert(t0+6*sec, lower, 100, sec)
	h.want(Master, -1, ActSendAdvert, ActGARP)
}

// A flood of (possibly forged) lower-priority adverts costs the LAN one
// burst per GARPLowerPrioInterval: the rest are counted and folded into one
// burst at the end of the interval, so that the last announcement is ours.
func TestMasterReclaimRateLimited(t *testing.T) {
	h := master(t, reclaimCfg())
	t0 := mdi(100, sec)
	at := t0 + 3*sec
	h.advert(at, upper, 99, sec)
	h.want(Master, at+sec, ActSendAdvert, ActGARP)
	for i := range 100 {
		h.advert(at+time.Duration(i+1)*time.Millisecond, upper, 99, sec)
		h.want(Master, at+sec /* the advert timer comes first */)
	}
	if got := h.m.Suppressed(); got != 100 {
		t.Fatalf("suppressed %d, want 100", got)
	}
	h.do(at+sec, Event{Kind: EvTimer})
	h.want(Master, at+2*sec, ActSendAdvert) // regular advert; the deferred burst is due at +2s
	h.do(at+2*sec, Event{Kind: EvTimer})
	h.want(Master, at+3*sec, ActSendAdvert, ActGARP)
	if a := h.out[1]; a.Kind != ActGARP || a.Reason != ReasonReclaimLower || a.Count != 2 {
		t.Fatalf("%+v", a)
	}
	// Nothing pending any more: the next deadline is the advert timer.
	h.do(at+3*sec, Event{Kind: EvTimer})
	h.want(Master, at+4*sec, ActSendAdvert)
}

// A master whose adverts stopped for 3 intervals (SIGSTOP, CPU starvation)
// may have been replaced by a backup in the meantime: it re-announces.
func TestMasterStallReclaims(t *testing.T) {
	h := master(t, reclaimCfg())
	t0 := mdi(100, sec)
	h.do(t0+sec+500*time.Millisecond, Event{Kind: EvTimer}) // late, but not enough
	h.want(Master, t0+2*sec, ActSendAdvert)                 // on the interval's grid
	late := t0 + 1500*time.Millisecond + 3*sec              // previous advert 3 intervals ago
	h.do(late, Event{Kind: EvTimer})
	h.want(Master, late+sec, ActSendAdvert, ActGARP)
	if a := h.out[1]; a.Reason != ReasonReclaimStall || a.Count != 2 {
		t.Fatalf("%+v", a)
	}
}

// Off (count 0): a lower-priority advert is discarded as §6.4.3 says.
func TestMasterReclaimOff(t *testing.T) {
	h := master(t, cfg(100))
	t0 := mdi(100, sec)
	h.advert(t0+3*sec, upper, 99, sec)
	h.want(Master, -1)
	h.do(t0+10*sec, Event{Kind: EvTimer})
	h.want(Master, -1, ActSendAdvert)
}

// Stepping down forgets a deferred burst: only the master announces.
func TestBackupForgetsPendingReclaim(t *testing.T) {
	h := master(t, reclaimCfg())
	t0 := mdi(100, sec)
	h.advert(t0+100*time.Millisecond, upper, 99, sec) // inside the takeover's interval: deferred
	h.want(Master, t0+sec)
	h.advert(t0+200*time.Millisecond, upper, 101, sec)
	h.want(Backup, t0+200*time.Millisecond+mdi(100, sec), ActRemoveVIP, ActBecomeBackup)
	h.do(t0+2*sec, Event{Kind: EvTimer})
	h.want(Backup, -1)
}

func TestMasterRefresh(t *testing.T) {
	c := cfg(100)
	c.GARPRefresh, c.GARPRefreshCount = 2500*time.Millisecond, 1
	h := master(t, c)
	t0 := mdi(100, sec)
	h.do(t0+sec, Event{Kind: EvTimer})
	h.want(Master, t0+2*sec, ActSendAdvert)
	h.do(t0+2*sec, Event{Kind: EvTimer})
	h.want(Master, t0+2500*time.Millisecond, ActSendAdvert)
	h.do(t0+2500*time.Millisecond, Event{Kind: EvTimer})
	h.want(Master, t0+3*sec, ActGARP)
	if a := h.out[0]; a.Count != 1 || a.Reason != ReasonRefresh {
		t.Fatalf("%+v", a)
	}
	h.advert(t0+4*sec, upper, 101, sec)
	h.want(Backup, t0+4*sec+mdi(100, sec), ActRemoveVIP, ActBecomeBackup)
}

func TestConfigValidateReclaim(t *testing.T) {
	for _, f := range []func(*Config){
		func(c *Config) { c.GARPLowerPrioCount = -1 },
		func(c *Config) { c.GARPLowerPrioCount, c.GARPLowerPrioInterval = 1, 0 },
		func(c *Config) { c.GARPRefresh = -1 },
		func(c *Config) { c.GARPRefreshCount = -1 },
	} {
		c := reclaimCfg()
		f(&c)
		if c.Validate() == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}
