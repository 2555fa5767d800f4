package itest

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/tools/lab"
	"github.com/hagent/hagent/tools/lab/reap"
)

// TestMain doubles as a tiny packet sender: the test re-executes itself in a
// namespace (HAGENT_ITEST_SEND=addr:port, payloads as hex arguments) to send
// hostile datagrams that no well-behaved tool would produce.
func TestMain(m *testing.M) {
	if to := os.Getenv("HAGENT_ITEST_SEND"); to != "" {
		os.Exit(sendRaw(to, os.Args[1:]))
	}
	// Killing `go test` would leave this binary, and the agents of a
	// long benchmark, running.
	reap.ExitWithParent()
	code := m.Run()
	RemoveBins()
	os.Exit(code)
}

func sendRaw(to string, payloads []string) int {
	c, err := net.Dial("udp4", to)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	for _, p := range payloads {
		if strings.HasPrefix(p, "-test.") {
			continue
		}
		b, err := hex.DecodeString(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := c.Write(b); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

const regConfig = `
[agent]
interface = "eth0"
address = "192.0.2.1"
home_network = "192.0.2.0/24"
capacity = 3
max_lifetime = 600
replay_tolerance = "7s"
console_socket = "@SOCKET@"
log_level = "debug"

[[node]]
name = "mn1"
home_address = "192.0.2.10"
spi = 256
key = "text:mn1-secret-0123456"

[[node]]
name = "fleet"
pool = "192.0.2.64/27"
spi = 300
key = "text:fleet-secret-01234"

# The build machines' kernel has no ipip module; tunnels are tested in QEMU.
[datapath]
enabled = false
`

type mnReply struct {
	Code     uint8  `json:"code"`
	Name     string `json:"name"`
	Accepted bool   `json:"accepted"`
	Lifetime uint16 `json:"lifetime"`
	Home     string `json:"home"`
	Resynced bool   `json:"resynced"`
	Auth     bool   `json:"authenticated"`
	Error    string `json:"error"`
}

func mnsimJSON(t *testing.T, h *lab.Host, args ...string) (mnReply, int) {
	t.Helper()
	out, code := Mnsim(t, h, append(args, "-json")...)
	var r mnReply
	line := strings.TrimSpace(out)
	if i := strings.LastIndex(line, "\n"); i >= 0 {
		line = line[i+1:]
	}
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("mnsim %v: exit %d, output not JSON: %v\n%s", args, code, err, out)
	}
	return r, code
}

func bindings(t *testing.T, a *Agent) *console.Bindings {
	t.Helper()
	resp, err := console.Call(a.Socket, console.Request{Cmd: "show bindings"}, 5*time.Second)
	if err != nil || resp.Bindings == nil {
		t.Fatalf("show bindings: %v %+v", err, resp)
	}
	return resp.Bindings
}

func findRow(b *console.Bindings, home string) *console.Binding {
	for i := range b.Rows {
		if b.Rows[i].Home == home {
			return &b.Rows[i]
		}
	}
	return nil
}

// TestRegistrationNetns is the foundation's acceptance: one Home Agent on a
// LAN, mnsim in another namespace, real UDP.
func TestRegistrationNetns(t *testing.T) {
	l := lab.NewT(t)
	ha := l.HostT(t, "ha", "192.0.2.1/24")
	mn := l.HostT(t, "mn", "192.0.2.50/24")

	// Capture the well-formed exchange for tshark, when it is installed.
	var pcap string
	var cap *lab.Proc
	if _, err := exec.LookPath("tshark"); err == nil {
		pcap = filepath.Join(t.TempDir(), "reg.pcap")
		p, err := ha.Start("tshark", "-i", "eth0", "-f", "udp port 434", "-w", pcap)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.WaitFor("Capturing on", 20*time.Second); err != nil {
			t.Fatal(err)
		}
		// tshark says "Capturing on" slightly before its ring is armed;
		// on a loaded machine the first exchange was missed.
		time.Sleep(time.Second)
		cap = p
	} else if os.Getenv("HAGENT_TEST_STRICT") == "1" {
		t.Fatal("HAGENT_TEST_STRICT=1 but tshark is not installed (make deps installs it)")
	}

	a := StartAgent(t, ha, regConfig)
	common := []string{"-ha", "192.0.2.1", "-coa", "198.51.100.7"}
	mn1 := append([]string{"-home", "192.0.2.10", "-spi", "256", "-key", "mn1-secret-0123456"}, common...)

	// Accept.
	r, code := mnsimJSON(t, mn, append([]string{"register", "-lifetime", "9999"}, mn1...)...)
	if code != 0 || r.Code != 0 || r.Lifetime != 600 || !r.Auth {
		t.Fatalf("register: exit %d reply %+v; want accepted, lifetime capped to 600, authenticated", code, r)
	}
	if row := findRow(bindings(t, a), "192.0.2.10"); row == nil || row.CareOf != "198.51.100.7" || row.Granted != 600 {
		t.Fatalf("binding after register: %+v", row)
	}
	// Renew from another care-of address.
	time.Sleep(10 * time.Millisecond) // a fresh timestamp
	r, code = mnsimJSON(t, mn, "renew", "-lifetime", "300", "-home", "192.0.2.10", "-spi", "256", "-key", "mn1-secret-0123456", "-ha", "192.0.2.1", "-coa", "198.51.100.8")
	if code != 0 || r.Code != 0 || r.Lifetime != 300 {
		t.Fatalf("renew: exit %d %+v", code, r)
	}
	if row := findRow(bindings(t, a), "192.0.2.10"); row == nil || row.CareOf != "198.51.100.8" {
		t.Fatalf("binding after renew: %+v", row)
	}
	// Bad key → 131, and nothing changes.
	r, code = mnsimJSON(t, mn, "register", "-home", "192.0.2.10", "-spi", "256", "-key", "wrong-key-xxxxxxxx", "-ha", "192.0.2.1", "-coa", "198.51.100.66", "-no-verify")
	if code != 1 || r.Code != 131 {
		t.Fatalf("bad key: exit %d %+v; want exit 1 code 131", code, r)
	}
	if row := findRow(bindings(t, a), "192.0.2.10"); row == nil || row.CareOf != "198.51.100.8" {
		t.Fatalf("a request that failed authentication changed the binding: %+v", row)
	}
	// De-register.
	time.Sleep(10 * time.Millisecond)
	r, code = mnsimJSON(t, mn, append([]string{"deregister"}, mn1...)...)
	if code != 0 || r.Code != 0 || r.Lifetime != 0 {
		t.Fatalf("deregister: exit %d %+v", code, r)
	}
	if b := bindings(t, a); b.Live != 0 {
		t.Fatalf("after deregistration: %d live bindings", b.Live)
	}
	// A stale timestamp → 133; with -resync mnsim takes our clock from the
	// reply and the retry is accepted.
	stale := fmt.Sprintf("%#x", (uint64(time.Now().Add(-time.Hour).Unix())+2208988800)<<32)
	r, code = mnsimJSON(t, mn, append([]string{"register", "-id", stale}, mn1...)...)
	if code != 1 || r.Code != 133 {
		t.Fatalf("stale timestamp: exit %d %+v; want 133", code, r)
	}
	r, code = mnsimJSON(t, mn, append([]string{"register", "-id", stale, "-resync"}, mn1...)...)
	if code != 0 || r.Code != 0 || !r.Resynced {
		t.Fatalf("after resync: exit %d %+v; want accepted after resync", code, r)
	}
	// Table full (capacity 3): two more from the pool fill it, the third is
	// refused with 130 and nothing is evicted.
	pool := func(home string) (mnReply, int) {
		return mnsimJSON(t, mn, append([]string{"register", "-home", home, "-spi", "300", "-key", "fleet-secret-01234"}, common...)...)
	}
	for _, h := range []string{"192.0.2.65", "192.0.2.66"} {
		if r, code := pool(h); code != 0 || r.Code != 0 {
			t.Fatalf("pool %s: exit %d %+v", h, code, r)
		}
	}
	if r, code := pool("192.0.2.67"); code != 1 || r.Code != 130 {
		t.Fatalf("4th binding in a table of 3: exit %d %+v; want 130", code, r)
	}
	b := bindings(t, a)
	for _, h := range []string{"192.0.2.10", "192.0.2.65", "192.0.2.66"} {
		if row := findRow(b, h); row == nil || row.State != "live" {
			t.Fatalf("binding %s evicted or missing after 130: %+v", h, b.Rows)
		}
	}
	if findRow(b, "192.0.2.67") != nil {
		t.Fatalf("refused binding is in the table")
	}

	if cap != nil {
		// Let the capture catch up, then stop it the way a person would
		// (SIGINT), so that it flushes the file.
		time.Sleep(500 * time.Millisecond)
		_ = cap.Signal(syscall.SIGINT)
		select {
		case <-cap.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("tshark did not stop on SIGINT")
		}
		// 20 messages were exchanged; allow the first exchange to be lost
		// to a capture that starts late on a loaded machine.
		checkTshark(t, pcap, 18)
	}

	// Malformed packets: counted per reason, dropped, no reply, agent alive.
	good := "01000258c000020ac0000201c633640700000000000000012006000001000000000000000000000000000000000000"
	cmd := mn.Command(os.Args[0])
	cmd.Args = append(cmd.Args, "01", "0300000000", good[:40], "ff"+good[2:48], good[:48]+"630100")
	cmd.Env = append(os.Environ(), "HAGENT_ITEST_SEND=192.0.2.1:434")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sending malformed packets: %v %s", err, out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := console.Call(a.Socket, console.Request{Cmd: "show stats"}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		drops := map[string]uint64{}
		for _, c := range resp.Stats.Drops {
			drops[c.Name] = c.Value
		}
		if drops["truncated"] == 3 && drops["not-a-request"] == 1 && drops["unknown-critical-extension"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drop counters after 5 malformed packets: %v", drops)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := a.Hactl("show", "stats")
	if err != nil || !strings.Contains(out, "130 insufficient resources") && !strings.Contains(out, "130 ") {
		t.Fatalf("hactl show stats: %v\n%s", err, out)
	}
	if out, err := a.Hactl("show", "bindings"); err != nil || !strings.Contains(out, "192.0.2.65") {
		t.Fatalf("hactl show bindings: %v\n%s", err, out)
	}
	if out, err := a.Hactl("clear", "binding", "192.0.2.65"); err != nil {
		t.Fatalf("hactl clear binding: %v\n%s", err, out)
	}
	if b := bindings(t, a); findRow(b, "192.0.2.65") != nil {
		t.Fatalf("cleared binding still present")
	}
	// SIGHUP: a new key for mn1 applies without losing bindings; an invalid
	// file is refused and the running config stays.
	before := bindings(t, a).Live
	newCfg := strings.Replace(strings.ReplaceAll(regConfig, "@SOCKET@", a.Socket), "text:mn1-secret-0123456", "text:mn1-rotated-key-789", 1)
	if err := os.WriteFile(a.Config, []byte(newCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if err := a.Proc.WaitFor("configuration reloaded", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := bindings(t, a).Live; got != before {
		t.Fatalf("reload changed the bindings: %d → %d", before, got)
	}
	time.Sleep(10 * time.Millisecond)
	if r, code := mnsimJSON(t, mn, "register", "-home", "192.0.2.10", "-spi", "256", "-key", "mn1-rotated-key-789", "-ha", "192.0.2.1", "-coa", "198.51.100.7"); code != 0 || r.Code != 0 {
		t.Fatalf("register with the rotated key after SIGHUP: exit %d %+v", code, r)
	}
	if err := os.WriteFile(a.Config, []byte("[agent]\ncapacity = \"many\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = a.Proc.Signal(syscall.SIGHUP)
	if err := a.Proc.WaitFor("reload refused", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if r, code := mnsimJSON(t, mn, "register", "-home", "192.0.2.10", "-spi", "256", "-key", "mn1-rotated-key-789", "-ha", "192.0.2.1", "-coa", "198.51.100.7"); code != 0 || r.Code != 0 {
		t.Fatalf("register after a refused reload: exit %d %+v", code, r)
	}

	// Clean shutdown on SIGTERM.
	if err := a.Proc.Stop(5 * time.Second); err != nil {
		t.Fatalf("hagent did not exit cleanly on SIGTERM: %v\n%s", err, a.Proc.Output())
	}
	if !strings.Contains(a.Proc.Output(), "hagent stopped") {
		t.Fatalf("no clean-stop log line:\n%s", a.Proc.Output())
	}
}

// checkTshark decodes the capture: at least want Mobile IP messages, and no
// malformed-packet or expert warnings/errors.
func checkTshark(t *testing.T, pcap string, want int) {
	t.Helper()
	out, err := exec.Command("tshark", "-r", pcap, "-Y", "mip").Output()
	if err != nil {
		t.Fatalf("tshark -r: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < want {
		t.Fatalf("tshark decoded %d Mobile IP messages, want ≥ %d:\n%s", len(lines), want, out)
	}
	bad, err := exec.Command("tshark", "-r", pcap, "-Y", "_ws.malformed || _ws.expert.severity >= warning").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, bad)
	}
	if s := strings.TrimSpace(string(bad)); s != "" {
		t.Fatalf("tshark reports malformed packets or expert warnings:\n%s\nall:\n%s", s, out)
	}
	t.Logf("tshark decoded %d Mobile IP messages without complaint", len(lines))
}
