package vrrp

import "time"

// ReasonSilent is the role change reason of a takeover the group heartbeat
// brought forward.
const ReasonSilent = "master's group heartbeat stopped, skew time expired"

// peerSilent is the fast failure detector's hook (the agent's group
// heartbeat, hasync): the member at ev.Src has been silent for ev.Silent,
// longer than its heartbeat detection time. If it is the master this
// backup follows, the backup acts as if the master had resigned (§6.4.2):
// Master_Down_Timer becomes Skew_Time, computed on the heartbeat interval
// (ev.Interval) instead of the advertisement interval, so that among
// several backups the highest priority still takes over first and the
// others hear its advertisement before their own skew runs out.
//
// VRRP keeps the last word: nothing happens unless this router is Backup,
// the silent member is the master it last heard, and no advertisement of
// that master was learnt more than one heartbeat interval after its last
// heartbeat (by then a heartbeat was missing while its election still
// ran: only its group protocol stalled, and taking over would make two
// masters). A crashed master's last advertisement always precedes its
// next heartbeat, so a crash is never filtered out. A master that is alive
// after all makes this router Backup again with its next advertisement
// (higher priority), as after any spurious takeover.
func (m *Machine) peerSilent(now time.Duration, ev Event) {
	if m.state != Backup || !ev.Src.IsValid() || ev.Src != m.master || m.resigned {
		return
	}
	if m.heardAt > now-ev.Silent+ev.Interval {
		return
	}
	at := now + time.Duration(256-int64(m.Priority()))*ev.Interval/256
	if at < m.masterDownTimer {
		m.masterDownTimer = at
		m.silent = true
	}
}
