//go:build linux

package datapath

// Tier 2: the real kernel, in a network namespace each test creates and
// removes. The build machines' kernel has no ipip/gre and no dummy driver:
// the home interface is a veth, and the "tunnel" is a second veth adopted
// through Config.anyTunnel (the kernel accepts LWTUNNEL_ENCAP_IP routes
// over any device; only transmission needs a collect_md tunnel device,
// which the VM tier checks).

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/lab/reap"
	"golang.org/x/sys/unix"
)

type netns struct {
	name string
	fd   int
}

func requireRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("netns test skipped under -short")
	}
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root (network namespaces)"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs iproute2 (ip) to build the test namespace"
	}
	if why != "" {
		if os.Getenv("HAGENT_TEST_STRICT") == "1" {
			t.Fatalf("HAGENT_TEST_STRICT=1 but %s", why)
		}
		t.Skip(why)
	}
}

// newNetns makes a namespace with lo up, veth home0 (peer home1) with
// 10.0.0.1/24, and veth tun0 (peer tun1), all up.
func newNetns(t testing.TB) *netns {
	t.Helper()
	requireRoot(t)
	reapNetns(t)
	var r [3]byte
	_, _ = rand.Read(r[:])
	n := &netns{name: reap.Tag(netnsKind) + "-" + hex.EncodeToString(r[:])}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if n.fd > 0 {
			unix.Close(n.fd)
		}
		_ = exec.Command("ip", "netns", "del", n.name).Run()
	})
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "home0", "type", "veth", "peer", "name", "home1"},
		{"link", "add", "tun0", "type", "veth", "peer", "name", "tun1"},
		{"link", "set", "home0", "up"}, {"link", "set", "home1", "up"},
		{"link", "set", "tun0", "up"}, {"link", "set", "tun1", "up"},
		{"addr", "add", "10.0.0.1/24", "dev", "home0"},
	} {
		n.ip(t, args...)
	}
	fd, err := unix.Open("/run/netns/"+n.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	n.fd = fd
	return n
}

// netnsKind tags the namespaces of this package's tests (reap.Tag): a
// killed run cannot remove its own (a 400,000-route one holds some 270 MB of
// kernel memory), so the next run removes those whose process is gone.
const netnsKind = "hdp"

var reapOnce sync.Once

func reapNetns(t testing.TB) {
	reapOnce.Do(func() {
		reap.ExitWithParent() // a killed `go test` takes its test binary with it
		if gone, err := reap.Netns(netnsKind); err != nil {
			t.Logf("removing the namespaces of killed runs: %v", err)
		} else if len(gone) > 0 {
			t.Logf("removed the namespaces of killed runs: %v", gone)
		}
	})
}

func (n *netns) ip(t testing.TB, args ...string) string {
	t.Helper()
	return n.run(t, "ip", args...)
}

// run runs an iproute2 tool (ip, tc) in the namespace.
func (n *netns) run(t testing.TB, tool string, args ...string) string {
	t.Helper()
	out, err := exec.Command(tool, append([]string{"-n", n.name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (n *netns) open(t testing.TB, proxy bool) *kernel {
	t.Helper()
	return n.openWith(t, func(c *Config) { c.ProxyARP = proxy })
}

// openReverse is open with proxy ARP by route and the reverse-tunnel check
// on, its map sized for capacity bindings.
func (n *netns) openReverse(t testing.TB, capacity int) *kernel {
	t.Helper()
	return n.openWith(t, func(c *Config) {
		c.ProxyARP, c.ProxyByRoute, c.ReverseCheck, c.Capacity = true, true, true, capacity
	})
}

// openWith opens and sets up a datapath in n: home0, tun0 (a veth standing
// in for the tunnel device), protocol 77, local 10.0.0.1, then set.
func (n *netns) openWith(t testing.TB, set func(*Config)) *kernel {
	t.Helper()
	cfg := Config{HomeIfname: "home0", TunnelName: "tun0", Protocol: 77,
		Local: netip.MustParseAddr("10.0.0.1"), NetNS: n.fd, anyTunnel: true}
	set(&cfg)
	dp, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	k := dp.(*kernel)
	if err := k.Setup(); err != nil {
		t.Fatal(err)
	}
	return k
}

func bindingN(i int) Binding {
	return Binding{
		Home:   netip.AddrFrom4([4]byte{10, 1 + byte(i>>16), byte(i >> 8), byte(i)}), // distinct up to 16M
		CareOf: netip.AddrFrom4([4]byte{192, 0, 2 + byte(i>>16), byte(i >> 8)}),
		Encap:  IPIP,
	}
}

func TestNetnsSetupTunnelMissing(t *testing.T) {
	n := newNetns(t)
	dp, err := Open(Config{HomeIfname: "home0", NetNS: n.fd})
	if err != nil {
		t.Fatal(err)
	}
	defer dp.Close()
	err = dp.Setup()
	if err == nil {
		// A kernel with ipip: the device must be external-mode and up.
		out := n.ip(t, "-d", "link", "show", "mip0")
		if !strings.Contains(out, "ipip external") || !strings.Contains(out, ",UP") {
			t.Fatalf("mip0 not an up external ipip device:\n%s", out)
		}
		return
	}
	if !strings.Contains(err.Error(), "CONFIG_NET_IPIP") {
		t.Fatalf("Setup error does not name the kernel option: %v", err)
	}
	t.Logf("as expected on this kernel: %v", err)
	// An existing device of the wrong kind is refused, with the reason.
	dp2, _ := Open(Config{HomeIfname: "home0", TunnelName: "tun0", NetNS: n.fd})
	defer dp2.Close()
	if err := dp2.Setup(); err == nil || !strings.Contains(err.Error(), "not an ipip device in external mode") {
		t.Fatalf("veth adopted as tunnel: %v", err)
	}
	dp3, _ := Open(Config{HomeIfname: "nosuch0", NetNS: n.fd})
	defer dp3.Close()
	if err := dp3.Setup(); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing home interface: %v", err)
	}
}

func TestNetnsVIP(t *testing.T) {
	n := newNetns(t)
	k := n.open(t, false)
	vip := netip.MustParsePrefix("10.0.0.100/24")
	for range 2 { // idempotent
		if err := k.AddVIP(vip); err != nil {
			t.Fatal(err)
		}
	}
	if out := n.ip(t, "-4", "addr", "show", "home0"); !strings.Contains(out, "10.0.0.100/24") {
		t.Fatalf("VIP missing:\n%s", out)
	}
	for range 2 {
		if err := k.DelVIP(vip); err != nil {
			t.Fatal(err)
		}
	}
	if out := n.ip(t, "-4", "addr", "show", "home0"); strings.Contains(out, "10.0.0.100") {
		t.Fatalf("VIP still there:\n%s", out)
	}
	// Withdraw removes what AddVIP added.
	if err := k.AddVIP(vip); err != nil {
		t.Fatal(err)
	}
	if err := k.Withdraw(); err != nil {
		t.Fatal(err)
	}
	if out := n.ip(t, "-4", "addr", "show", "home0"); strings.Contains(out, "10.0.0.100") {
		t.Fatalf("VIP survived Withdraw:\n%s", out)
	}
}

func TestNetnsApplyReconcileWithdraw(t *testing.T) {
	n := newNetns(t)
	k := n.open(t, true)
	bs := []Binding{bindingN(1), bindingN(2), bindingN(3)}
	if errs := k.Apply(bs, nil); errs != nil {
		t.Fatal(errs)
	}
	routes := n.ip(t, "-d", "route", "show", "proto", "77")
	for _, b := range bs {
		want := fmt.Sprintf("%v  encap ip id 0 src 10.0.0.1 dst %v ttl 64", b.Home, b.CareOf)
		if !strings.Contains(routes, want) {
			t.Errorf("route %q missing in:\n%s", want, routes)
		}
	}
	if c := strings.Count(routes, "dev tun0"); c != 3 {
		t.Errorf("%d routes, want 3:\n%s", c, routes)
	}
	proxies := n.ip(t, "neigh", "show", "proxy")
	for _, b := range bs {
		if !strings.Contains(proxies, b.Home.String()+" dev home0 proxy") {
			t.Errorf("proxy %v missing:\n%s", b.Home, proxies)
		}
	}
	// Re-registration with a new care-of replaces in place (same metric).
	moved := bs[0]
	moved.CareOf = netip.MustParseAddr("198.51.100.9")
	if errs := k.Apply([]Binding{moved}, nil); errs != nil {
		t.Fatal(errs)
	}
	routes = n.ip(t, "-d", "route", "show", "proto", "77")
	if strings.Count(routes, "\n") != 3 || !strings.Contains(routes, "dst 198.51.100.9") {
		t.Fatalf("replace did not replace:\n%s", routes)
	}
	// Delete, twice (idempotent), and an absent one.
	if errs := k.Apply(nil, []netip.Addr{bs[1].Home, bs[1].Home, netip.MustParseAddr("10.9.9.9")}); errs != nil {
		t.Fatal(errs)
	}
	if routes = n.ip(t, "route", "show", "proto", "77"); strings.Contains(routes, bs[1].Home.String()+" ") {
		t.Fatalf("deleted route still there:\n%s", routes)
	}
	// An error is mapped to its binding: a route via a down-and-gone
	// device is refused, the others pass.
	bad := bindingN(7)
	saved := k.tun[IPIP]
	k.tun[IPIP] = 999999
	errs := k.Apply([]Binding{bad}, nil)
	k.tun[IPIP] = saved
	if len(errs) != 1 || errs[0] == nil || !strings.Contains(errs[0].Error(), "10.1.0.7") {
		t.Fatalf("errs = %v", errs)
	}
	t.Logf("mapped error: %v", errs[0])

	// A stale route and proxy of ours (left by a crash), an operator's
	// proxy entry and route (other protocol) that must survive.
	n.ip(t, "route", "add", "10.1.5.5/32", "encap", "ip", "dst", "192.0.2.55", "dev", "tun0", "proto", "77", "metric", "5")
	n.ip(t, "route", "add", "10.1.6.6/32", "dev", "tun0", "proto", "static")
	n.ip(t, "neigh", "add", "proxy", "10.0.0.66", "dev", "home0")
	fresh, _ := Open(Config{HomeIfname: "home0", TunnelName: "tun0", Protocol: 77, ProxyARP: true,
		Local: netip.MustParseAddr("10.0.0.1"), NetNS: n.fd, anyTunnel: true})
	defer fresh.Close()
	if err := fresh.Setup(); err != nil {
		t.Fatal(err)
	}
	want := []Binding{moved, bs[2], bindingN(4)}
	added, removed, err := fresh.Reconcile(slices.Values(want))
	if err != nil {
		t.Fatal(err)
	}
	// + route and proxy for 4; - the stale route 10.1.5.5 (no proxy for it)
	if added != 2 || removed != 1 {
		t.Errorf("reconcile added %d removed %d, want 2 and 1", added, removed)
	}
	if a, r, err := fresh.Reconcile(slices.Values(want)); a != 0 || r != 0 || err != nil {
		t.Errorf("second reconcile: %d %d %v, want nothing to do", a, r, err)
	}
	routes = n.ip(t, "route", "show", "proto", "77")
	if strings.Count(routes, "\n") != 3 || strings.Contains(routes, "10.1.5.5") {
		t.Fatalf("after reconcile:\n%s", routes)
	}
	// Apply after adopting: the replace keeps the adopted metric.
	if errs := fresh.Apply([]Binding{moved}, nil); errs != nil {
		t.Fatal(errs)
	}
	if routes = n.ip(t, "route", "show", "proto", "77"); strings.Count(routes, "\n") != 3 {
		t.Fatalf("apply after adopt added a second route:\n%s", routes)
	}
	if err := fresh.Withdraw(); err != nil {
		t.Fatal(err)
	}
	if routes = n.ip(t, "route", "show", "proto", "77"); routes != "" {
		t.Fatalf("after withdraw:\n%s", routes)
	}
	if out := n.ip(t, "route", "show", "proto", "static"); !strings.Contains(out, "10.1.6.6") {
		t.Fatalf("operator's route removed:\n%s", out)
	}
	if out := n.ip(t, "neigh", "show", "proxy"); strings.TrimSpace(out) != "10.0.0.66 dev home0 proxy" {
		t.Fatalf("proxies after withdraw:\n%s", out)
	}
}

func TestNetnsLinkEvents(t *testing.T) {
	n := newNetns(t)
	k := n.open(t, false)
	n.ip(t, "link", "set", "home1", "down")
	n.ip(t, "link", "set", "home0", "down")
	deadline := time.After(5 * time.Second)
	var sawCarrierLoss, sawDown bool
	for !sawDown {
		select {
		case e := <-k.Links():
			if e.Name == "home0" && e.Up && !e.Carrier {
				sawCarrierLoss = true
			}
			if e.Name == "home0" && !e.Up {
				sawDown = true
			}
		case <-deadline:
			t.Fatalf("no down event for home0 (carrier loss seen: %v)", sawCarrierLoss)
		}
	}
	if !sawCarrierLoss {
		t.Error("no carrier-loss event before the admin-down one")
	}
	n.ip(t, "link", "del", "tun0")
	for {
		select {
		case e := <-k.Links():
			if e.Name == "tun0" && e.Deleted {
				return
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no delete event for tun0")
		}
	}
}

// runIn is used by benchmarks for the kernel's slab figures.
func slab() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for _, l := range bytes.Split(b, []byte("\n")) {
		if bytes.HasPrefix(l, []byte("Slab:")) {
			return string(bytes.TrimSpace(l[5:]))
		}
	}
	return "?"
}

// TestNetnsProxyARP checks that a host on the home link gets the Home
// Agent's MAC for an away node's home address, in both modes: one
// NTF_PROXY entry per node, and proxy_arp with the /32 routes deciding.
func TestNetnsProxyARP(t *testing.T) {
	for _, byRoute := range []bool{false, true} {
		t.Run(fmt.Sprintf("byRoute=%v", byRoute), func(t *testing.T) {
			n := newNetns(t)
			client := &netns{name: n.name + "c"}
			if out, err := exec.Command("ip", "netns", "add", client.name).CombinedOutput(); err != nil {
				t.Fatalf("ip netns add: %v: %s", err, out)
			}
			t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", client.name).Run() })
			n.ip(t, "link", "set", "home1", "netns", client.name)
			client.ip(t, "link", "set", "home1", "up")
			client.ip(t, "addr", "add", "10.0.0.2/24", "dev", "home1")
			dp, err := Open(Config{HomeIfname: "home0", TunnelName: "tun0", ProxyARP: true, ProxyByRoute: byRoute,
				NetNS: n.fd, anyTunnel: true})
			if err != nil {
				t.Fatal(err)
			}
			defer dp.Close()
			if err := dp.Setup(); err != nil {
				t.Fatal(err)
			}
			away := netip.MustParseAddr("10.0.0.50")
			if errs := dp.Apply([]Binding{{Home: away, CareOf: netip.MustParseAddr("192.0.2.7")}}, nil); errs != nil {
				t.Fatal(errs)
			}
			mac := strings.Fields(n.ip(t, "-br", "link", "show", "home0"))[2]
			// The kernel delays proxy answers to broadcast requests by up
			// to proxy_delay (0.8 s by default).
			_ = exec.Command("ip", "netns", "exec", client.name, "ping", "-c", "1", "-W", "2", away.String()).Run()
			if got := client.ip(t, "neigh", "show", away.String()); !strings.Contains(got, mac) {
				t.Fatalf("client's neighbour entry for %v: %q, want the Home Agent's MAC %s", away, got, mac)
			}
			// An address that is not away gets no answer from us.
			_ = exec.Command("ip", "netns", "exec", client.name, "ping", "-c", "1", "-W", "1", "10.0.0.51").Run()
			if got := client.ip(t, "neigh", "show", "10.0.0.51"); strings.Contains(got, mac) {
				t.Fatalf("Home Agent answered ARP for a node that is not away: %q", got)
			}
			if err := dp.Withdraw(); err != nil {
				t.Fatal(err)
			}
			if byRoute {
				if v := n.ip(t, "netconf", "show", "dev", "home0"); strings.Contains(v, "proxy_neigh on") {
					t.Fatalf("proxy_arp still on after Withdraw: %s", v)
				}
			}
		})
	}
}

// The periodic check reads the kernel on another goroutine while the owner
// goes on applying: drift is repaired (a route an operator deleted, a stale
// route of ours, a reverse-map entry gone), what Apply changed meanwhile is
// left as Apply made it, and a takeover, a withdrawal or too many changes
// in between make the scan stale (nothing done).
func TestNetnsPeriodicScan(t *testing.T) {
	n := newNetns(t)
	k := n.openReverse(t, maxDirty+1024)
	bs := bindings(200, 0)
	if _, _, err := k.Reconcile(slices.Values(bs)); err != nil {
		t.Fatal(err)
	}
	// Drift.
	n.ip(t, "route", "del", bs[3].Home.String()+"/32", "proto", "77")
	n.ip(t, "route", "add", "10.1.5.5/32", "encap", "ip", "dst", "192.0.2.55", "dev", "tun0", "proto", "77", "metric", "5")
	if err := k.rev.del(bs[4].Home); err != nil {
		t.Fatal(err)
	}
	s := k.BeginScan()
	k.ScanKernel(s) // the agent runs it on another goroutine
	// Then, on the owner's goroutine, before the scan is handed back: one
	// node moves, one leaves, one arrives. The scan shows them as they
	// were; converging must not undo them.
	moved := bs[10]
	moved.CareOf = netip.MustParseAddr("198.51.100.10")
	arrived := bindingN(500)
	if errs := k.Apply([]Binding{moved, arrived}, []netip.Addr{bs[11].Home}); errs != nil {
		t.Fatal(firstErr(errs))
	}
	want := append(slices.Clone(bs[:10]), moved)
	want = append(want, bs[12:]...)
	want = append(want, arrived)
	a, r, err := convergeAll(k, s, slices.Values(want))
	if err != nil || a != 2 || r != 1 {
		t.Fatalf("converging the scan: added %d removed %d err %v; want 2 (route, map entry) and 1 (stale route)", a, r, err)
	}
	if s.Took() <= 0 {
		t.Errorf("scan took %v", s.Took())
	}
	if a, r, err := k.Reconcile(slices.Values(want)); a != 0 || r != 0 || err != nil {
		t.Fatalf("a full Reconcile after the scan: %d %d %v, want nothing to do", a, r, err)
	}

	// Stale: a Reconcile (takeover) or Withdraw after BeginScan.
	s = k.BeginScan()
	k.ScanKernel(s)
	if _, _, err := k.Reconcile(slices.Values(want)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := convergeAll(k, s, slices.Values(want)); !errors.Is(err, ErrScanStale) {
		t.Fatalf("scan overtaken by a Reconcile: %v, want ErrScanStale", err)
	}
	// Stale: more homes changed during the read than are tracked.
	s = k.BeginScan()
	many := bindings(maxDirty+1, 1)
	if errs := k.Apply(many, nil); errs != nil {
		t.Fatal(firstErr(errs))
	}
	k.ScanKernel(s)
	if _, _, err := convergeAll(k, s, slices.Values(many)); !errors.Is(err, ErrScanStale) {
		t.Fatalf("scan with %d homes changed: %v, want ErrScanStale", maxDirty+1, err)
	}
	// The next one converges (to many: the 200 first homes moved with it).
	s = k.BeginScan()
	k.ScanKernel(s)
	if _, _, err := convergeAll(k, s, slices.Values(many)); err != nil {
		t.Fatal(err)
	}
	if a, r, err := k.Reconcile(slices.Values(many)); a != 0 || r != 0 || err != nil {
		t.Fatalf("a full Reconcile after the last scan: %d %d %v, want nothing to do", a, r, err)
	}

	// In slices, as the agent converges a large table: between slices a
	// home of the first slice moves (after its slice checked it) and one
	// of the second slice moves (before); neither is undone, in the
	// routes or the reverse map.
	cur := slices.Clone(many[:1000])
	n.ip(t, "route", "del", cur[700].Home.String()+"/32", "proto", "77") // drift, in the second slice
	s = k.BeginScan()
	k.ScanKernel(s)
	if err := k.ConvergeStart(s); err != nil {
		t.Fatal(err)
	}
	if err := k.ConvergeSome(s, slices.Values(cur[:500])); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{100, 600} {
		cur[i].CareOf = netip.MustParseAddr("198.51.100.77")
		if errs := k.Apply(cur[i:i+1], nil); errs != nil {
			t.Fatal(firstErr(errs))
		}
	}
	if err := k.ConvergeSome(s, slices.Values(cur[500:])); err != nil {
		t.Fatal(err)
	}
	a, r, err = k.ConvergeFinish(s)
	// + the drifted route; - the homes of many beyond cur, route and map entry each
	if err != nil || a != 1 || r != 2*(len(many)-len(cur)) {
		t.Fatalf("sliced converge: added %d removed %d err %v; want 1 and %d", a, r, err, 2*(len(many)-len(cur)))
	}
	if a, r, err := k.Reconcile(slices.Values(cur)); a != 0 || r != 0 || err != nil {
		t.Fatalf("a full Reconcile after the sliced one: %d %d %v, want nothing to do (a move undone?)", a, r, err)
	}
}

// The registration path's datapath call allocates nothing on a real kernel
// (rawbatch.go): a re-registration with a new care-of, and a
// de-registration followed by a new registration, reverse check on.
func TestNetnsApplyAllocatesNothing(t *testing.T) {
	n := newNetns(t)
	k := n.openReverse(t, 1024)
	if k.raw == nil {
		t.Fatal("the kernel datapath has no raw socket: the batch path under test is not in use")
	}
	sets := [2][]Binding{bindings(4, 0), bindings(4, 7)}
	if errs := k.Apply(sets[0], nil); errs != nil {
		t.Fatal(firstErr(errs))
	}
	i := 0
	if a := testing.AllocsPerRun(200, func() {
		i++
		if errs := k.Apply(sets[i%2][:1], nil); errs != nil {
			t.Fatal(firstErr(errs))
		}
	}); a != 0 {
		t.Errorf("a re-registration's Apply: %v allocations, want 0", a)
	}
	dels := []netip.Addr{sets[0][3].Home}
	if a := testing.AllocsPerRun(200, func() {
		if errs := k.Apply(nil, dels); errs != nil {
			t.Fatal(firstErr(errs))
		}
		if errs := k.Apply(sets[0][3:], nil); errs != nil {
			t.Fatal(firstErr(errs))
		}
	}); a != 0 {
		t.Errorf("a de-registration and a registration: %v allocations, want 0", a)
	}
	if out := n.ip(t, "route", "show", "proto", "77"); strings.Count(out, "\n") != 4 {
		t.Fatalf("routes after the runs:\n%s", out)
	}
}

// convergeAll converges s in one slice (the agent slices it).
func convergeAll(k *kernel, s *Scan, want iter.Seq[Binding]) (added, removed int, err error) {
	if err := k.ConvergeStart(s); err != nil {
		return 0, 0, err
	}
	if err := k.ConvergeSome(s, want); err != nil {
		return 0, 0, err
	}
	return k.ConvergeFinish(s)
}

// TestNetnsApplyBatchAllocatesNothing: a full UDP batch of registrations
// (64 bindings, every one moved to another care-of) is programmed without
// allocating, as a single one is: the batch's bookkeeping of new homes is
// reused from one Apply to the next.
func TestNetnsApplyBatchAllocatesNothing(t *testing.T) {
	n := newNetns(t)
	k := n.openReverse(t, 1024)
	sets := [2][]Binding{bindings(64, 0), bindings(64, 7)}
	if errs := k.Apply(sets[0], nil); errs != nil {
		t.Fatal(firstErr(errs))
	}
	i := 0
	if a := testing.AllocsPerRun(50, func() {
		i++
		if errs := k.Apply(sets[i%2], nil); errs != nil {
			t.Fatal(firstErr(errs))
		}
	}); a != 0 {
		t.Errorf("a batch of 64 moved bindings: %v allocations per Apply, want 0", a)
	}
	dels := make([]netip.Addr, 64)
	for j := range dels {
		dels[j] = sets[0][j].Home
	}
	if a := testing.AllocsPerRun(50, func() {
		if errs := k.Apply(nil, dels); errs != nil {
			t.Fatal(firstErr(errs))
		}
		if errs := k.Apply(sets[0], nil); errs != nil { // 64 new homes
			t.Fatal(firstErr(errs))
		}
	}); a != 0 {
		t.Errorf("64 de-registrations and 64 registrations: %v allocations, want 0", a)
	}
}
