//go:build linux

package vrrp

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/role/roletest"
	"github.com/hagent/hagent/tools/lab"
)

// kernelLab is a hagent master (K, 200) and backup (A, 100) at 100 ms
// adverts, the backup started with env.
type kernelLab struct {
	*interop
	master, backup *lab.Proc
	n              int
}

func newKernelLab(t *testing.T, env ...string) *kernelLab {
	if testing.Short() {
		t.Skip("netns test (not in -short)")
	}
	lab.Require(t)
	k := &kernelLab{interop: newInterop(t)}
	k.startMaster()
	roletest.WaitOnly(t, labVIP, k.k, k.a, 5*time.Second)
	k.backup = roletest.Start(t, k.a, "TestHelperVRRPRunner", "backup (100)",
		append([]string{"IF=eth0", "VIP=" + labVIP, "INTERVAL=100ms", "PRIO=100"}, env...)...)
	if err := k.backup.WaitFor("ROLE standby Backup", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	return k
}

func (k *kernelLab) startMaster() {
	k.master = roletest.Start(k.t, k.k, "TestHelperVRRPRunner", "master (200)",
		"IF=eth0", "VIP="+labVIP, "INTERVAL=100ms", "PRIO=200")
}

func (k *kernelLab) stats() lazyStats { return stats(k.t, k.backup, &k.n) }

func (k *kernelLab) mastered() bool { return strings.Contains(k.backup.Output(), "ROLE active Master") }

// The backup's Master_Down_Interval behind a master at 100 ms: 3 × 100 ms
// and the skew of priority 100.
const kernelMDI = 300*time.Millisecond + (256-100)*100*time.Millisecond/256

// A backup whose kernel keeps the Master_Down_Timer does not wake for its
// live master's adverts (the lazy reading alone wakes once per
// Master_Down_Interval, about 10 times in 3 s), yet counts them; the
// master's resignation is read at once; when the master dies, the ring
// wakes the backup, which takes over no earlier than its master's last
// advert + Master_Down_Interval (seen on the wire by a third host).
func TestKernelTimerBackup(t *testing.T) {
	k := newKernelLab(t)
	roletest.Need(t, roletest.Have("tshark"), "tshark (the takeover's timing is read from a capture)")
	pcap := filepath.Join(k.dir, "vrrp.pcap")
	tshark, err := k.m.Start("tshark", "-q", "-i", "eth0", "-f", "ip proto 112", "-F", "pcap", "-w", pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer roletest.Stop(tshark, syscall.SIGINT)

	time.Sleep(time.Second) // the template is set at the first advert, the kernel's state at the second
	s0 := k.stats()
	if !s0.kernel {
		t.Fatal("the kernel does not keep the Master_Down_Timer (see the helper's log)")
	}
	time.Sleep(3 * time.Second)
	s1 := k.stats()
	adverts, wakeups := s1.rx-s0.rx, s1.wakeups-s0.wakeups
	t.Logf("in 3 s: %d adverts (%d taken by the kernel), %d wake-ups", adverts, s1.lazy-s0.lazy, wakeups)
	if adverts < 20 || s1.lazy-s0.lazy < adverts-2 {
		t.Errorf("%d adverts counted in 3 s at 100 ms, %d of them by the kernel: want every one counted, by the kernel",
			adverts, s1.lazy-s0.lazy)
	}
	if wakeups > 3 {
		t.Errorf("%d wake-ups in 3 s: want about none (one per %v watchdog at most)", wakeups, bpfWatchdog)
	}
	if k.mastered() {
		t.Fatal("the backup took over from a live master")
	}

	// Resignation (priority 0): through the polled socket, at once.
	roletest.Stop(k.master, syscall.SIGTERM)
	if err := k.backup.WaitFor("ROLE active Master "+ReasonResigned, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	k.startMaster()
	if err := k.backup.WaitFor("ROLE standby Backup "+ReasonHigher, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	s2 := k.stats()
	if !s2.kernel {
		t.Fatal("the kernel no longer keeps the timer after the master returned")
	}
	roletest.Stop(k.master, syscall.SIGKILL)
	if err := k.backup.WaitFor("ROLE active Master "+ReasonMasterDown, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	s3 := k.stats()
	if s3.rings == s2.rings || s3.watchdogs != 0 {
		t.Errorf("rings %d → %d, watchdogs %d: want the ring's call, no watchdog", s2.rings, s3.rings, s3.watchdogs)
	}
	time.Sleep(500 * time.Millisecond)
	roletest.Stop(tshark, syscall.SIGINT)
	last, first := takeover(t, pcap, netip.MustParseAddr("10.77.0.2"), netip.MustParseAddr("10.77.0.1"))
	gap := first.Sub(last)
	t.Logf("on the wire: the master's last advert, then the backup's first %v later (Master_Down_Interval %v)", gap, kernelMDI)
	// The two hosts hear the bridge within microseconds of each other.
	if gap < kernelMDI-time.Millisecond {
		t.Errorf("the backup took over %v after the master's last advert: earlier than the Master_Down_Interval %v", gap, kernelMDI)
	}
}

// takeover reads a pcap (Ethernet) and returns the time of the last packet
// from old that precedes the last run of packets from new, and of that
// run's first.
func takeover(t *testing.T, path string, old, new netip.Addr) (last, first time.Time) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 24 {
		t.Fatalf("pcap %s: %d bytes", path, len(b))
	}
	le := binary.LittleEndian
	var nano bool
	switch le.Uint32(b) {
	case 0xa1b2c3d4:
	case 0xa1b23c4d:
		nano = true
	default:
		t.Fatalf("pcap %s: magic %x (want a little-endian pcap)", path, b[:4])
	}
	var prev netip.Addr
	var prevAt time.Time
	for p := b[24:]; len(p) >= 16; {
		sec, frac, incl := le.Uint32(p), le.Uint32(p[4:]), int(le.Uint32(p[8:]))
		if len(p) < 16+incl {
			break
		}
		pkt := p[16 : 16+incl]
		p = p[16+incl:]
		if len(pkt) < 14+20 {
			continue
		}
		at := time.Unix(int64(sec), int64(frac)*1000)
		if nano {
			at = time.Unix(int64(sec), int64(frac))
		}
		src := netip.AddrFrom4([4]byte(pkt[14+12:]))
		if src == new && prev == old {
			last, first = prevAt, at
		}
		prev, prevAt = src, at
	}
	if first.IsZero() {
		t.Fatalf("pcap %s: no packet from %v after one from %v", path, new, old)
	}
	return last, first
}

// A kernel timer that never runs (the program skips bpf_timer_start): the
// watchdog acts on the Master_Down deadline anyway, counts it, and the
// backup goes back to the lazy reading.
func TestKernelTimerWatchdog(t *testing.T) {
	k := newKernelLab(t, "BPF=nostart")
	time.Sleep(1500 * time.Millisecond)
	if s := k.stats(); !s.kernel {
		t.Fatal("the kernel path is not in use")
	}
	roletest.Stop(k.master, syscall.SIGKILL)
	if err := k.backup.WaitFor("ROLE active Master "+ReasonMasterDown, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if s := k.stats(); s.watchdogs != 1 || s.kernel || s.rings != 0 {
		t.Errorf("watchdogs %d, kernel timer %v, rings %d: want 1, false, 0", s.watchdogs, s.kernel, s.rings)
	}
}

// A kernel that refuses the program: the lazy reading of before, which
// still takes over from a dead master.
func TestKernelTimerRefused(t *testing.T) {
	k := newKernelLab(t, "BPF=refuse")
	time.Sleep(time.Second)
	s0 := k.stats()
	time.Sleep(2 * time.Second)
	s1 := k.stats()
	adverts, lazy := s1.rx-s0.rx, s1.lazy-s0.lazy
	t.Logf("classic: %d adverts, %d read lazily, %d wake-ups", adverts, lazy, s1.wakeups-s0.wakeups)
	if s1.kernel || adverts < 14 || lazy < adverts/2 {
		t.Errorf("kernel timer %v, %d adverts, %d read lazily: want the lazy reading", s1.kernel, adverts, lazy)
	}
	roletest.Stop(k.master, syscall.SIGKILL)
	if err := k.backup.WaitFor("ROLE active Master "+ReasonMasterDown, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
