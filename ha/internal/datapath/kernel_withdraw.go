package datapath

import (
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Withdraw removes what this agent programmed (dumps and Reconcile are in
// reconcile.go).

func (k *kernel) Withdraw() error {
	if k.home == 0 {
		return nil // never set up: nothing of ours can be there
	}
	k.gen++ // a scan in flight describes what is about to go
	if err := k.scan(); err != nil {
		return err
	}
	defer k.dropScan()
	work := make([]dumpOp, 0, len(k.kr)+len(k.kn))
	for i := range k.kr {
		work = append(work, dumpOp{op: op{what: opRouteDel, home: netip.AddrFrom4(k.kr[i].dst), ignore: unix.ESRCH}, kr: k.kr[i]})
	}
	for _, n := range k.kn {
		work = append(work, dumpOp{op: op{what: opProxyDel, home: netip.AddrFrom4(n), ignore: unix.ENOENT}})
	}
	var bad []error
	if err := k.proxyARP(false); err != nil {
		bad = append(bad, err)
	}
	for _, e := range k.runDump(work) {
		if e != nil {
			bad = append(bad, e)
		}
	}
	clear(k.metrics)
	k.free, k.next = k.free[:0], k.cfg.MetricBase
	if err := k.WithdrawPrefixes(); err != nil {
		bad = append(bad, err)
	}
	if err := k.withdrawUDP(); err != nil {
		bad = append(bad, err)
	}
	if k.rev != nil {
		// Not active: our filter goes and the map is emptied; the clsact
		// qdisc stays (it may carry other filters, and an empty one
		// changes nothing). The next Reconcile (becoming active) puts the
		// filter back.
		for e, idx := range k.revOn {
			if idx == 0 {
				continue
			}
			if err := k.detachRev(idx); err != nil {
				bad = append(bad, err)
			} else {
				k.revOn[e] = 0
			}
		}
		if err := k.rev.clearAll(); err != nil {
			bad = append(bad, err)
		}
	}
	for p := range k.vips {
		if err := k.DelVIP(p); err != nil {
			bad = append(bad, err)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("datapath: withdraw: %d requests failed, first: %w", len(bad), bad[0])
	}
	return nil
}
