package itest

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/datapath"
	"github.com/hagent/hagent/tools/lab"
)

// The agent's periodic kernel check repairs the mobile networks' routes as
// it does the home addresses': a network's route deleted by hand comes
// back, a stray route of ours (protocol 77, a metric in the prefix range)
// that no binding wants goes, and `hactl show stats` counts both.
func TestNetnsMobileNetworkPeriodicCheck(t *testing.T) {
	l := lab.NewT(t)
	ha := l.HostT(t, "ha", "192.0.2.1/24")
	mr := l.HostT(t, "mr", "192.0.2.50/24")
	adoptTunnel(t, ha)
	cfg := strings.Replace(mnConfig, "[datapath]\nenabled = true\n", "[datapath]\nenabled = true\nreconcile_interval = \"1s\"\n", 1)
	a := StartAgent(t, ha, cfg)
	router := []string{"-home", "192.0.2.10", "-spi", "256", "-key", "bus-7-secret-012345", "-ha", "192.0.2.1", "-coa", "198.51.100.7"}
	out, code := Mnsim(t, mr, append([]string{"register", "-json", "-lifetime", "600", "-mobile-network", "10.9.1.0/24", "-mobile-network", "10.9.2.0/24"}, router...)...)
	var r mnNetReply
	if err := json.Unmarshal([]byte(lastLine(out)), &r); err != nil || code != 0 || r.MobileNet == nil || !r.MobileNet.Routed {
		t.Fatalf("register: exit %d %v\n%s\nagent:\n%s", code, err, out, a.Proc.Output())
	}
	before := protoRoutes(t, ha)
	if lineWith(before, "10.9.2.0/24 ") == "" {
		t.Fatalf("no route for 10.9.2.0/24:\n%s", before)
	}
	if err := ha.IP("route", "del", "10.9.2.0/24", "proto", "77"); err != nil {
		t.Fatal(err)
	}
	stray := fmt.Sprint(datapath.PrefixMetricBase + 500)
	if err := ha.IP("route", "add", "10.66.0.0/16", "dev", "mip0", "proto", "77", "metric", stray); err != nil {
		t.Fatal(err)
	}
	counter := regexp.MustCompile(`(?m)periodic checks: mobile network routes repaired\D*(\d+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		routes := protoRoutes(t, ha)
		st, _ := a.Hactl("show", "stats")
		n := -1
		if m := counter.FindStringSubmatch(st); m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		if lineWith(routes, "10.9.2.0/24 ") != "" && !strings.Contains(routes, "10.66.0.0") && n >= 2 {
			if lineWith(routes, "10.9.2.0/24 ") != lineWith(before, "10.9.2.0/24 ") {
				t.Fatalf("repaired route differs:\n%s\nwas:\n%s", routes, before)
			}
			t.Logf("repaired (%d) within the check interval:\n%s", n, routes)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s with reconcile_interval 1s: routes\n%s\nrepaired counter %d\nagent:\n%s", routes, n, a.Proc.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
}
