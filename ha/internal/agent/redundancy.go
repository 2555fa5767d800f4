package agent

import (
	"fmt"
	"net"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/internal/groupio"
	"github.com/hagent/hagent/ha/internal/hasync"
	"github.com/hagent/hagent/ha/internal/hsrp"
	"github.com/hagent/hagent/ha/internal/role"
	"github.com/hagent/hagent/ha/internal/vrrp"
)

// showRedundancy answers `show redundancy` in the order an operator asks:
// the election (as IOS `show vrrp`), the group's members (as `show ip
// mobile redundancy`), then the counters grouped.
func (a *Agent) showRedundancy() *console.Redundancy {
	g := a.grp
	r := &console.Redundancy{Mode: g.mode, Role: g.role.Role.String(), Reason: g.role.Reason,
		Since: g.since.UTC().Format(time.RFC3339), Serving: a.core.Serving(), Synced: true,
		Peers: []console.Peer{}}
	r.Election = a.election()
	el := counterGroup("election", "election", console.Counter{Key: "role_changes", Name: "role changes", Value: g.changes})
	el.Counters = append(el.Counters, electionCounters(g.elector)...)
	if g.m == nil {
		r.Counters = []console.CounterGroup{el}
		return r
	}
	r.Synced = g.m.Initialized()
	r.Replication = &console.Replication{AckBeforeReply: a.cfg.Group.AckBeforeReply,
		RequireReplication: a.cfg.Group.RequireReplication, SendKeyID: g.m.SendKey(),
		PeersUp: g.m.UpPeers(), PeersAcking: g.m.AckingPeers(), Heartbeat: g.hbMode}
	a.showPeers(r)
	var gs groupio.Stats
	if g.conn != nil { // nil only in tests that drive the registrar without sockets
		gs = g.conn.Stats()
	}
	r.Counters = groupCounters(g.m.Counters(), gs, g.sendErrs)
	if g.hb != nil {
		r.Counters = append(r.Counters, heartbeatSocketCounters(&g.hbStats))
	}
	if q := a.hold; q != nil {
		r.Counters = append(r.Counters, holdCounters(q))
	}
	r.Counters = append(r.Counters, el)
	return r
}

// showPeers fills the group's members and the sources of failed
// authentications.
func (a *Agent) showPeers(r *console.Redundancy) {
	g := a.grp
	now := a.now()
	g.pinfo = g.m.Peers(g.pinfo[:0])
	var byOrigin map[uint32]int
	if len(g.pinfo) > 0 {
		byOrigin = make(map[uint32]int, len(g.pinfo))
		a.core.table.Range(func(e *binding.Entry) bool {
			if !e.Tombstone() {
				byOrigin[e.Origin]++
			}
			return true
		})
	}
	for _, p := range g.pinfo {
		st := "down"
		if p.Up {
			st = "up"
		}
		if !p.Initialized {
			st += ", not initialized"
		}
		heard := "never"
		if p.LastHeard != 0 {
			heard = time.Duration(now-p.LastHeard).Round(time.Millisecond).String() + " ago"
		}
		r.Peers = append(r.Peers, console.Peer{Address: p.Addr.String(), ID: p.ID, State: st, LastHeard: heard,
			Acking: p.Acking, Proven: p.Proven, AuthFailures: p.AuthFailures, TablesEqual: p.InSync,
			Bindings: byOrigin[p.ID], Pending: p.Outstanding})
	}
	for _, s := range g.m.AuthSources(nil) {
		r.AuthFailures = append(r.AuthFailures, console.AuthSource{Address: s.Addr.String(), ClaimedID: s.ID,
			Failures: s.Failures, LastSeen: time.Duration(now-s.Last).Round(time.Millisecond).String() + " ago"})
	}
}

// groupCounters are the group protocol's counters, by concern.
func groupCounters(c hasync.Counters, gs groupio.Stats, sendErrs uint64) []console.CounterGroup {
	return []console.CounterGroup{
		counterGroup("updates", "binding updates",
			console.Counter{Key: "sent", Name: "sent", Value: c.UpdatesSent},
			console.Counter{Key: "sent_total", Name: "sent incl. retransmissions", Value: c.UpdatesTotal},
			console.Counter{Key: "failed", Name: "failed (no ack)", Value: c.UpdatesFailed},
			console.Counter{Key: "received", Name: "received", Value: c.UpdatesReceived},
			console.Counter{Key: "superseded", Name: "received but superseded", Value: c.Superseded},
			console.Counter{Key: "table_full", Name: "received but table full", Value: c.TableFull},
			console.Counter{Key: "acks_sent", Name: "acks sent", Value: c.UpdateAcksSent},
			console.Counter{Key: "acks_received", Name: "acks received", Value: c.UpdateAcksReceived},
			console.Counter{Key: "refused_by_peer", Name: "refused by a peer (ack code 2)", Value: c.UpdatesRefused},
			console.Counter{Key: "not_tracked_unacking_peer", Name: "not tracked for a peer that never acknowledged", Value: c.PendingRefused},
			console.Counter{Key: "send_errors", Name: "group send errors", Value: sendErrs}),
		counterGroup("downloads", "table downloads",
			console.Counter{Key: "completed", Name: "completed", Value: c.Downloads},
			console.Counter{Key: "requests_sent", Name: "requests sent", Value: c.TableRequestsSent},
			console.Counter{Key: "requests_sent_total", Name: "requests sent incl. retransmissions", Value: c.TableRequestsTotal},
			console.Counter{Key: "requests_failed", Name: "requests failed", Value: c.TableRequestsFailed},
			console.Counter{Key: "replies_received", Name: "replies received", Value: c.TableRepliesReceived},
			console.Counter{Key: "replies_dropped", Name: "replies dropped", Value: c.TableRepliesDropped},
			console.Counter{Key: "acks_sent", Name: "acks sent", Value: c.TableAcksSent},
			console.Counter{Key: "requests_received", Name: "requests received (as responder)", Value: c.RequestsReceived},
			console.Counter{Key: "replies_sent", Name: "replies sent", Value: c.RepliesSent},
			console.Counter{Key: "replies_sent_total", Name: "replies sent incl. retransmissions", Value: c.RepliesTotal},
			console.Counter{Key: "replies_failed", Name: "replies failed", Value: c.RepliesFailed},
			console.Counter{Key: "reply_acks_received", Name: "reply acks received", Value: c.ReplyAcksReceived},
			console.Counter{Key: "reply_acks_dropped", Name: "reply acks dropped", Value: c.ReplyAcksDropped}),
		counterGroup("anti_entropy", "anti-entropy",
			console.Counter{Key: "digests_sent", Name: "digests sent", Value: c.DigestsSent},
			console.Counter{Key: "digests_received", Name: "digests received", Value: c.DigestsReceived},
			console.Counter{Key: "digest_mismatches", Name: "digest mismatches", Value: c.DigestMismatches},
			console.Counter{Key: "repairs_sent", Name: "repairs sent", Value: c.RepairsSent},
			console.Counter{Key: "repairs_received", Name: "repairs received", Value: c.RepairsRecvd}),
		counterGroup("members", "members",
			console.Counter{Key: "peers_rejected", Name: "peers rejected", Value: c.PeersRejected},
			console.Counter{Key: "leaves_received", Name: "leaves received", Value: c.LeavesReceived},
			console.Counter{Key: "challenges_sent", Name: "session challenges sent", Value: c.ChallengesSent},
			console.Counter{Key: "responses_sent", Name: "session responses sent", Value: c.ResponsesSent},
			console.Counter{Key: "sessions_proven", Name: "sessions proven", Value: c.SessionsProven},
			console.Counter{Key: "heartbeats_sent", Name: "heartbeats sent", Value: c.HeartbeatsSent},
			console.Counter{Key: "heartbeats_received", Name: "heartbeats received", Value: c.HeartbeatsReceived},
			console.Counter{Key: "peers_detected_down", Name: "peers declared down by the heartbeat", Value: c.PeersDetectedDown}),
		counterGroup("records", "records received",
			console.Counter{Key: "refused_not_admitted", Name: "refused: home not admitted here", Value: c.RecordsRefused},
			console.Counter{Key: "refused_below_floor", Name: "refused: older than a folded tombstone", Value: c.StaleByFloor}),
		counterGroup("security", "security (group datagrams dropped)",
			console.Counter{Key: "violations", Name: "violations (total)", Value: c.SecViolations},
			console.Counter{Key: "bad_ttl", Name: "bad TTL (not from the link)", Value: c.BadTTL},
			console.Counter{Key: "bad_auth", Name: "bad authenticator", Value: c.BadAuth},
			console.Counter{Key: "unknown_key", Name: "unknown key id", Value: c.UnknownKey},
			console.Counter{Key: "replayed", Name: "replayed", Value: c.Replay},
			console.Counter{Key: "unproven_session", Name: "session not proven (challenge pending or never answered)", Value: c.Unproven},
			console.Counter{Key: "malformed", Name: "malformed", Value: c.Malformed},
			console.Counter{Key: "wrong_interface", Name: "from another interface", Value: gs.WrongInterface},
			console.Counter{Key: "oversize", Name: "oversize", Value: gs.Truncated}),
	}
}

// holdCounters are the counters of the replies held for a peer's ack.
func holdCounters(q *holdQueue) console.CounterGroup {
	return counterGroup("replies", "replies held for a peer's ack",
		console.Counter{Key: "held", Name: "held", Value: q.Held},
		console.Counter{Key: "acked", Name: "released by an ack", Value: q.Acked},
		console.Counter{Key: "timeouts", Name: "wait ended without an ack", Value: q.Timeouts},
		console.Counter{Key: "superseded", Name: "superseded by a newer request", Value: q.Superseded},
		console.Counter{Key: "not_held_queue_full", Name: "not held (queue full)", Value: q.Overflow},
		console.Counter{Key: "denied_no_ack", Name: "denied 130: no peer ack", Value: q.DeniedNoAck},
		console.Counter{Key: "denied_unreplicated", Name: "denied 130: no peer up (require_replication)", Value: q.DeniedUnreplicated},
		console.Counter{Key: "denied_queue_full", Name: "denied 130: queue full (require_replication)", Value: q.DeniedFull},
		console.Counter{Key: "accepted_unreplicated", Name: "accepted unreplicated: no acking peer up", Value: q.AcceptedUnreplicated},
		console.Counter{Key: "unsigned", Name: "not sent: could not re-sign", Value: q.Unsigned})
}

func counterGroup(key, name string, cs ...console.Counter) console.CounterGroup {
	return console.CounterGroup{Key: key, Name: name, Counters: cs}
}

// election describes the VRRP virtual router or HSRP group, nil when
// neither runs.
func (a *Agent) election() *console.Election {
	g := a.grp
	if g.elector == nil {
		return nil
	}
	ac := &a.cfg.Agent
	e := &console.Election{Interface: ac.Interface, VirtualAddress: ac.VirtualAddress.String(), State: g.role.State}
	// The interface's own MAC answers for the address unless the protocol's
	// virtual MAC is on (vrrp.use_virtual_mac, default off; hsrp's, default
	// on): docs/redundancy.md.
	if ifi, err := net.InterfaceByName(ac.Interface); err == nil {
		e.VirtualMAC, e.VirtualMACOwn = ifi.HardwareAddr.String(), true
	}
	if g.role.Role == role.Active {
		e.Master, e.MasterLocal = ac.Address.String(), true
	} else if g.role.Peer.IsValid() {
		e.Master = g.role.Peer.String()
	}
	switch r := g.elector.(type) {
	case *vrrp.Runner:
		v := &a.cfg.VRRP
		in := r.Info()
		e.Protocol, e.Group = "vrrp", int(v.VRID)
		e.Priority, e.ConfiguredPriority = int(in.Priority), int(v.Priority)
		if in.Master.IsValid() {
			e.Master = in.Master.String()
			e.MasterLocal = in.Master == ac.Address
			e.MasterPriority = int(in.MasterPriority)
		}
		e.AdvertInterval = in.MasterAdverInterval.String()
		e.MasterDownInterval = in.MasterDownInterval.String()
		e.Preempt = v.Preempt
		if v.UseVirtualMAC {
			e.VirtualMAC, e.VirtualMACOwn = vrrp.VirtualMAC(v.VRID).String(), false
		}
		if v.PreemptDelay > 0 {
			e.PreemptDelay = v.PreemptDelay.String()
		}
		for _, tr := range v.TrackInterfaces {
			e.Tracked = append(e.Tracked, console.Tracked{Interface: tr.Interface, Weight: tr.Weight, Up: !a.linkDown[tr.Interface]})
		}
	case *hsrp.Runner:
		h := &a.cfg.HSRP
		in := r.Info()
		e.Protocol, e.Group = "hsrp", int(h.Group)
		e.Priority, e.ConfiguredPriority = int(in.Priority), int(h.Priority)
		if in.Active.IsValid() {
			e.Master = in.Active.String()
			e.MasterLocal = in.Active == ac.Address
			e.MasterPriority = int(in.ActivePriority)
		}
		e.Hello, e.Hold = in.Hello.String(), in.Hold.String()
		if h.UseVirtualMAC {
			e.VirtualMAC, e.VirtualMACOwn = hsrp.VirtualMAC(h.Group).String(), false
		}
		e.Preempt = h.Preempt
	default:
		e.Protocol = fmt.Sprintf("%T", r)
	}
	return e
}

// electionCounters are the VRRP or HSRP runner's counters, drops per reason
// included (RFC 5798 §7.1).
func electionCounters(e role.Elector) []console.Counter {
	c := func(k, n string, v uint64) console.Counter { return console.Counter{Key: k, Name: n, Value: v} }
	switch r := e.(type) {
	case *vrrp.Runner:
		s := r.Stats()
		return []console.Counter{c("adverts_received", "adverts received", s.RxAdverts), c("adverts_sent", "adverts sent", s.TxAdverts),
			c("gratuitous_arps", "gratuitous ARPs", s.GARPs), c("reannouncements", "re-announcements", s.Reclaims),
			c("reannouncements_suppressed", "re-announcements suppressed", s.ReclaimsSuppressed), c("dropped_ttl", "dropped: TTL", s.DropTTL),
			c("dropped_version", "dropped: version", s.DropVersion), c("dropped_type", "dropped: type", s.DropType),
			c("dropped_checksum", "dropped: checksum", s.DropChecksum), c("dropped_vrid", "dropped: VRID", s.DropVRID),
			c("dropped_address_list", "dropped: address list", s.DropAddrList), c("dropped_interval", "dropped: interval", s.DropInterval),
			c("dropped_short", "dropped: short", s.DropShort), c("dropped_other", "dropped: other", s.DropOther),
			c("action_errors", "action errors", s.ActionErrors), c("adverts_read_lazily", "adverts read lazily", s.LazyAdverts),
			c("lazy_queue_dropped", "lazy queue: dropped (full)", s.LazyDropped), c("wakeups", "wake-ups", s.Wakeups),
			c("kernel_timer_rings", "kernel Master_Down_Timer: expiries", s.RingWakeups),
			c("kernel_timer_watchdogs", "kernel Master_Down_Timer: watchdog", s.TimerWatchdogs)}
	case *hsrp.Runner:
		s := r.Stats()
		return []console.Counter{c("hellos_received", "hellos received", s.Rx), c("sent", "sent", s.Tx),
			c("gratuitous_arps", "gratuitous ARPs", s.GARPs), c("reannouncements", "re-announcements", s.Reclaims),
			c("reannouncements_suppressed", "re-announcements suppressed", s.ReclaimsSuppressed), c("dropped_short", "dropped: short", s.DropShort),
			c("dropped_version", "dropped: version", s.DropVersion), c("dropped_op_code", "dropped: op code", s.DropOpCode),
			c("dropped_state", "dropped: state", s.DropState), c("dropped_group", "dropped: group", s.DropGroup),
			c("dropped_auth", "dropped: authentication", s.DropAuth), c("dropped_other", "dropped: other", s.DropOther),
			c("action_errors", "action errors", s.ActionErrors)}
	}
	return nil
}
