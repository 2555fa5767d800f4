package main

// The mobile network: a mobile router (RFC 5177) on the foreign network
// registers two networks behind it; the correspondent reaches a host in
// each through the active member's IP-in-IP tunnel (and back through the
// reverse tunnel), and after the failover through the new active member,
// which routes them from the replicated binding without the router
// registering again. The build machine's kernel has no ipip driver, so the
// router's end of the tunnel is vm.IPIPGateway, a userspace one.

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"

	"github.com/hagent/hagent/firmware/vm"
)

// mrPings: echo requests per host and step.
const mrPings = 2

func (d *demo) mnLAN(ctx context.Context) error {
	r, err := d.lab.AddMobileRouter(ctx, vm.MobileRouterSpec{Name: "mr", CareOf: vm.Sensor7CoA + "/24", HA: netip.MustParseAddr(vip),
		LAN: []string{"203.0.113.1/29", "203.0.113.14/29"}, Hosts: []string{vm.Sensor7HostA + "/29", vm.Sensor7HostB + "/29"}})
	if err != nil {
		return fail("setup", "mobile router: %v", err)
	}
	d.mr = r
	// The correspondent reaches the networks through the virtual address,
	// as an enterprise router that learnt them by BGP (docs/mobile-networks.md).
	if out, err := vm.Exec(ctx, d.cnNS, "ip", "route", "add", "203.0.113.0/28", "via", vip); err != nil {
		return fail("setup", "%s", oneLine(out, err))
	}
	d.say("namespace %s: mobile router, care-of address %s; behind it %s: hosts %s and %s", r.NS, vm.Sensor7CoA, r.HostNS, vm.Sensor7HostA, vm.Sensor7HostB)
	return nil
}

var networksLine = regexp.MustCompile(`(?m)^  Mobile networks {2,}(\S.*?)\s*$`)

// mnBinding polls `hactl show bindings vm.Sensor7Home` on guest i until the
// router's binding is live with both networks; it returns the row and the
// networks line.
func (d *demo) mnBinding(ctx context.Context, i int, within time.Duration) (row []string, nets, out string, ok bool) {
	deadline := time.Now().Add(within)
	for {
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		out, _, err := d.guests[i].Run(c, "hactl show bindings "+vm.Sensor7Home)
		cancel()
		if err != nil {
			out = "console: " + err.Error()
		}
		out = vm.StripLogs(out)
		_, f, ok := vm.BindingRow(out, vm.Sensor7Home)
		if m := networksLine.FindStringSubmatch(out); ok && f[1] == vm.Sensor7CoA && f[3] == "live" && m != nil && m[1] == vm.Sensor7NetA+", "+vm.Sensor7NetB {
			return f, m[1], out, true
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return nil, "", out, false
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (d *demo) mnRegister(ctx context.Context, active, standby int) error {
	d.section("4c. a mobile router registers two networks behind it (RFC 5177)")
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	// sensor-7 replays by nonce: -resync adopts the agent's from its 133.
	out, err := vm.Exec(c, d.mr.NS, d.mnsim, "register", "-ha", vip, "-home", vm.Sensor7Home, "-nai", vm.Sensor7NAI, "-coa", vm.Sensor7CoA,
		"-spi", vm.Sensor7SPI, "-key", vm.Sensor7Key, "-flags", "T", "-resync", "-timeout", "2s", "-retries", "2",
		"-mobile-network", vm.Sensor7NetA, "-mobile-network", vm.Sensor7NetB)
	cancel()
	out = strings.TrimSpace(out)
	for _, n := range []string{vm.Sensor7NetA, vm.Sensor7NetB} {
		if err == nil && !strings.Contains(out, "mobile-network "+n+" explicit: 0 success") {
			err = fmt.Errorf("no acknowledgement 0 for %s", n)
		}
	}
	if err != nil {
		return fail("mobile network", "mnsim register -mobile-network %s -mobile-network %s should be accepted by %s (active) with both networks acknowledged: %s",
			vm.Sensor7NetA, vm.Sensor7NetB, d.names[active], oneLine(out, err))
	}
	first, rest, _ := strings.Cut(out, "\n")
	d.say("mnsim register -ha %s -home %s -nai %s -coa %s -mobile-network %s -mobile-network %s: %s", vip, vm.Sensor7Home, vm.Sensor7NAI, vm.Sensor7CoA, vm.Sensor7NetA, vm.Sensor7NetB, first)
	for _, l := range strings.Split(rest, "\n") {
		d.detail("%s", strings.TrimSpace(l))
	}
	for _, i := range []int{active, standby} {
		f, nets, bout, ok := d.mnBinding(ctx, i, replicaTimeout)
		if !ok {
			return fail("mobile network", "%s should list a live binding %s → %s with networks %s, %s within %v; hactl show bindings %s says: %s",
				d.names[i], vm.Sensor7Home, vm.Sensor7CoA, vm.Sensor7NetA, vm.Sensor7NetB, replicaTimeout, vm.Sensor7Home, oneLine(bout, nil))
		}
		d.mrID = f[7]
		d.detail("%s: binding %s, mobile networks %s", d.names[i], describeBinding(f), nets)
	}
	return nil
}

// mnPing pings a host in each network from the correspondent: the requests
// go through guest by's tunnel, the replies come back reverse-tunnelled.
func (d *demo) mnPing(ctx context.Context, step string, by int) error {
	in, outb := d.mr.GW.In.Load(), d.mr.GW.Out.Load()
	var got []string
	for _, h := range []string{vm.Sensor7HostA, vm.Sensor7HostB} {
		c, cancel := context.WithTimeout(ctx, natTimeout)
		out, err := vm.Exec(c, d.cnNS, "ping", "-c", fmt.Sprint(mrPings), "-i", "0.3", "-W", "3", h)
		cancel()
		m := pingReceived.FindStringSubmatch(out)
		if m == nil || m[2] != fmt.Sprint(mrPings) {
			return fail(step, "ping -c %d %s (inside %s's network) from the correspondent should be answered through %s's tunnel: %s",
				mrPings, h, vm.Sensor7Home, d.names[by], oneLine(out, err))
		}
		got = append(got, fmt.Sprintf("%s %s/%s", h, m[2], m[1]))
	}
	dIn, dOut := d.mr.GW.In.Load()-in, d.mr.GW.Out.Load()-outb
	if dIn < 2*mrPings || dOut < 2*mrPings {
		return fail(step, "the router's tunnel end should have decapsulated the %d echo requests and encapsulated the replies; it counted %d and %d",
			2*mrPings, dIn, dOut)
	}
	d.say("ping from the correspondent %s into the mobile networks through %s: %s answered", cn, d.names[by], strings.Join(got, ", "))
	d.detail("the router's tunnel end: %d IP-in-IP packets from %s decapsulated, %d replies encapsulated to it (reverse tunnel)", dIn, vip, dOut)
	return nil
}

// mnAfterTakeover: the new active member holds the networks from the
// replicated binding, routes them, and the router did not register again
// (same identification as the one registration).
func (d *demo) mnAfterTakeover(ctx context.Context, by int) error {
	name := d.names[by]
	d.section("6d. the mobile networks, through " + name + ", without the router registering again")
	f, nets, out, ok := d.mnBinding(ctx, by, 0)
	if !ok {
		return fail("mobile network after takeover", "%s should hold the binding %s with networks %s, %s; hactl show bindings %s says: %s",
			name, vm.Sensor7Home, vm.Sensor7NetA, vm.Sensor7NetB, vm.Sensor7Home, oneLine(out, nil))
	}
	if f[7] != d.mrID {
		return fail("mobile network after takeover", "the router's binding on %s has identification %s, its one registration had %s: it registered again", name, f[7], d.mrID)
	}
	d.say("%s: binding %s, mobile networks %s, identification %s as registered before the failover", name, describeBinding(f), nets, f[7])
	return d.mnPing(ctx, "mobile network after takeover", by)
}
