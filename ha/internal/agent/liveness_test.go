package agent

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/role"
	"github.com/hagent/hagent/ha/mip"
)

// newHeartbeatHarness is a replHarness whose member and peer both run the
// group heartbeat (100 ms × 3), with the peer's parameters known to the
// member (one heartbeat delivered) and the peer acknowledging.
func newHeartbeatHarness(t *testing.T, require bool) *replHarness {
	t.Helper()
	h := newReplHarnessWith(t, require, func(cfg *config.Config) {
		cfg.Group.Heartbeat, cfg.Group.HeartbeatInterval, cfg.Group.HeartbeatMultiplier = true, 100*time.Millisecond, 3
		cfg.Group.HeartbeatFailover = true
		// The default: a held reply waits 500 ms, longer than the
		// heartbeat's detection (300 ms), as in a shipped configuration.
		cfg.Group.AckTimeout = 250 * time.Millisecond
	})
	h.peerAcking()
	h.out = h.peer.Tick(h.now, h.out[:0]) // its first heartbeat
	h.peerSays(h.out)
	return h
}

// detect moves the fake clock from one of the member's deadlines to the
// next, firing its timer as the owner loop would, until the silent peer
// is declared down (no sleep: the registrar's time is the harness's).
func (h *replHarness) detect() {
	h.t.Helper()
	for end := h.now + int64(5*time.Second); h.a.grp.m.UpPeers() != 0; {
		if h.now > end {
			h.t.Fatal("peer not declared down 5 s after its last heartbeat")
		}
		h.now = max(h.now+1, h.r.NextDeadline())
		h.handle(Event{Kind: EvTimer})
	}
}

// The peer dies while a reply waits for its acknowledgement: once its
// heartbeat has been silent for the detection time, the held reply is
// decided at once (default: accepted, served alone; require_replication:
// 130), and the next registration is not held at all. Before the
// heartbeat, the survivor answered 130 until an update to the dead peer
// ran out of retransmissions (about 16 s).
func TestPeerDeathDecidesHeldRepliesAtOnce(t *testing.T) {
	for _, require := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "require_replication"}[require], func(t *testing.T) {
			h := newHeartbeatHarness(t, require)
			h.send(h.request(false))
			h.toPeer(false) // the peer is dead
			h.wantNoReply()
			h.detect()
			want := mip.CodeAccepted
			if require {
				want = mip.CodeInsufficientResources
			}
			h.wantReply(want) // no waitOver: the detection released it
			if m := h.a.grp.m; m.UpPeers() != 0 || m.AckingPeers() != 0 {
				t.Fatalf("up %d acking %d after the detection", m.UpPeers(), m.AckingPeers())
			}
			h.send(h.request(false))
			h.wantReply(want)
			// (default: the first, before the peer acknowledged anything,
			// waited for its ack)
			q := h.a.hold
			if require && q.DeniedUnreplicated != 1 || !require && q.AcceptedUnreplicated != 2 {
				t.Fatalf("accepted_unreplicated %d, denied_unreplicated %d", q.AcceptedUnreplicated, q.DeniedUnreplicated)
			}
		})
	}
}

// fakeElector records the fast failure detector's hints.
type fakeElector struct {
	addr         netip.Addr
	silent, iv   time.Duration
	hints        int
	alive        []netip.Addr
	role.Elector // not called
}

func (f *fakeElector) PeerSilent(addr netip.Addr, silent, interval time.Duration) {
	f.addr, f.silent, f.iv = addr, silent, interval
	f.hints++
}

func (f *fakeElector) PeerAlive(addr netip.Addr) { f.alive = append(f.alive, addr) }

// The election hears of the dead peer (heartbeat_failover), with the
// silence measured and the heartbeat interval; not with the failover off.
func TestPeerDeathTellsElection(t *testing.T) {
	for _, on := range []bool{true, false} {
		h := newHeartbeatHarness(t, false)
		h.a.cfg.Group.HeartbeatFailover = on
		f := &fakeElector{}
		h.a.grp.elector = f
		h.detect()
		if !on {
			if f.hints != 0 {
				t.Fatal("heartbeat_failover = false, yet the election was told")
			}
			continue
		}
		if f.hints != 1 || f.addr != peerAddr || f.iv != 100*time.Millisecond || f.silent < 300*time.Millisecond {
			t.Fatalf("hint: %d, addr %v, silent %v, interval %v", f.hints, f.addr, f.silent, f.iv)
		}
	}
}

// A member declared dead that speaks again in the same session makes the
// election undo a takeover made on its silence.
func TestPeerAliveTellsElection(t *testing.T) {
	h := newHeartbeatHarness(t, false)
	f := &fakeElector{}
	h.a.grp.elector = f
	h.detect()
	h.out = h.peer.Tick(h.now+int64(time.Second), h.out[:0]) // its next heartbeat, same session
	h.peerSays(h.out)
	if len(f.alive) != 1 || f.alive[0] != peerAddr {
		t.Fatalf("alive hints %v", f.alive)
	}
}

// The active member heartbeats periodically only when that detects its
// death before the election does: at 100 ms × 3 with 100 ms adverts both
// take 300 ms, and the master's heartbeat would be a second packet per
// advertisement for nothing; at 33 ms × 3, or 100 ms × 3 with 1 s adverts,
// it is periodic. A standby is in demand mode either way.
func TestActiveHeartbeatPeriodicOnlyWhenFaster(t *testing.T) {
	for _, tc := range []struct {
		name         string
		advert, hb   time.Duration
		mult         int
		failover     bool
		wantPeriodic bool
	}{
		{"default at 100ms adverts", 100 * time.Millisecond, 100 * time.Millisecond, 3, true, false},
		{"33ms at 100ms adverts", 100 * time.Millisecond, 33 * time.Millisecond, 3, true, true},
		{"default at 1s adverts", time.Second, 100 * time.Millisecond, 3, true, true},
		{"slower than adverts", 100 * time.Millisecond, 200 * time.Millisecond, 3, true, false},
		{"multiplier 2 at the advert interval", 100 * time.Millisecond, 100 * time.Millisecond, 2, true, true},
		{"33ms, failover off", 100 * time.Millisecond, 33 * time.Millisecond, 3, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newReplHarnessWith(t, false, func(cfg *config.Config) {
				cfg.Group.Heartbeat, cfg.Group.HeartbeatInterval, cfg.Group.HeartbeatMultiplier = true, tc.hb, tc.mult
				cfg.Group.HeartbeatFailover = tc.failover
				cfg.VRRP.Enabled, cfg.VRRP.AdvertInterval, cfg.VRRP.Priority = true, tc.advert, 100
			})
			h.r.elected = true // as with a runner (the harness has none)
			h.peerAcking()
			m := h.a.grp.m
			if m.HeartbeatPeriodic() {
				t.Fatal("periodic before any role: a member with an election starts in demand mode")
			}
			h.handle(Event{Kind: EvRole, Active: true})
			if got := m.HeartbeatPeriodic(); got != tc.wantPeriodic {
				t.Fatalf("active: periodic %v, want %v (mode %q)", got, tc.wantPeriodic, h.a.grp.hbMode)
			}
			if want := map[bool]string{true: "periodic", false: "demand"}[tc.wantPeriodic]; !strings.HasPrefix(h.a.grp.hbMode, want) {
				t.Fatalf("mode shown %q, want %s…", h.a.grp.hbMode, want)
			}
			h.handle(Event{Kind: EvRole, Active: false})
			if m.HeartbeatPeriodic() {
				t.Fatal("periodic after stepping down")
			}
		})
	}
}
