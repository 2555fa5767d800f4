package vm

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The mobile router's userspace tunnel end works against another one
// standing in for the Home Agent (the build machines' kernel has no ipip
// driver on either side): a ping from the "agent" to each host address of
// the mobile networks crosses the tunnel both ways, and a ping to an
// address the router does not hold gets no answer.
func TestMobileRouterGateway(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, TUN)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := NewLab(ctx, LabPrefix())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ha, err := l.AddHost(ctx, "ha", []string{"192.0.2.1/24"}, [][]string{{"198.51.100.0/24", "dev", "eth0"}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := l.AddMobileRouter(ctx, MobileRouterSpec{Name: "mr", CareOf: "198.51.100.20/24", HA: netip.MustParseAddr("192.0.2.1"),
		LAN: []string{"203.0.113.1/29", "203.0.113.14/29"}, Hosts: []string{"203.0.113.2/29", "203.0.113.9/29"}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	agent, err := StartIPIPGateway(ha, "hat0", netip.MustParseAddr("198.51.100.20"))
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close()
	if err := runAll(ctx,
		[]string{"ip", "netns", "exec", ha, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"},
		[]string{"ip", "-n", ha, "link", "set", "hat0", "up"},
		[]string{"ip", "-n", ha, "route", "add", "203.0.113.0/28", "dev", "hat0", "src", "192.0.2.1"},
	); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"203.0.113.2", "203.0.113.9"} {
		out, err := Exec(ctx, ha, "ping", "-c", "2", "-i", "0.2", "-W", "2", h)
		if err != nil || !strings.Contains(out, " 0% packet loss") {
			t.Fatalf("ping %s through the tunnel: %v\n%s\nagent's gateway: in %d out %d; router's: in %d out %d", h, err, out,
				agent.In.Load(), agent.Out.Load(), r.GW.In.Load(), r.GW.Out.Load())
		}
	}
	if in, out := r.GW.In.Load(), r.GW.Out.Load(); in < 4 || out < 4 {
		t.Fatalf("the router's gateway decapsulated %d and encapsulated %d packets, want 4 each", in, out)
	}
	if out, err := Exec(ctx, ha, "ping", "-c", "1", "-W", "1", "203.0.113.5"); err == nil {
		t.Fatalf("ping of an address nobody holds was answered:\n%s", out)
	}
}
