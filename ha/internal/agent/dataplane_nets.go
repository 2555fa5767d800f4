package agent

import (
	"errors"
	"iter"
	"net/netip"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/datapath"
)

// netPlane is the mobile-network side of the dataplane: each network a
// binding carries is a route into its router's tunnel (datapath.PrefixRouter),
// queued with the binding's own changes and sent in the same flush, right
// after the home routes. Like the home routes, only the active member holds
// them: programmed from the table at takeover (ReconcilePrefixes), removed
// with everything else when it stands down (Withdraw).
type netPlane struct {
	pr      datapath.PrefixRouter // nil: the datapath cannot route networks (every add refused)
	adds    []datapath.MobileNet
	dels    []netip.Prefix
	refused []datapath.MobileNet // adds the kernel refused in the last flush
	errs    uint64
	lastLog time.Time
	// the periodic check (datapath.PrefixChecker; nil: none)
	pc       datapath.PrefixChecker
	checkBuf []datapath.MobileNet // one slice's networks
	repaired uint64               // routes the periodic checks added or removed
}

// errNoPrefixRoutes: the datapath in use has no prefix routes.
var errNoPrefixRoutes = errors.New("agent: this datapath cannot route mobile networks")

func newNetPlane(dp datapath.Datapath) *netPlane {
	n := &netPlane{}
	n.pr, _ = dp.(datapath.PrefixRouter)
	n.pc, _ = dp.(datapath.PrefixChecker)
	return n
}

func mobileNet(e *binding.Entry, i int) datapath.MobileNet {
	return datapath.MobileNet{Prefix: e.Prefix(i), CareOf: binding.U32Addr(e.CareOf), Encap: dpBinding(e).Encap}
}

// queue records what ch changes of the kernel's network routes.
func (n *netPlane) queue(ch *Change) {
	if n == nil {
		return
	}
	for i := 0; i < int(ch.Gone.n); i++ {
		n.dels = append(n.dels, ch.Gone.prefix(i))
	}
	e := &ch.Entry
	switch ch.Kind {
	case Registered, Renewed:
		if !ch.Moved {
			return
		}
		for i := 0; i < e.NumPrefixes(); i++ {
			m := mobileNet(e, i)
			// An add after a removal of the same network wins: the batch
			// installs its adds before its removals.
			n.dels = deletePrefix(n.dels, m.Prefix)
			n.adds = append(n.adds, m)
		}
	case Deregistered, Expired, Cleared, Withdrawn, Revoked:
		for i := 0; i < e.NumPrefixes(); i++ {
			n.dels = append(n.dels, e.Prefix(i))
		}
	}
}

func deletePrefix(ps []netip.Prefix, p netip.Prefix) []netip.Prefix {
	k := 0
	for _, q := range ps {
		if q != p {
			ps[k] = q
			k++
		}
	}
	return ps[:k]
}

// apply sends the queued network routes in one batch and keeps the adds the
// kernel refused (refused, until the next apply). A refused removal is
// counted and logged; the next takeover's reconcile retries it.
func (n *netPlane) apply(a *Agent) {
	if n == nil {
		return
	}
	n.refused = n.refused[:0]
	if len(n.adds)+len(n.dels) == 0 {
		return
	}
	var errs []error
	if n.pr != nil {
		errs = n.pr.ApplyPrefixes(n.adds, n.dels)
	} else {
		n.refused = append(n.refused, n.adds...)
		n.errs += uint64(len(n.adds))
		errs = nil
	}
	var first error
	for i, err := range errs {
		if err == nil {
			continue
		}
		n.errs++
		if i < len(n.adds) {
			n.refused = append(n.refused, n.adds[i])
		}
		if first == nil {
			first = err
		}
	}
	if n.pr == nil && len(n.adds) > 0 {
		first = errNoPrefixRoutes
	}
	if first != nil && time.Since(n.lastLog) > time.Second {
		n.lastLog = time.Now()
		a.log.Warn("kernel refused a mobile network route", "errors", n.errs, "first", first)
	}
	n.adds, n.dels = n.adds[:0], n.dels[:0]
}

// wantNets yields every network of every live binding, as routed.
func (a *Agent) wantNets() iter.Seq[datapath.MobileNet] {
	return func(yield func(datapath.MobileNet) bool) {
		a.core.table.Range(func(e *binding.Entry) bool {
			if e.Tombstone() {
				return true
			}
			for i := 0; i < e.NumPrefixes(); i++ {
				if !yield(mobileNet(e, i)) {
					return false
				}
			}
			return true
		})
	}
}

// activateNets programs every binding's networks (takeover) from the table,
// which the group replicated.
func (a *Agent) activateNets() {
	n := a.dpl.nets
	if n == nil {
		return
	}
	n.adds, n.dels = n.adds[:0], n.dels[:0]
	if n.pr == nil {
		return
	}
	start := time.Now()
	added, removed, err := n.pr.ReconcilePrefixes(a.wantNets())
	if err != nil {
		a.log.Error("programming the mobile networks failed; retrying at the next takeover", "err", err)
		return
	}
	if added+removed > 0 {
		a.log.Info("mobile networks programmed", "added", added, "removed", removed, "took", time.Since(start).Round(time.Microsecond))
	}
}

// refusedNets is what the last flush's network adds the kernel refused.
func (d *dataplane) refusedNets() []datapath.MobileNet {
	if d == nil || d.nets == nil {
		return nil
	}
	return d.nets.refused
}

// dropRefusedNets takes the networks the kernel refused out of a staged
// registration before it is written (the group never hears of them) and
// acknowledges each with MOBNET_FWDING_SETUP_FAILED; the binding itself
// stands.
func dropRefusedNets(refused []datapath.MobileNet, in *intent, v *Verdict) {
	e := &in.ent
	if len(refused) == 0 || e.NumPrefixes() == 0 || in.kind == Deregistered {
		return
	}
	var keep netList
	careOf := binding.U32Addr(e.CareOf)
	dropped := false
	for i := 0; i < e.NumPrefixes(); i++ {
		if netRefused(refused, e.Prefix(i), careOf) {
			v.nets.fail(i)
			dropped = true
			continue
		}
		keep.addr[keep.n], keep.bits[keep.n] = e.PrefixU32(i)
		keep.n++
	}
	if !dropped {
		return
	}
	e.ClearPrefixes()
	for i := 0; i < int(keep.n); i++ {
		e.AddPrefixU32(keep.addr[i], keep.bits[i])
	}
}

func netRefused(refused []datapath.MobileNet, p netip.Prefix, careOf netip.Addr) bool {
	for i := range refused {
		if refused[i].Prefix == p && refused[i].CareOf == careOf {
			return true
		}
	}
	return false
}

// collect notes e's networks for the periodic check's slice and returns
// how many.
func (n *netPlane) collect(e *binding.Entry) int {
	if n == nil || n.pc == nil {
		return 0
	}
	for i := 0; i < e.NumPrefixes(); i++ {
		n.checkBuf = append(n.checkBuf, mobileNet(e, i))
	}
	return e.NumPrefixes()
}

// converge repairs the routes of the slice's networks collect noted.
func (n *netPlane) converge(s *datapath.Scan) error {
	if n == nil || n.pc == nil {
		return nil
	}
	err := n.pc.ConvergePrefixes(s, n.checkBuf)
	n.checkBuf = n.checkBuf[:0]
	return err
}

// finish removes the network routes no binding wants, before the home
// routes' ConvergeFinish, and counts and logs what the check repaired.
func (n *netPlane) finish(a *Agent, s *datapath.Scan) {
	if n == nil || n.pc == nil {
		return
	}
	added, removed, err := n.pc.FinishPrefixes(s)
	n.repaired += uint64(added + removed)
	switch {
	case errors.Is(err, datapath.ErrScanStale):
	case err != nil:
		a.log.Warn("reconciling the mobile network routes failed; the next periodic check retries", "err", err)
	case added+removed > 0:
		a.log.Info("mobile network routes reconciled: the kernel had drifted", "added", added, "removed", removed)
	}
}

// netsRepaired is what the periodic checks repaired of the networks' routes.
func (d *dataplane) netsRepaired() uint64 {
	if d == nil || d.nets == nil {
		return 0
	}
	return d.nets.repaired
}
