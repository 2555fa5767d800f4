//go:build linux

package hsrp

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func need(t *testing.T, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("HAGENT_TEST_STRICT") == "1" {
		t.Fatal("prerequisite missing: " + why)
	}
	t.Skip("prerequisite missing: " + why)
}

func have(bin string) bool { _, err := exec.LookPath(bin); return err == nil }

// TestHelperHSRPRunner is the process the netns test starts in a namespace.
func TestHelperHSRPRunner(t *testing.T) {
	if os.Getenv("HAGENT_HSRP_HELPER") != "1" {
		t.Skip("helper process for TestNetnsHSRP")
	}
	prio, _ := strconv.Atoi(os.Getenv("PRIO"))
	r, err := NewRunner(RunnerConfig{Interface: "eth0", PrefixLen: 24, Machine: Config{
		Group: 7, Priority: uint8(prio), Preempt: true, Auth: DefaultAuth,
		VIP: netip.MustParseAddr("10.78.0.100"), Hellotime: time.Second, Holdtime: 3 * time.Second, GARPCount: 2}})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go func() {
		for c := range r.Changes() {
			fmt.Printf("ROLE %s %s %s\n", c.Role, c.State, c.Reason)
		}
	}()
	if err := r.Run(ctx); err != nil {
		fmt.Println("ERR", err)
		os.Exit(1)
	}
	fmt.Printf("STATS %+v\n", r.Stats())
	os.Exit(0)
}

// TestNetnsHSRP: two runners on a bridge elect by priority, the standby takes
// over when the active one crashes and when it resigns, and tshark decodes
// every HSRP packet without complaint.
func TestNetnsHSRP(t *testing.T) {
	if testing.Short() {
		t.Skip("netns test (not in -short)")
	}
	need(t, os.Geteuid() == 0, "root (network namespaces)")
	sfx := strconv.Itoa(os.Getpid() % 100000)
	ns := func(n string) string { return "hh" + n + sfx }
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	for _, n := range []string{"B", "A", "C"} {
		run("ip", "netns", "add", ns(n))
		name := ns(n)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	}
	run("ip", "-n", ns("B"), "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	run("ip", "-n", ns("B"), "link", "set", "br0", "up")
	for i, n := range []string{"A", "C"} {
		run("ip", "-n", ns("B"), "link", "add", "p"+n, "type", "veth", "peer", "name", "eth0", "netns", ns(n))
		run("ip", "-n", ns("B"), "link", "set", "p"+n, "master", "br0", "up")
		run("ip", "-n", ns(n), "addr", "add", fmt.Sprintf("10.78.0.%d/24", i+1), "dev", "eth0")
		run("ip", "-n", ns(n), "link", "set", "eth0", "up")
	}
	holds := func(n string) bool {
		out, _ := exec.Command("ip", "-n", ns(n), "-4", "addr", "show", "dev", "eth0").Output()
		return strings.Contains(string(out), " 10.78.0.100/")
	}
	waitOnly := func(who string, within time.Duration) time.Duration {
		t.Helper()
		other := map[string]string{"A": "C", "C": "A"}[who]
		start := time.Now()
		for time.Since(start) < within {
			if holds(who) && !holds(other) {
				return time.Since(start)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("want only %s holding 10.78.0.100 within %v: A=%v C=%v", who, within, holds("A"), holds("C"))
		return 0
	}
	start := func(n string, prio int) *exec.Cmd {
		cmd := exec.Command("ip", "netns", "exec", ns(n), os.Args[0], "-test.run=^TestHelperHSRPRunner$")
		cmd.Env = append(os.Environ(), "HAGENT_HSRP_HELPER=1", "PRIO="+strconv.Itoa(prio))
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		})
		go func() {
			for s := bufio.NewScanner(out); s.Scan(); {
				t.Logf("%s(prio %d): %s", n, prio, s.Text())
			}
		}()
		return cmd
	}
	dir := t.TempDir()
	pcap := filepath.Join(dir, "hsrp.pcap")
	var tshark *exec.Cmd
	if have("tshark") {
		tshark = exec.Command("ip", "netns", "exec", ns("B"), "tshark", "-q", "-i", "br0", "-f", "udp port 1985", "-w", pcap)
		tshark.Start()
		time.Sleep(time.Second)
	}

	a := start("A", 200)
	c := start("C", 100)
	t.Logf("election: A active after %v", waitOnly("A", 12*time.Second))
	time.Sleep(1500 * time.Millisecond) // C settles as standby
	// Crash of the active router: the standby takes over after the holdtime.
	a.Process.Kill()
	a.Wait()
	run("ip", "-n", ns("A"), "addr", "del", "10.78.0.100/24", "dev", "eth0") // model the outage
	t.Logf("crash: C active after %v (holdtime 3 s)", waitOnly("C", 6*time.Second))
	// A returns and preempts with a coup.
	a = start("A", 200)
	t.Logf("preempt: A active after %v", waitOnly("A", 12*time.Second))
	time.Sleep(4 * time.Second) // C: Speak → Standby after one holdtime
	// Graceful: A resigns, C (standby) takes over at once.
	a.Process.Signal(syscall.SIGTERM)
	a.Wait()
	t.Logf("resign: C active after %v", waitOnly("C", 2*time.Second))
	c.Process.Signal(syscall.SIGTERM)
	c.Wait()

	if tshark == nil {
		need(t, false, "tshark (apt-get install tshark)")
		return
	}
	time.Sleep(300 * time.Millisecond)
	tshark.Process.Signal(syscall.SIGINT)
	tshark.Wait()
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
