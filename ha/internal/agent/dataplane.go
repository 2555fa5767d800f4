package agent

import (
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/datapath"
	"github.com/hagent/hagent/ha/mip"
)

// dataplane keeps the kernel in step with the binding table while this
// agent is active: a tunnel route and a proxy ARP entry per away node. The
// owner loop queues changes as they happen and flushes them in one netlink
// batch: a batch of registrations is flushed before its replies leave (so
// that a refusal changes the node's reply, issue 5), anything else at the
// start of the next loop iteration. A batch of registrations costs one
// round of kernel work, not one per node.
type dataplane struct {
	dp      datapath.Datapath
	active  bool
	adds    []datapath.Binding
	dels    []netip.Addr
	garp    []netip.Addr        // newly registered nodes: announce their home address (RFC 5944 §4.6)
	arp     *datapath.Announcer // one socket for every batch's announcements (nil until the first)
	refused []refusal           // adds the kernel refused in the last apply
	errs    uint64              // kernel refusals, per binding
	recon   time.Time           // last reconcile
	// the periodic check's kernel read runs on its own goroutine
	// (datapath.ScanKernel); its result comes back on scanned
	scanning bool
	scanned  chan *datapath.Scan
	// then converged a slice per loop iteration; more wakes the loop
	conv      *datapath.Scan
	convPos   int
	convPause time.Duration // the longest slice of this check
	convStart time.Time
	more      chan struct{}
	stale     uint64        // periodic checks dropped: the kernel changed too much while read
	checks    uint64        // periodic checks completed
	repaired  uint64        // routes, proxy and map entries they added or removed
	lastRead  time.Duration // the last one's kernel read (off the owner loop)
	lastConv  time.Duration // and its pause on the owner loop
	every     time.Duration
	ifname    string
	lastLog   time.Time // rate limit of error logs
	nets      *netPlane // mobile networks' routes (dataplane_nets.go)
}

// refusal is one add the kernel refused: the binding and why.
type refusal struct {
	b   datapath.Binding
	err error
	// later: another add for the same home follows in the same batch; the
	// kernel's state (and the table's) is that one's, not this one's.
	later bool
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
		// Beyond ~20,000 nodes the kernel's proxy-entry table is O(N²);
		// "interface" lets proxy_arp answer for our /32 routes instead.
		ProxyByRoute: cfg.ProxyARPMode == config.ProxyARPInterface,
		// The filter's map holds every binding the table can.
		ReverseCheck: cfg.ReverseCheck,
		Capacity:     a.cfg.Agent.Capacity,
		Local:        local,
		TunnelDF:     cfg.TunnelDF,
		Logger:       a.log.With("sub", "datapath"),
	}
	natDatapathConfig(a.cfg, &dc)
	// A one-armed agent forwards out of the interface a packet came in
	// on: the kernel's redirects would send hosts around it.
	dc.SendRedirects = cfg.SendRedirects
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
	a.core.SetKernelUDP(dp.Supports(datapath.UDP))
	a.core.SetKernelIPIP(dp.Supports(datapath.IPIP))
	return &dataplane{dp: dp, every: cfg.ReconcileInterval, ifname: a.cfg.Agent.Interface, scanned: make(chan *datapath.Scan, 1), more: make(chan struct{}, 1), nets: newNetPlane(dp)}, nil
}

func dpBinding(e *binding.Entry) datapath.Binding {
	b := datapath.Binding{Home: binding.U32Addr(e.Home), CareOf: binding.U32Addr(e.CareOf), Reverse: e.Flags&mip.FlagT != 0}
	if e.Flags&mip.FlagG != 0 {
		b.Encap = datapath.GRE
	}
	natBinding(e, &b)
	return b
}

// queue records a table change for the next flush (owner goroutine).
func (d *dataplane) queue(ch Change) {
	if d == nil || !d.active {
		return
	}
	d.nets.queue(&ch)
	if ch.Entry.Key != 0 {
		return // a fleet router's: its networks are routed, never the shared home address
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
	case Deregistered, Expired, Cleared, Withdrawn, Revoked:
		// Withdrawn: the add failed, but a failed replace leaves the old
		// route and a partial add may leave a proxy entry; removing what is
		// absent is no error.
		d.dels = append(d.dels, binding.U32Addr(ch.Entry.Home))
	}
}

// flushDataplane sends what was queued in one batch, outside a batch of
// registrations (a peer's update while active, an expiry, the console, the
// withdrawals of the last batch). A refused add has no reply to change
// here: it is counted, and the next reconcile retries it.
func (a *Agent) flushDataplane() {
	refused := a.applyDataplane()
	d := a.dpl
	if len(refused) > 0 && time.Since(d.lastLog) > time.Second {
		d.lastLog = time.Now()
		r := &refused[0]
		a.log.Warn("kernel refused a binding learnt outside a registration; the next reconcile retries",
			"errors", d.errs, "home", r.b.Home, "care_of", r.b.CareOf, "err", r.err)
	}
}

// applyDataplane sends what was queued in one netlink batch and returns
// the adds the kernel refused (valid until the next call). Refused deletes
// are counted and logged here (the next reconcile retries them); new
// bindings the kernel accepted are announced by gratuitous ARP.
func (a *Agent) applyDataplane() []refusal {
	d := a.dpl
	if d == nil || !d.active {
		return nil
	}
	d.nets.apply(a)
	if len(d.adds)+len(d.dels) == 0 {
		return nil
	}
	d.refused = d.refused[:0]
	if errs := d.dp.Apply(d.adds, d.dels); errs != nil {
		var delErr error
		for i, err := range errs {
			if err == nil {
				continue
			}
			d.errs++
			if i < len(d.adds) {
				r := refusal{b: d.adds[i], err: err}
				for _, o := range d.adds[i+1:] {
					r.later = r.later || o.Home == r.b.Home
				}
				d.refused = append(d.refused, r)
			} else if delErr == nil {
				delErr = fmt.Errorf("removing home %s: %w", d.dels[i-len(d.adds)], err)
			}
		}
		// The next reconcile repairs what failed; say so at most once a second.
		if delErr != nil && time.Since(d.lastLog) > time.Second {
			d.lastLog = time.Now()
			a.log.Warn("kernel refused to remove a binding; the next reconcile retries", "errors", d.errs, "first", delErr)
		}
	}
	if len(d.garp) > 0 && len(d.refused) > 0 {
		// A refused node is not here: do not pull its traffic to us.
		keep := d.garp[:0]
		for _, h := range d.garp {
			if !refusedHome(d.refused, h) {
				keep = append(keep, h)
			}
		}
		d.garp = keep
	}
	if len(d.garp) > 0 {
		if d.arp == nil {
			d.arp = datapath.NewAnnouncer(d.ifname)
		}
		if err := d.arp.Announce(d.garp); err != nil && time.Since(d.lastLog) > time.Second {
			d.lastLog = time.Now()
			a.log.Warn("gratuitous ARP for new bindings failed", "err", err)
		}
	}
	d.adds, d.dels, d.garp = d.adds[:0], d.dels[:0], d.garp[:0]
	return d.refused
}

func refusedHome(rs []refusal, h netip.Addr) bool {
	for i := range rs {
		if rs[i].b.Home == h && !rs[i].later {
			return true
		}
	}
	return false
}

// want yields every live binding as the kernel should hold it, straight
// from the table (Reconcile walks it once; at 100,000 bindings a copied
// slice would be 8 MB of garbage per periodic reconcile).
func (a *Agent) want() iter.Seq[datapath.Binding] {
	return func(yield func(datapath.Binding) bool) {
		a.core.table.Range(func(e *binding.Entry) bool {
			return e.Tombstone() || e.Key != 0 || yield(dpBinding(e)) // (fleet routers: networks only)
		})
	}
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
	a.activateNets()
}

// reconcileDataplane starts the periodic check every [datapath]
// reconcile_interval while active: the kernel is read on another goroutine
// (150–250 ms at 100,000 bindings), and the loop goes on serving;
// reconciled converges to the table as it is when the read comes back.
func (a *Agent) reconcileDataplane() {
	d := a.dpl
	// The ticker fires every d.every and d.recon is stamped a moment after a
	// tick was taken, so "less than d.every ago" would skip every other
	// tick: the check ran once a minute at the default 30 s. Only a full
	// reconcile in the last half interval (a takeover) makes a tick redundant.
	if d == nil || !d.active || d.every <= 0 || d.scanning || d.conv != nil || time.Since(d.recon) < d.every/2 {
		return
	}
	d.recon = time.Now()
	d.scanning = true
	s := d.dp.BeginScan()
	go func() {
		d.dp.ScanKernel(s)
		d.scanned <- s // buffered: one scan at a time
	}()
}

// convSlice is how many bindings one owner-loop iteration converges: at
// 100,000 bindings the whole table took 48 ms natively and 1.4 s under
// emulation (a slow MIPS core's order) in one go; a slice is an eighth
// of that at 8,192.
const convSlice = 8192

// reconciled starts converging the scan ScanKernel read: a slice of the
// table now, the next ones on later iterations (d.more), registrations
// served in between.
func (a *Agent) reconciled(s *datapath.Scan) {
	d := a.dpl
	d.scanning = false
	if !d.active {
		return // withdrawn meanwhile: nothing of ours to check
	}
	d.convPause = 0
	if err := d.dp.ConvergeStart(s); err != nil {
		a.checkEnded(s, 0, 0, err)
		return
	}
	d.conv, d.convPos, d.convPause, d.convStart = s, 0, 0, time.Now()
	a.convergeSlice()
}

// convergeSlice converges the next convSlice bindings of the table
// (binding.Table.RangeFrom: what arrives or goes meanwhile went through
// Apply, which the datapath skips), and the end of the check after the
// last slice.
func (a *Agent) convergeSlice() {
	d := a.dpl
	s := d.conv
	if s == nil {
		return
	}
	start := time.Now()
	pos, next := d.convPos, 0
	err := d.dp.ConvergeSome(s, func(yield func(datapath.Binding) bool) {
		n := 0
		next = a.core.table.RangeFrom(pos, func(e *binding.Entry) bool {
			if e.Tombstone() {
				return true
			}
			n += 1 + d.nets.collect(e) // a network costs the slice what a binding does
			return yield(dpBinding(e)) && n < convSlice
		})
	})
	if err == nil {
		err = d.nets.converge(s)
	}
	if err != nil {
		d.conv = nil
		a.checkEnded(s, 0, 0, err)
		return
	}
	if next != 0 {
		d.convPos = next
		d.convPause = max(d.convPause, time.Since(start))
		select {
		case d.more <- struct{}{}:
		default:
		}
		return
	}
	d.nets.finish(a, s)
	added, removed, err := d.dp.ConvergeFinish(s)
	d.convPause = max(d.convPause, time.Since(start))
	d.conv = nil
	a.checkEnded(s, added, removed, err)
}

// checkEnded counts and logs the end of a periodic check.
func (a *Agent) checkEnded(s *datapath.Scan, added, removed int, err error) {
	d := a.dpl
	d.checks++
	d.lastRead, d.lastConv = s.Took(), d.convPause
	switch {
	case errors.Is(err, datapath.ErrScanStale):
		d.stale++
		d.recon = time.Time{} // check again at the next tick
	case err != nil:
		a.log.Warn("datapath reconcile failed", "err", err)
	case added+removed > 0:
		d.repaired += uint64(added + removed)
		a.log.Info("datapath reconciled: the kernel had drifted", "added", added, "removed", removed,
			"read", s.Took().Round(time.Millisecond), "longest_pause", d.convPause.Round(time.Millisecond),
			"converged_in", time.Since(d.convStart).Round(time.Millisecond))
	}
}

func (a *Agent) closeDataplane() {
	if d := a.dpl; d != nil {
		if d.scanning {
			<-d.scanned // Close must not pull the socket from under the read
			d.scanning = false
		}
		if err := d.dp.Withdraw(); err != nil {
			a.log.Warn("withdrawing kernel state at shutdown failed", "err", err)
		}
		_ = d.dp.Close()
		if d.arp != nil {
			d.arp.Close()
		}
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
		if a.dpl != nil && a.dpl.arp != nil {
			a.dpl.arp.Close() // the next announcement finds it (and its address) again
		}
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
	prio := a.currentPriority()
	a.log.Info("tracked interface changed", "if", ev.Name, "up", up, "priority", prio)
	a.grp.elector.SetPriority(prio)
	// The heartbeat carries it too, and the fast takeover ranks this member
	// by it (peerDown): the standbys' order must be the election's.
	if a.grp.m != nil {
		a.grp.m.SetHeartbeatPriority(prio)
	}
}
