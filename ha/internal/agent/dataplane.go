package agent

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/datapath"
	"github.com/hagent/hagent/ha/mip"
)

// dataplane keeps the kernel in step with the binding table while this
// agent is active: a tunnel route and a proxy ARP entry per away node. The
// owner loop queues changes as they happen and flushes them in one netlink
// batch per loop iteration, so a batch of registrations costs one round of
// kernel work, not one per node.
type dataplane struct {
	dp      datapath.Datapath
	active  bool
	adds    []datapath.Binding
	dels    []netip.Addr
	garp    []netip.Addr // newly registered nodes: announce their home address (RFC 5944 §4.6)
	errs    uint64       // kernel refusals, per binding
	recon   time.Time    // last reconcile
	every   time.Duration
	ifname  string
	lastLog time.Time // rate limit of error logs
}

// openDataplane opens and sets up the kernel datapath when [datapath] is
// enabled. A kernel without what the configuration needs fails start-up
// with the reason (the datapath names the missing option).
func (a *Agent) openDataplane() (*dataplane, error) {
	cfg := &a.cfg.Datapath
	if !cfg.Enabled {
		return nil, nil
	}
	local := a.cfg.Agent.Address
	if a.cfg.Agent.VirtualAddress.IsValid() {
		local = a.cfg.Agent.VirtualAddress
	}
	dc := datapath.Config{
		HomeIfname: a.cfg.Agent.Interface,
		TunnelName: cfg.TunnelDevice,
		Protocol:   cfg.RouteProtocol,
		ProxyARP:   cfg.ProxyARP,
		// The filter's map holds every binding the table can.
		ReverseCheck: cfg.ReverseCheck,
		Capacity:     a.cfg.Agent.Capacity,
		Local:        local,
		Logger:       a.log.With("sub", "datapath"),
	}
	for _, e := range a.cfg.Agent.Encapsulations {
		if e == "gre" {
			dc.GRETunnelName = cfg.TunnelDevice + "gre"
		}
	}
	dp, err := datapath.Open(dc)
	if err != nil {
		return nil, fmt.Errorf("agent: datapath: %w", err)
	}
	if err := dp.Setup(); err != nil {
		dp.Close()
		return nil, fmt.Errorf("agent: datapath setup: %w (or set [datapath] enabled = false to run without kernel tunnels)", err)
	}
	// Offer GRE only when the kernel has it (else the node gets 139).
	a.core.SetKernelGRE(dp.Supports(datapath.GRE))
	return &dataplane{dp: dp, every: cfg.ReconcileInterval, ifname: a.cfg.Agent.Interface}, nil
}

func dpBinding(e *binding.Entry) datapath.Binding {
	b := datapath.Binding{Home: binding.U32Addr(e.Home), CareOf: binding.U32Addr(e.CareOf), Reverse: e.Flags&mip.FlagT != 0}
	if e.Flags&mip.FlagG != 0 {
		b.Encap = datapath.GRE
	}
	return b
}

// queue records a table change for the next flush (owner goroutine).
func (d *dataplane) queue(ch Change) {
	if d == nil || !d.active {
		return
	}
	switch ch.Kind {
	case Registered, Renewed:
		if !ch.Moved {
			return // a renewal from the same care-of: the route stands
		}
		d.adds = append(d.adds, dpBinding(&ch.Entry))
		if ch.Kind == Registered {
			d.garp = append(d.garp, binding.U32Addr(ch.Entry.Home))
		}
	case Deregistered, Expired, Cleared:
		d.dels = append(d.dels, binding.U32Addr(ch.Entry.Home))
	}
}

// flush sends what was queued in one batch.
func (a *Agent) flushDataplane() {
	d := a.dpl
	if d == nil || !d.active || len(d.adds)+len(d.dels) == 0 {
		return
	}
	if errs := d.dp.Apply(d.adds, d.dels); errs != nil {
		var first error
		for i, err := range errs {
			if err == nil {
				continue
			}
			d.errs++
			if first == nil {
				if i < len(d.adds) {
					first = fmt.Errorf("home %s via %s: %w", d.adds[i].Home, d.adds[i].CareOf, err)
				} else {
					first = fmt.Errorf("removing home %s: %w", d.dels[i-len(d.adds)], err)
				}
			}
		}
		// The next reconcile repairs what failed; say so at most once a second.
		if first != nil && time.Since(d.lastLog) > time.Second {
			d.lastLog = time.Now()
			a.log.Warn("kernel refused part of a datapath batch; the next reconcile retries", "errors", d.errs, "first", first)
		}
	}
	if len(d.garp) > 0 {
		if err := datapath.GratuitousARP(d.ifname, d.garp, 1); err != nil && time.Since(d.lastLog) > time.Second {
			d.lastLog = time.Now()
			a.log.Warn("gratuitous ARP for new bindings failed", "err", err)
		}
	}
	d.adds, d.dels, d.garp = d.adds[:0], d.dels[:0], d.garp[:0]
}

// want lists every live binding as the kernel should hold it.
func (a *Agent) want() []datapath.Binding {
	var w []datapath.Binding
	a.core.table.Range(func(e *binding.Entry) bool {
		if !e.Tombstone() {
			w = append(w, dpBinding(e))
		}
		return true
	})
	return w
}

// activateDataplane programs every binding in one batch (takeover) and
// starts following changes; deactivate withdraws everything.
func (a *Agent) activateDataplane(on bool) {
	d := a.dpl
	if d == nil || d.active == on {
		return
	}
	d.active = on
	d.adds, d.dels, d.garp = d.adds[:0], d.dels[:0], d.garp[:0]
	if !on {
		if err := d.dp.Withdraw(); err != nil {
			a.log.Error("withdrawing kernel state failed", "err", err)
		}
		return
	}
	start := time.Now()
	added, removed, err := d.dp.Reconcile(a.want())
	d.recon = time.Now()
	if err != nil {
		a.log.Error("programming the datapath failed; retrying at the next reconcile", "err", err)
		return
	}
	a.log.Info("datapath programmed", "bindings", a.core.table.Len(), "added", added, "removed", removed, "took", time.Since(start).Round(time.Microsecond))
}

// reconcileDataplane converges the kernel to the table every
// [datapath] reconcile_interval while active.
func (a *Agent) reconcileDataplane() {
	d := a.dpl
	if d == nil || !d.active || d.every <= 0 || time.Since(d.recon) < d.every {
		return
	}
	d.recon = time.Now()
	added, removed, err := d.dp.Reconcile(a.want())
	switch {
	case err != nil:
		a.log.Warn("datapath reconcile failed", "err", err)
	case added+removed > 0:
		a.log.Info("datapath reconciled: the kernel had drifted", "added", added, "removed", removed)
	}
}

func (a *Agent) closeDataplane() {
	if d := a.dpl; d != nil {
		if err := d.dp.Withdraw(); err != nil {
			a.log.Warn("withdrawing kernel state at shutdown failed", "err", err)
		}
		_ = d.dp.Close()
	}
}

// linkEvent logs changes of the home interface and applies VRRP interface
// tracking: each tracked interface that is down lowers the priority by its
// weight; weight 0 means "resign" (priority 1: any other member wins).
func (a *Agent) linkEvent(ev datapath.LinkEvent) {
	if ev.Name == "" {
		// Notifications were lost (the datapath's channel overflowed): the
		// periodic reconcile re-checks the kernel; tracking catches up on
		// the next event.
		a.log.Warn("link notifications were lost")
		return
	}
	up := ev.Up && ev.Carrier && !ev.Deleted
	if ev.Name == a.cfg.Agent.Interface {
		a.log.Info("home interface changed", "if", ev.Name, "up", ev.Up, "carrier", ev.Carrier, "deleted", ev.Deleted)
	}
	v := &a.cfg.VRRP
	if a.grp == nil || a.grp.elector == nil || !v.Enabled || len(v.TrackInterfaces) == 0 {
		return
	}
	tracked := false
	if a.linkDown == nil {
		a.linkDown = map[string]bool{}
	}
	for _, tr := range v.TrackInterfaces {
		if tr.Interface == ev.Name {
			tracked = true
			a.linkDown[ev.Name] = !up
		}
	}
	if !tracked {
		return
	}
	prio := int(v.Priority)
	for _, tr := range v.TrackInterfaces {
		if a.linkDown[tr.Interface] {
			if tr.Weight == 0 {
				prio = 1
				break
			}
			prio -= tr.Weight
		}
	}
	prio = max(prio, 1)
	a.log.Info("tracked interface changed", "if", ev.Name, "up", up, "priority", prio)
	a.grp.elector.SetPriority(uint8(prio))
}
