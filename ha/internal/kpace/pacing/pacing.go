// Package pacing measures what a periodic multicast send costs an otherwise
// idle process, paced two ways: by a timerfd on a cadence that wakes the
// process for each send (deadline.Timer, the way a VRRP master sends its
// adverts), and by the kernel (package kpace: an io_uring chain of
// timeouts linked to sends, the process woken once per batch).
//
// Each way runs as a child process (this same binary) alone in a network
// namespace of a lab of its own, sending a VRRP advertisement (protocol
// 112, TTL 255, TOS 0xc0, to 224.0.0.18, from the same socket options as
// the runner) to a receiver on the same bridge, which checks the cadence.
// The cost is measured as tools/failover measures an idle member: time on
// CPU of all the sender's threads and their context switches, over the
// same span; or, separately, its system calls (strace -f -c).
package pacing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hagent/hagent/ha/internal/deadline"
	"github.com/hagent/hagent/ha/internal/kpace"
	"github.com/hagent/hagent/ha/internal/role"
	"github.com/hagent/hagent/ha/internal/role/runner"
	"github.com/hagent/hagent/ha/internal/vrrp"
	"github.com/hagent/hagent/tools/failover"
	"github.com/hagent/hagent/tools/lab"
)

// Mode is one way of pacing: "timer", or "uringN" (N sends per chain).
type Mode struct {
	Name  string
	Batch int // 0: timer
	Opts  kpace.Options
}

// ParseMode reads "timer" or "uringN".
func ParseMode(s string) (Mode, error) {
	if s == "timer" || s == "inline" {
		return Mode{Name: s}, nil
	}
	for _, k := range []struct {
		prefix string
		o      kpace.Options
	}{{"uringe", kpace.Options{WaitInEnter: true}}, {"uringr", kpace.Options{WaitRing: true}}, {"uring", kpace.Options{}},
		{"tfde", kpace.Options{TimerFD: true, WaitInEnter: true}}, {"tfd", kpace.Options{TimerFD: true}}} {
		var n int
		if rest, ok := strings.CutPrefix(s, k.prefix); ok {
			if _, err := fmt.Sscanf(rest, "%d", &n); err == nil && n >= 1 && n <= kpace.MaxBatch {
				return Mode{Name: s, Batch: n, Opts: k.o}, nil
			}
		}
	}
	return Mode{}, fmt.Errorf("pacing: mode %q: want timer, inline, uringN, uringeN, tfdN or tfdeN, N in 1..%d", s, kpace.MaxBatch)
}

// Result is one mode's cost over the measured span.
type Result struct {
	Mode         string
	PID          int
	CPUPercent   float64 // time on CPU of all threads, share of one CPU
	SwitchesPerS float64
	Received     int // datagrams the receiver got over its whole run
	MinGap       time.Duration
	MaxGap       time.Duration
	Strace       string // strace -f -c output, when asked
	Err          error
}

const (
	src = "192.0.2.11"
	dst = "192.0.2.12"
)

// Measure runs every mode at once, each in a lab of its own, and measures
// each sender over span after settle. With straceSpan > 0 it measures
// system calls (strace -f -c -p) over that span instead of CPU.
func Measure(ctx context.Context, self string, modes []Mode, interval, settle, span, straceSpan time.Duration) []Result {
	res := make([]Result, len(modes))
	var wg sync.WaitGroup
	for i, m := range modes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = measureOne(ctx, self, m, interval, settle, span, straceSpan)
		}()
	}
	wg.Wait()
	return res
}

func measureOne(ctx context.Context, self string, m Mode, interval, settle, span, straceSpan time.Duration) (r Result) {
	r.Mode = m.Name
	l, err := lab.New()
	if err != nil {
		r.Err = err
		return r
	}
	defer l.Close()
	tx, err := l.Host("tx", src+"/24")
	if err != nil {
		r.Err = err
		return r
	}
	rx, err := l.Host("rx", dst+"/24")
	if err != nil {
		r.Err = err
		return r
	}
	rp, err := rx.Start(self, "-child", "recv")
	if err != nil {
		r.Err = err
		return r
	}
	defer rp.Stop(5 * time.Second)
	if err := rp.WaitFor("receiving", 10*time.Second); err != nil {
		r.Err = err
		return r
	}
	sp, err := tx.Start(self, "-child", m.Name, "-interval", interval.String())
	if err != nil {
		r.Err = err
		return r
	}
	defer sp.Stop(5 * time.Second)
	if err := sp.WaitFor("sending", 10*time.Second); err != nil {
		r.Err = err
		return r
	}
	r.PID = sp.Cmd.Process.Pid
	if !sleep(ctx, settle) {
		r.Err = ctx.Err()
		return r
	}
	if straceSpan > 0 {
		r.Strace, r.Err = strace(ctx, r.PID, straceSpan)
	} else {
		c0, s0, err := failover.ProcCPU(r.PID)
		t0 := time.Now()
		if err != nil {
			r.Err = err
			return r
		}
		if !sleep(ctx, span) {
			r.Err = ctx.Err()
			return r
		}
		c1, s1, err := failover.ProcCPU(r.PID)
		s := time.Since(t0).Seconds()
		if err != nil {
			r.Err = err
			return r
		}
		r.CPUPercent = float64(c1-c0) / 1e9 / s * 100
		r.SwitchesPerS = float64(s1-s0) / s
	}
	select {
	case <-sp.Done():
		r.Err = fmt.Errorf("pacing: %s sender exited early:\n%s", m.Name, sp.Output())
		return r
	default:
	}
	_ = sp.Stop(5 * time.Second)
	_ = rp.Stop(5 * time.Second)
	out := rp.Output()
	if i := strings.LastIndex(out, "received "); i >= 0 {
		var minUS, maxUS int64
		fmt.Sscanf(out[i:], "received %d min_gap_us %d max_gap_us %d", &r.Received, &minUS, &maxUS)
		r.MinGap, r.MaxGap = time.Duration(minUS)*time.Microsecond, time.Duration(maxUS)*time.Microsecond
	}
	return r
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-time.After(d):
		return true
	case <-ctx.Done():
		return false
	}
}

// strace counts pid's system calls over span.
func strace(ctx context.Context, pid int, span time.Duration) (string, error) {
	cmd := exec.CommandContext(ctx, "strace", "-f", "-c", "-p", fmt.Sprint(pid))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("pacing: strace: %w", err)
	}
	sleep(ctx, span)
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
	return out.String(), nil
}

// Table prints results for people.
func Table(w io.Writer, rs []Result) {
	fmt.Fprintf(w, "%-8s %8s %11s %9s %10s %10s\n", "mode", "cpu", "switches/s", "received", "min gap", "max gap")
	for _, r := range rs {
		if r.Err != nil {
			fmt.Fprintf(w, "%-8s error: %v\n", r.Mode, r.Err)
			continue
		}
		fmt.Fprintf(w, "%-8s %7.3f%% %11.1f %9d %10v %10v\n", r.Mode, r.CPUPercent, r.SwitchesPerS, r.Received, r.MinGap, r.MaxGap)
		if r.Strace != "" {
			fmt.Fprintf(w, "strace -f -c of %s:\n%s\n", r.Mode, r.Strace)
		}
	}
}

// advert is the datagram every mode sends: a VRRPv3 advertisement of
// 192.0.2.1 from src, checksummed.
func advert() ([]byte, error) {
	a := vrrp.Advertisement{VRID: 51, Priority: 100, Interval: 10}
	if err := a.SetAddresses([]netip.Addr{netip.MustParseAddr("192.0.2.1")}); err != nil {
		return nil, err
	}
	return a.AppendChecksummed(nil, netip.MustParseAddr(src), vrrp.Group)
}

// txSocket opens the sender's raw socket with the runner's options.
func txSocket() (int, error) {
	ifi, err := netInterface("eth0")
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, vrrp.IPProtocol)
	if err != nil {
		return -1, err
	}
	for _, e := range []error{
		unix.Bind(fd, &unix.SockaddrInet4{Addr: netip.MustParseAddr(src).As4()}),
		unix.BindToDevice(fd, "eth0"),
		unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi)}),
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, vrrp.TTL),
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 0),
		unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TOS, 0xc0),
	} {
		if e != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("pacing: sender socket: %w", e)
		}
	}
	return fd, nil
}

func netInterface(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return ifi.Index, nil
}

// Child runs one child role until SIGTERM: "recv", "timer" or "uringN".
func Child(role string, interval time.Duration, w io.Writer) error {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	if role == "recv" {
		return receive(stop, w)
	}
	m, err := ParseMode(role)
	if err != nil {
		return err
	}
	pkt, err := advert()
	if err != nil {
		return err
	}
	fd, err := txSocket()
	if err != nil {
		return err
	}
	if m.Name == "inline" {
		return sendInline(fd, pkt, interval, stop, w)
	}
	if m.Batch == 0 {
		return sendTimer(fd, pkt, interval, stop, w)
	}
	return sendUring(fd, pkt, interval, m, stop, w)
}

// sendTimer is the master's way: one timerfd on a cadence, a wake-up and a
// sendto per advert.
func sendTimer(fd int, pkt []byte, interval time.Duration, stop chan os.Signal, w io.Writer) error {
	t, err := deadline.New()
	if err != nil {
		return err
	}
	defer t.Close()
	at := t.Now() + interval
	t.Set(at)
	fmt.Fprintln(w, "sending timer")
	for {
		select {
		case <-stop:
			return nil
		case <-t.C():
		}
		now := t.Now()
		if !t.Due(now) {
			continue
		}
		if err := runner.SendTo(fd, pkt, vrrp.Group, 0); err != nil {
			return err
		}
		at = role.NextPeriodic(at, now, interval)
		t.Set(at)
	}
}

// sendInline is the least a Go process can do per advert while waking
// for each: one goroutine stays in one RawConn.Read of a periodic timerfd
// and sends from the read's callback, so a wake-up is the poller's return,
// the read and the send, with no channel or second goroutine (timer's
// deadline.Timer hands each tick to the loop over a channel).
func sendInline(fd int, pkt []byte, interval time.Duration, stop chan os.Signal, w io.Writer) error {
	tfd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return err
	}
	iv := unix.NsecToTimespec(int64(interval))
	if err := unix.TimerfdSettime(tfd, 0, &unix.ItimerSpec{Interval: iv, Value: iv}, nil); err != nil {
		unix.Close(tfd)
		return err
	}
	f := os.NewFile(uintptr(tfd), "timerfd")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	fmt.Fprintln(w, "sending inline")
	errc := make(chan error, 1)
	go func() {
		var ticks uint64
		var serr error
		rerr := rc.Read(func(t uintptr) bool {
			_, _, e := unix.RawSyscall(unix.SYS_READ, t, uintptr(unsafe.Pointer(&ticks)), 8)
			if e == 0 {
				if serr = runner.SendTo(fd, pkt, vrrp.Group, 0); serr != nil {
					return true
				}
			}
			return false
		})
		errc <- errors.Join(serr, rerr)
	}()
	select {
	case <-stop:
		f.Close()
		<-errc
		return nil
	case err := <-errc:
		f.Close()
		return err
	}
}

// sendUring queues batch sends at a time on a locked thread.
func sendUring(fd int, pkt []byte, interval time.Duration, m Mode, stop chan os.Signal, w io.Writer) error {
	p, err := kpace.NewWith(fd, netip.AddrPortFrom(vrrp.Group, 0), interval, m.Batch, m.Opts)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		for {
			if _, err := p.Chain(pkt); err != nil {
				errc <- err
				return
			}
		}
	}()
	fmt.Fprintf(w, "sending %s\n", m.Name)
	select {
	case <-stop:
		return nil // exit cancels the chain
	case err := <-errc:
		return err
	}
}

// receive counts the adverts and the gaps between their arrivals, and
// prints them when stopped.
func receive(stop chan os.Signal, w io.Writer) error {
	ifi, err := netInterface("eth0")
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, vrrp.IPProtocol)
	if err != nil {
		return err
	}
	if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, &unix.IPMreqn{Multiaddr: vrrp.Group.As4(), Ifindex: int32(ifi)}); err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), "rx")
	var mu sync.Mutex
	var n int
	var last time.Time
	var minGap, maxGap time.Duration
	debug := os.Getenv("PACING_DEBUG") != ""
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			now := time.Now()
			mu.Lock()
			if n > 0 {
				g := now.Sub(last)
				if n == 1 || g < minGap {
					minGap = g
				}
				maxGap = max(maxGap, g)
				if debug {
					fmt.Fprintf(w, "gap %v at %s\n", g, now.Format("05.000000"))
				}
			}
			n++
			last = now
			mu.Unlock()
		}
	}()
	fmt.Fprintln(w, "receiving")
	<-stop
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(w, "received %d min_gap_us %d max_gap_us %d\n", n, minGap.Microseconds(), maxGap.Microseconds())
	return nil
}
