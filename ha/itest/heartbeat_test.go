package itest

import (
	"context"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hagent/hagent/ha/mip"
	"github.com/hagent/hagent/tools/lab"
	"github.com/hagent/hagent/tools/mnsim/sim"
)

// inNetns runs fn on a goroutine locked to an OS thread that entered the
// named network namespace; the thread is never unlocked, so it dies with fn
// and no other goroutine ever runs there.
func inNetns(t testing.TB, ns string, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/var/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			err = unix.Setns(fd, unix.CLONE_NEWNET)
			unix.Close(fd)
		}
		errc <- err
		if err == nil {
			fn()
		}
	}()
	if err := <-errc; err != nil {
		t.Fatalf("entering namespace %s: %v", ns, err)
	}
}

// exchange is one registration of the crash probe.
type exchange struct {
	sent, got time.Time
	code      mip.Code
	err       error
}

// crashProbe registers the pool's first nodes on the virtual address from
// the mobile nodes' namespace, each worker one request at a time, every
// 20 ms, until ctx ends; it records every exchange.
func crashProbe(t *testing.T, ctx context.Context, mn *lab.Host, workers int) func() []exchange {
	var mu sync.Mutex
	var log []exchange
	var wg sync.WaitGroup
	base := netip.MustParseAddr(syncBase).As4()
	for w := range workers {
		home := base
		home[3] += byte(w)
		wg.Add(1)
		inNetns(t, mn.NS, func() {
			defer wg.Done()
			for ctx.Err() == nil {
				sent := time.Now()
				res, err := sim.Exchange(ctx, sim.Options{HA: netip.AddrPortFrom(netip.MustParseAddr(syncVIP), 434),
					Home: netip.AddrFrom4(home), CareOf: netip.MustParseAddr("198.51.100.7"), SPI: 300,
					Key: []byte(syncKey), Lifetime: 600, Timeout: 2 * time.Second})
				if ctx.Err() != nil {
					return
				}
				mu.Lock()
				log = append(log, exchange{sent: sent, got: time.Now(), code: res.Reply.Code, err: err})
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	return func() []exchange {
		wg.Wait()
		return log
	}
}

// TestPeerCrashHeartbeat: in a pair whose standby acknowledges the active's
// updates, the standby is killed (SIGKILL: no Leave). The active learns it
// from the group heartbeat (default 100 ms × 3) instead of after an update
// to the dead peer ran out of retransmissions (15.75 s, answering 130 all
// that time). By default the first registration sent after the crash is
// accepted within a second of it, and none is refused; with
// require_replication every registration after the crash is refused with
// 130 (no peer can hold it), the refusal decided at the detection, not
// after 16 s.
func TestPeerCrashHeartbeat(t *testing.T) {
	for _, require := range []bool{false, true} {
		name := map[bool]string{false: "default", true: "require_replication"}[require]
		t.Run(name, func(t *testing.T) {
			l := lab.NewT(t)
			mn := l.HostT(t, "mn", "10.0.0.50"+syncMaskLen)
			extra := ""
			if require {
				extra = "require_replication = true"
			}
			var agents []*Agent
			for i := 1; i <= 2; i++ {
				agents = append(agents, StartAgent(t, syncHost(t, l, i), syncConfig(i, true, 1000, extra)))
			}
			waitRoles(t, agents)
			// The standby acknowledges the active's updates from here on.
			syncLoad(t, mn, syncVIP, 20, 200, time.Second)
			if r := redundancyTB(t, agents[0]); r.Replication == nil || r.Replication.PeersAcking != 1 {
				n := -1
				if r.Replication != nil {
					n = r.Replication.PeersAcking
				}
				t.Fatalf("%d acknowledging peers before the crash, want 1", n)
			}

			ctx, cancel := context.WithCancel(context.Background())
			results := crashProbe(t, ctx, mn, 4)
			time.Sleep(500 * time.Millisecond) // steady state before the crash
			standby := agents[1]
			if err := standby.Proc.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-standby.Proc.Done()
			crash := time.Now()
			time.Sleep(3 * time.Second)
			cancel()
			log := results()

			var first *exchange
			after, accepted, refused := 0, 0, 0
			for i := range log {
				e := &log[i]
				if e.sent.Before(crash) {
					continue
				}
				after++
				switch {
				case e.err == nil && e.code.Accepted():
					accepted++
				case e.err == nil && e.code == mip.CodeInsufficientResources:
					refused++
				default:
					t.Errorf("registration sent %v after the crash: code %d, %v", e.sent.Sub(crash).Round(time.Millisecond), e.code, e.err)
				}
				if e.err == nil && (first == nil || e.got.Before(first.got)) {
					first = e
				}
			}
			if after == 0 || first == nil {
				t.Fatalf("no registration answered after the crash (%d sent)", after)
			}
			took := first.got.Sub(crash)
			t.Logf("%s: %d registrations sent after the crash, %d accepted, %d refused 130; first answer (code %d) %v after the crash",
				name, after, accepted, refused, first.code, took.Round(time.Millisecond))
			if err := agents[0].Proc.WaitFor("peer down (heartbeat silent)", time.Second); err != nil {
				t.Errorf("the survivor did not log the heartbeat detection: %v", err)
			}
			if !require {
				if refused != 0 || !first.code.Accepted() {
					t.Errorf("default policy: %d refused after the crash (first answer code %d), want every one accepted", refused, first.code)
				}
			} else if accepted != 0 {
				t.Errorf("require_replication: %d accepted after the crash with no peer left to hold them", accepted)
			}
			// The goal is 1 s (detection is 300 ms; logged above on every
			// run); 3 s keeps a starved member on a CI machine running QEMU
			// beside this package from failing it. Without the heartbeat
			// the survivor refuses for about 16 s.
			if took > 3*time.Second {
				t.Errorf("first answer %v after the crash, want within 1 s (3 s asserted; heartbeat detection: 300 ms)", took.Round(time.Millisecond))
			}
			if require {
				if n := counter(t, redundancyTB(t, agents[0]), "replies.denied_unreplicated"); n == 0 {
					t.Errorf("denied_unreplicated %d after the crash", n)
				}
			}
		})
	}
}
