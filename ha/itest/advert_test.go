package itest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/lab"
)

// TestAdvertisementsFollowTheElection: two agents with VRRP, group sync and
// agent advertisements. A host on the home LAN hears advertisements from the
// virtual address only, from the active member's MAC; after the active
// member is killed the other one advertises; tshark decodes them cleanly.
func TestAdvertisementsFollowTheElection(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		lab.Require(t)
		t.Skip("needs tshark")
	}
	l := lab.NewT(t)
	listener := l.HostT(t, "ls", "192.0.2.60/24")
	var agents []*Agent
	var macs []string
	for i := 1; i <= 2; i++ {
		h := l.HostT(t, fmt.Sprintf("ha%d", i), fmt.Sprintf("192.0.2.1%d/24", i))
		cfg := groupConfig(i) + `
[advertise]
enabled = true
interval = "1s"
lifetime = "3s"
`
		agents = append(agents, StartAgent(t, h, cfg))
		// `ip -br link`: "eth0@ifN  UP  MAC  <flags>" (nsenter keeps the
		// host's /sys, so /sys/class/net would show the wrong namespace).
		out, err := h.Run("ip", "-br", "link", "show", "eth0")
		f := strings.Fields(out)
		if err != nil || len(f) < 3 {
			t.Fatalf("ip -br link show eth0: %v %q", err, out)
		}
		macs = append(macs, f[2])
	}
	eventually(t, 10*time.Second, "member 1 active", func() (bool, string) {
		r := redundancy(t, agents[0])
		return strings.HasPrefix(r.Role, "active"), r.Role
	})

	capture := func(name string, d time.Duration) []string {
		pcap := filepath.Join(t.TempDir(), name+".pcap")
		if out, err := listener.Run("tshark", "-q", "-i", "eth0", "-f", "icmp[0] == 9", "-a", fmt.Sprintf("duration:%d", int(d.Seconds())), "-w", pcap); err != nil {
			t.Fatalf("tshark capture: %v\n%s", err, out)
		}
		out, err := exec.Command("tshark", "-r", pcap, "-T", "fields", "-e", "ip.src", "-e", "eth.src", "-e", "ip.ttl", "-e", "icmp.mip.seq").Output()
		if err != nil {
			t.Fatal(err)
		}
		bad, _ := exec.Command("tshark", "-r", pcap, "-Y", "_ws.malformed || _ws.expert.severity >= warning").Output()
		if s := strings.TrimSpace(string(bad)); s != "" {
			t.Fatalf("tshark: malformed or expert warnings:\n%s", s)
		}
		var lines []string
		for _, ln := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if ln != "" {
				lines = append(lines, ln)
			}
		}
		return lines
	}
	check := func(lines []string, mac string, what string) {
		if len(lines) < 2 {
			t.Fatalf("%s: %d advertisements in the capture, want at least 2 (interval 1s):\n%s", what, len(lines), strings.Join(lines, "\n"))
		}
		for _, ln := range lines {
			f := strings.Split(ln, "\t")
			if f[0] != "192.0.2.1" || f[1] != mac || f[2] != "1" {
				t.Fatalf("%s: advertisement %q, want source 192.0.2.1 (the virtual address), MAC %s, TTL 1", what, ln, mac)
			}
		}
		t.Logf("%s: %d advertisements from 192.0.2.1 via %s", what, len(lines), mac)
	}
	check(capture("before", 4*time.Second), macs[0], "before failover")

	if err := agents[0].Proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-agents[0].Proc.Done()
	if err := agents[0].Host.LinkDown(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "member 2 active", func() (bool, string) {
		r := redundancy(t, agents[1])
		return strings.HasPrefix(r.Role, "active"), r.Role
	})
	check(capture("after", 4*time.Second), macs[1], "after failover")

	out, err := agents[1].Hactl("show", "agent")
	if err != nil || !strings.Contains(out, "agent advertisements") {
		t.Fatalf("hactl show agent: %v\n%s", err, out)
	}
}
