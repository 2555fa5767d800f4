package itest

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/datapath"
	"github.com/hagent/hagent/tools/lab"
)

// A mobile router (RFC 5177) with two networks registers with the real
// agent, whose kernel datapath routes them into the router's tunnel with
// protocol 77; tshark decodes the extensions both ways without complaint;
// `hactl show bindings` shows them; de-registration withdraws them. The
// build machines' kernel has no ipip: a VXLAN device in external mode
// stands in for mip0 (datapath.AdoptTunnelEnv), which the routes and
// their attributes do not tell apart; what crosses the tunnel is the VM
// test's business.

const mnConfig = `
[agent]
interface = "eth0"
address = "192.0.2.1"
home_network = "192.0.2.0/24"
capacity = 16
max_lifetime = 600
replay_tolerance = "7s"
console_socket = "@SOCKET@"
log_level = "debug"

[[node]]
name = "bus-7"
home_address = "192.0.2.10"
spi = 256
key = "text:bus-7-secret-012345"
mobile_networks = ["10.9.1.0/24", "10.9.2.0/24"]

[datapath]
enabled = true
`

type mnNetReply struct {
	mnReply
	MobileNet *struct {
		Acks []struct {
			Prefix string `json:"prefix"`
			Code   uint8  `json:"code"`
		} `json:"acks"`
		Routed bool `json:"routed"`
	} `json:"mobile_networks"`
}

// adoptTunnel creates the stand-in tunnel device in h and has agents
// started from now on adopt it.
func adoptTunnel(t *testing.T, h *lab.Host) {
	t.Helper()
	t.Setenv(datapath.AdoptTunnelEnv, "1")
	for _, args := range [][]string{
		{"link", "add", "mip0", "type", "vxlan", "external", "dstport", "4789"},
		{"link", "set", "mip0", "up"},
	} {
		if err := h.IP(args...); err != nil {
			t.Fatal(err)
		}
	}
}

// protoRoutes is h's routes of protocol 77 as `ip route` prints them.
func protoRoutes(t *testing.T, h *lab.Host) string {
	t.Helper()
	out, err := h.Run("ip", "route", "show", "proto", "77")
	if err != nil {
		t.Fatalf("ip route: %v %s", err, out)
	}
	return out
}

func TestNetnsMobileRouterNetworks(t *testing.T) {
	l := lab.NewT(t)
	ha := l.HostT(t, "ha", "192.0.2.1/24")
	mr := l.HostT(t, "mr", "192.0.2.50/24")
	adoptTunnel(t, ha)

	var pcap string
	var capture *lab.Proc
	if _, err := exec.LookPath("tshark"); err == nil {
		pcap = filepath.Join(t.TempDir(), "mobilenet.pcap")
		p, err := ha.Start("tshark", "-i", "eth0", "-f", "udp port 434", "-w", pcap)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.WaitFor("Capturing on", 20*time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // armed a moment after it says so
		capture = p
	}

	a := StartAgent(t, ha, mnConfig)
	router := []string{"-home", "192.0.2.10", "-spi", "256", "-key", "bus-7-secret-012345", "-ha", "192.0.2.1", "-coa", "198.51.100.7"}
	out, code := Mnsim(t, mr, append([]string{"register", "-json", "-mobile-network", "10.9.1.0/24", "-mobile-network", "10.9.2.0/24"}, router...)...)
	var r mnNetReply
	if err := json.Unmarshal([]byte(lastLine(out)), &r); err != nil {
		t.Fatalf("mnsim: exit %d, not JSON: %v\n%s", code, err, out)
	}
	if code != 0 || r.Code != 0 || r.MobileNet == nil || !r.MobileNet.Routed || len(r.MobileNet.Acks) != 2 {
		t.Fatalf("register: exit %d %s\nagent:\n%s", code, out, a.Proc.Output())
	}
	routes := protoRoutes(t, ha)
	for _, p := range []string{"10.9.1.0/24", "10.9.2.0/24"} {
		line := lineWith(routes, p+" ")
		if !strings.Contains(line, "dev mip0") || !strings.Contains(line, "dst 198.51.100.7") {
			t.Fatalf("no route for %s into the tunnel to the care-of address, protocol 77:\n%s", p, routes)
		}
	}
	t.Logf("the agent's routes of protocol 77:\n%s", routes)
	if row := findRow(bindings(t, a), "192.0.2.10"); row == nil || strings.Join(row.Networks, ",") != "10.9.1.0/24,10.9.2.0/24" {
		t.Fatalf("show bindings: %+v", row)
	}
	if out, err := a.Hactl("show", "bindings"); err != nil || !strings.Contains(out, "10.9.1.0/24,10.9.2.0/24") {
		t.Fatalf("hactl show bindings: %v\n%s", err, out)
	}

	// One network not allowed: code 2 for it, mnsim says so (exit 1), and
	// the route of the network the renewal dropped goes.
	time.Sleep(10 * time.Millisecond)
	out, code = Mnsim(t, mr, append([]string{"register", "-json", "-mobile-network", "10.9.1.0/24", "-mobile-network", "10.77.0.0/24"}, router...)...)
	if err := json.Unmarshal([]byte(lastLine(out)), &r); err != nil {
		t.Fatalf("mnsim: %v\n%s", err, out)
	}
	if code != 1 || r.Code != 0 || r.MobileNet == nil || len(r.MobileNet.Acks) != 2 || r.MobileNet.Acks[0].Code != 0 || r.MobileNet.Acks[1].Code != 2 {
		t.Fatalf("claim of a network not configured: exit %d %s", code, out)
	}
	routes = protoRoutes(t, ha)
	if lineWith(routes, "10.9.1.0/24 ") == "" || lineWith(routes, "10.9.2.0/24 ") != "" || strings.Contains(routes, "10.77.0.0") {
		t.Fatalf("after a renewal with 10.9.1.0/24 only (10.77.0.0/24 refused):\n%s", routes)
	}

	// De-registration withdraws them.
	time.Sleep(10 * time.Millisecond)
	if out, code := Mnsim(t, mr, append([]string{"deregister"}, router...)...); code != 0 {
		t.Fatalf("deregister: exit %d %s", code, out)
	}
	if routes = protoRoutes(t, ha); strings.Contains(routes, "10.9.") {
		t.Fatalf("after de-registration, routes remain:\n%s", routes)
	}

	if capture != nil {
		time.Sleep(500 * time.Millisecond)
		_ = capture.Signal(syscall.SIGINT)
		select {
		case <-capture.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("tshark did not stop on SIGINT")
		}
		checkTshark(t, pcap, 6)
		fields, err := exec.Command("tshark", "-r", pcap, "-Y", "mip", "-T", "fields", "-E", "separator=|", "-E", "aggregator=,",
			"-e", "mip.type", "-e", "mip.ext.mne.subtype", "-e", "mip.ext.mne.code", "-e", "mip.ext.mne.prefix").Output()
		if err != nil {
			t.Fatal(err)
		}
		got := string(fields)
		for _, want := range []string{"1|0,0||10.9.1.0,10.9.2.0", "3|1,1|0,0|10.9.1.0,10.9.2.0", "3|1,1|0,2|10.9.1.0,10.77.0.0"} {
			if !strings.Contains(got, want) {
				t.Errorf("tshark did not decode %q:\n%s", want, got)
			}
		}
	}
}

func lineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, sub) {
			return l
		}
	}
	return ""
}
