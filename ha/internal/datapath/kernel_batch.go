package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Batches: Apply turns binding changes into one netlink batch, sent with a
// window of outstanding requests and a barrier.

// metricFor returns home's metric, allocating one for a new home. A
// replace must repeat the metric, or the kernel adds a second route.
func (k *kernel) metricFor(h [4]byte) (m uint32, fresh bool) {
	if m, ok := k.metrics[h]; ok {
		return m, false
	}
	if n := len(k.free); n > 0 {
		m = k.free[n-1]
		k.free = k.free[:n-1]
	} else {
		m = k.next
		k.next++
	}
	k.metrics[h] = m
	return m, true
}

func (k *kernel) release(h [4]byte) {
	if m, ok := k.metrics[h]; ok {
		delete(k.metrics, h)
		k.free = append(k.free, m)
	}
}

func (k *kernel) Apply(adds []Binding, dels []netip.Addr) []error {
	if err := k.needHome(); err != nil {
		errs := make([]error, len(adds)+len(dels))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	errs := batchErrs{n: len(adds) + len(dels)}
	if k.fresh == nil {
		k.fresh = make(map[[4]byte]bool, batchFresh)
	}
	fresh := k.fresh
	clear(fresh) // kept from the last batch: a batch of new homes allocates nothing
	k.plan(adds, dels, fresh, &errs)
	opErrs := k.run(k.ops, func(o *op, b []byte) []byte { return k.build(o, adds, b) })
	for n, err := range opErrs {
		if err == nil {
			continue
		}
		o := &k.ops[n]
		if !errs.failed(int(o.owner)) {
			errs.fail(int(o.owner), err)
		} else {
			errs.fail(int(o.owner), errors.Join(errs.res[o.owner], err))
		}
	}
	if cap(k.ops) > 4*window {
		k.ops = nil // a 100k batch's ops are not worth keeping for the next
	}
	if k.rev != nil {
		k.followRev(adds, dels, &errs)
	}
	if k.udp != nil {
		k.followUDP(adds, dels, &errs)
	}
	k.settle(adds, dels, fresh, &errs)
	if len(fresh) > 4*batchFresh {
		k.fresh = nil // a bulk Apply's set is not worth keeping for the next
	}
	return errs.res
}

// batchFresh is the new homes a registration batch may bring (agent's
// recvmmsg batch), for the reused set of them.
const batchFresh = 64

// batchErrs collects the errors of one Apply, one per binding (adds first,
// then dels); the slice is allocated on the first failure only.
type batchErrs struct {
	res []error
	n   int
}

func (e *batchErrs) fail(i int, err error) {
	if e.res == nil {
		e.res = make([]error, e.n)
	}
	e.res[i] = err
}

func (e *batchErrs) failed(i int) bool { return e.res != nil && e.res[i] != nil }

// plan fills k.ops with the requests of a batch and fresh with the homes
// that are new to the kernel (their metric was just allocated).
func (k *kernel) plan(adds []Binding, dels []netip.Addr, fresh map[[4]byte]bool, errs *batchErrs) {
	k.ops = k.ops[:0]
	for i := range adds {
		b := &adds[i]
		if !b.Home.Is4() || !b.CareOf.Is4() {
			errs.fail(i, fmt.Errorf("datapath: binding %v → %v: home and care-of must be IPv4", b.Home, b.CareOf))
			continue
		}
		if !k.Supports(b.Encap) {
			errs.fail(i, fmt.Errorf("datapath: binding %v → %v: %s: %w", b.Home, b.CareOf, b.Encap, ErrUnsupported))
			continue
		}
		if b.Encap == UDP {
			if _, err := k.endpointOf(b); err != nil {
				errs.fail(i, err)
				continue
			}
		}
		k.touched(b.Home)
		if _, f := k.metricFor(b.Home.As4()); f {
			fresh[b.Home.As4()] = true
		}
		if b.Encap != UDP || !k.udpRouted(b.Home.As4()) { // a UDP route in place: only the endpoint moves
			k.ops = append(k.ops, op{owner: int32(i), what: opRoute, home: b.Home, careOf: b.CareOf})
		}
		if k.entries() {
			k.ops = append(k.ops, op{owner: int32(i), what: opProxy, home: b.Home})
		}
	}
	for j, h := range dels {
		if !h.Is4() {
			errs.fail(len(adds)+j, fmt.Errorf("datapath: remove %v: not IPv4", h))
			continue
		}
		k.touched(h)
		k.ops = append(k.ops, op{owner: int32(len(adds) + j), what: opRouteDel, home: h, ignore: unix.ESRCH})
		if k.entries() { // entries left from another mode: Reconcile removes them
			k.ops = append(k.ops, op{owner: int32(len(adds) + j), what: opProxyDel, home: h, ignore: unix.ENOENT})
		}
	}
}

// followRev makes the reverse-path filter's map follow the routes: a
// binding whose route went in may send through the tunnel; one that was
// removed may not.
func (k *kernel) followRev(adds []Binding, dels []netip.Addr, errs *batchErrs) {
	k.rev.putHomes(len(adds), func(i int) (netip.Addr, netip.Addr, bool) {
		return adds[i].Home, adds[i].CareOf, !errs.failed(i)
	}, func(i int, err error) {
		k.stats.Errors++
		errs.fail(i, fmt.Errorf("datapath: binding %v → %v: %w", adds[i].Home, adds[i].CareOf, err))
	})
	for j, h := range dels {
		if !h.Is4() {
			continue
		}
		if err := k.rev.del(h); err != nil {
			k.stats.Errors++
			errs.fail(len(adds)+j, fmt.Errorf("datapath: remove %v: %w", h, err))
		}
	}
}

// settle makes the metrics follow what the kernel now holds. A new binding
// that failed must not leave half of itself behind (a proxy entry without
// its route would draw the node's traffic into a black hole): undo it. A
// failed replace leaves the previous binding's state as it was.
func (k *kernel) settle(adds []Binding, dels []netip.Addr, fresh map[[4]byte]bool, errs *batchErrs) {
	var undo []op
	for i := range adds {
		h := adds[i].Home.As4()
		if fresh[h] && errs.failed(i) {
			undo = append(undo, op{what: opRouteDel, home: adds[i].Home, ignore: unix.ESRCH},
				op{what: opProxyDel, home: adds[i].Home, ignore: unix.ENOENT})
		}
	}
	if len(undo) > 0 {
		_ = k.run(undo, func(o *op, b []byte) []byte { return k.build(o, adds, b) })
		for _, o := range undo {
			k.release(o.home.As4())
		}
	}
	for j, h := range dels {
		if !errs.failed(len(adds) + j) {
			k.release(h.As4())
		}
	}
}

// build appends the request body for o.
func (k *kernel) build(o *op, adds []Binding, b []byte) []byte {
	h := o.home.As4()
	switch o.what {
	case opRoute:
		bd := &adds[o.owner]
		if bd.Encap == UDP {
			return k.appendUDPRoute(b, bd.Home, k.metrics[h])
		}
		src := bd.Src
		if !src.IsValid() {
			src = k.cfg.Local
		}
		r := route{Dst: bd.Home, Oif: k.tun[bd.Encap], Metric: k.metrics[h], Protocol: k.cfg.Protocol,
			EncDst: bd.CareOf, EncSrc: src, TTL: k.cfg.TTL, DF: k.cfg.TunnelDF}
		return appendRouteNew(b, &r)
	case opRouteDel:
		return appendRouteDel(b, o.home, k.metrics[h], k.cfg.Protocol)
	default:
		return appendNeigh(b, k.home, o.home, k.cfg.Protocol)
	}
}

var opHeader = [4]struct {
	typ   netlink.HeaderType
	flags netlink.HeaderFlags
	what  string
}{
	opRoute:    {unix.RTM_NEWROUTE, netlink.Create | netlink.Replace, "installing route"},
	opRouteDel: {unix.RTM_DELROUTE, 0, "removing route"},
	opProxy:    {unix.RTM_NEWNEIGH, netlink.Create | netlink.Replace, "installing proxy ARP entry"},
	opProxyDel: {unix.RTM_DELNEIGH, 0, "removing proxy ARP entry"},
}

// run sends ops in windows of requests, each with its own sequence number
// and an ack requested, and maps every ack back to its op. It returns nil
// when all succeeded, else one error slot per op.
func (k *kernel) run(ops []op, build func(o *op, b []byte) []byte) []error {
	var errs []error
	fail := func(i int, err error) {
		if errs == nil {
			errs = make([]error, len(ops))
		}
		errs[i] = err
		k.stats.Errors++
	}
	for start := 0; start < len(ops); start += window {
		chunk := ops[start:min(start+window, len(ops))]
		if k.raw != nil {
			k.runRaw(chunk, start, build, fail)
			continue
		}
		k.arena = k.arena[:0]
		k.msgs = k.msgs[:0]
		offs := k.offs[:0]
		for i := range chunk {
			offs = append(offs, len(k.arena))
			k.arena = build(&chunk[i], k.arena)
		}
		offs = append(offs, len(k.arena))
		k.offs = offs
		first := k.seq + 1
		for i := range chunk {
			h := opHeader[chunk[i].what]
			flags := netlink.Request | h.flags
			if i == len(chunk)-1 {
				flags |= netlink.Acknowledge
			}
			k.msgs = append(k.msgs, netlink.Message{
				Header: netlink.Header{Type: h.typ, Flags: flags, Sequence: k.nextSeq()},
				Data:   k.arena[offs[i]:offs[i+1]:offs[i+1]],
			})
		}
		if k.seq < first { // wrapped: keep the window contiguous
			k.seq = 1
			first = 1
			for i := range k.msgs {
				k.msgs[i].Header.Sequence = k.nextSeq()
			}
		}
		k.stats.Batches++
		k.stats.Messages += uint64(len(chunk))
		if _, err := k.c.SendMessages(k.msgs); err != nil {
			for i := range chunk {
				fail(start+i, k.opError(&chunk[i], err))
			}
			continue
		}
		last := first + uint32(len(chunk)) - 1
		_ = k.c.SetReadDeadline(time.Now().Add(ackTimeout))
		for {
			msgs, err := k.c.Receive()
			if err != nil {
				var oe *netlink.OpError
				if errors.As(err, &oe) && oe.Sequence-first < uint32(len(chunk)) {
					i := int(oe.Sequence - first)
					if e, ok := oe.Err.(unix.Errno); !ok || e != chunk[i].ignore {
						fail(start+i, k.opError(&chunk[i], nlErr(err)))
					}
					if oe.Sequence == last {
						break
					}
					continue
				}
				// The socket itself failed (ENOBUFS, timeout): the fate
				// of the window is unknown; Reconcile will repair it.
				for i := range chunk {
					if errs == nil || errs[start+i] == nil {
						fail(start+i, k.opError(&chunk[i], fmt.Errorf("no acknowledgement: %w", nlErr(err))))
					}
				}
				break
			}
			if barrier(msgs, last) {
				break
			}
		}
		_ = k.c.SetReadDeadline(time.Time{})
	}
	return errs
}

// barrier reports whether msgs hold the (successful) ack of request seq.
func barrier(msgs []netlink.Message, seq uint32) bool {
	for _, m := range msgs {
		if m.Header.Type == netlink.Error && m.Header.Sequence == seq {
			return true
		}
	}
	return false
}

func (k *kernel) opError(o *op, err error) error {
	h := opHeader[o.what]
	switch o.what {
	case opRoute:
		return fmt.Errorf("datapath: %s to %v via care-of %v on %s: %w", h.what, o.home, o.careOf, k.cfg.TunnelName, err)
	case opRouteDel:
		return fmt.Errorf("datapath: %s to %v: %w", h.what, o.home, err)
	default:
		return fmt.Errorf("datapath: %s for %v on %s: %w", h.what, o.home, k.cfg.HomeIfname, err)
	}
}
