package sim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hagent/hagent/ha/mip"
)

// LoadOptions describe a load run: N mobile nodes with consecutive home
// addresses from Base, all in one security association (SPI, Key), register
// over and over for Duration at Rate requests per second in total.
type LoadOptions struct {
	HA         netip.AddrPort // port 0 means 434
	Local      netip.Addr     // source address of the sockets; zero: chosen by the kernel
	Base       netip.Addr     // first home address
	N          int            // number of mobile nodes
	Rate       float64        // requests per second in total; 0: as fast as the window allows
	Duration   time.Duration  // how long to send; replies are awaited up to Timeout after it
	SPI        uint32
	Key        []byte
	CareOf     netip.Addr // zero: each socket's local address
	HomeAgent  netip.Addr // Home Agent field; zero: HA's address
	Lifetime   uint16     // 0 here means 600; set Deregister for lifetime 0
	Deregister bool
	Flags      uint8
	Workers    int           // sockets, each with a sender and a receiver goroutine; 0: 2
	Window     int           // outstanding requests per worker; 0: 256
	Timeout    time.Duration // a request without a reply after this is a timeout; 0: 1s
	NoVerify   bool          // skip verifying reply authenticators
	// Resync: after an authenticated 133, every node takes the HA's clock
	// (the reply's high 32 bits) for its later timestamps (RFC 5944 §5.7.1).
	Resync bool
	// NoGSO sends each batch with sendmmsg instead of as one UDP GSO train
	// (GSO is used when the kernel has it, Linux ≥ 4.18).
	NoGSO bool
	// NetsPerNode > 0 makes every node a mobile router (RFC 5177) that
	// claims NetsPerNode prefixes explicitly, of NetBase's length, one after
	// the other from NetBase: node i (its home address Base+i) the
	// i·NetsPerNode-th to the (i+1)·NetsPerNode−1-th. At most
	// mip.MaxMobileNetPrefixes.
	NetsPerNode int
	NetBase     netip.Prefix
	Now         func() time.Time
}

// CodeCount is how many replies carried one code.
type CodeCount struct {
	Code  uint8  `json:"code"`
	Name  string `json:"name"`
	Count uint64 `json:"count"`
}

// Report is the outcome of a load run.
type Report struct {
	Sent       uint64        `json:"sent"`
	Replies    uint64        `json:"replies"` // matched replies (authenticated unless counted in Unauth)
	Codes      []CodeCount   `json:"codes"`
	Timeouts   uint64        `json:"timeouts"`
	BadAuth    uint64        `json:"bad_auth"`        // replies with a wrong MN-HA authenticator, or none on an acceptance (not in Replies)
	Unauth     uint64        `json:"unauthenticated"` // denials without an authenticator (counted in Replies)
	Unmatched  uint64        `json:"unmatched"`       // late or unknown replies
	Malformed  uint64        `json:"malformed"`
	SendErrors uint64        `json:"send_errors"`
	Elapsed    time.Duration `json:"elapsed_ns"` // from the first send to the last reply
	RepliesPS  float64       `json:"replies_per_sec"`
	P50        time.Duration `json:"p50_ns"`
	P90        time.Duration `json:"p90_ns"`
	P99        time.Duration `json:"p99_ns"`
	P999       time.Duration `json:"p999_ns"`
	Max        time.Duration `json:"max_ns"`
}

func (r Report) String() string {
	s := fmt.Sprintf("sent %d replies %d timeouts %d bad-auth %d unauthenticated %d unmatched %d malformed %d send-errors %d\n",
		r.Sent, r.Replies, r.Timeouts, r.BadAuth, r.Unauth, r.Unmatched, r.Malformed, r.SendErrors)
	for _, c := range r.Codes {
		s += fmt.Sprintf("  code %3d %-40s %d\n", c.Code, c.Name, c.Count)
	}
	s += fmt.Sprintf("elapsed %v  %.0f replies/s\nlatency p50 %v p90 %v p99 %v p99.9 %v max %v",
		r.Elapsed.Round(time.Millisecond), r.RepliesPS, r.P50, r.P90, r.P99, r.P999, r.Max)
	return s
}

// Load runs the load and reports. It returns early, with what it has, when
// ctx ends.
func Load(ctx context.Context, o LoadOptions) (Report, error) {
	var rep Report
	if o.HA.Port() == 0 {
		o.HA = netip.AddrPortFrom(o.HA.Addr(), mip.Port)
	}
	o.HA = netip.AddrPortFrom(o.HA.Addr().Unmap(), o.HA.Port())
	switch {
	case !o.HA.Addr().Is4():
		return rep, fmt.Errorf("mnsim load: home agent address %v is not IPv4", o.HA.Addr())
	case !o.Base.Unmap().Is4():
		return rep, errors.New("mnsim load: -base must be an IPv4 home address")
	case o.N <= 0:
		return rep, errors.New("mnsim load: -n must be at least 1")
	case len(o.Key) == 0:
		return rep, errors.New("mnsim load: key missing")
	case o.Duration <= 0:
		return rep, errors.New("mnsim load: duration must be positive")
	case o.NetsPerNode < 0 || o.NetsPerNode > mip.MaxMobileNetPrefixes:
		return rep, fmt.Errorf("mnsim load: %d networks per node, want 0..%d", o.NetsPerNode, mip.MaxMobileNetPrefixes)
	case o.NetsPerNode > 0 && (!o.NetBase.Addr().Is4() || o.NetBase.Masked() != o.NetBase):
		return rep, fmt.Errorf("mnsim load: network base %v is not an IPv4 prefix without host bits", o.NetBase)
	case o.NetsPerNode > 0 && uint64(o.N)*uint64(o.NetsPerNode) > 1<<o.NetBase.Bits()-netIndex(o.NetBase):
		return rep, fmt.Errorf("mnsim load: %d nodes × %d networks of /%d run past 255.255.255.255", o.N, o.NetsPerNode, o.NetBase.Bits())
	}
	b4 := o.Base.Unmap().As4()
	base := binary.BigEndian.Uint32(b4[:])
	if uint64(base)+uint64(o.N) > 1<<32 {
		return rep, errors.New("mnsim load: -base + -n runs past 255.255.255.255")
	}
	if !o.HomeAgent.IsValid() {
		o.HomeAgent = o.HA.Addr()
	}
	if o.Lifetime == 0 {
		o.Lifetime = 600
	}
	if o.Deregister {
		o.Lifetime = 0
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	o.Workers = min(o.Workers, o.N)
	if o.Window <= 0 {
		o.Window = 256
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}

	ws := make([]*worker, o.Workers)
	clock := new(atomic.Int64)
	for i := range ws {
		w, err := newWorker(&o, i, base, clock)
		if err != nil {
			for _, w := range ws[:i] {
				w.c.Close()
			}
			return rep, err
		}
		ws[i] = w
	}
	start := time.Now()
	wallStart := o.Now()
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(2)
		go func() { defer wg.Done(); w.receive(start, wallStart) }()
		go func() { defer wg.Done(); w.send(ctx, start, wallStart) }()
	}
	wg.Wait()

	var h hist
	var codes [256]uint64
	var last time.Duration
	for _, w := range ws {
		rep.Sent += w.sent
		rep.Timeouts += w.timeouts
		rep.SendErrors += w.sendErrors
		rep.Replies += w.replies
		rep.BadAuth += w.badAuth
		rep.Unauth += w.unauth
		rep.Unmatched += w.unmatched
		rep.Malformed += w.malformed
		for c, n := range w.codes {
			codes[c] += n
		}
		h.merge(&w.lat)
		last = max(last, time.Duration(w.lastReply))
	}
	for c, n := range codes {
		if n > 0 {
			rep.Codes = append(rep.Codes, CodeCount{uint8(c), mip.Code(c).String(), n})
		}
	}
	rep.Elapsed = last
	if last > 0 {
		rep.RepliesPS = float64(rep.Replies) / last.Seconds()
	}
	rep.P50, rep.P90, rep.P99, rep.P999, rep.Max = h.quantile(0.5), h.quantile(0.9), h.quantile(0.99), h.quantile(0.999), time.Duration(h.max)
	return rep, ctx.Err()
}

// slot is one mobile node's outstanding request. at is the send time in
// nanoseconds since the start plus one, 0 when nothing is outstanding; the
// receiver claims a reply by swapping it to 0, the sender a timeout likewise.
type slot struct {
	at     atomic.Int64
	id     atomic.Uint64
	lastID uint64 // sender only: Identifications must increase per node
}

type pending struct {
	local int32
	at    int64
}

type worker struct {
	o     *LoadOptions
	idx   int
	c     *net.UDPConn
	b     *batchConn
	base  uint32 // home address of global node 0
	n     int    // nodes owned: global indices idx, idx+W, idx+2W, …
	coa   netip.Addr
	slots []slot
	next  int

	ring       []pending
	head, tail int // tail-head entries in use

	outstanding atomic.Int64
	clock       *atomic.Int64 // offset of the HA's clock from ours, ns (Resync); shared by the workers
	refill      int64         // the sender waits for this many free window places
	wake        chan struct{}
	done        atomic.Bool

	// sender's counters
	sent, timeouts, sendErrors uint64
	// receiver's counters
	replies, badAuth, unauth, unmatched, malformed uint64
	codes                                          [256]uint64
	lat                                            hist
	lastReply                                      int64
}

func newWorker(o *LoadOptions, idx int, base uint32, clock *atomic.Int64) (*worker, error) {
	var laddr *net.UDPAddr
	if o.Local.IsValid() {
		laddr = &net.UDPAddr{IP: o.Local.AsSlice()}
	}
	c, err := net.DialUDP("udp4", laddr, net.UDPAddrFromAddrPort(o.HA))
	if err != nil {
		return nil, fmt.Errorf("mnsim load: %w", err)
	}
	// Large socket buffers absorb bursts of a whole window.
	_ = c.SetReadBuffer(4 << 20)
	_ = c.SetWriteBuffer(4 << 20)
	b, err := newBatchConn(c, batchSize)
	if err != nil {
		c.Close()
		return nil, err
	}
	n := (o.N - idx + o.Workers - 1) / o.Workers
	coa := o.CareOf
	if !coa.IsValid() {
		coa = c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	}
	return &worker{
		o: o, idx: idx, c: c, b: b, base: base, n: n, coa: coa, clock: clock,
		slots:  make([]slot, n),
		ring:   make([]pending, max(4*o.Window, 1024)),
		wake:   make(chan struct{}, 1),
		refill: int64(max(1, min(batchSize, o.Window/4))),
	}, nil
}

func (w *worker) home(local int) netip.Addr {
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], w.base+uint32(local*w.o.Workers+w.idx))
	return netip.AddrFrom4(a)
}

// netIndex is p's position among the prefixes of its length.
func netIndex(p netip.Prefix) uint64 {
	a := p.Addr().As4()
	return uint64(binary.BigEndian.Uint32(a[:])) >> (32 - p.Bits())
}

// claim fills m with the prefixes of the node at home (none unless
// NetsPerNode is set).
func (w *worker) claim(m *mip.MobileNetRequest, home netip.Addr) {
	m.N = 0
	k := w.o.NetsPerNode
	if k <= 0 {
		return
	}
	h := home.As4()
	i := binary.BigEndian.Uint32(h[:]) - w.base
	b := w.o.NetBase.Addr().As4()
	base, shift := binary.BigEndian.Uint32(b[:]), 32-w.o.NetBase.Bits()
	for j := range k {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], base+(i*uint32(k)+uint32(j))<<shift)
		m.Add(mip.MobileNetPrefix{Bits: uint8(w.o.NetBase.Bits()), Addr: netip.AddrFrom4(a)})
	}
}

// expire pops answered sends off the ring and turns sends older than the
// timeout (all of them when flush is set) into timeouts.
func (w *worker) expire(now int64, flush bool) {
	limit := int64(w.o.Timeout)
	for w.head != w.tail {
		p := &w.ring[w.head%len(w.ring)]
		s := &w.slots[p.local]
		if s.at.Load() == p.at {
			if !flush && now-p.at < limit {
				return
			}
			if s.at.CompareAndSwap(p.at, 0) {
				w.timeouts++
				w.outstanding.Add(-1)
			}
		}
		w.head++
	}
}

func (w *worker) send(ctx context.Context, start, wallStart time.Time) {
	o := w.o
	h := mip.NewHMACMD5(o.Key)
	msgs := make([]message, batchSize)
	for i := range msgs {
		msgs[i].buf = make([]byte, 0, 512)
	}
	var g *gso
	if !o.NoGSO {
		g = newGSO()
	}
	gsoBuf := make([]byte, 0, batchSize*512)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	rate := o.Rate / float64(o.Workers)
	var offset int64
	req := mip.Request{Flags: o.Flags, Lifetime: o.Lifetime, HomeAgent: o.HomeAgent, CareOf: w.coa}
	deadline := int64(o.Duration)
	for ctx.Err() == nil {
		now := int64(time.Since(start))
		if now >= deadline {
			break
		}
		w.expire(now+1, false)
		budget := int64(batchSize)
		if rate > 0 {
			due := int64(float64(now)/1e9*rate) + 1 - int64(w.sent)
			if due <= 0 {
				// Ahead of schedule: sleep until the next one is due.
				next := int64(float64(w.sent)/rate*1e9) - now
				time.Sleep(time.Duration(max(next, int64(20*time.Microsecond))))
				continue
			}
			budget = min(budget, due)
		}
		free := int64(o.Window) - w.outstanding.Load()
		budget = min(budget, free, int64(len(w.ring)-(w.tail-w.head)))
		if budget <= 0 || (free < w.refill && budget < w.refill) {
			// Window (nearly) full: wait until the receiver has freed a
			// batch's worth, so that each send call carries a batch.
			// Or for the oldest to time out.
			timer.Reset(time.Millisecond)
			select {
			case <-w.wake:
			case <-timer.C:
			case <-ctx.Done():
			}
			continue
		}
		k := 0
		for scanned := 0; k < int(budget) && scanned < w.n; scanned++ {
			local := w.next
			w.next++
			if w.next == w.n {
				w.next = 0
			}
			s := &w.slots[local]
			if s.at.Load() != 0 {
				continue // still waiting for this node's reply
			}
			ts := now + 1
			if off := w.clock.Load(); off != offset {
				// Resynchronised: earlier Identifications were on the wrong
				// clock and need not be exceeded.
				offset = off
				for i := range w.slots {
					w.slots[i].lastID = 0
				}
			}
			id := mip.Timestamp(wallStart.Add(time.Duration(now + offset)))
			if id <= s.lastID {
				id = s.lastID + 1
			}
			s.lastID = id
			req.HomeAddr, req.ID = w.home(local), id
			w.claim(&req.MobileNet, req.HomeAddr)
			pkt, err := req.AppendBinary(msgs[k].buf[:0])
			if err != nil {
				continue
			}
			msgs[k].buf = mip.AppendMHAuth(pkt, 0, o.SPI, h)
			s.id.Store(id)
			s.at.Store(ts)
			w.ring[w.tail%len(w.ring)] = pending{int32(local), ts}
			w.tail++
			k++
		}
		if k == 0 {
			// Every node has a request outstanding (N smaller than the window).
			timer.Reset(time.Millisecond)
			select {
			case <-w.wake:
			case <-timer.C:
			case <-ctx.Done():
			}
			continue
		}
		w.outstanding.Add(int64(k))
		sent, err := w.write(msgs[:k], g, gsoBuf)
		w.sent += uint64(sent)
		if err != nil {
			// E.g. ECONNREFUSED after an ICMP port unreachable: release
			// the slots of what was not sent.
			w.sendErrors += uint64(k - sent)
			for j := w.tail - (k - sent); j < w.tail; j++ {
				p := w.ring[j%len(w.ring)]
				if w.slots[p.local].at.CompareAndSwap(p.at, 0) {
					w.outstanding.Add(-1)
				}
			}
			if errors.Is(err, net.ErrClosed) {
				break
			}
		}
	}
	// Drain: wait up to the timeout for the replies still outstanding.
	end := time.Since(start) + o.Timeout
	for w.outstanding.Load() > 0 && time.Since(start) < end && ctx.Err() == nil {
		w.expire(int64(time.Since(start)), false)
		timer.Reset(time.Millisecond)
		select {
		case <-w.wake:
		case <-timer.C:
		case <-ctx.Done():
		}
	}
	w.done.Store(true)
	w.c.SetReadDeadline(time.Unix(1, 0)) // unblocks the receiver
	w.expire(0, true)
}

// write sends a batch: as one GSO datagram train when every request has the
// same size (they do unless the options vary per node), else with sendmmsg.
func (w *worker) write(msgs []message, g *gso, buf []byte) (int, error) {
	if g != nil && len(msgs) > 1 && len(msgs) <= gsoMaxSegs {
		seg := len(msgs[0].buf)
		buf = buf[:0]
		for _, m := range msgs {
			if len(m.buf) != seg {
				return w.b.writeBatch(msgs, false)
			}
			buf = append(buf, m.buf...)
		}
		if ok, err := g.write(w.c, buf, seg, netip.AddrPort{}); ok {
			if err != nil {
				return 0, err
			}
			return len(msgs), nil
		}
	}
	return w.b.writeBatch(msgs, false)
}

func (w *worker) receive(start, wallStart time.Time) {
	o := w.o
	h := mip.NewHMACMD5(o.Key)
	var scratch [64]byte
	msgs := make([]message, batchSize)
	for i := range msgs {
		msgs[i].buf = make([]byte, 2048)
	}
	var rep mip.Reply
	W := uint32(o.Workers)
	for {
		n, err := w.b.readBatch(msgs)
		if err != nil {
			if w.done.Load() || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
				w.c.Close()
				return
			}
			continue // ECONNREFUSED from an ICMP error: the sender counts its losses
		}
		now := int64(time.Since(start)) + 1
		freed := false
		for i := 0; i < n; i++ {
			pkt := msgs[i].buf[:msgs[i].n]
			if rep.UnmarshalBinary(pkt) != nil {
				w.malformed++
				continue
			}
			a := rep.HomeAddr.As4()
			g := binary.BigEndian.Uint32(a[:]) - w.base
			if g >= uint32(o.N) || g%W != uint32(w.idx) {
				w.unmatched++
				continue
			}
			s := &w.slots[g/W]
			at := s.at.Load()
			id := s.id.Load()
			if at == 0 || (rep.ID != id && !(rep.Code == mip.CodeIDMismatch && uint32(rep.ID) == uint32(id))) {
				w.unmatched++
				continue
			}
			if !s.at.CompareAndSwap(at, 0) {
				w.unmatched++ // the sender timed it out meanwhile
				continue
			}
			w.outstanding.Add(-1)
			freed = true
			w.lat.record(now - at)
			if !o.NoVerify && !mip.Verify(pkt, rep.MHAuth, h, &scratch) {
				if rep.MHAuth.Present || rep.Code.Accepted() {
					w.badAuth++
					continue
				}
				w.unauth++ // a denial without authenticator (e.g. 131)
			}
			if rep.Code == mip.CodeIDMismatch && o.Resync {
				ours := mip.Timestamp(wallStart.Add(time.Duration(now+w.clock.Load()))) >> 32
				if d := int64(rep.ID>>32) - int64(ours); d < -1 || d > 1 {
					w.clock.Add(d * int64(time.Second))
				}
			}
			w.replies++
			w.codes[rep.Code]++
			w.lastReply = now
		}
		if freed && int64(o.Window)-w.outstanding.Load() >= w.refill {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
}
