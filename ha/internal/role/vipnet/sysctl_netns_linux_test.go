//go:build linux

package vipnet

import (
	"runtime"
	"strings"
	"testing"

	"github.com/hagent/hagent/tools/lab"
	"golang.org/x/sys/unix"
)

// inNS runs fn on this goroutine's thread moved into the lab host's
// namespace (/proc/sys/net is the namespace of the thread that opens it);
// the thread is retired with the goroutine.
func inNS(t *testing.T, h *lab.Host, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		fd, err := unix.Open("/var/run/netns/"+h.NS, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			t.Error(err)
			return
		}
		fn()
	}()
	<-done
	if t.Failed() {
		t.FailNow()
	}
}

func readSysctl(t *testing.T, h *lab.Host, dev, key string) string {
	t.Helper()
	out, err := h.Run("cat", "/proc/sys/net/ipv4/conf/"+dev+"/"+key)
	if err != nil {
		t.Fatalf("reading %s %s: %v %s", dev, key, err, out)
	}
	return strings.TrimSpace(out)
}

// An interface renamed while the runner runs (udev, an operator) keeps its
// sysctls: Restore must put back the value on the interface it changed,
// whatever it is called by then, not fail on (or write to another
// interface under) the old name.
func TestSysctlsRestoreAfterRename(t *testing.T) {
	l := lab.NewT(t)
	h := l.HostT(t, "a", "10.79.0.1/24")
	before := readSysctl(t, h, "eth0", "arp_announce")
	var s Sysctls
	inNS(t, h, func() {
		if err := s.AnnounceOwnAddress("eth0"); err != nil {
			t.Error(err)
		}
	})
	if got := readSysctl(t, h, "eth0", "arp_announce"); got != "2" {
		t.Fatalf("arp_announce while set: %s, want 2", got)
	}
	for _, args := range [][]string{{"link", "set", "eth0", "down"}, {"link", "set", "eth0", "name", "lan1"}, {"link", "set", "lan1", "up"}} {
		if err := h.IP(args...); err != nil {
			t.Fatal(err)
		}
	}
	var rerr error
	inNS(t, h, func() { rerr = s.Restore() })
	if got := readSysctl(t, h, "lan1", "arp_announce"); got != before || rerr != nil {
		t.Fatalf("arp_announce on the renamed interface after Restore: %s (err %v), want %s as before", got, rerr, before)
	}
}
