package itest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/lab"
)

// Two mobile routers of a fleet register with the real agent from one
// namespace, with the same dummy home address, their own NAIs, care-of
// addresses and networks: each network is routed (protocol 77) into its
// own router's tunnel, the shared address is routed nowhere, `hactl show
// bindings` lists both with their NAIs; one router de-registers and only
// its network goes; `hactl clear binding NAI` removes the other's.

const fleetConfig = `
[agent]
interface = "eth0"
address = "192.0.2.1"
home_network = "192.0.2.0/24"
capacity = 16
max_lifetime = 600
replay_tolerance = "7s"
console_socket = "@SOCKET@"
shared_home_addresses = ["192.0.2.200"]

[[node]]
name = "bus-7"
home_address = "192.0.2.200"
nai = "bus-7@fleet.example"
spi = 256
key = "text:fleet-secret-0123456"
mobile_networks = ["10.9.7.0/24"]

[[node]]
name = "bus-8"
home_address = "192.0.2.200"
nai = "bus-8@fleet.example"
spi = 256
key = "text:fleet-secret-0123456"
mobile_networks = ["10.9.8.0/24"]

[datapath]
enabled = true
`

func TestNetnsFleetSharedHomeAddress(t *testing.T) {
	l := lab.NewT(t)
	ha := l.HostT(t, "ha", "192.0.2.1/24")
	mr := l.HostT(t, "mr", "192.0.2.50/24")
	adoptTunnel(t, ha)
	a := StartAgent(t, ha, fleetConfig)
	router := func(bus, coa string) []string {
		return []string{"-home", "192.0.2.200", "-nai", "bus-" + bus + "@fleet.example", "-spi", "256", "-key", "fleet-secret-0123456",
			"-ha", "192.0.2.1", "-coa", coa}
	}
	for _, x := range [][2]string{{"7", "198.51.100.7"}, {"8", "198.51.100.8"}} {
		out, code := Mnsim(t, mr, append([]string{"register", "-json", "-implicit"}, router(x[0], x[1])...)...)
		var r mnNetReply
		if err := json.Unmarshal([]byte(lastLine(out)), &r); err != nil || code != 0 || r.Code != 0 || r.MobileNet == nil || !r.MobileNet.Routed {
			t.Fatalf("bus-%s: exit %d %v %s\nagent:\n%s", x[0], code, err, out, a.Proc.Output())
		}
	}
	routes := protoRoutes(t, ha)
	for net, coa := range map[string]string{"10.9.7.0/24": "198.51.100.7", "10.9.8.0/24": "198.51.100.8"} {
		if line := lineWith(routes, net+" "); !strings.Contains(line, "dev mip0") || !strings.Contains(line, "dst "+coa) {
			t.Fatalf("no route for %s into the tunnel to %s:\n%s", net, coa, routes)
		}
	}
	if strings.Contains(routes, "192.0.2.200") {
		t.Fatalf("the shared home address is routed:\n%s", routes)
	}
	rows := bindings(t, a).Rows
	nais := map[string]string{}
	for _, r := range rows {
		if r.Home == "192.0.2.200" && r.State == "live" {
			nais[r.NAI] = strings.Join(r.Networks, ",")
		}
	}
	if len(nais) != 2 || nais["bus-7@fleet.example"] != "10.9.7.0/24" || nais["bus-8@fleet.example"] != "10.9.8.0/24" {
		t.Fatalf("show bindings: %+v", rows)
	}
	if out, err := a.Hactl("show", "bindings"); err != nil || !strings.Contains(out, "bus-7@fleet.example") || !strings.Contains(out, "bus-8@fleet.example") {
		t.Fatalf("hactl show bindings: %v\n%s", err, out)
	}

	time.Sleep(10 * time.Millisecond)
	if out, code := Mnsim(t, mr, append([]string{"deregister"}, router("7", "198.51.100.7")...)...); code != 0 {
		t.Fatalf("deregister bus-7: exit %d %s", code, out)
	}
	routes = protoRoutes(t, ha)
	if lineWith(routes, "10.9.7.0/24 ") != "" || lineWith(routes, "10.9.8.0/24 ") == "" {
		t.Fatalf("after bus-7's de-registration:\n%s", routes)
	}
	if out, err := a.Hactl("clear", "binding", "bus-8@fleet.example"); err != nil {
		t.Fatalf("hactl clear binding bus-8@fleet.example: %v %s", err, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for routes = protoRoutes(t, ha); strings.Contains(routes, "10.9.8.0") && time.Now().Before(deadline); routes = protoRoutes(t, ha) {
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(routes, "10.9.") {
		t.Fatalf("after clear binding of bus-8:\n%s", routes)
	}
}
