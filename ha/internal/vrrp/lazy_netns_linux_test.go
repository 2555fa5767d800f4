//go:build linux

package vrrp

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/role/roletest"
	"github.com/hagent/hagent/tools/lab"
)

type lazyStats struct {
	rx, lazy, wakeups, dropped uint64
	kernel                     bool // the kernel keeps the Master_Down_Timer
	rings, watchdogs           uint64
}

func (s lazyStats) eager() uint64 { return s.rx - s.lazy }

// stats asks the helper (TestHelperVRRPRunner) for its counters.
func stats(t *testing.T, p *lab.Proc, n *int) lazyStats {
	t.Helper()
	*n++
	if err := p.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("STATS %d ", *n)
	if err := p.WaitFor(tag, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	out := p.Output()
	line := out[strings.Index(out, tag):]
	line = line[:strings.IndexByte(line+"\n", '\n')]
	var s lazyStats
	if _, err := fmt.Sscanf(line[len(tag):], "rx=%d lazy=%d wakeups=%d dropped=%d kernel=%t rings=%d watchdogs=%d",
		&s.rx, &s.lazy, &s.wakeups, &s.dropped, &s.kernel, &s.rings, &s.watchdogs); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	return s
}

// A hagent backup behind a hagent master at 100 ms adverts reads the
// master's unchanged adverts lazily: it wakes far less often than adverts
// arrive and counts them all; a stall longer than the Master_Down_Interval
// does not make it take over (the adverts queued meanwhile are read
// first); a resignation (priority 0) is read at once; a crash of the
// master makes it Master.
func TestLazyBackup(t *testing.T) {
	if testing.Short() {
		t.Skip("netns test (not in -short)")
	}
	lab.Require(t)
	l := newInterop(t)
	master := func() *lab.Proc {
		return roletest.Start(t, l.k, "TestHelperVRRPRunner", "master (200)",
			"IF=eth0", "VIP="+labVIP, "INTERVAL=250ms", "PRIO=200")
	}
	m := master()
	roletest.WaitOnly(t, labVIP, l.k, l.a, 5*time.Second)
	b := roletest.Start(t, l.a, "TestHelperVRRPRunner", "lazy backup (100)", "IF=eth0", "VIP="+labVIP, "INTERVAL=100ms", "PRIO=100")
	if err := b.WaitFor("ROLE standby Backup", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	n := 0
	mastered := func() bool { return strings.Contains(b.Output(), "ROLE active Master") }

	// 250 ms adverts (Master_Down_Interval 902 ms), not 100 ms: the
	// master is another process on a machine that make test loads with
	// every package at once, and one silent for three 100 ms adverts is
	// rightly taken for dead; this test is about the backup.
	time.Sleep(time.Second) // the template is set at the first advert
	s0 := stats(t, b, &n)
	time.Sleep(4 * time.Second)
	s1 := stats(t, b, &n)
	adverts, wakeups := s1.rx-s0.rx, s1.wakeups-s0.wakeups
	t.Logf("in 4 s: %d adverts (%d read lazily), %d wake-ups, %d dropped", adverts, s1.lazy-s0.lazy, wakeups, s1.dropped)
	if adverts < 12 {
		t.Fatalf("%d adverts counted in 4 s at 250 ms: want every one counted", adverts)
	}
	if wakeups >= adverts/2 {
		t.Errorf("%d wake-ups for %d adverts: want fewer than half (the master's unchanged adverts read lazily)", wakeups, adverts)
	}
	if s1.lazy-s0.lazy < adverts/2 {
		t.Errorf("%d of %d adverts read lazily: want most", s1.lazy-s0.lazy, adverts)
	}
	if mastered() || roletest.Holds(l.a, labVIP) {
		t.Fatal("the backup took over from a live master")
	}

	// Stalls longer than the Master_Down_Interval (902 ms): on waking, the
	// adverts queued meanwhile are read before the timer is acted on.
	for i := range 5 {
		if err := b.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		if err := b.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		if mastered() {
			t.Fatalf("stall %d (2 s, live master): the backup took over", i+1)
		}
	}

	// The master resigns (priority 0): read at once, through the polled
	// socket, and the backup takes over after its skew time.
	s2 := stats(t, b, &n)
	roletest.Stop(m, syscall.SIGTERM)
	if err := b.WaitFor("ROLE active Master "+ReasonResigned, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if s3 := stats(t, b, &n); s3.eager() <= s2.eager() {
		t.Errorf("the resignation was not read through the polled socket: eager adverts %d → %d", s2.eager(), s3.eager())
	}

	// The master is back (it preempts), then crashes: the backup takes
	// over when its Master_Down_Timer runs out.
	m = master()
	if err := b.WaitFor("ROLE standby Backup "+ReasonHigher, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	s4 := stats(t, b, &n)
	time.Sleep(2 * time.Second)
	if s5 := stats(t, b, &n); s5.lazy <= s4.lazy {
		t.Errorf("the returned master's adverts are not read lazily (%d → %d in 2 s)", s4.lazy, s5.lazy)
	}
	roletest.Stop(m, syscall.SIGKILL)
	if err := b.WaitFor("ROLE active Master "+ReasonMasterDown, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

// keepalived's adverts are constant too: a hagent backup reads them
// lazily, and takes over when keepalived crashes.
func TestLazyBackupKeepalived(t *testing.T) {
	if testing.Short() {
		t.Skip("netns interop test (not in -short)")
	}
	roletest.Need(t, roletest.Have("keepalived"), "keepalived (apt-get install keepalived)")
	l := newInterop(t)
	k := l.keepalived(200)
	l.waitHolder(l.k, 5*time.Second)
	b := roletest.Start(t, l.a, "TestHelperVRRPRunner", "lazy backup (100)", "IF=eth0", "VIP="+labVIP, "INTERVAL=100ms", "PRIO=100")
	if err := b.WaitFor("ROLE standby Backup", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	n := 0
	time.Sleep(500 * time.Millisecond)
	s0 := stats(t, b, &n)
	time.Sleep(3 * time.Second)
	s1 := stats(t, b, &n)
	adverts, wakeups := s1.rx-s0.rx, s1.wakeups-s0.wakeups
	t.Logf("keepalived master, 3 s: %d adverts (%d read lazily), %d wake-ups", adverts, s1.lazy-s0.lazy, wakeups)
	if adverts < 20 || wakeups >= adverts/2 || s1.lazy-s0.lazy < adverts/2 {
		t.Errorf("%d adverts, %d read lazily, %d wake-ups: want ≥ 20, most lazily, wake-ups < half", adverts, s1.lazy-s0.lazy, wakeups)
	}
	if strings.Contains(b.Output(), "ROLE active Master") {
		t.Fatal("the backup took over from a live keepalived")
	}
	k.crash()
	if err := b.WaitFor("ROLE active Master "+ReasonMasterDown, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
