package itest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/lab"
	"github.com/hagent/hagent/tools/lab/reap"
)

// The acceptance of mobile networks with a routing daemon: two members of a
// group (VRRP), each with its kernel datapath and its own FRR (zebra +
// bgpd, Debian's, configured as rootfs/etc/frr/frr.conf.hagent-example),
// peering by eBGP with an enterprise bgpd on the LAN. A mobile router
// registers two networks: the enterprise learns both from the active
// member. The active member is killed: the standby takes over, programs
// the replicated networks and its FRR announces them. De-registration
// withdraws them.

const frrBin = "/usr/lib/frr"

func needFRRDaemons(t *testing.T) {
	t.Helper()
	for _, p := range []string{frrBin + "/zebra", frrBin + "/bgpd"} {
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

// frr is one host's zebra + bgpd, stopped by PID at cleanup, in a directory
// a killed run's successor removes. They drop to the frr user (FRR refuses
// root outside its vty group), which clears the parent-death signal: a run
// killed outright leaves them to be stopped by hand (they hold only the
// lab's namespaces).
type frr struct {
	dir   string
	procs []*lab.Proc
}

func startFRRIn(t *testing.T, h *lab.Host, bgpConf string) *frr {
	t.Helper()
	dir, err := reap.TempDir("hagent-itest-frr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil { // the frr user writes its pid and socket here
		t.Fatal(err)
	}
	f := &frr{dir: dir}
	for file, s := range map[string]string{"zebra.conf": "hostname " + h.NS + "\n", "bgpd.conf": bgpConf} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"zebra", "bgpd"} {
		args := []string{"-f", filepath.Join(dir, d+".conf"), "-i", filepath.Join(dir, d+".pid"),
			"-z", filepath.Join(dir, "zserv.api"), "--vty_socket", dir,
			"-u", "frr", "-g", "frr", "-P", "0", "--log", "file:" + filepath.Join(dir, d+".log")}
		if d == "bgpd" {
			args = append(args, "-p", "179")
		}
		p, err := h.Start(filepath.Join(frrBin, d), args...)
		if err != nil {
			t.Fatal(err)
		}
		f.procs = append(f.procs, p)
		t.Cleanup(func() { _ = p.Stop(10 * time.Second) })
		if d == "zebra" {
			eventually(t, 30*time.Second, "zebra's socket", func() (bool, string) {
				_, err := os.Stat(filepath.Join(dir, "zserv.api"))
				return err == nil, f.logs() + p.Output()
			})
		}
	}
	return f
}

func (f *frr) logs() string {
	var b strings.Builder
	for _, d := range []string{"zebra", "bgpd"} {
		out, _ := os.ReadFile(filepath.Join(f.dir, d+".log"))
		b.WriteString(d + ".log:\n" + string(out))
	}
	return b.String()
}

func (f *frr) vtysh(cmd string) string {
	out, _ := exec.Command("vtysh", "--vty_socket", f.dir, "-c", cmd).CombinedOutput()
	return string(out)
}

// learnt is the enterprise's BGP table: prefix → the next hops of its
// paths, in order.
func (f *frr) learnt() map[string][]string {
	var v struct {
		Routes map[string][]struct {
			Nexthops []struct {
				IP string `json:"ip"`
			} `json:"nexthops"`
		} `json:"routes"`
	}
	if err := json.Unmarshal([]byte(f.vtysh("show ip bgp json")), &v); err != nil {
		return nil
	}
	out := map[string][]string{}
	for p, paths := range v.Routes {
		for _, path := range paths {
			for _, nh := range path.Nexthops {
				out[p] = append(out[p], nh.IP)
			}
		}
	}
	return out
}

// memberFRR is the example configuration with member i's addresses and the
// enterprise router at 192.0.2.100.
func memberFRR(t *testing.T, i int) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ex, err := os.ReadFile(filepath.Join(root, "rootfs", "etc", "frr", "frr.conf.hagent-example"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(ex), "198.51.100.2", "192.0.2.100")
	return strings.ReplaceAll(s, "198.51.100.1", fmt.Sprintf("192.0.2.1%d", i))
}

func mnGroupConfig(i int) string {
	return fmt.Sprintf(`
[agent]
interface = "eth0"
address = "192.0.2.1%d"
virtual_address = "192.0.2.1"
home_network = "192.0.2.0/24"
console_socket = "@SOCKET@"
log_level = "debug"
capacity = 64

[[node]]
name = "bus-7"
home_address = "192.0.2.10"
spi = 256
key = "text:bus-7-secret-012345"
mobile_networks = ["10.9.1.0/24", "10.9.2.0/24"]

[group]
enabled = true
key = "text:group-secret-for-tests-0123"
anti_entropy_interval = "2s"

[vrrp]
enabled = true
vrid = 53
priority = %d
advert_interval = "100ms"
garp_count = 1

[datapath]
enabled = true
`, i, 140-10*i)
}

func TestNetnsFRRAnnouncesAcrossFailover(t *testing.T) {
	needFRRDaemons(t)
	l := lab.NewT(t)
	mr := l.HostT(t, "mr", "192.0.2.50/24")
	ent := l.HostT(t, "ent", "192.0.2.100/24")
	var hosts [2]*lab.Host
	var agents [2]*Agent
	for i := range hosts {
		hosts[i] = l.HostT(t, fmt.Sprintf("ha%d", i+1), fmt.Sprintf("192.0.2.1%d/24", i+1))
		adoptTunnel(t, hosts[i])
	}
	entFRR := startFRRIn(t, ent, `frr defaults traditional
hostname enterprise
router bgp 65002
 bgp router-id 192.0.2.100
 no bgp ebgp-requires-policy
 neighbor 192.0.2.11 remote-as 65001
 neighbor 192.0.2.11 timers 3 9
 neighbor 192.0.2.11 timers connect 1
 neighbor 192.0.2.11 advertisement-interval 0
 neighbor 192.0.2.12 remote-as 65001
 neighbor 192.0.2.12 timers 3 9
 neighbor 192.0.2.12 timers connect 1
 neighbor 192.0.2.12 advertisement-interval 0
exit
`)
	for i := range hosts {
		agents[i] = StartAgent(t, hosts[i], mnGroupConfig(i+1))
		startFRRIn(t, hosts[i], memberFRR(t, i+1))
	}
	eventually(t, 60*time.Second, "both eBGP sessions", func() (bool, string) {
		s := entFRR.vtysh("show ip bgp summary")
		return strings.Count(s, "Established") >= 2 || bgpUp(s) == 2, s + entFRR.logs()
	})
	eventually(t, 20*time.Second, "member 1 active", func() (bool, string) {
		r := redundancy(t, agents[0])
		return r.Role == "active", r.Role
	})

	router := []string{"-home", "192.0.2.10", "-spi", "256", "-key", "bus-7-secret-012345", "-ha", "192.0.2.1", "-coa", "198.51.100.7"}
	out, code := Mnsim(t, mr, append([]string{"register", "-lifetime", "600", "-mobile-network", "10.9.1.0/24", "-mobile-network", "10.9.2.0/24"}, router...)...)
	if code != 0 {
		t.Fatalf("register: exit %d\n%s", code, out)
	}
	nets := []string{"10.9.1.0/24", "10.9.2.0/24"}
	// learnt: the enterprise has exactly the two networks, each by paths
	// through the members in vias and no other.
	learnt := func(vias ...string) func() (bool, string) {
		return func() (bool, string) {
			got := entFRR.learnt()
			ok := len(got) == len(nets)
			for _, p := range nets {
				hops := slices.Clone(got[p])
				slices.Sort(hops)
				ok = ok && slices.Equal(hops, vias)
			}
			return ok, fmt.Sprintf("enterprise table %v\n%s", got, entFRR.vtysh("show ip bgp"))
		}
	}
	start := time.Now()
	eventually(t, 30*time.Second, "the enterprise learning both networks from member 1", learnt("192.0.2.11"))
	t.Logf("learnt from member 1 %v after the registration (informational)", time.Since(start).Round(10*time.Millisecond))
	if r := protoRoutes(t, hosts[1]); strings.Contains(r, "10.9.") {
		t.Fatalf("the standby routes the networks:\n%s", r)
	}
	// The standby holds the replicated binding with its networks.
	eventually(t, 10*time.Second, "the binding replicated to member 2", func() (bool, string) {
		row := findRow(bindings(t, agents[1]), "192.0.2.10")
		return row != nil && strings.Join(row.Networks, ",") == strings.Join(nets, ","), fmt.Sprintf("%+v", row)
	})

	// The active member's host dies: its agent is SIGKILLed (no withdrawal
	// of its own) and its cable pulled, so its bgpd, still running, goes
	// silent and the enterprise drops that session only at its hold time.
	_ = agents[0].Proc.Signal(syscall.SIGKILL)
	if err := hosts[0].LinkDown(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	eventually(t, 20*time.Second, "member 2 active", func() (bool, string) {
		r := redundancy(t, agents[1])
		return r.Role == "active", r.Role
	})
	eventually(t, 30*time.Second, "member 2's routes", func() (bool, string) {
		r := protoRoutes(t, hosts[1])
		return strings.Contains(r, "10.9.1.0/24") && strings.Contains(r, "10.9.2.0/24"), r
	})
	// Member 2 announces them; the dead member's paths go at the
	// enterprise's hold time (9 s) for its silent session.
	eventually(t, 60*time.Second, "the enterprise learning both networks from member 2 (and member 1's paths gone)", learnt("192.0.2.12"))
	t.Logf("announced by member 2 alone %v after the crash (informational: VRRP takeover and BGP's update, then the enterprise's 9 s hold time for the silent session)", time.Since(start).Round(10*time.Millisecond))

	// De-registration, on the virtual address (now member 2), withdraws them.
	time.Sleep(10 * time.Millisecond)
	if out, code := Mnsim(t, mr, append([]string{"deregister"}, router...)...); code != 0 {
		t.Fatalf("deregister: exit %d %s", code, out)
	}
	eventually(t, 30*time.Second, "the networks withdrawn", func() (bool, string) {
		got := entFRR.learnt()
		return got != nil && len(got) == 0, fmt.Sprintf("%v", got)
	})
	if r := protoRoutes(t, hosts[1]); strings.Contains(r, "10.9.") {
		t.Fatalf("after de-registration, member 2's routes:\n%s", r)
	}
}

// bgpUp counts the sessions `show ip bgp summary` shows established (a
// number of prefixes received in the State/PfxRcd column).
func bgpUp(summary string) int {
	n := 0
	for _, l := range strings.Split(summary, "\n") {
		f := strings.Fields(l)
		if len(f) >= 10 && strings.HasPrefix(f[0], "192.0.2.") {
			if _, err := fmt.Sscan(f[9], new(int)); err == nil {
				n++
			}
		}
	}
	return n
}
