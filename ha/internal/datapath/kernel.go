package datapath

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
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
	cfg Config
	log *slog.Logger
	c   *netlink.Conn
	// sysctl writes a /proc/sys file of the datapath's namespace
	// (writeSysctl, set by Open; nil with a test's fake connection)
	sysctl func(path, val string) error
	seq    uint32
	home   uint32     // ifindex
	tun    [2]uint32  // ifindex per Encap, 0: none
	rev    *revFilter // reverse-tunnel check, nil when off
	revOn  [2]uint32  // ifindex per Encap our filter is attached to, 0: none

	metrics map[[4]byte]uint32 // home address → the metric its route holds
	free    []uint32           // released metrics, reused first
	next    uint32
	vips    map[netip.Prefix]bool

	prefixes *prefixState // mobile network routes (prefixes.go), nil until used
	udp      *udpState    // the UDP tunnel (kernel_udptun.go), nil when off

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
	pdirty    map[pfx]struct{}     // networks ApplyPrefixes changed while scanning
	dirtyOver bool

	// one batch's working set, reused
	arena []byte
	msgs  []netlink.Message
	ops   []op
	offs  []int
	fresh map[[4]byte]bool // homes new to the kernel in this Apply (their metric just allocated)

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
	adoptFromEnv(&cfg)
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
	k.sysctl = func(path, val string) error { return writeSysctl(cfg.NetNS, path, val) }
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
		pdirty:  make(map[pfx]struct{}),
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
	k.udpStats(&s)
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
	uerr := k.closeUDP()
	err := k.c.Close()
	if err == nil {
		err = uerr
	}
	if k.lconn != nil {
		k.lclosed.Store(true)
		k.lconn.Close()
		<-k.ldone
	}
	return err
}

func (k *kernel) Supports(e Encap) bool {
	if e == UDP {
		return k.udp != nil && k.udp.attached != 0
	}
	return int(e) < len(k.tun) && k.tun[e] != 0
}

// Single requests, each answered before the next is sent.

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
