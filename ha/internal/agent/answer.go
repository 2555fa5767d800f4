package agent

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/internal/hsrp"
	"github.com/hagent/hagent/ha/internal/role"
	"github.com/hagent/hagent/ha/internal/version"
	"github.com/hagent/hagent/ha/internal/vrrp"
	"github.com/hagent/hagent/ha/mip"
)

// defaultRows bounds `show bindings` unless the operator asks for more: a
// table of a million bindings should not be marshalled by accident.
const defaultRows = 10000

// answer runs on the owner goroutine: it may read the Core directly.
func (a *Agent) answer(r console.Request) *console.Response {
	switch strings.Join(strings.Fields(r.Cmd), " ") {
	case "show bindings":
		return &console.Response{Bindings: a.showBindings(r)}
	case "show stats":
		return &console.Response{Stats: a.showStats()}
	case "show redundancy":
		return &console.Response{Redundancy: a.showRedundancy()}
	case "show version", "show agent":
		ac := &a.cfg.Agent
		info := &console.Info{
			Version: version.String(), Address: ac.Address.String(), Interface: ac.Interface,
			Config: a.cfg.Path, AgentID: ac.AgentID, Nodes: len(a.cfg.Nodes),
		}
		if ac.VirtualAddress.IsValid() {
			info.Virtual = ac.VirtualAddress.String()
		}
		if a.adv != nil {
			ai := a.adv.r.Info()
			last := "never"
			if !ai.LastSent.IsZero() {
				last = time.Since(ai.LastSent).Round(time.Millisecond).String() + " ago"
			}
			info.Advert = [][2]string{
				{"active", fmt.Sprint(ai.Active)}, {"interface", ai.Interface}, {"source", ai.Source.String()},
				{"destination", ai.Destination.String()}, {"interval", ai.Interval.String()},
				{"lifetime", ai.Lifetime.String()}, {"registration lifetime", fmt.Sprintf("%ds", ai.RegLifetime)},
				{"flags", ai.Flags.String()}, {"next sequence", fmt.Sprint(ai.Sequence)},
				{"sent", fmt.Sprint(ai.Sent)}, {"last sent", last},
			}
		}
		return &console.Response{Info: info}
	case "clear binding":
		if len(r.Args) != 1 {
			return &console.Response{Error: "usage: clear binding HOME-ADDRESS"}
		}
		addr, err := netip.ParseAddr(r.Args[0])
		if err != nil || !addr.Is4() {
			return &console.Response{Error: fmt.Sprintf("clear binding: %q is not an IPv4 address", r.Args[0])}
		}
		ch, ok := a.core.Clear(a.now(), addr)
		if !ok {
			return &console.Response{Error: fmt.Sprintf("clear binding: no binding for %s", addr)}
		}
		a.changed(ch)
		a.log.Info("binding cleared by operator", "home", addr)
		return &console.Response{Message: fmt.Sprintf("binding for %s cleared", addr)}
	}
	return &console.Response{Error: fmt.Sprintf("unknown command %q; try: show bindings|stats|redundancy|version, clear binding ADDR", r.Cmd)}
}

func (a *Agent) showBindings(r console.Request) *console.Bindings {
	t := a.core.table
	out := &console.Bindings{Live: t.Len(), Tombs: t.Tombs(), Capacity: t.Cap(), TombCap: t.TombCap()}
	now := a.now()
	limit := r.Limit
	if limit == 0 {
		limit = defaultRows
	}
	var only uint32
	if len(r.Args) > 0 {
		if ad, err := netip.ParseAddr(r.Args[0]); err == nil && ad.Is4() {
			only = binding.AddrU32(ad)
		}
	}
	t.Range(func(e *binding.Entry) bool {
		if only != 0 && e.Home != only {
			return true
		}
		if limit >= 0 && len(out.Rows) >= limit {
			out.Truncated++
			return true
		}
		row := console.Binding{
			Home:    binding.U32Addr(e.Home).String(),
			Node:    a.core.NodeName(e.Node),
			Granted: e.Granted,
			ID:      e.ID,
			Origin:  e.Origin,
			Flags:   FlagString(e.Flags),
		}
		rem := time.Duration(e.Expires - now)
		if rem < 0 {
			rem = 0
		}
		row.Remaining = uint32(rem / time.Second)
		if e.Tombstone() {
			row.State = "tombstone"
		} else {
			row.State = "live"
			row.CareOf = binding.U32Addr(e.CareOf).String()
			row.HomeAgent = binding.U32Addr(e.HomeAgent).String()
		}
		out.Rows = append(out.Rows, row)
		return true
	})
	return out
}

// FlagString renders the request flags the way RFC 5944 names them.
func FlagString(f uint8) string {
	const names = "SBDMGrTx"
	var b []byte
	for i := 0; i < 8; i++ {
		if f&(0x80>>i) != 0 {
			if len(b) > 0 {
				b = append(b, ' ')
			}
			b = append(b, names[i])
		}
	}
	return string(b)
}

func (a *Agent) showStats() *console.Stats {
	s := &a.core.Stats
	t := a.core.table
	ts := t.Stats()
	st := &console.Stats{Uptime: a.uptime().String()}
	st.General = []console.Counter{
		{Name: "requests received", Value: s.Requests},
		{Name: "replies sent", Value: s.Replies - s.SendErrors},
		{Name: "reply send errors", Value: s.SendErrors},
		{Name: "registrations", Value: s.Registrations},
		{Name: "renewals", Value: s.Renewals},
		{Name: "deregistrations", Value: s.Deregistrations},
		{Name: "duplicates answered", Value: s.Duplicates},
		{Name: "expired", Value: s.Expired},
		{Name: "cleared by operator", Value: s.Cleared},
		{Name: "withdrawn: kernel refused the route (answered 130/139)", Value: s.Withdrawn},
	}
	for code, v := range s.Codes {
		if v != 0 || knownCode(mip.Code(code)) {
			st.Replies = append(st.Replies, console.Counter{Name: fmt.Sprintf("%d %s", code, mip.Code(code)), Value: v})
		}
	}
	for r := DropReason(0); r < numDropReasons; r++ {
		st.Drops = append(st.Drops, console.Counter{Name: r.String(), Value: s.Drops[r]})
	}
	st.Table = []console.Counter{
		{Name: "live", Value: uint64(t.Len())},
		{Name: "capacity", Value: uint64(t.Cap())},
		{Name: "tombstones", Value: uint64(t.Tombs())},
		{Name: "tombstone capacity", Value: uint64(t.TombCap())},
		{Name: "full (answered 130)", Value: ts.Full},
		{Name: "tombstones evicted early", Value: ts.TombEvicted},
	}
	if a.adv != nil {
		as := a.adv.r.Stats()
		st.Advert = []console.Counter{
			{Name: "advertisements sent", Value: as.TxAdverts}, {Name: "periodic", Value: as.TxPeriodic},
			{Name: "on becoming active", Value: as.TxActivated}, {Name: "answering solicitations", Value: as.TxSolicited},
			{Name: "final (lifetime 0)", Value: as.TxFinal}, {Name: "send errors", Value: as.TxErrors},
			{Name: "solicitations received", Value: as.RxSolicitations},
			{Name: "solicitations coalesced (rate limit)", Value: as.SolicitationsCoalesced},
			{Name: "solicitations ignored (standby)", Value: as.SolicitationsStandby},
			{Name: "solicitations dropped: ttl", Value: as.DropTTL}, {Name: "dropped: checksum", Value: as.DropChecksum},
			{Name: "dropped: code", Value: as.DropCode}, {Name: "dropped: short", Value: as.DropShort},
			{Name: "dropped: queue full", Value: as.DropQueueFull},
		}
	}
	if d := a.dpl; d != nil {
		ds := d.dp.Stats()
		st.Datapath = []console.Counter{
			{Name: "active", Value: b2u(d.active)},
			{Name: "routes installed", Value: uint64(ds.Routes)},
			{Name: "netlink batches", Value: ds.Batches},
			{Name: "netlink requests", Value: ds.Messages},
			{Name: "kernel refusals", Value: ds.Errors},
			{Name: "binding programming errors", Value: d.errs},
			{Name: "periodic checks done", Value: d.checks},
			{Name: "periodic checks dropped: kernel changed while read", Value: d.stale},
			{Name: "last periodic check: kernel read (ms, off the loop)", Value: uint64(d.lastRead.Milliseconds())},
			{Name: "last periodic check: longest pause on the loop (ms)", Value: uint64(d.lastConv.Milliseconds())},
			{Name: "link events", Value: ds.LinkEvents},
			{Name: "link events dropped", Value: ds.LinkDropped},
			{Name: "reverse tunnel passed", Value: ds.ReversePassed},
			{Name: "reverse tunnel dropped: wrong care-of", Value: ds.ReverseWrongCareOf},
			{Name: "reverse tunnel dropped: unknown home", Value: ds.ReverseUnknownHome},
			{Name: "reverse tunnel dropped: malformed", Value: ds.ReverseMalformed},
		}
	}
	m := memStats()
	st.Runtime = []console.Counter{
		{Name: "resident set (VmRSS) bytes", Value: rssBytes()},
		{Name: "heap live after the last GC bytes", Value: liveHeap()},
		{Name: "heap in use bytes", Value: m.HeapInuse},
		{Name: "sys bytes", Value: m.Sys},
		{Name: "gc cycles", Value: uint64(m.NumGC)},
	}
	return st
}

func knownCode(c mip.Code) bool {
	switch c {
	case mip.CodeAccepted, mip.CodeAcceptedNoSimultaneous, mip.CodeUnspecified, mip.CodeAdminProhibited,
		mip.CodeInsufficientResources, mip.CodeMNAuthFailed, mip.CodeFAAuthFailed, mip.CodeIDMismatch,
		mip.CodePoorlyFormed, mip.CodeUnknownHA, mip.CodeReverseTunnelUnavailable,
		mip.CodeReverseTunnelMandatory, mip.CodeEncapUnavailable:
		return true
	}
	return false
}

func (a *Agent) showRedundancy() *console.Redundancy {
	g := a.grp
	r := &console.Redundancy{Mode: g.mode, Role: g.role.Role.String(), Reason: g.role.Reason,
		Since: g.since.UTC().Format(time.RFC3339), Synced: true}
	if g.role.State != "" {
		r.Role += " (" + g.role.Protocol + " " + g.role.State + ")"
	}
	r.Counter = append(r.Counter,
		console.Counter{Name: "role changes", Value: g.changes},
		console.Counter{Name: "serving registrations", Value: b2u(a.core.Serving())})
	r.Counter = append(r.Counter, electionCounters(g.elector)...)
	if g.m == nil {
		return r
	}
	r.Counter = append(r.Counter, console.Counter{Name: "group send key id", Value: uint64(g.m.SendKey())})
	if q := a.hold; q != nil {
		r.Counter = append(r.Counter,
			console.Counter{Name: "require replication", Value: b2u(a.cfg.Group.RequireReplication)},
			console.Counter{Name: "replies held for a peer ack", Value: q.Held},
			console.Counter{Name: "held replies released by an ack", Value: q.Acked},
			console.Counter{Name: "held replies whose wait ended without an ack", Value: q.Timeouts},
			console.Counter{Name: "replies not held (queue full)", Value: q.Overflow},
			console.Counter{Name: "held replies superseded by a newer request", Value: q.Superseded},
			console.Counter{Name: "denied 130: no peer ack (held replies)", Value: q.DeniedNoAck},
			console.Counter{Name: "denied_unreplicated 130: no peer up (require_replication)", Value: q.DeniedUnreplicated},
			console.Counter{Name: "denied 130: queue full (require_replication)", Value: q.DeniedFull},
			console.Counter{Name: "accepted_unreplicated: no acking peer up, served alone", Value: q.AcceptedUnreplicated},
			console.Counter{Name: "unacknowledged replies not sent (could not re-sign)", Value: q.Unsigned})
	}
	r.Counter = append(r.Counter,
		console.Counter{Name: "peers up", Value: uint64(g.m.UpPeers())},
		console.Counter{Name: "peers up and acknowledging our updates", Value: uint64(g.m.AckingPeers())})
	gs := g.conn.Stats()
	r.Counter = append(r.Counter,
		console.Counter{Name: "group datagrams from another interface", Value: gs.WrongInterface},
		console.Counter{Name: "group datagrams oversize", Value: gs.Truncated})
	r.Synced = g.m.Initialized()
	now := a.now()
	g.pinfo = g.m.Peers(g.pinfo[:0])
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
		r.Peers = append(r.Peers, console.Peer{Address: p.Addr.String(), ID: p.ID, State: st, LastHeard: heard, InSync: p.InSync, Acking: p.Acking})
	}
	c := g.m.Counters()
	for _, kv := range []struct {
		n string
		v uint64
	}{
		{"binding updates sent", c.UpdatesSent}, {"binding updates failed (no ack)", c.UpdatesFailed},
		{"binding updates total incl. retransmissions", c.UpdatesTotal}, {"binding updates received", c.UpdatesReceived},
		{"update acks sent", c.UpdateAcksSent}, {"update acks received", c.UpdateAcksReceived},
		{"table requests sent", c.TableRequestsSent}, {"table requests failed", c.TableRequestsFailed},
		{"table requests total", c.TableRequestsTotal}, {"table replies received", c.TableRepliesReceived},
		{"table replies dropped", c.TableRepliesDropped}, {"table acks sent", c.TableAcksSent},
		{"table requests received", c.RequestsReceived}, {"table replies sent", c.RepliesSent},
		{"table replies failed", c.RepliesFailed}, {"table replies total", c.RepliesTotal},
		{"reply acks received", c.ReplyAcksReceived}, {"reply acks dropped", c.ReplyAcksDropped},
		{"security violations", c.SecViolations}, {"bad ttl", c.BadTTL}, {"bad auth", c.BadAuth},
		{"unknown key", c.UnknownKey}, {"replayed", c.Replay}, {"malformed", c.Malformed},
		{"digests sent", c.DigestsSent}, {"digests received", c.DigestsReceived},
		{"digest mismatches", c.DigestMismatches}, {"repairs sent", c.RepairsSent}, {"repairs received", c.RepairsRecvd},
		{"superseded", c.Superseded}, {"table full", c.TableFull}, {"downloads", c.Downloads},
		{"peers rejected", c.PeersRejected}, {"leaves received", c.LeavesReceived}, {"group send errors", g.sendErrs},
	} {
		r.Counter = append(r.Counter, console.Counter{Name: kv.n, Value: kv.v})
	}
	return r
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// electionCounters are the VRRP or HSRP runner's counters, drops per reason
// included (RFC 5798 §7.1), for `show redundancy`.
func electionCounters(e role.Elector) []console.Counter {
	c := func(n string, v uint64) console.Counter { return console.Counter{Name: n, Value: v} }
	switch r := e.(type) {
	case *vrrp.Runner:
		s := r.Stats()
		return []console.Counter{c("vrrp adverts received", s.RxAdverts), c("vrrp adverts sent", s.TxAdverts),
			c("vrrp gratuitous arps", s.GARPs), c("vrrp dropped: ttl", s.DropTTL), c("vrrp dropped: version", s.DropVersion),
			c("vrrp dropped: type", s.DropType), c("vrrp dropped: checksum", s.DropChecksum), c("vrrp dropped: vrid", s.DropVRID),
			c("vrrp dropped: address list", s.DropAddrList), c("vrrp dropped: interval", s.DropInterval),
			c("vrrp dropped: short", s.DropShort), c("vrrp dropped: other", s.DropOther), c("vrrp action errors", s.ActionErrors)}
	case *hsrp.Runner:
		s := r.Stats()
		return []console.Counter{c("hsrp hellos received", s.Rx), c("hsrp sent", s.Tx), c("hsrp gratuitous arps", s.GARPs),
			c("hsrp dropped: short", s.DropShort), c("hsrp dropped: version", s.DropVersion), c("hsrp dropped: op code", s.DropOpCode),
			c("hsrp dropped: state", s.DropState), c("hsrp dropped: group", s.DropGroup), c("hsrp dropped: auth", s.DropAuth),
			c("hsrp dropped: other", s.DropOther), c("hsrp action errors", s.ActionErrors)}
	}
	return nil
}
