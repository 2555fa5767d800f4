package vmtest

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/firmware/vm"
)

// TestMobileNetworkFailover: a mobile router (RFC 5177) registers two
// networks with the group's virtual address; a correspondent on the home
// link reaches a host inside each through the active guest's IP-in-IP
// tunnel and back through the reverse tunnel (the reverse check finds the
// host's source in the router's prefixes). The active guest's QEMU is
// killed; the standby takes over with the replicated networks and routes
// them again, without the router registering again (it registers once,
// with mnsim, and never again).
func TestMobileNetworkFailover(t *testing.T) {
	need(t, true, "ip", "depmod", "xz", "ping")
	img := twoGuestImage(t)
	need(t, true, img.Board.QEMU)
	l := newLab(t)
	a := l.guest(t, img, "ha1", 0)
	b := l.guest(t, img, "ha2", 1, "hagent.config=/etc/hagent-b.toml")
	ctx := context.Background()
	mr, err := l.AddMobileRouter(ctx, vm.MobileRouterSpec{Name: "mr", CareOf: vm.Sensor7CoA + "/24", HA: netip.MustParseAddr(vip),
		LAN: []string{"203.0.113.1/29", "203.0.113.14/29"}, Hosts: []string{vm.Sensor7HostA + "/29", vm.Sensor7HostB + "/29"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mr.Close() })
	// The correspondent reaches the networks through the virtual address,
	// like a router of the enterprise that learnt them by BGP.
	if out, err := vm.Exec(ctx, l.cnNS, "ip", "route", "add", "203.0.113.0/28", "via", vip); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	waitReady(t, a, "ha1")
	waitReady(t, b, "ha2")
	waitRole(t, a, "ha1", "active", 30*time.Second)
	waitRole(t, b, "ha2", "standby", 30*time.Second)

	// sensor-7 replays by nonce: the first request learns the agent's
	// (an authenticated 133) and -resync sends it again.
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	out, err := vm.Exec(c, mr.NS, l.mnsim, "register", "-ha", vip, "-home", vm.Sensor7Home, "-nai", vm.Sensor7NAI, "-coa", vm.Sensor7CoA,
		"-spi", vm.Sensor7SPI, "-key", vm.Sensor7Key, "-flags", "T", "-resync", "-timeout", "2s", "-retries", "3",
		"-mobile-network", vm.Sensor7NetA, "-mobile-network", vm.Sensor7NetB)
	cancel()
	if err != nil || !strings.Contains(out, "mobile-network "+vm.Sensor7NetA+" explicit: 0 success") ||
		!strings.Contains(out, "mobile-network "+vm.Sensor7NetB+" explicit: 0 success") {
		t.Fatalf("the mobile router's registration with %s and %s: %v\n%s", vm.Sensor7NetA, vm.Sensor7NetB, err, out)
	}
	t.Logf("mnsim register (the router's only registration): %s", strings.TrimSpace(out))
	for _, g := range []struct {
		m    *vm.Machine
		name string
	}{{a, "ha1"}, {b, "ha2"}} {
		waitNetworks(t, g.m, g.name, 10*time.Second)
	}
	mnPing(t, l, mr, "through ha1", a)

	a.Kill()
	waitRole(t, b, "ha2", "active", 20*time.Second)
	waitNetworks(t, b, "ha2", 0)
	// The correspondent's and the router's neighbour entries for the
	// virtual address follow the gratuitous ARPs; probes that may fail
	// let them.
	c, cancel = context.WithTimeout(ctx, 10*time.Second)
	_, _ = vm.Exec(c, l.cnNS, "ping", "-c", "1", "-W", "1", vip)
	_, _ = vm.Exec(c, mr.NS, "ping", "-c", "1", "-W", "1", vip)
	cancel()
	mnPing(t, l, mr, "through ha2 after the failover", b)
	// ha2 learnt the networks from the group, not from the router.
	if st := run(t, b, "hactl show stats"); counter(st, "requests received") != 0 {
		t.Fatalf("ha2 received registration requests; the failover was to need none:\n%s", st)
	}
	poweroff(t, b, "ha2")
}

// waitNetworks polls `hactl show bindings` on m until the router's binding
// is live with both networks.
func waitNetworks(t *testing.T, m *vm.Machine, name string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, _, err := m.Run(ctx, "hactl show bindings "+vm.Sensor7Home)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if line, f, ok := vm.BindingRow(out, vm.Sensor7Home); ok && f[1] == vm.Sensor7CoA && f[3] == "live" && strings.Contains(out, vm.Sensor7NetA+", "+vm.Sensor7NetB) {
			t.Logf("%s: %s", name, line)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no live binding %s -> %s with networks %s,%s within %v:\n%s", name, vm.Sensor7Home, vm.Sensor7CoA, vm.Sensor7NetA, vm.Sensor7NetB, within, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// mnPing pings a host address in each network from the correspondent and
// fails unless every echo came back, through m's tunnel both ways.
func mnPing(t *testing.T, l *lab, mr *vm.MobileRouter, what string, m *vm.Machine) {
	t.Helper()
	in, outb := mr.GW.In.Load(), mr.GW.Out.Load()
	for _, h := range []string{vm.Sensor7HostA, vm.Sensor7HostB} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := vm.Exec(ctx, l.cnNS, "ping", "-c", "3", "-i", "0.3", "-W", "3", h)
		cancel()
		if err != nil || !strings.Contains(out, " 0% packet loss") {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			routes, _, _ := m.Run(ctx, "ip route show proto 77")
			st, _, _ := m.Run(ctx, "hactl show stats")
			cancel()
			t.Fatalf("%s: the correspondent's ping to %s inside the mobile network: %v\n%s\nrouter's tunnel end: %d decapsulated, %d encapsulated\nagent's routes of protocol 77:\n%s\nagent:\n%s",
				what, h, err, out, mr.GW.In.Load()-in, mr.GW.Out.Load()-outb, routes, st)
		}
		t.Logf("%s: ping %s: %s", what, h, lastLine(out))
	}
	if d, e := mr.GW.In.Load()-in, mr.GW.Out.Load()-outb; d < 6 || e < 6 {
		t.Fatalf("%s: the router's tunnel end decapsulated %d and encapsulated %d packets over 6 echoes each way", what, d, e)
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
