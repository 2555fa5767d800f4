//go:build linux

package hsrp

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/role/roletest"
	"github.com/hagent/hagent/tools/lab"
)

// TestHelperHSRPRunner is the process the netns test starts in a namespace.
func TestHelperHSRPRunner(t *testing.T) {
	roletest.Helper(t)
	prio, _ := strconv.Atoi(os.Getenv("PRIO"))
	r, err := NewRunner(RunnerConfig{Interface: "eth0", PrefixLen: 24, Machine: Config{
		Group: 7, Priority: uint8(prio), Preempt: true, Auth: DefaultAuth,
		VIP: netip.MustParseAddr("10.78.0.100"), Hellotime: time.Second, Holdtime: 3 * time.Second, GARPCount: 2}})
	roletest.Serve(r, err, func() any { return r.Stats() })
}

// TestNetnsHSRP: two runners on a bridge elect by priority, the standby takes
// over when the active one crashes and when it resigns, and tshark decodes
// every HSRP packet without complaint.
func TestNetnsHSRP(t *testing.T) {
	l := lab.NewT(t)
	hostA, hostC := l.HostT(t, "A", "10.78.0.1/24"), l.HostT(t, "C", "10.78.0.2/24")
	mon := l.HostT(t, "M") // sees what the bridge floods: every HSRP packet
	const vip = "10.78.0.100"
	waitOnly := func(who *lab.Host, within time.Duration) time.Duration {
		t.Helper()
		other := map[*lab.Host]*lab.Host{hostA: hostC, hostC: hostA}[who]
		return roletest.WaitOnly(t, vip, who, other, within)
	}
	start := func(h *lab.Host, prio int) *lab.Proc {
		t.Helper()
		return roletest.Start(t, h, "TestHelperHSRPRunner", h.Name+"(prio "+strconv.Itoa(prio)+")", "PRIO="+strconv.Itoa(prio))
	}
	dir := t.TempDir()
	pcap := filepath.Join(dir, "hsrp.pcap")
	var tshark *lab.Proc
	if roletest.Have("tshark") {
		var err error
		if tshark, err = mon.Start("tshark", "-q", "-i", "eth0", "-f", "udp port 1985", "-w", pcap); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
	}

	a := start(hostA, 200)
	c := start(hostC, 100)
	t.Logf("election: A active after %v", waitOnly(hostA, 12*time.Second))
	time.Sleep(1500 * time.Millisecond) // C settles as standby
	// Crash of the active router: the standby takes over after the holdtime.
	roletest.Stop(a, syscall.SIGKILL)
	if err := hostA.IP("addr", "del", vip+"/24", "dev", "eth0"); err != nil { // model the outage
		t.Fatal(err)
	}
	t.Logf("crash: C active after %v (holdtime 3 s)", waitOnly(hostC, 6*time.Second))
	// A returns and preempts with a coup.
	a = start(hostA, 200)
	t.Logf("preempt: A active after %v", waitOnly(hostA, 12*time.Second))
	time.Sleep(4 * time.Second) // C: Speak → Standby after one holdtime
	// Graceful: A resigns, C (standby) takes over at once.
	roletest.Stop(a, syscall.SIGTERM)
	t.Logf("resign: C active after %v", waitOnly(hostC, 2*time.Second))
	roletest.Stop(c, syscall.SIGTERM)

	if tshark == nil {
		roletest.Need(t, false, "tshark (apt-get install tshark)")
		return
	}
	time.Sleep(300 * time.Millisecond)
	roletest.Stop(tshark, syscall.SIGINT)
	ok, _ := exec.Command("tshark", "-r", pcap, "-Y", "hsrp").Output()
	if n := strings.Count(string(ok), "\n"); n < 10 {
		t.Fatalf("tshark decoded %d HSRP packets:\n%s", n, ok)
	}
	for _, want := range []string{"Coup", "Resign"} {
		if !strings.Contains(string(ok), want) {
			t.Errorf("no %s message in the capture:\n%s", want, ok)
		}
	}
	bad, err := exec.Command("tshark", "-r", pcap, "-Y", "_ws.malformed || _ws.expert").Output()
	if err != nil || strings.TrimSpace(string(bad)) != "" {
		t.Fatalf("tshark reports problems (%v):\n%s", err, bad)
	}
}
