package failover

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hagent/hagent/tools/mnsim/sim"
)

// goNetns runs fn on a new goroutine locked to an OS thread that has entered
// the named network namespace (/var/run/netns/NAME): every socket fn creates
// belongs to that namespace. The thread is never unlocked, so the runtime
// discards it when fn returns and no other goroutine ever runs in the
// namespace. goNetns returns once the thread has entered (or failed to).
func goNetns(ns string, fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with fn
		fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("failover: opening namespace %s: %w", ns, err)
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			errc <- fmt.Errorf("failover: entering namespace %s: %w (needs root)", ns, err)
			return
		}
		errc <- nil
		fn()
	}()
	return <-errc
}

// detector turns a stream of observations into one measurement: once armed
// with a cut time, the first success whose request left at or after the cut
// is reported (replies to earlier requests could come from the member that
// is going away).
type detector struct {
	mu     sync.Mutex
	cut    time.Time
	armed  bool
	hit    chan time.Time
	lastOK time.Time
}

func newDetector() *detector { return &detector{hit: make(chan time.Time, 1)} }

func (d *detector) arm(cut time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	select { // drop a stale hit of an earlier trial
	case <-d.hit:
	default:
	}
	d.cut, d.armed = cut, true
}

func (d *detector) disarm() {
	d.mu.Lock()
	d.armed = false
	d.mu.Unlock()
}

// ok records a success for a request sent at sent and answered at got.
func (d *detector) ok(sent, got time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastOK = got
	if d.armed && !sent.Before(d.cut) {
		d.armed = false
		d.hit <- got
	}
}

func (d *detector) last() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastOK
}

// Probe pacing: every worker sends about one request per probeGap while
// things work (randomly jittered, so that the workers' phases stay
// independent) and retries at once after probeTimeout. With probeWorkers
// workers a fresh request leaves every probeTimeout/probeWorkers (2.5 ms) on
// average during an outage: that is the measurement's resolution. Steady
// load: about 400 renewals/s.
const (
	probeWorkers = 8
	probeTimeout = 20 * time.Millisecond
	probeGap     = 20 * time.Millisecond
)

// regProbe is the mobile-node side: workers in the mobile node's namespace
// renew their share of the nodes on the virtual address, round robin, for
// as long as ctx lives (mnsim's library does every exchange).
type regProbe struct {
	*detector
	mu       sync.Mutex
	sent     int
	accepted int
}

func startRegProbe(ctx context.Context, ns string, opts sim.Options, homes []netip.Addr) (*regProbe, error) {
	p := &regProbe{detector: newDetector()}
	for w := 0; w < probeWorkers; w++ {
		var mine []netip.Addr
		for i := w; i < len(homes); i += probeWorkers {
			mine = append(mine, homes[i])
		}
		if len(mine) == 0 {
			continue
		}
		err := goNetns(ns, func() {
			// Stagger the workers so that their timeouts do not line up.
			time.Sleep(time.Duration(w) * probeTimeout / probeWorkers)
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for i := 0; ctx.Err() == nil; i++ {
				o := opts
				o.Home = mine[i%len(mine)]
				o.Timeout = probeTimeout
				sent := time.Now()
				res, err := sim.Exchange(ctx, o)
				got := time.Now()
				p.mu.Lock()
				p.sent++
				if err == nil && res.Reply.Code.Accepted() {
					p.accepted++
				}
				p.mu.Unlock()
				if err == nil && res.Reply.Code.Accepted() {
					p.ok(sent, got)
				}
				// Pace successes; an immediate error (ICMP unreachable,
				// no route) must not spin either.
				if wait := probeGap/2 + time.Duration(rng.Int64N(int64(probeGap))) - got.Sub(sent); wait > 0 && (err == nil || got.Sub(sent) < probeTimeout/2) {
					time.Sleep(wait)
				}
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

// pingProbe sends ICMP echo requests to dst from namespace ns every
// pingGap and reports each reply; the keepalived side uses it, since
// keepalived answers nothing but ARP and ping on its address.
type pingProbe struct{ *detector }

const pingGap = 3 * time.Millisecond

func startPingProbe(ctx context.Context, ns string, dst netip.Addr) (*pingProbe, error) {
	p := &pingProbe{newDetector()}
	var c net.PacketConn
	var lerr error
	done := make(chan struct{})
	err := goNetns(ns, func() {
		defer close(done)
		c, lerr = net.ListenPacket("ip4:icmp", "0.0.0.0")
	})
	if err != nil {
		return nil, err
	}
	<-done
	if lerr != nil {
		return nil, fmt.Errorf("failover: ICMP socket in %s: %w", ns, lerr)
	}
	context.AfterFunc(ctx, func() { c.Close() })
	id := uint16(os.Getpid())
	var mu sync.Mutex
	sentAt := make(map[uint16]time.Time)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := c.ReadFrom(buf) // the kernel strips the IPv4 header
			if err != nil {
				return
			}
			got := time.Now()
			if n < 8 || buf[0] != 0 || binary.BigEndian.Uint16(buf[4:]) != id {
				continue
			}
			seq := binary.BigEndian.Uint16(buf[6:])
			mu.Lock()
			sent, ok := sentAt[seq]
			delete(sentAt, seq)
			mu.Unlock()
			if ok {
				p.ok(sent, got)
			}
		}
	}()
	go func() {
		to := &net.IPAddr{IP: dst.AsSlice()}
		t := time.NewTicker(pingGap)
		defer t.Stop()
		for seq := uint16(0); ; seq++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			msg := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq)}
			binary.BigEndian.PutUint16(msg[2:], icmpChecksum(msg))
			mu.Lock()
			sentAt[seq] = time.Now()
			delete(sentAt, seq-1000) // forget unanswered ones
			mu.Unlock()
			_, _ = c.WriteTo(msg, to) // unreachable while ARP fails: keep going
		}
	}()
	return p, nil
}

func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// watchAddr polls, in namespace ns, whether dev holds addr, every 2 ms
// until ctx ends, and reports the first time it does after being armed
// (the time the kernel address appears on the new master).
func watchAddr(ctx context.Context, ns, dev string, addr netip.Addr) (*detector, error) {
	d := newDetector()
	return d, goNetns(ns, func() {
		for ctx.Err() == nil {
			now := time.Now()
			if holds(dev, addr) {
				d.ok(now, now)
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
}

// holds reports whether interface dev (in the calling thread's namespace)
// carries addr.
func holds(dev string, addr netip.Addr) bool {
	ifc, err := net.InterfaceByName(dev)
	if err != nil {
		return false
	}
	as, err := ifc.Addrs()
	if err != nil {
		return false
	}
	for _, a := range as {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == addr {
				return true
			}
		}
	}
	return false
}

// holdsIn answers holds for namespace ns, once.
func holdsIn(ns, dev string, addr netip.Addr) (bool, error) {
	res := make(chan bool, 1)
	if err := goNetns(ns, func() { res <- holds(dev, addr) }); err != nil {
		return false, err
	}
	return <-res, nil
}
