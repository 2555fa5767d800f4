package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hagent/hagent/ha/internal/console"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the current output")

// The answers below are what the agent sends; the goldens are what an
// operator reads (text) and what scripts parse (-json). A change to either
// shows up as a diff here, reviewed like code.
var goldenAnswers = map[string]console.Response{
	"bindings": {Bindings: &console.Bindings{Live: 3, Tombs: 1, Capacity: 10000, TombCap: 2500, IPIP: 1, GRE: 1, UDP: 1, Reverse: 2,
		Rows: []console.Binding{
			{Home: "192.0.2.10", CareOf: "198.51.100.7", HomeAgent: "192.0.2.1", Node: "laptop-1", NAI: "laptop-1@example.net",
				Source: "198.51.100.7:434", State: "live", Granted: 600, Remaining: 599, Age: 1, Tunnel: "ipip", Flags: "T",
				ID: 0xe9a1b2c300000001, Origin: 3221225986},
			{Home: "192.0.2.11", CareOf: "203.0.113.9", HomeAgent: "192.0.2.1", Node: "truck-7", State: "live", Granted: 1800,
				Remaining: 1200, Age: 600, Tunnel: "gre", Flags: "G", ID: 0xe9a1b2c300000002, Origin: 3221225987},
			{Home: "192.0.2.13", CareOf: "10.0.0.7", HomeAgent: "192.0.2.1", Node: "bus-12", Source: "203.0.113.5:40000",
				State: "live", Granted: 600, Remaining: 540, Age: 60, Tunnel: "udp", NAT: "203.0.113.5:40000", Flags: "T",
				ID: 0xe9a1b2c300000004, Origin: 3221225986},
			{Home: "192.0.2.12", Node: "pool", Source: "198.51.100.8:434", State: "tombstone", Remaining: 290, Age: 10,
				ID: 0xe9a1b2c300000003, Origin: 3221225986},
		}, Truncated: 5}},
	"binding-detail": {Bindings: &console.Bindings{Live: 2, Tombs: 1, Capacity: 10000, TombCap: 2500, IPIP: 1, Reverse: 1, Detail: true,
		Rows: []console.Binding{
			{Home: "192.0.2.10", CareOf: "198.51.100.7", HomeAgent: "192.0.2.1", Node: "laptop-1", NAI: "laptop-1@example.net",
				Source: "198.51.100.7:434", State: "live", Granted: 600, Remaining: 599, Age: 1, Tunnel: "ipip", Flags: "T",
				ID: 0xe9a1b2c300000001, Origin: 3221225986},
		}}},
	"udp-binding-detail": {Bindings: &console.Bindings{Live: 3, Tombs: 1, Capacity: 10000, TombCap: 2500, UDP: 1, Reverse: 1, Detail: true,
		Rows: []console.Binding{
			{Home: "192.0.2.13", CareOf: "10.0.0.7", HomeAgent: "192.0.2.1", Node: "bus-12", Source: "203.0.113.5:40000",
				State: "live", Granted: 600, Remaining: 540, Age: 60, Tunnel: "udp", NAT: "203.0.113.5:40000", Flags: "T",
				ID: 0xe9a1b2c300000004, Origin: 3221225986},
		}}},
	"bindings-routers": {Bindings: &console.Bindings{Live: 2, Capacity: 10000, TombCap: 2500, IPIP: 2,
		Rows: []console.Binding{
			{Home: "192.0.2.10", CareOf: "198.51.100.7", HomeAgent: "192.0.2.1", Node: "laptop-1", State: "live", Granted: 600,
				Remaining: 599, Age: 1, Tunnel: "ipip", ID: 0xe9a1b2c300000001, Origin: 3221225986},
			{Home: "192.0.2.20", CareOf: "203.0.113.9", HomeAgent: "192.0.2.1", Node: "bus-7", State: "live", Granted: 1800,
				Remaining: 1200, Age: 600, Tunnel: "ipip", ID: 0xe9a1b2c300000002, Origin: 3221225987,
				Networks: []string{"10.9.1.0/24", "10.9.2.0/25"}},
		}}},
	"router-detail": {Bindings: &console.Bindings{Live: 1, Capacity: 10000, TombCap: 2500, IPIP: 1, Detail: true,
		Rows: []console.Binding{
			{Home: "192.0.2.20", CareOf: "203.0.113.9", HomeAgent: "192.0.2.1", Node: "bus-7", State: "live", Granted: 1800,
				Remaining: 1200, Age: 600, Tunnel: "ipip", ID: 0xe9a1b2c300000002, Origin: 3221225987,
				Networks: []string{"10.9.1.0/24", "10.9.2.0/25"}},
		}}},
	"tombstone-detail": {Bindings: &console.Bindings{Live: 2, Tombs: 1, Capacity: 10000, TombCap: 2500, Detail: true,
		Rows: []console.Binding{
			{Home: "192.0.2.12", Node: "pool", Source: "198.51.100.8:434", State: "tombstone", Remaining: 290, Age: 10,
				ID: 0xe9a1b2c300000003, Origin: 3221225986},
		}}},
	"redundancy": {Redundancy: &console.Redundancy{Mode: "vrrp", Role: "active", Reason: "master down timer expired (no advertisement)",
		Since: "2026-12-05T21:00:00Z", Serving: true, Synced: true,
		Election: &console.Election{Protocol: "vrrp", Group: 1, Interface: "eth0", VirtualAddress: "192.0.2.1",
			VirtualMAC: "52:54:00:12:34:56", VirtualMACOwn: true, State: "Master", Priority: 150, ConfiguredPriority: 200,
			Master: "192.0.2.2", MasterLocal: true, MasterPriority: 150, AdvertInterval: "1s", MasterDownInterval: "3.414s",
			Preempt: true, Tracked: []console.Tracked{{Interface: "eth1", Weight: 50, Up: false}, {Interface: "eth2", Weight: 0, Up: true}}},
		Replication: &console.Replication{AckBeforeReply: true, SendKeyID: 1, PeersUp: 2, PeersAcking: 1},
		Peers: []console.Peer{
			{Address: "192.0.2.3", ID: 3221225987, State: "up", LastHeard: "412ms ago", Proven: true, Acking: true, TablesEqual: true, Bindings: 1},
			{Address: "192.0.2.4", ID: 3221225988, State: "up, not initialized", LastHeard: "2.1s ago", Pending: 3, AuthFailures: 4},
		},
		AuthFailures: []console.AuthSource{{Address: "192.0.2.9", ClaimedID: 3221225993, Failures: 17, LastSeen: "1.5s ago"}},
		Counters: []console.CounterGroup{
			{Key: "updates", Name: "binding updates", Counters: []console.Counter{{Key: "sent", Name: "sent", Value: 12}, {Key: "failed", Name: "failed (no ack)", Value: 0}}},
			{Key: "security", Name: "security (group datagrams dropped)", Counters: []console.Counter{{Key: "bad_auth", Name: "bad authenticator", Value: 2}}},
		}}},
	"violations": {Violations: &console.Violations{Total: 70, Capacity: 64, Rows: []console.Violation{
		{Time: "2026-12-05T21:00:02.250Z", Source: "198.51.100.66:434", Home: "192.0.2.10", NAI: "laptop-1@example.net", SPI: 300, Reason: "bad authenticator"},
		{Time: "2026-12-05T21:00:01.000Z", Source: "198.51.100.67:1434", Home: "192.0.2.99", SPI: 4096, Reason: "no security association"},
	}}},
	"stats-memory": {Stats: &console.Stats{Uptime: "1m0s", Runtime: []console.Counter{
		{Key: "rss_bytes", Name: "resident set (VmRSS)", Value: 23_456_789, Unit: "bytes"}, {Name: "gc cycles", Value: 7}}}},
}

func TestGolden(t *testing.T) {
	for name, answer := range goldenAnswers {
		t.Run(name, func(t *testing.T) {
			sock := fakeAgent(t, func(console.Request) console.Response { return answer })
			for _, c := range []struct {
				suffix string
				flags  []string
			}{{".txt", nil}, {".json", []string{"-json"}}} {
				var out, errb bytes.Buffer
				args := append([]string{"-socket", sock, "show", "stats"}, c.flags...)
				if code := run(args, &out, &errb); code != 0 {
					t.Fatalf("exit %d: %s", code, errb.String())
				}
				path := filepath.Join("testdata", name+c.suffix+".golden")
				if *update {
					if err := os.MkdirAll("testdata", 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (go test -run TestGolden -update writes it)", err)
				}
				if got := out.String(); got != string(want) {
					t.Errorf("%s differs (go test -run TestGolden -update, then review the diff):\n--- got\n%s--- want\n%s", path, got, want)
				}
			}
		})
	}
}

// IOS accepts any unambiguous prefix of each keyword, and flags after the
// command; an ambiguous prefix lists what it could mean.
func TestAbbreviationsAndFlagsAnywhere(t *testing.T) {
	var got console.Request
	sock := fakeAgent(t, func(r console.Request) console.Response {
		got = r
		return console.Response{Message: "ok"}
	})
	for _, c := range []struct {
		args  []string
		cmd   string
		limit int
		args0 string
	}{
		{[]string{"sh", "red"}, "show redundancy", 0, ""},
		{[]string{"sh", "bind", "192.0.2.10"}, "show bindings", 0, "192.0.2.10"},
		{[]string{"s", "b"}, "show bindings", 0, ""},
		{[]string{"sh", "vi"}, "show violations", 0, ""},
		{[]string{"sh", "ver"}, "show version", 0, ""},
		{[]string{"show", "agent"}, "show agent", 0, ""},
		{[]string{"cl", "b", "192.0.2.10"}, "clear binding", 0, "192.0.2.10"},
		{[]string{"-json", "show", "bindings", "-limit", "-1"}, "show bindings", -1, ""},
		{[]string{"show", "-limit", "7", "bindings"}, "show bindings", 7, ""},
		{[]string{"show", "bindings", "192.0.2.10", "-limit=3"}, "show bindings", 3, "192.0.2.10"},
	} {
		got = console.Request{}
		var out, errb bytes.Buffer
		if code := run(append([]string{"-socket", sock}, c.args...), &out, &errb); code != 0 {
			t.Errorf("%q: exit %d: %s", c.args, code, errb.String())
			continue
		}
		if got.Cmd != c.cmd || got.Limit != c.limit || (c.args0 != "" && (len(got.Args) != 1 || got.Args[0] != c.args0)) {
			t.Errorf("%q sent %+v, want %s limit %d args %q", c.args, got, c.cmd, c.limit, c.args0)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"-socket", sock, "-json", "show", "bindings", "-limit", "-1"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "{") {
		t.Errorf("-json after the command: exit %d, output %q", code, out.String())
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"sh", "v"}, "ambiguous: version, violations"},
		{[]string{"sh", "x"}, `unknown command "show x"`},
		{[]string{"sh"}, `"sh" is not a command`},
		{[]string{"x", "y"}, `"x" is not a keyword`},
	} {
		errb.Reset()
		if code := run(append([]string{"-socket", "/nonexistent/hagent.sock"}, c.args...), &out, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
	for _, h := range [][]string{{"help"}, {"he"}, {"-h"}, {"show", "-h"}} {
		out.Reset()
		errb.Reset()
		if code := run(h, &out, &errb); code != 0 || !strings.Contains(out.String(), "show violations") || errb.Len() != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want the usage on stdout", h, code, out.String(), errb.String())
		}
	}
}
