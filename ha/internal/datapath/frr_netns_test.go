//go:build linux

package datapath

// Announcement of mobile networks through FRR (Debian's frr package): the
// prefix routes this package installs are redistributed by FRR's bgpd, with
// the example configuration shipped in rootfs/etc/frr, to an "enterprise
// router" (a second bgpd) in another namespace over eBGP. Every FRR daemon is
// started by the test as a process of its own, with its configuration, pid
// files and vty sockets in a temporary directory: never the system service.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const frrDir = "/usr/lib/frr"

// needFRR skips (or, under HAGENT_TEST_STRICT=1, fails) without zebra, bgpd
// and vtysh.
func needFRR(t *testing.T) {
	t.Helper()
	for _, p := range []string{frrDir + "/zebra", frrDir + "/bgpd"} {
		if _, err := os.Stat(p); err != nil {
			if os.Getenv("HAGENT_TEST_STRICT") == "1" {
				t.Fatalf("%s missing (apt-get install frr)", p)
			}
			t.Skipf("%s missing (apt-get install frr)", p)
		}
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		t.Skip("vtysh missing (apt-get install frr)")
	}
}

// frrInstance is one namespace's zebra + bgpd.
type frrInstance struct {
	ns, dir string
}

// startFRR runs zebra and bgpd in namespace ns with bgpConf as bgpd's
// configuration; the processes are killed (by PID) and the directory removed
// at cleanup.
func startFRR(t *testing.T, ns, name, bgpConf string) *frrInstance {
	t.Helper()
	// The daemons drop to the frr user: the directory must be reachable
	// and writable by it (t.TempDir's parents are 0700).
	dir, err := os.MkdirTemp("", "hagent-frr-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	f := &frrInstance{ns: ns, dir: dir}
	write := func(file, s string) {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("zebra.conf", "hostname "+name+"\n")
	write("bgpd.conf", bgpConf)
	for _, d := range []string{"zebra", "bgpd"} {
		args := []string{"netns", "exec", ns, filepath.Join(frrDir, d),
			"-f", filepath.Join(dir, d+".conf"), "-i", filepath.Join(dir, d+".pid"),
			"-z", filepath.Join(dir, "zserv.api"), "--vty_socket", dir,
			"-u", "frr", "-g", "frr", "-P", "0", "--log", "file:" + filepath.Join(dir, d+".log")}
		if d == "bgpd" {
			args = append(args, "-p", "179")
		}
		cmd := exec.Command("ip", args...)
		cmd.Stdout, cmd.Stderr = nil, nil
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// ip netns exec execs the daemon: this PID is the daemon's.
		t.Cleanup(func() {
			_ = cmd.Process.Signal(unix.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		})
		if d == "zebra" {
			// bgpd connects to zebra's socket: wait for it to exist.
			waitFor(t, 30*time.Second, "zebra's socket", func() (bool, string) {
				_, err := os.Stat(filepath.Join(dir, "zserv.api"))
				return err == nil, f.logs()
			})
		}
	}
	return f
}

func (f *frrInstance) logs() string {
	var b strings.Builder
	for _, d := range []string{"zebra", "bgpd"} {
		out, _ := os.ReadFile(filepath.Join(f.dir, d+".log"))
		b.WriteString(d + ".log:\n" + string(out))
	}
	return b.String()
}

func (f *frrInstance) vtysh(t *testing.T, cmd string) string {
	t.Helper()
	out, _ := exec.Command("vtysh", "--vty_socket", f.dir, "-c", cmd).CombinedOutput()
	return string(out)
}

// bgpRoutes is the set of prefixes in the BGP table ("show ip bgp json").
func (f *frrInstance) bgpRoutes(t *testing.T) []string {
	t.Helper()
	var v struct {
		Routes map[string]json.RawMessage `json:"routes"`
	}
	if err := json.Unmarshal([]byte(f.vtysh(t, "show ip bgp json")), &v); err != nil {
		return nil // not up yet
	}
	var out []string
	for p := range v.Routes {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// waitFor polls cond every 100 ms until it holds; after limit (a bound on a
// hang, not a performance figure) it fails with cond's description.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not reached within %v:\n%s", what, limit, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestNetnsFRRAnnouncesMobileNetworks: prefix routes installed by
// ApplyPrefixes are announced by FRR to the enterprise router, exactly those
// (not the home addresses' routes, not other kernel routes), and withdrawn
// with them.
func TestNetnsFRRAnnouncesMobileNetworks(t *testing.T) {
	requireRoot(t)
	needFRR(t)
	example, err := os.ReadFile(filepath.Join("..", "..", "..", "rootfs", "etc", "frr", "frr.conf.hagent-example"))
	if err != nil {
		t.Fatal(err)
	}

	// Two namespaces, the addresses the example configuration names: the
	// Home Agent (home network 192.0.2.0/24 on home0, tunnel mip0, uplink
	// 198.51.100.1/30) and the enterprise router (198.51.100.2/30).
	var r [3]byte
	_, _ = rand.Read(r[:])
	sfx := hex.EncodeToString(r[:])
	ha, ent := &netns{name: "hfa" + sfx}, &netns{name: "hfe" + sfx}
	for _, n := range []*netns{ha, ent} {
		if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add: %v: %s", err, out)
		}
		t.Cleanup(func() {
			if n.fd > 0 {
				unix.Close(n.fd)
			}
			_ = exec.Command("ip", "netns", "del", n.name).Run()
		})
		n.ip(t, "link", "set", "lo", "up")
	}
	for _, args := range [][]string{
		{"link", "add", "home0", "type", "veth", "peer", "name", "home1"},
		{"link", "add", "mip0", "type", "veth", "peer", "name", "mip1"}, // stands in for the ipip device
		{"link", "add", "up0", "type", "veth", "peer", "name", "ent0", "netns", ent.name},
		{"link", "set", "home0", "up"}, {"link", "set", "home1", "up"},
		{"link", "set", "mip0", "up"}, {"link", "set", "mip1", "up"}, {"link", "set", "up0", "up"},
		{"addr", "add", "192.0.2.2/24", "dev", "home0"},
		{"addr", "add", "198.51.100.1/30", "dev", "up0"},
		// a kernel route of somebody else's: must not be announced
		{"route", "add", "10.99.0.0/16", "dev", "home0", "proto", "boot"},
	} {
		ha.ip(t, args...)
	}
	ent.ip(t, "link", "set", "ent0", "up")
	ent.ip(t, "addr", "add", "198.51.100.2/30", "dev", "ent0")
	fd, err := unix.Open("/run/netns/"+ha.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ha.fd = fd

	dp, err := Open(Config{HomeIfname: "home0", TunnelName: "mip0", Protocol: 77,
		Local: netip.MustParseAddr("192.0.2.2"), NetNS: ha.fd, anyTunnel: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dp.Close() })
	if err := dp.Setup(); err != nil {
		t.Fatal(err)
	}
	pr := dp.(PrefixRouter)

	haFRR := startFRR(t, ha.name, "ha", string(example))
	entFRR := startFRR(t, ent.name, "ent", `frr defaults traditional
hostname enterprise
router bgp 65002
 bgp router-id 198.51.100.2
 no bgp ebgp-requires-policy
 neighbor 198.51.100.1 remote-as 65001
 neighbor 198.51.100.1 timers 3 9
 neighbor 198.51.100.1 timers connect 1
 neighbor 198.51.100.1 advertisement-interval 0
exit
`)
	waitFor(t, 60*time.Second, "the eBGP session", func() (bool, string) {
		s := entFRR.vtysh(t, "show ip bgp neighbors 198.51.100.1")
		return strings.Contains(s, "BGP state = Established"), s + haFRR.logs()
	})

	// A mobile router with home address 192.0.2.5 and two networks.
	if errs := dp.Apply([]Binding{{Home: netip.MustParseAddr("192.0.2.5"), CareOf: netip.MustParseAddr("203.0.113.7"), Encap: IPIP}}, nil); errs != nil {
		t.Fatal(errs)
	}
	nets := []MobileNet{
		{Prefix: netip.MustParsePrefix("10.9.1.0/24"), CareOf: netip.MustParseAddr("203.0.113.7"), Encap: IPIP},
		{Prefix: netip.MustParsePrefix("10.9.2.7/32"), CareOf: netip.MustParseAddr("203.0.113.7"), Encap: IPIP},
	}
	if errs := pr.ApplyPrefixes(nets, nil); errs != nil {
		t.Fatal(errs)
	}
	expect := func(what string, want ...string) {
		t.Helper()
		waitFor(t, 60*time.Second, what, func() (bool, string) {
			got := entFRR.bgpRoutes(t)
			return slices.Equal(got, want), "enterprise has " + strings.Join(got, " ") + ", want " + strings.Join(want, " ") +
				"\nHA's BGP table:\n" + haFRR.vtysh(t, "show ip bgp") + "\nHA's kernel routes:\n" + ha.ip(t, "route")
		})
	}
	expect("both networks at the enterprise", "10.9.1.0/24", "10.9.2.7/32")

	// De-registration of one network withdraws it, and only it.
	if errs := pr.ApplyPrefixes(nil, []netip.Prefix{nets[1].Prefix}); errs != nil {
		t.Fatal(errs)
	}
	expect("the /32 network withdrawn", "10.9.1.0/24")

	// Becoming standby (Withdraw) withdraws the rest.
	if err := dp.Withdraw(); err != nil {
		t.Fatal(err)
	}
	expect("every network withdrawn")
}
