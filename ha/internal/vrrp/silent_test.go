package vrrp

import (
	"testing"
	"time"
)

const ms = time.Millisecond

// silentBackup is a priority-100 backup following the priority-200 master
// upper, whose last advertisement (1 s interval) it learnt at time 0.
func silentBackup(t *testing.T) *harness {
	h := newH(t, cfg(100))
	h.do(0, Event{Kind: EvStartup})
	h.advert(0, upper, 200, sec)
	if h.m.State() != Backup || h.dl != 3*sec+609375*time.Microsecond {
		t.Fatalf("state %v deadline %v", h.m.State(), h.dl)
	}
	return h
}

// The master's heartbeat stopped (last heard at 50 ms, silent 300 ms at
// 350 ms): the backup takes over after Skew_Time on the heartbeat interval,
// ((256-100) × 100 ms)/256, not after Master_Down_Interval.
func TestSilentMasterTakenOverAfterSkew(t *testing.T) {
	h := silentBackup(t)
	h.do(350*ms, Event{Kind: EvSilent, Src: upper, Silent: 300 * ms, Interval: 100 * ms})
	want := 350*ms + 156*100*ms/256
	if h.dl != want {
		t.Fatalf("deadline %v, want %v", h.dl, want)
	}
	acts := h.do(want, Event{Kind: EvTimer})
	if h.m.State() != Master || acts[len(acts)-1].Reason != ReasonSilent {
		t.Fatalf("state %v, actions %+v", h.m.State(), acts)
	}
}

// VRRP keeps the last word: a hint about another member, an advertisement
// of the master learnt after its heartbeat stopped (its election is alive),
// or an advertisement arriving after the hint, all leave the Master_Down
// timer to decide.
func TestSilentHintIgnoredOrCancelled(t *testing.T) {
	mdi := 3*sec + 609375*time.Microsecond
	h := silentBackup(t)
	h.do(350*ms, Event{Kind: EvSilent, Src: lower, Silent: 300 * ms, Interval: 100 * ms})
	if h.dl != mdi {
		t.Fatalf("hint about a non-master moved the deadline to %v", h.dl)
	}
	// Last heartbeat at 50 ms, advert at 0 then at 200 ms (> 50 + 100).
	h.advert(200*ms, upper, 200, sec)
	h.do(350*ms, Event{Kind: EvSilent, Src: upper, Silent: 300 * ms, Interval: 100 * ms})
	if h.dl != 200*ms+mdi {
		t.Fatalf("a master whose adverts outlive its heartbeat: deadline %v", h.dl)
	}
	h = silentBackup(t)
	h.do(350*ms, Event{Kind: EvSilent, Src: upper, Silent: 300 * ms, Interval: 100 * ms})
	h.advert(380*ms, upper, 200, sec)
	if h.dl != 380*ms+mdi {
		t.Fatalf("an advert after the hint: deadline %v", h.dl)
	}
	if acts := h.do(380*ms+mdi-1, Event{Kind: EvTimer}); h.m.State() != Backup || len(acts) != 0 {
		t.Fatalf("took over early: %+v", acts)
	}
	h = newH(t, cfg(100))
	h.do(0, Event{Kind: EvStartup}) // no master heard yet
	h.do(350*ms, Event{Kind: EvSilent, Src: upper, Silent: 300 * ms, Interval: 100 * ms})
	if h.m.State() != Backup || h.dl != mdi {
		t.Fatalf("no master known: state %v deadline %v", h.m.State(), h.dl)
	}
}

// A takeover made on the heartbeat's silence is undone as soon as the
// replaced master speaks again; before the takeover the hint is withdrawn.
func TestSilentTakeoverUndone(t *testing.T) {
	h := silentBackup(t)
	h.do(350*ms, Event{Kind: EvSilent, Src: upper, Silent: 300 * ms, Interval: 100 * ms})
	h.do(h.dl, Event{Kind: EvTimer})
	if h.m.State() != Master {
		t.Fatal("no takeover")
	}
	acts := h.do(450*ms, Event{Kind: EvAlive, Src: lower})
	if h.m.State() != Master || len(acts) != 0 {
		t.Fatal("another member's revival undid the takeover")
	}
	acts = h.do(460*ms, Event{Kind: EvAlive, Src: upper})
	if h.m.State() != Backup || acts[len(acts)-1].Reason != ReasonAlive || h.m.MasterAddr() != upper {
		t.Fatalf("state %v, actions %+v", h.m.State(), acts)
	}
	mdi := 3*sec + 609375*time.Microsecond
	if h.dl != 460*ms+mdi {
		t.Fatalf("deadline %v after the revert", h.dl)
	}
	// Withdrawn before the takeover.
	h = silentBackup(t)
	h.do(350*ms, Event{Kind: EvSilent, Src: upper, Silent: 300 * ms, Interval: 100 * ms})
	h.do(360*ms, Event{Kind: EvAlive, Src: upper})
	if h.dl != 360*ms+mdi {
		t.Fatalf("hint not withdrawn: deadline %v", h.dl)
	}
	// A master elected by the usual timer is not demoted by a revival.
	h = silentBackup(t)
	h.do(mdi, Event{Kind: EvTimer})
	if h.do(mdi+ms, Event{Kind: EvAlive, Src: upper}); h.m.State() != Master {
		t.Fatal("a master elected by Master_Down_Timer was demoted")
	}
}
