package datapath

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// window is how many requests go to the kernel in one sendmsg. The kernel
// runs them all before sendmsg returns. Only the window's last request asks
// for an ack; the others are answered only when they fail (netlink_rcv_skb
// acks "NLM_F_ACK || err"), with their sequence number. So one datagram
// comes back per window when all is well, and the last ack tells that every
// error before it has been queued. A failure echoes its request (≈ 1 KiB of
// receive buffer each): 128 of them fit the default 208 KiB.
const window = 128

// ackTimeout bounds the wait for a batch's acks; the kernel answers in
// microseconds, so hitting it means the socket is broken.
const ackTimeout = 10 * time.Second

type kernel struct {
	cfg   Config
	log   *slog.Logger
	c     *netlink.Conn
	seq   uint32
	home  uint32     // ifindex
	tun   [2]uint32  // ifindex per Encap, 0: none
	rev   *revFilter // reverse-tunnel check, nil when off
	revOn [2]uint32  // ifindex per Encap our filter is attached to, 0: none

	metrics map[[4]byte]uint32 // home address → the metric its route holds
	free    []uint32           // released metrics, reused first
	next    uint32
	vips    map[netip.Prefix]bool

	prefixes *prefixState // mobile network routes (prefixes.go), nil until used

	// Reconcile's view of the kernel (scan), sorted, dropped after use
	// when large (dropScan)
	kr []kroute
	kn [][4]byte

	// the periodic scan (reconcile.go): its own socket and map reader,
	// used by one ScanKernel at a time on its goroutine; the rest is the
	// owner's
	smu       sync.Mutex
	sc        *netlink.Conn
	sseq      uint32
	srd       revReader
	gen       uint64               // bumped by Reconcile and Withdraw: a scan begun before is stale
	scanning  bool                 // between BeginScan and ConvergeFinish
	dirty     map[[4]byte]struct{} // homes Apply changed while scanning
	dirtyOver bool

	// one batch's working set, reused
	arena []byte
	msgs  []netlink.Message
	ops   []op
	offs  []int

	// The batch path over the socket itself (rawbatch.go): nil under
	// nltest, whose fake socket has no descriptor (mdlayher's path then).
	raw        syscall.RawConn
	rbuf, wbuf []byte
	rn         int
	rerr, werr error
	rfn, wfn   func(fd uintptr) bool

	links   chan LinkEvent
	lconn   *netlink.Conn
	ldone   chan struct{}
	lclosed atomic.Bool // Close is closing lconn: its read error is expected
	stats   Stats
	linkEv  atomic.Uint64
	linkDrp atomic.Uint64
}

// op is one request of a batch: whose it is and which errno means "done
// already" (idempotent deletes).
type op struct {
	owner  int32      // index into the batch's result
	ignore unix.Errno // errno that means "already so" (idempotent deletes)
	what   uint8
	home   netip.Addr
	careOf netip.Addr // for error messages
}

const (
	opRoute = iota
	opRouteDel
	opProxy
	opProxyDel
)

// Open dials rtnetlink (and a second socket subscribed to link
// notifications). Call Setup next.
func Open(cfg Config) (Datapath, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: cfg.NetNS, MessageBufferSize: 64 << 10})
	if err != nil {
		return nil, fmt.Errorf("datapath: rtnetlink socket: %w", err)
	}
	lc, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: cfg.NetNS, Groups: unix.RTMGRP_LINK})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("datapath: rtnetlink link notifications: %w", err)
	}
	sc, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: cfg.NetNS, MessageBufferSize: 64 << 10})
	if err != nil {
		c.Close()
		lc.Close()
		return nil, fmt.Errorf("datapath: rtnetlink socket for the periodic check: %w", err)
	}
	_ = sc.SetOption(netlink.GetStrictCheck, true)
	k := newKernel(cfg, c)
	k.sc = sc
	k.lconn = lc
	k.ldone = make(chan struct{})
	go k.watchLinks()
	return k, nil
}

// newKernel wraps a connection (tests pass an nltest one).
func newKernel(cfg Config, c *netlink.Conn) *kernel {
	if cfg.TunnelName == "" {
		cfg.TunnelName = DefaultTunnelName
	}
	if cfg.Protocol == 0 {
		cfg.Protocol = DefaultProtocol
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.MetricBase == 0 {
		cfg.MetricBase = DefaultMetricBase
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// Best effort: without these the kernel still works, with less
	// precise errors (ext ack) and unfiltered dumps (strict check; we
	// filter ourselves anyway). Not CapAcknowledge: mdlayher/netlink
	// misreads capped errors that carry extended-ack TLVs.
	for _, o := range []netlink.ConnOption{netlink.ExtendedAcknowledge, netlink.GetStrictCheck} {
		_ = c.SetOption(o, true)
	}
	k := &kernel{
		cfg: cfg, log: cfg.Logger, c: c, seq: 1 << 20, sc: c, dirty: make(map[[4]byte]struct{}, dirtyPrealloc),
		metrics: make(map[[4]byte]uint32), next: cfg.MetricBase,
		vips:  make(map[netip.Prefix]bool),
		links: make(chan LinkEvent, 64),
	}
	if rc, err := c.SyscallConn(); err == nil {
		k.raw, k.rbuf = rc, make([]byte, 64<<10)
		k.rfn, k.wfn = k.rawRead, k.rawWrite // method values made once: no allocation per batch
	}
	return k
}

func (k *kernel) Links() <-chan LinkEvent { return k.links }

func (k *kernel) Stats() Stats {
	s := k.stats
	s.LinkEvents, s.LinkDropped = k.linkEv.Load(), k.linkDrp.Load()
	s.Routes = len(k.metrics)
	if k.rev != nil {
		// A failed read leaves them zero; the map is ours, so it only fails
		// if the kernel is out of memory.
		c, _ := k.rev.counters()
		s.ReversePassed, s.ReverseWrongCareOf = c[revPassed], c[revWrongCareOf]
		s.ReverseUnknownHome, s.ReverseMalformed = c[revUnknownHome], c[revMalformed]
	}
	return s
}

func (k *kernel) Close() error {
	// A scan reading on another goroutine finishes first: it uses the
	// map's descriptor and its own socket.
	k.smu.Lock()
	if k.sc != nil && k.sc != k.c {
		k.sc.Close()
	}
	k.sc = nil
	k.smu.Unlock()
	if k.rev != nil {
		k.rev.close() // an attached filter keeps the program and map alive in the kernel
	}
	err := k.c.Close()
	if k.lconn != nil {
		k.lclosed.Store(true)
		k.lconn.Close()
		<-k.ldone
	}
	return err
}

// LinkWatcher delivers link notifications without programming anything:
// VRRP interface tracking needs them also when [datapath] is disabled.
type LinkWatcher struct{ k *kernel }

// WatchLinks subscribes to RTM_NEWLINK/RTM_DELLINK of the caller's network
// namespace.
func WatchLinks(log *slog.Logger) (*LinkWatcher, error) {
	lc, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{Groups: unix.RTMGRP_LINK})
	if err != nil {
		return nil, fmt.Errorf("datapath: rtnetlink link notifications: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &kernel{log: log, links: make(chan LinkEvent, 64), lconn: lc, ldone: make(chan struct{})}
	go k.watchLinks()
	return &LinkWatcher{k: k}, nil
}

// Links is closed by Close; a zero LinkEvent means notifications were lost.
func (w *LinkWatcher) Links() <-chan LinkEvent { return w.k.links }

// Close ends the subscription.
func (w *LinkWatcher) Close() error {
	w.k.lclosed.Store(true)
	err := w.k.lconn.Close()
	<-w.k.ldone
	return err
}

func (k *kernel) Supports(e Encap) bool { return int(e) < len(k.tun) && k.tun[e] != 0 }

// ---- single requests ----

func (k *kernel) nextSeq() uint32 { return nextSeq(&k.seq) }

// nextSeq advances a socket's sequence counter (0 is never used).
func nextSeq(seq *uint32) uint32 {
	*seq++
	if *seq == 0 {
		*seq = 1
	}
	return *seq
}

// exec sends one request and returns the replies (nothing for an ack).
// Dumps go through dump (reconcile.go), which streams them.
func (k *kernel) exec(typ uint16, flags netlink.HeaderFlags, body []byte) ([]netlink.Message, error) {
	m := netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request | flags, Sequence: k.nextSeq()},
		Data:   body,
	}
	msgs, err := k.c.Execute(m)
	if err != nil {
		return nil, nlErr(err)
	}
	return msgs, nil
}

// nlErr turns a netlink.OpError into "errno (kernel's extended message)".
func nlErr(err error) error {
	var oe *netlink.OpError
	if errors.As(err, &oe) && oe.Message != "" {
		return fmt.Errorf("%w (kernel: %s)", oe.Err, oe.Message)
	}
	if errors.As(err, &oe) {
		return oe.Err
	}
	return err
}

// getLink looks a device up by name; (link{}, nil) when there is none.
func (k *kernel) getLink(name string) (link, error) {
	msgs, err := k.exec(unix.RTM_GETLINK, 0, appendLinkGet(nil, name))
	if errors.Is(err, unix.ENODEV) {
		return link{}, nil
	}
	if err != nil {
		return link{}, err
	}
	for _, m := range msgs {
		if m.Header.Type == unix.RTM_NEWLINK {
			return parseLink(m.Data)
		}
	}
	return link{}, fmt.Errorf("no RTM_NEWLINK in the reply")
}

// ---- Setup ----

func (k *kernel) Setup() error {
	if k.cfg.HomeIfname == "" {
		return errors.New("datapath: no home interface configured (agent.interface)")
	}
	h, err := k.getLink(k.cfg.HomeIfname)
	if err != nil {
		return fmt.Errorf("datapath: looking up home interface %s: %w", k.cfg.HomeIfname, err)
	}
	if h.Index == 0 {
		return fmt.Errorf("datapath: home interface %s does not exist (check agent.interface)", k.cfg.HomeIfname)
	}
	k.home = h.Index
	// Forwarding on the home interface: the kernel answers ARP for proxy
	// entries only on interfaces that forward (arp_process).
	if _, err := k.exec(unix.RTM_NEWLINK, netlink.Acknowledge, appendLinkConf(nil, h.Index, [][2]uint32{{devconfForwarding, 1}})); err != nil {
		return fmt.Errorf("datapath: enabling forwarding on %s: %w", k.cfg.HomeIfname, err)
	}
	if err := k.proxyARP(true); err != nil {
		return err
	}
	idx, err := k.tunnel(k.cfg.TunnelName, IPIP)
	if err != nil {
		return err
	}
	k.tun[IPIP] = idx
	if k.cfg.GRETunnelName != "" {
		idx, err := k.tunnel(k.cfg.GRETunnelName, GRE)
		if err != nil {
			k.log.Warn("GRE tunnelling unavailable; nodes asking for it get reply code 139", "err", err)
		}
		k.tun[GRE] = idx
	}
	return k.setupRev()
}

// setupRev loads the reverse-tunnel check once and attaches it to every
// tunnel device (again after a re-Setup: the devices may be new). Start-up
// fails with the missing kernel option rather than run without the check
// the configuration asked for.
func (k *kernel) setupRev() error {
	if !k.cfg.ReverseCheck {
		return nil
	}
	if k.rev == nil {
		f, err := newRevFilter(k.cfg.Capacity)
		if err != nil {
			return fmt.Errorf("datapath: %w (needs %s)", err, kernelOptionBPF)
		}
		k.rev = f
	}
	k.revOn = [2]uint32{}
	return k.attachAllRev()
}

func (k *kernel) attachAllRev() error {
	if k.rev == nil {
		return nil
	}
	for e, idx := range k.tun {
		if idx == 0 || k.revOn[e] == idx {
			continue
		}
		name := k.cfg.TunnelName
		if Encap(e) == GRE {
			name = k.cfg.GRETunnelName
		}
		if err := k.attachRev(idx, name); err != nil {
			return err
		}
		k.revOn[e] = idx
	}
	return nil
}

// proxyARP turns the home interface's proxy_arp on (active, in
// ProxyByRoute mode) or off (Withdraw).
func (k *kernel) proxyARP(on bool) error {
	if !k.cfg.ProxyByRoute || !k.cfg.ProxyARP {
		return nil
	}
	v := uint32(0)
	if on {
		v = 1
	}
	if _, err := k.exec(unix.RTM_NEWLINK, netlink.Acknowledge, appendLinkConf(nil, k.home, [][2]uint32{{devconfProxyARP, v}})); err != nil {
		return fmt.Errorf("datapath: setting proxy_arp %d on %s: %w", v, k.cfg.HomeIfname, err)
	}
	return nil
}

// entries reports whether bindings get NTF_PROXY entries.
func (k *kernel) entries() bool { return k.cfg.ProxyARP && !k.cfg.ProxyByRoute }

var kernelOption = [2]string{
	IPIP: "CONFIG_NET_IPIP (module ipip) and CONFIG_NET_IP_TUNNEL",
	GRE:  "CONFIG_NET_IPGRE (module ip_gre) and CONFIG_NET_IPGRE_DEMUX",
}

// tunnel finds or creates the external-mode device for e and sets it up:
// up, forwarding, rp_filter strict (RFC 3024: a decapsulated packet's inner
// source must route back through the tunnel, i.e. be a registered home
// address).
func (k *kernel) tunnel(name string, e Encap) (uint32, error) {
	l, err := k.getLink(name)
	if err != nil {
		return 0, fmt.Errorf("datapath: looking up tunnel device %s: %w", name, err)
	}
	if l.Index == 0 {
		_, err := k.exec(unix.RTM_NEWLINK, netlink.Acknowledge|netlink.Create|netlink.Excl, appendTunnelNew(nil, name, e))
		switch {
		case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT):
			return 0, fmt.Errorf("datapath: cannot create %s device %s: the kernel has no %s tunnel driver: enable %s, or load the module", e, name, e, kernelOption[e])
		case errors.Is(err, unix.EEXIST):
			return 0, fmt.Errorf("datapath: cannot create %s device %s: another external-mode %s device exists in this namespace (only one is allowed); delete it or set datapath.tunnel_device to its name", e, name, e)
		case err != nil:
			return 0, fmt.Errorf("datapath: creating %s device %s: %w", e, name, err)
		}
		if l, err = k.getLink(name); err != nil || l.Index == 0 {
			return 0, fmt.Errorf("datapath: %s device %s vanished after creation: %v", e, name, err)
		}
		k.log.Info("tunnel device created", "dev", name, "encap", e.String())
	} else if !k.cfg.anyTunnel && (l.Kind != e.String() || !l.CollectMD) {
		return 0, fmt.Errorf("datapath: device %s exists but is not an %s device in external mode (kind %q, external %v): delete it, or set datapath.tunnel_device to a free name", name, e, l.Kind, l.CollectMD)
	}
	conf := [][2]uint32{{devconfForwarding, 1}, {devconfRPFilter, 1}}
	if _, err := k.exec(unix.RTM_NEWLINK, netlink.Acknowledge, appendLinkConf(nil, l.Index, conf)); err != nil {
		return 0, fmt.Errorf("datapath: setting %s up (forwarding, rp_filter): %w", name, err)
	}
	return l.Index, nil
}

// ---- VIP ----

func (k *kernel) AddVIP(p netip.Prefix) error {
	if err := k.needHome(); err != nil {
		return err
	}
	if !p.Addr().Is4() {
		return fmt.Errorf("datapath: virtual address %v is not IPv4", p)
	}
	_, err := k.exec(unix.RTM_NEWADDR, netlink.Acknowledge|netlink.Create|netlink.Replace, appendAddr(nil, k.home, p))
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("datapath: adding virtual address %v to %s: %w", p, k.cfg.HomeIfname, err)
	}
	k.vips[p] = true
	return nil
}

func (k *kernel) DelVIP(p netip.Prefix) error {
	if err := k.needHome(); err != nil {
		return err
	}
	_, err := k.exec(unix.RTM_DELADDR, netlink.Acknowledge, appendAddr(nil, k.home, p))
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("datapath: removing virtual address %v from %s: %w", p, k.cfg.HomeIfname, err)
	}
	delete(k.vips, p)
	return nil
}

func (k *kernel) needHome() error {
	if k.home == 0 {
		return errors.New("datapath: Setup has not succeeded (no home interface index)")
	}
	return nil
}

// ---- batches ----

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
	k.ops = k.ops[:0]
	var res []error
	fail := func(i int, err error) {
		if res == nil {
			res = make([]error, len(adds)+len(dels))
		}
		res[i] = err
	}
	fresh := make(map[[4]byte]bool)
	for i := range adds {
		b := &adds[i]
		if !b.Home.Is4() || !b.CareOf.Is4() {
			fail(i, fmt.Errorf("datapath: binding %v → %v: home and care-of must be IPv4", b.Home, b.CareOf))
			continue
		}
		if !k.Supports(b.Encap) {
			fail(i, fmt.Errorf("datapath: binding %v → %v: %s: %w", b.Home, b.CareOf, b.Encap, ErrUnsupported))
			continue
		}
		k.touched(b.Home)
		if _, f := k.metricFor(b.Home.As4()); f {
			fresh[b.Home.As4()] = true
		}
		k.ops = append(k.ops, op{owner: int32(i), what: opRoute, home: b.Home, careOf: b.CareOf})
		if k.entries() {
			k.ops = append(k.ops, op{owner: int32(i), what: opProxy, home: b.Home})
		}
	}
	for j, h := range dels {
		if !h.Is4() {
			fail(len(adds)+j, fmt.Errorf("datapath: remove %v: not IPv4", h))
			continue
		}
		k.touched(h)
		k.ops = append(k.ops, op{owner: int32(len(adds) + j), what: opRouteDel, home: h, ignore: unix.ESRCH})
		if k.entries() { // entries left from another mode: Reconcile removes them
			k.ops = append(k.ops, op{owner: int32(len(adds) + j), what: opProxyDel, home: h, ignore: unix.ENOENT})
		}
	}
	opErrs := k.run(k.ops, func(o *op, b []byte) []byte { return k.build(o, adds, b) })
	for n, err := range opErrs {
		if err == nil {
			continue
		}
		o := &k.ops[n]
		if res == nil || res[o.owner] == nil {
			fail(int(o.owner), err)
		} else {
			fail(int(o.owner), errors.Join(res[o.owner], err))
		}
	}
	if cap(k.ops) > 4*window {
		k.ops = nil // a 100k batch's ops are not worth keeping for the next
	}
	if k.rev != nil {
		// The filter's map follows the routes: a binding whose route went
		// in may send through the tunnel; one that was removed may not.
		for i := range adds {
			if res != nil && res[i] != nil {
				continue
			}
			if err := k.rev.put(adds[i].Home, adds[i].CareOf); err != nil {
				k.stats.Errors++
				fail(i, fmt.Errorf("datapath: binding %v → %v: %w", adds[i].Home, adds[i].CareOf, err))
			}
		}
		for j, h := range dels {
			if !h.Is4() {
				continue
			}
			if err := k.rev.del(h); err != nil {
				k.stats.Errors++
				fail(len(adds)+j, fmt.Errorf("datapath: remove %v: %w", h, err))
			}
		}
	}
	// Metrics follow what the kernel now holds. A new binding that failed
	// must not leave half of itself behind (a proxy entry without its
	// route would draw the node's traffic into a black hole): undo it. A
	// failed replace leaves the previous binding's state as it was.
	var undo []op
	for i := range adds {
		h := adds[i].Home.As4()
		if fresh[h] && res != nil && res[i] != nil {
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
		if res == nil || res[len(adds)+j] == nil {
			k.release(h.As4())
		}
	}
	return res
}

// build appends the request body for o.
func (k *kernel) build(o *op, adds []Binding, b []byte) []byte {
	h := o.home.As4()
	switch o.what {
	case opRoute:
		bd := &adds[o.owner]
		src := bd.Src
		if !src.IsValid() {
			src = k.cfg.Local
		}
		r := route{Dst: bd.Home, Oif: k.tun[bd.Encap], Metric: k.metrics[h], Protocol: k.cfg.Protocol,
			EncDst: bd.CareOf, EncSrc: src, TTL: k.cfg.TTL}
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

// ---- Withdraw (dumps and Reconcile: reconcile.go) ----

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

// ---- link notifications ----

func (k *kernel) watchLinks() {
	defer close(k.ldone)
	defer close(k.links)
	for {
		msgs, err := k.lconn.Receive()
		if err != nil {
			if k.lclosed.Load() || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrClosed) {
				return
			}
			if errors.Is(err, unix.ENOBUFS) {
				// Missed notifications: the role logic should re-check
				// links; tell it with a synthetic event for index 0.
				k.emit(LinkEvent{})
				continue
			}
			k.log.Warn("link notifications stopped", "err", err)
			return
		}
		for _, m := range msgs {
			if m.Header.Type != unix.RTM_NEWLINK && m.Header.Type != unix.RTM_DELLINK {
				continue
			}
			l, err := parseLink(m.Data)
			if err != nil {
				continue
			}
			k.emit(LinkEvent{Index: int(l.Index), Name: l.Name, Up: l.Flags&unix.IFF_UP != 0,
				Carrier: l.Flags&unix.IFF_LOWER_UP != 0, Deleted: m.Header.Type == unix.RTM_DELLINK})
		}
	}
}

func (k *kernel) emit(e LinkEvent) {
	k.linkEv.Add(1)
	select {
	case k.links <- e:
	default:
		k.linkDrp.Add(1)
	}
}
