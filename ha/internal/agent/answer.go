package agent

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/internal/version"
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
	case "show violations":
		return &console.Response{Violations: a.core.viol.show(r.Limit)}
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
			return &console.Response{Error: "usage: clear binding HOME-ADDRESS|NAI"}
		}
		ev, what, bad := clearEvent(r.Args[0])
		if bad != "" {
			return &console.Response{Error: bad}
		}
		addr := ev.Home
		acts := a.reg.Handle(a.now(), ev, a.acts[:0])
		var none error
		for i := range acts {
			if acts[i].Kind == ActCleared {
				none = acts[i].Err
			}
		}
		a.perform(a.now(), acts)
		if none != nil {
			return &console.Response{Error: fmt.Sprintf("clear binding: no binding for %s", what)}
		}
		a.log.Info("binding cleared by operator", "home", addr, "nai", ev.NAI)
		return &console.Response{Message: fmt.Sprintf("binding for %s cleared", what)}
	}
	return &console.Response{Error: fmt.Sprintf("unknown command %q; try: show bindings|stats|redundancy|violations|version, clear binding ADDR", r.Cmd)}
}

// bindingRow is one binding as the console shows it.
func (a *Agent) bindingRow(e *binding.Entry, now int64) console.Binding {
	row := console.Binding{
		Home:    binding.U32Addr(e.Home).String(),
		Node:    a.core.NodeName(e.Node),
		Granted: e.Granted,
		ID:      e.ID,
		Origin:  e.Origin,
		Flags:   FlagString(e.Flags),
	}
	row.Remaining = uint32(e.Remaining(now) / time.Second)
	if e.Registered != 0 && now > e.Registered {
		row.Age = uint32(time.Duration(now-e.Registered) / time.Second)
	}
	if s := a.core.table.SourceOf(e); s != nil && s.Addr != 0 {
		row.Source = netip.AddrPortFrom(binding.U32Addr(s.Addr), s.Port).String()
		row.NAI = string(s.NAI())
	}
	if nai := a.core.table.NAIOf(e); nai != nil {
		row.NAI = string(nai) // a fleet router's identity: shown on every member
	}
	if e.Tombstone() {
		row.State = "tombstone"
		return row
	}
	row.State = "live"
	row.CareOf = binding.U32Addr(e.CareOf).String()
	row.HomeAgent = binding.U32Addr(e.HomeAgent).String()
	row.Tunnel = "ipip"
	if e.Flags&mip.FlagG != 0 {
		row.Tunnel = "gre"
	}
	natRow(e, &row)
	row.Networks = netStrings(e)
	return row
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
		{Name: "revoked by reload (node removed or changed)", Value: s.Revoked},
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
			{Name: "periodic checks: home entries repaired", Value: d.repaired},
			{Name: "periodic checks: mobile network routes repaired", Value: d.netsRepaired()},
			{Name: "last periodic check: kernel read (ms, off the loop)", Value: uint64(d.lastRead.Milliseconds())},
			{Name: "last periodic check: longest pause on the loop (ms)", Value: uint64(d.lastConv.Milliseconds())},
			{Name: "link events", Value: ds.LinkEvents},
			{Name: "link events dropped", Value: ds.LinkDropped},
			{Name: "reverse tunnel passed", Value: ds.ReversePassed},
			{Name: "reverse tunnel dropped: wrong care-of", Value: ds.ReverseWrongCareOf},
			{Name: "reverse tunnel dropped: unknown home", Value: ds.ReverseUnknownHome},
			{Name: "reverse tunnel dropped: malformed", Value: ds.ReverseMalformed},
		}
		st.Datapath = append(st.Datapath, natCounters(&ds)...)
	}
	m := memStats()
	st.Runtime = []console.Counter{
		{Key: "rss_bytes", Name: "resident set (VmRSS)", Value: rssBytes(), Unit: "bytes"},
		{Key: "heap_live_bytes", Name: "heap live after the last GC", Value: liveHeap(), Unit: "bytes"},
		{Key: "heap_inuse_bytes", Name: "heap in use", Value: m.HeapInuse, Unit: "bytes"},
		{Key: "sys_bytes", Name: "obtained from the OS (sys)", Value: m.Sys, Unit: "bytes"},
		{Name: "gc cycles", Value: uint64(m.NumGC)},
	}
	return st
}

func knownCode(c mip.Code) bool {
	switch c {
	case mip.CodeAccepted, mip.CodeAcceptedNoSimultaneous, mip.CodeUnspecified, mip.CodeAdminProhibited,
		mip.CodeInsufficientResources, mip.CodeMNAuthFailed, mip.CodeFAAuthFailed, mip.CodeIDMismatch,
		mip.CodePoorlyFormed, mip.CodeUnknownHA, mip.CodeReverseTunnelUnavailable,
		mip.CodeReverseTunnelMandatory, mip.CodeEncapUnavailable, mip.CodeUDPEncapUnavailable:
		return true
	}
	return false
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
