package itest

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/tools/lab"
)

// The sync tests use a /14 home network so that pools of 10,000 and
// 100,000 mobile nodes fit: agents at 10.0.0.1x, the virtual address
// 10.0.0.1, the mobile-node simulator at 10.0.0.50, pool 10.2.0.0/15.
const (
	syncVIP     = "10.0.0.1"
	syncPool    = "10.2.0.0/15"
	syncBase    = "10.2.0.1"
	syncKey     = "fleet-secret-01234"
	syncGroupK  = "group-secret-for-tests-0123"
	syncGroup   = "224.0.0.240" // config default group.address
	syncPort    = 4343          // config default group.port
	syncMaskLen = "/14"
)

func syncAddr(i int) string { return fmt.Sprintf("10.0.0.1%d", i) }

// syncConfig is member i (1-based) of a group. With vrrp, priorities 130,
// 120, 110… make member 1 active; without, every member serves once its
// table is initialized (group-only mode). extra is appended to [group].
func syncConfig(i int, vrrp bool, capacity int, extraGroup string) string {
	s := fmt.Sprintf(`
[agent]
interface = "eth0"
address = "%s"
virtual_address = "%s"
home_network = "10.0.0.0/14"
console_socket = "@SOCKET@"
log_level = "info"
capacity = %d
max_lifetime = 1800

[[node]]
name = "fleet"
pool = "%s"
spi = 300
key = "text:%s"

[group]
enabled = true
key = "text:%s"
%s

[datapath]
enabled = false
`, syncAddr(i), syncVIP, capacity, syncPool, syncKey, syncGroupK, extraGroup)
	if vrrp {
		s += fmt.Sprintf(`
[vrrp]
enabled = true
vrid = 52
priority = %d
advert_interval = "100ms"
garp_count = 1
`, 140-10*i)
	}
	return s
}

// syncHost adds agent host i (1-based) to l.
func syncHost(t testing.TB, l *lab.Lab, i int) *lab.Host {
	return l.HostT(t, fmt.Sprintf("ha%d", i), syncAddr(i)+syncMaskLen)
}

// syncLoad registers n consecutive pool addresses through the virtual
// address with mnsim load (rate-limited so that each node is registered
// about once per n/rate seconds) and fails t unless every reply accepted.
func syncLoad(t testing.TB, mn *lab.Host, ha string, n int, rate int, d time.Duration, extra ...string) string {
	t.Helper()
	args := append([]string{"load", "-ha", ha, "-base", syncBase, "-n", fmt.Sprint(n), "-rate", fmt.Sprint(rate),
		"-duration", d.String(), "-spi", "300", "-key", syncKey, "-coa", "198.51.100.7", "-lifetime", "1800",
		"-timeout", "2s"}, extra...)
	out, code := Mnsim(t, mn, args...)
	if code != 0 {
		t.Fatalf("mnsim %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// syncLoad130 is syncLoad that also accepts exit status 1 (some reply was
// not an acceptance): the caller checks the codes in the output.
func syncLoad130(t testing.TB, mn *lab.Host, ha string, n int, rate int, d time.Duration, extra ...string) string {
	t.Helper()
	args := append([]string{"load", "-ha", ha, "-base", syncBase, "-n", fmt.Sprint(n), "-rate", fmt.Sprint(rate),
		"-duration", d.String(), "-spi", "300", "-key", syncKey, "-coa", "198.51.100.7", "-lifetime", "1800",
		"-timeout", "2s"}, extra...)
	out, code := Mnsim(t, mn, args...)
	if code != 0 && code != 1 {
		t.Fatalf("mnsim %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// allBindings is `show bindings` with every row.
func allBindings(t testing.TB, a *Agent) *console.Bindings {
	t.Helper()
	resp, err := console.Call(a.Socket, console.Request{Cmd: "show bindings", Limit: -1}, 10*time.Second)
	if err != nil || resp.Bindings == nil {
		t.Fatalf("show bindings: %v %+v", err, resp)
	}
	return resp.Bindings
}

// tableKey is a member's table as a comparable string: every row's home,
// state, version and care-of address, sorted (remaining lifetimes differ).
func tableKey(b *console.Bindings) string {
	rows := make([]string, 0, len(b.Rows))
	for _, r := range b.Rows {
		rows = append(rows, fmt.Sprintf("%s %s %x %d %s", r.Home, r.State, r.ID, r.Origin, r.CareOf))
	}
	sort.Strings(rows)
	return strings.Join(rows, "\n")
}

// counter returns the named counter of `show redundancy` (fails t if absent).
func counter(t testing.TB, r *console.Redundancy, name string) uint64 {
	t.Helper()
	for _, c := range r.Flat() {
		if c.Key == name {
			return c.Value
		}
	}
	t.Fatalf("show redundancy has no counter %q: %+v", name, r.Flat())
	return 0
}

func redundancyTB(t testing.TB, a *Agent) *console.Redundancy {
	t.Helper()
	resp, err := console.Call(a.Socket, console.Request{Cmd: "show redundancy"}, 5*time.Second)
	if err != nil || resp.Redundancy == nil {
		t.Fatalf("show redundancy: %v %+v", err, resp)
	}
	return resp.Redundancy
}

// waitUntil polls cond every 50 ms until it holds or timeout passes.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last state: %s", what, timeout, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// requireNft skips (or fails under HAGENT_TEST_STRICT=1) without nft.
func requireNft(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		if os.Getenv("HAGENT_TEST_STRICT") == "1" {
			t.Fatal("HAGENT_TEST_STRICT=1 but nft is not installed (tools/ci/deps.sh installs nftables)")
		}
		t.Skip("needs nft (nftables) for packet loss on the lab bridge")
	}
}

// lanNft loads an nft script into the lab's LAN namespace (the one holding
// the bridge; lab names it <prefix>-lan).
func lanNft(t testing.TB, l *lab.Lab, script string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.Prefix+"-lan", "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in the lab's LAN namespace: %v\n%s\nscript:\n%s", err, out, script)
	}
}

// lanNftCounter reads "packets N bytes M" of the first counter in chain.
func lanNftCounter(t testing.TB, l *lab.Lab, chain string) (packets, bytes uint64) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", l.Prefix+"-lan", "nft", "list", "chain", "bridge", "hagent_itest", chain).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list chain %s: %v\n%s", chain, err, out)
	}
	s := string(out)
	i := strings.Index(s, "counter packets ")
	if i < 0 {
		t.Fatalf("no counter in chain %s:\n%s", chain, s)
	}
	if _, err := fmt.Sscanf(s[i:], "counter packets %d bytes %d", &packets, &bytes); err != nil {
		t.Fatalf("parsing nft counter: %v\n%s", err, s)
	}
	return packets, bytes
}
