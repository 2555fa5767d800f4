package itest

import (
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/lab"
)

// TestInterfaceTracking: a tracked interface going down lowers the VRRP
// priority by its weight, so the other member takes over; back up, the
// first member preempts again.
func TestInterfaceTracking(t *testing.T) {
	l := lab.NewT(t)
	h1 := l.HostT(t, "ha1", "192.0.2.11/24")
	h2 := l.HostT(t, "ha2", "192.0.2.12/24")
	// The build machines have no dummy driver: a veth pair is the uplink.
	if err := h1.IP("link", "add", "trk0", "type", "veth", "peer", "name", "trk1"); err != nil {
		t.Fatal(err)
	}
	for _, dev := range []string{"trk0", "trk1"} {
		if err := h1.IP("link", "set", dev, "up"); err != nil {
			t.Fatal(err)
		}
	}
	cfg1 := strings.Replace(groupConfig(1), "\n[datapath]", "\n[[vrrp.track_interfaces]]\ninterface = \"trk0\"\nweight = 50\n\n[datapath]", 1)
	a1 := StartAgent(t, h1, cfg1)
	a2 := StartAgent(t, h2, groupConfig(2))
	role := func(a *Agent) string { return redundancy(t, a).Role }
	eventually(t, 10*time.Second, "member 1 active", func() (bool, string) {
		return strings.HasPrefix(role(a1), "active") && strings.HasPrefix(role(a2), "standby"), role(a1) + " / " + role(a2)
	})
	if err := h1.IP("link", "set", "trk0", "down"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "member 2 takes over (130 - 50 < 120)", func() (bool, string) {
		return strings.HasPrefix(role(a2), "active") && !strings.HasPrefix(role(a1), "active"), role(a1) + " / " + role(a2)
	})
	if err := h1.IP("link", "set", "trk0", "up"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "member 1 preempts back", func() (bool, string) {
		return strings.HasPrefix(role(a1), "active") && !strings.HasPrefix(role(a2), "active"), role(a1) + " / " + role(a2)
	})
	if !strings.Contains(a1.Proc.Output(), "tracked interface changed") {
		t.Fatal("no tracking log line")
	}
}
