package vm

import (
	"strings"
	"testing"
)

// A `hactl show redundancy` answer as the serial console carried it, with
// an agent log line printed in the middle (the console is shared).
const redundancyOut = `mode    vrrp
time=2026-11-23T23:34:49.819Z level=INFO msg="role change" from=standby to=active protocol=vrrp state=Master reason="master down timer expired (no advertisement)" peer="" bindings=1
role    active (vrrp Master)
reason  master down timer expired (no advertisement)
synced  true

ADDRESS    ID          STATE  ACKING  LAST-HEARD  TABLES-EQUAL
192.0.2.2  3221225986  up     yes     8.585s ago  no

counters:
  role changes                                               3
  vrrp adverts received                                      6
  binding updates sent                                       0
  binding updates total incl. retransmissions                1
  update acks sent                                           1`

func TestConsoleParsing(t *testing.T) {
	if got := Role(redundancyOut); got != "active (vrrp Master)" || !IsActive(got) {
		t.Fatalf("Role = %q", got)
	}
	// A log fragment that happens to start a line with "role" is no role.
	if got := Role(`role change" from=standby to=active`); got != "" {
		t.Fatalf("Role of a log fragment = %q, want none", got)
	}
	if got := Field(redundancyOut, "reason"); got != "master down timer expired (no advertisement)" {
		t.Fatalf("Field reason = %q", got)
	}
	for name, want := range map[string]int64{"role changes": 3, "update acks sent": 1, "binding updates sent": 0, "binding updates": -1, "nonexistent": -1} {
		if got := Counter(redundancyOut, name); got != want {
			t.Errorf("Counter(%q) = %d, want %d", name, got, want)
		}
	}
	if !IsLogLine(`$ time=2026-11-23T23:39:53.533Z level=INFO msg="hainit: agent started" pid=118`) || IsLogLine("role    active") {
		t.Fatal("IsLogLine: a log line after the prompt, or hactl output, misread")
	}
	if s := StripLogs(redundancyOut); strings.Contains(s, "level=INFO") || !strings.Contains(s, "role    active") {
		t.Fatalf("StripLogs kept the log line or dropped output:\n%s", s)
	}
	bindings := "bindings: 1 live of 10000, 0 tombstones of 2500\n" +
		"HOME        CARE-OF       HOME-AGENT  STATE  GRANTED  REMAINING  FLAGS  IDENTIFICATION      NODE\n" +
		"192.0.2.10  198.51.100.7  192.0.2.1   live   600s     599s       -      0xeeaf4c1196442327  laptop-1\n"
	line, f, ok := BindingRow(bindings, "192.0.2.10")
	if !ok || f[1] != "198.51.100.7" || f[3] != "live" || !strings.HasPrefix(line, "192.0.2.10 ") {
		t.Fatalf("BindingRow = %q %q %v", line, f, ok)
	}
	if _, _, ok := BindingRow(bindings, "192.0.2.1"); ok {
		t.Fatal("BindingRow found a home address that is only a home agent")
	}
}

func TestParseTunnelled(t *testing.T) {
	out := "192.0.2.1,192.0.2.100\t198.51.100.70,192.0.2.10\t4,1\n" + // another care-of address
		"192.0.2.1,192.0.2.100\t198.51.100.7,192.0.2.10\t4,1\t52:54:00:4a:00:02"
	tun, ok := ParseTunnelled(out, "198.51.100.7", "192.0.2.10")
	if !ok {
		t.Fatal("not found")
	}
	if tun.EthSrc != "52:54:00:4a:00:02" {
		t.Fatalf("EthSrc %q", tun.EthSrc)
	}
	if got, want := tun.String(), "outer 192.0.2.1 → 198.51.100.7 proto 4 (IP-in-IP), inner 192.0.2.100 → 192.0.2.10"; got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if _, ok := ParseTunnelled("192.0.2.1,192.0.2.100\t198.51.100.7,192.0.2.11\t4,1", "198.51.100.7", "192.0.2.10"); ok {
		t.Fatal("a packet for another home address counted")
	}
}

// `hactl show bindings HOME` answers in the detailed layout; BindingRow
// reads it into the table's fields, and Counter reads a label of one
// section of the grouped show redundancy.
func TestConsoleDetailAndSections(t *testing.T) {
	detail := "Mobility binding 192.0.2.10 (laptop-1): live\n" +
		"  Care-of address     198.51.100.7\n" +
		"  Home agent address  192.0.2.1\n" +
		"  Lifetime            granted 600s, remaining 599s, registered 1s ago\n" +
		"  Tunnel              ipip\n" +
		"  Flags               T G\n" +
		"  Identification      0xe9a1b2c300000001\n"
	_, f, ok := BindingRow(detail, "192.0.2.10")
	want := []string{"192.0.2.10", "198.51.100.7", "192.0.2.1", "live", "600s", "599s", "TG", "0xe9a1b2c300000001", "laptop-1"}
	if !ok || strings.Join(f, " ") != strings.Join(want, " ") {
		t.Fatalf("BindingRow(detail) = %q %v, want %q", f, ok, want)
	}
	if _, _, ok := BindingRow(detail, "192.0.2.11"); ok {
		t.Fatal("BindingRow found another home address in a detail block")
	}
	red := "binding updates:\n  sent             12\n  acks received    3\n\ntable downloads:\n  sent  5\n"
	for name, want := range map[string]int64{"binding updates/sent": 12, "binding updates/acks received": 3, "table downloads/sent": 5, "anti-entropy/sent": -1} {
		if got := Counter(red, name); got != want {
			t.Errorf("Counter(%q) = %d, want %d", name, got, want)
		}
	}
}
