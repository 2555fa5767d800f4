package datapath

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"slices"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Reconciling costs at 100,000 bindings, and who pays them: the first
// version ran on the agent's owner loop every reconcile_interval, held the
// whole dump as netlink messages, parsed routes (96 B each, netip.Addr
// fields) and five maps keyed by home address: 93 MB of garbage and
// 206 ms (+225 ms reading the reverse map key by key) during which no
// registration was answered. This one streams the dumps into compact
// sorted slices (24 B per route), walks the wanted bindings once from the
// caller's iterator with binary searches, keeps no map but the metrics one
// the datapath already holds, and for the periodic check reads the kernel
// on another goroutine (Scan): the owner loop only converges (48 ms).

// kroute is one of our routes as a dump shows it: what Reconcile compares
// and what Withdraw deletes.
type kroute struct {
	dst, encDst, encSrc [4]byte // encSrc zero: none (the kernel picks)
	oif, metric         uint32
	encap               uint16
	ttl                 uint8
	df                  bool // outer Don't Fragment (route.DF)
}

func krouteOf(r *route) kroute {
	kr := kroute{dst: r.Dst.As4(), oif: r.Oif, metric: r.Metric, encap: r.EncapType, ttl: r.TTL, df: r.DF}
	if r.EncDst.Is4() {
		kr.encDst = r.EncDst.As4()
	}
	if r.EncSrc.Is4() {
		kr.encSrc = r.EncSrc.As4()
	}
	return kr
}

// route expands kr for appendRouteNew.
func (kr *kroute) route(proto uint8) route {
	r := route{Dst: netip.AddrFrom4(kr.dst), Oif: kr.oif, Metric: kr.metric, Protocol: proto,
		EncapType: kr.encap, EncDst: netip.AddrFrom4(kr.encDst), TTL: kr.ttl, DF: kr.df}
	if kr.encSrc != [4]byte{} {
		r.EncSrc = netip.AddrFrom4(kr.encSrc)
	}
	return r
}

func be32(a [4]byte) uint32 { return binary.BigEndian.Uint32(a[:]) }

// cmp4 orders IPv4 addresses as numbers (bytes.Compare's call was half of
// ReconcileScan's time at 100k).
func cmp4(a, b [4]byte) int {
	return cmp.Compare(binary.BigEndian.Uint32(a[:]), binary.BigEndian.Uint32(b[:]))
}

// dump sends one dump request on c and hands each entry to each as it is
// read, without keeping the messages. A dump the kernel marks interrupted
// (the table changed under it) is asked again, up to three times, after
// reset; intr reports that the last try was interrupted too. each's first
// error stops the processing (the rest of the dump is still read off the
// socket) and is returned.
func dump(c *netlink.Conn, seq *uint32, typ uint16, body []byte, reset func(), each func(typ uint16, data []byte) error) (intr bool, err error) {
	for try := 0; ; try++ {
		reset()
		m := netlink.Message{
			Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request | netlink.Dump, Sequence: nextSeq(seq)},
			Data:   body,
		}
		if _, err := c.Send(m); err != nil {
			return false, nlErr(err)
		}
		intr = false
		var ferr error
		for msg, err := range c.ReceiveIter() {
			if err != nil {
				return false, nlErr(err)
			}
			if msg.Header.Flags&netlink.DumpInterrupted != 0 {
				intr = true
			}
			if ferr == nil {
				ferr = each(uint16(msg.Header.Type), msg.Data)
			}
		}
		if ferr != nil {
			return false, ferr
		}
		if !intr || try >= 3 {
			return intr, nil
		}
	}
}

// scanInto lists the kernel's routes and proxy entries carrying our
// protocol over c into kr (sorted by destination, then metric, exact
// duplicates dropped) and kn (sorted). intr: a dump stayed interrupted.
//
// kp, when not nil, gets the mobile networks' routes of the same dump
// (prefixes_check.go), sorted by prefix.
func (k *kernel) scanInto(c *netlink.Conn, seq *uint32, kr *[]kroute, kn *[][4]byte, kp *[]kpRoute) (intr bool, err error) {
	reset := func() {
		*kr = (*kr)[:0]
		if kp != nil {
			*kp = (*kp)[:0]
		}
	}
	i1, err := dump(c, seq, unix.RTM_GETROUTE, appendRouteDump(nil, k.cfg.Protocol), reset,
		func(typ uint16, data []byte) error {
			if typ != unix.RTM_NEWROUTE {
				return nil
			}
			r, err := parseRoute(data)
			if errors.Is(err, errNotIPv4) {
				return nil
			}
			if err != nil {
				return err
			}
			// A /32 with a metric in the prefix range is a mobile
			// network's (prefixes.go), not a home address's.
			if r.Protocol == k.cfg.Protocol && r.Table == unix.RT_TABLE_MAIN && r.Dst.IsValid() && r.Metric < PrefixMetricBase {
				*kr = append(*kr, krouteOf(&r))
			} else if kp != nil && r.Protocol == k.cfg.Protocol && r.Table == unix.RT_TABLE_MAIN && r.Metric >= PrefixMetricBase {
				*kp = append(*kp, kpRouteOf(data, &r))
			}
			return nil
		})
	if err != nil {
		return false, fmt.Errorf("datapath: listing routes: %w", err)
	}
	i2, err := dump(c, seq, unix.RTM_GETNEIGH, appendNeighDump(nil), func() { *kn = (*kn)[:0] },
		func(typ uint16, data []byte) error {
			if typ != unix.RTM_NEWNEIGH {
				return nil
			}
			n, err := parseNeigh(data)
			if errors.Is(err, errNotIPv4) {
				return nil
			}
			if err != nil {
				return err
			}
			if n.Flags&unix.NTF_PROXY != 0 && n.Protocol == k.cfg.Protocol && n.Ifindex == k.home && n.Dst.IsValid() {
				*kn = append(*kn, n.Dst.As4())
			}
			return nil
		})
	if err != nil {
		return false, fmt.Errorf("datapath: listing proxy ARP entries: %w", err)
	}
	slices.SortFunc(*kr, func(a, b kroute) int {
		if c := cmp4(a.dst, b.dst); c != 0 {
			return c
		}
		return cmp.Compare(a.metric, b.metric)
	})
	// An interrupted dump may list an entry twice: the copy must not look
	// like an extra route to delete (it is the same route).
	*kr = slices.Compact(*kr)
	slices.SortFunc(*kn, cmp4)
	*kn = slices.Compact(*kn)
	if kp != nil {
		sortKP(*kp)
		*kp = slices.Compact(*kp)
	}
	return i1 || i2, nil
}

// scan fills k.kr and k.kn on the owner's socket.
func (k *kernel) scan() error {
	_, err := k.scanInto(k.c, &k.seq, &k.kr, &k.kn, nil)
	return err
}

// dropScan lets a large scan go to the collector: 2.4 MB at 100k routes
// is not worth keeping for the next reconcile 30 s later.
func (k *kernel) dropScan() {
	if cap(k.kr) > 4096 {
		k.kr = nil
	}
	if cap(k.kn) > 4096 {
		k.kn = nil
	}
}

// dumpOp is a Reconcile/Withdraw request.
type dumpOp struct {
	op
	kr    kroute // the route to add, replace or delete
	fresh bool   // a route the kernel lacked: its metric goes back if the add fails
}

// Reconcile converges the kernel to want: our routes, proxy entries and the
// reverse-tunnel map. want is walked once; homes it yields twice count
// once. It reads the kernel on the caller's goroutine (takeover: the
// reprogramming must be done before the agent serves); the periodic check
// reads it on another one (BeginScan, ScanKernel, ReconcileScan).
func (k *kernel) Reconcile(want iter.Seq[Binding]) (added, removed int, err error) {
	if err := k.needHome(); err != nil {
		return 0, 0, err
	}
	if err := k.proxyARP(true); err != nil {
		return 0, 0, err
	}
	k.gen++ // a scan in flight no longer describes what we will have done
	if err := k.scan(); err != nil {
		return 0, 0, err
	}
	defer k.dropScan()
	sc := &Scan{kr: k.kr, kn: k.kn}
	if k.rev != nil {
		if sc.rev, err = k.rev.rd.readAll(k.rev.homes); err != nil {
			return 0, 0, err
		}
		defer k.rev.rd.trim()
	}
	return k.converge(sc, want)
}

// converge is Reconcile's work once the kernel is read (s.kr, s.kn and
// s.rev, sorted), in three steps so that the periodic check can spread it
// over owner-loop iterations: convergeStart, convergeSome for each slice
// of the wanted bindings (their adds and replaces are sent at once), then
// convergeFinish (what no slice wanted goes, the reverse map follows).
// With s.skipDirty, homes Apply changed since BeginScan are left alone:
// their state in the scan may predate the change.
func (k *kernel) converge(s *Scan, want iter.Seq[Binding]) (added, removed int, err error) {
	k.convergeStart(s)
	k.convergeSome(s, want)
	return k.convergeFinish(s)
}

func (k *kernel) skip(s *Scan, h [4]byte) bool {
	if !s.skipDirty || len(k.dirty) == 0 {
		return false
	}
	_, ok := k.dirty[h]
	return ok
}

func (k *kernel) convergeStart(s *Scan) {
	s.usedR = make([]bool, len(s.kr))
	s.usedN = make([]bool, len(s.kn))
	s.wanted, s.want, s.bad = s.wanted[:0], s.want[:0], nil
	s.added, s.removed, s.requests, s.metered = 0, 0, 0, 0
	s.usedP = make([]bool, len(s.kp))
	s.pAdded, s.pRemoved, s.pbad = 0, 0, nil
}

func (k *kernel) convergeSome(s *Scan, want iter.Seq[Binding]) {
	kr, kn := s.kr, s.kn
	var work []dumpOp
	byDst := func(e kroute, h [4]byte) int { return cmp4(e.dst, h) }
	for b := range want {
		if !b.Home.Is4() || !b.CareOf.Is4() || !k.Supports(b.Encap) {
			continue
		}
		h := b.Home.As4()
		i, found := slices.BinarySearchFunc(kr, h, byDst) // the first (lowest metric) route to h
		if found && s.usedR[i] {
			continue // a home yielded twice
		}
		s.wanted = append(s.wanted, be32(h))
		if k.skip(s, h) {
			continue // its routes and entries are spared below, not touched
		}
		if found {
			// Adopt the metric the kernel holds (after a restart ours is
			// unknown); further routes to h are extras and go at the end.
			s.usedR[i] = true
			held := kr[i].metric
			if m, ok := k.metrics[h]; !ok || m != held {
				k.release(h)
				k.metrics[h] = held
				if held >= k.next {
					k.next = held + 1
				}
			}
			s.metered++
			if w := k.compact(&b, held); w != kr[i] {
				work = append(work, dumpOp{op: op{what: opRoute, home: b.Home, careOf: b.CareOf}, kr: w})
			}
		} else {
			m, _ := k.metricFor(h)
			s.metered++
			work = append(work, dumpOp{op: op{what: opRoute, home: b.Home, careOf: b.CareOf}, kr: k.compact(&b, m), fresh: true})
		}
		if k.entries() {
			if j, ok := slices.BinarySearchFunc(kn, h, cmp4); ok {
				s.usedN[j] = true
			} else {
				work = append(work, dumpOp{op: op{what: opProxy, home: b.Home}})
			}
		}
		if k.rev != nil {
			var e revEntry
			e.home = h
			careOfValue(&e.careOf, b.CareOf)
			s.want = append(s.want, e)
		}
		k.udpWanted(s, &b)
	}
	k.runWork(s, work)
}

// runWork sends work and counts its outcome into s.
func (k *kernel) runWork(s *Scan, work []dumpOp) {
	if len(work) == 0 {
		return
	}
	s.requests += len(work)
	errs := k.runDump(work)
	for i := range work {
		if errs != nil && errs[i] != nil {
			s.bad = append(s.bad, errs[i])
			if work[i].what == opRoute {
				k.udpForget(work[i].kr.dst)
			}
			if work[i].fresh {
				k.release(work[i].kr.dst)
				s.metered--
			}
			continue
		}
		switch work[i].what {
		case opRoute, opProxy:
			s.added++
		default:
			s.removed++
		}
	}
}

func (k *kernel) convergeFinish(s *Scan) (added, removed int, err error) {
	kr, kn := s.kr, s.kn
	var dels []dumpOp
	for i := range kr {
		if !s.usedR[i] && !k.skip(s, kr[i].dst) {
			dels = append(dels, dumpOp{op: op{what: opRouteDel, home: netip.AddrFrom4(kr[i].dst), ignore: unix.ESRCH}, kr: kr[i]})
		}
	}
	for j := range kn {
		if !s.usedN[j] && !k.skip(s, kn[j]) { // every entry when proxy ARP is by route
			dels = append(dels, dumpOp{op: op{what: opProxyDel, home: netip.AddrFrom4(kn[j]), ignore: unix.ENOENT}})
		}
	}
	// Metrics of homes no longer wanted go back to the free list. Every
	// wanted home now has one (s.metered of them); if nothing else does and
	// Apply changed nothing meanwhile, there is nothing to sweep (10 ms of
	// binary searches at 100k, the longest part of the finish).
	if len(k.metrics) != s.metered || (s.skipDirty && len(k.dirty) > 0) {
		slices.Sort(s.wanted) // plain uint32s: 3× faster than a comparator at 100k
		for h := range k.metrics {
			if _, ok := slices.BinarySearch(s.wanted, be32(h)); !ok && !k.skip(s, h) {
				k.release(h)
			}
		}
	}
	k.runWork(s, dels)
	k.udpFinish(s)
	if k.rev != nil {
		if err := k.attachAllRev(); err != nil {
			s.bad = append(s.bad, err)
		}
		// A home Apply changed after its slice went through is the map's
		// as Apply left it: out of both sides.
		have := s.rev
		if s.skipDirty && len(k.dirty) > 0 {
			have = slices.DeleteFunc(have, func(e revEntry) bool { return k.skip(s, e.home) })
			s.want = slices.DeleteFunc(s.want, func(e revEntry) bool { return k.skip(s, e.home) })
		}
		a, r, err := k.rev.sync(s.want, have)
		s.added, s.removed = s.added+a, s.removed+r
		if err != nil {
			s.bad = append(s.bad, err)
		}
	}
	if len(s.bad) > 0 {
		k.log.Warn("reconcile: kernel refused requests", "failed", len(s.bad), "first", s.bad[0])
		return s.added, s.removed, fmt.Errorf("datapath: reconcile: %d of %d requests failed, first: %w", len(s.bad), s.requests, s.bad[0])
	}
	return s.added, s.removed, nil
}

// ---- the periodic check, read off the owner loop ----

// Scan is the kernel's state as a reconcile compares it, read by
// ScanKernel on a goroutine of its own: at 100,000 bindings the route dump
// alone is 150–200 ms of kernel time, which the owner loop must not spend
// while registrations wait.
type Scan struct {
	gen  uint64
	kr   []kroute
	kn   [][4]byte
	rev  []revEntry
	err  error
	took time.Duration

	// converging (converge*)
	skipDirty      bool
	usedR, usedN   []bool
	wanted         []uint32 // homes as be32, sorted at the end: the metric sweep's lookup
	want           []revEntry
	bad            []error
	added, removed int
	requests       int
	metered        int // wanted homes given a metric in k.metrics

	// mobile networks (prefixes_check.go)
	kp               []kpRoute
	usedP            []bool
	padds            []MobileNet
	pAdded, pRemoved int
	pbad             []error
}

// Took is how long ScanKernel read.
func (s *Scan) Took() time.Duration { return s.took }

// ErrScanStale says a scan was overtaken (a takeover or withdrawal, or more
// changes during it than are tracked): nothing was done; the next one
// will be.
var ErrScanStale = errors.New("datapath: the kernel changed too much while it was read; the next reconcile checks again")

// maxDirty bounds the homes Apply may change while a scan reads and is
// converged (over several owner-loop iterations); beyond, the scan is
// dropped (ErrScanStale). The set is sized for dirtyPrealloc at start and
// keeps what it grew to.
const (
	maxDirty      = 1 << 16
	dirtyPrealloc = 4096
)

func (k *kernel) BeginScan() *Scan {
	k.scanning, k.dirtyOver = true, false
	clear(k.dirty)
	clear(k.pdirty)
	return &Scan{gen: k.gen}
}

func (k *kernel) ScanKernel(s *Scan) {
	start := time.Now()
	defer func() { s.took = time.Since(start) }()
	k.smu.Lock()
	defer k.smu.Unlock()
	if k.sc == nil {
		s.err = errors.New("datapath: closed")
		return
	}
	intr, err := k.scanInto(k.sc, &k.sseq, &s.kr, &s.kn, &s.kp)
	if err == nil && intr {
		err = ErrScanStale
	}
	if err == nil && k.rev != nil {
		var have []revEntry
		have, err = k.srd.readAll(k.rev.homes)
		s.rev, k.srd.have = have, nil // the scan keeps it; the next read starts afresh
	}
	s.err = err
}

// scanValid reports why s can no longer be converged (nil: it can).
func (k *kernel) scanValid(s *Scan) error {
	if s.err != nil {
		return s.err
	}
	if s.gen != k.gen || k.dirtyOver {
		return ErrScanStale
	}
	return nil
}

func (k *kernel) ConvergeStart(s *Scan) error {
	if err := k.scanValid(s); err != nil {
		k.scanning = false
		return err
	}
	if err := k.needHome(); err != nil {
		k.scanning = false
		return err
	}
	if err := k.proxyARP(true); err != nil {
		k.scanning = false
		return err
	}
	s.skipDirty = true
	k.convergeStart(s)
	return nil
}

func (k *kernel) ConvergeSome(s *Scan, some iter.Seq[Binding]) error {
	if err := k.scanValid(s); err != nil {
		k.scanning = false
		return err
	}
	k.convergeSome(s, some)
	return nil
}

func (k *kernel) ConvergeFinish(s *Scan) (added, removed int, err error) {
	defer func() { k.scanning = false }()
	if err := k.scanValid(s); err != nil {
		return 0, 0, err
	}
	return k.convergeFinish(s)
}

// touched records homes Apply changes while a scan reads (their state in
// the scan may predate the change).
func (k *kernel) touched(h netip.Addr) {
	if !k.scanning || !h.Is4() {
		return
	}
	if len(k.dirty) >= maxDirty {
		k.dirtyOver = true
		return
	}
	k.dirty[h.As4()] = struct{}{}
}

// compact is the route b needs, with metric, as a dump would show it.
func (k *kernel) compact(b *Binding, metric uint32) kroute {
	if b.Encap == UDP {
		// as parseRoute reads an "encap bpf" route: no IP encap fields
		return kroute{dst: b.Home.As4(), oif: k.udp.uplink, metric: metric, encap: lwtunnelBPF}
	}
	src := b.Src
	if !src.IsValid() {
		src = k.cfg.Local
	}
	kr := kroute{dst: b.Home.As4(), oif: k.tun[b.Encap], metric: metric, encap: unix.LWTUNNEL_ENCAP_IP,
		encDst: b.CareOf.As4(), ttl: k.cfg.TTL, df: k.cfg.TunnelDF}
	if src.Is4() && !src.IsUnspecified() {
		kr.encSrc = src.As4()
	}
	return kr
}

func (k *kernel) runDump(work []dumpOp) []error {
	ops := make([]op, len(work))
	for i := range work {
		ops[i] = work[i].op
		ops[i].owner = int32(i)
	}
	return k.run(ops, func(o *op, b []byte) []byte {
		w := &work[o.owner]
		switch o.what {
		case opRoute:
			if w.kr.encap == lwtunnelBPF && k.udp != nil {
				return k.appendUDPRoute(b, netip.AddrFrom4(w.kr.dst), w.kr.metric)
			}
			r := w.kr.route(k.cfg.Protocol)
			return appendRouteNew(b, &r)
		case opRouteDel:
			return appendRouteDel(b, o.home, w.kr.metric, k.cfg.Protocol)
		default:
			return appendNeigh(b, k.home, o.home, k.cfg.Protocol)
		}
	})
}
