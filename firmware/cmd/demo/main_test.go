package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hagent/hagent/firmware/vm"
)

func TestDescriptions(t *testing.T) {
	f := strings.Fields("192.0.2.10  198.51.100.7  192.0.2.1   live   600s     599s       -      0xeeaf4c1196442327  laptop-1")
	if got, want := describeBinding(f), "192.0.2.10 → care-of 198.51.100.7, live, lifetime 600s (599s left), node laptop-1"; got != want {
		t.Errorf("describeBinding:\ngot  %s\nwant %s", got, want)
	}
	out := "mode    vrrp\nrole    standby (vrrp Backup)\nreason  advertisement with higher priority\n\ncounters:\n" +
		"  update acks sent          1\n  binding updates received  0\n"
	if got, want := roleWhy("standby (vrrp Backup)", out), "standby (vrrp Backup): advertisement with higher priority"; got != want {
		t.Errorf("roleWhy: %q, want %q", got, want)
	}
	if got, want := nonZero(out, "binding updates received", "update acks sent"), "update acks sent 1"; got != want {
		t.Errorf("nonZero: %q, want %q", got, want)
	}
	// No role line: say what hactl printed instead, for the FAILED line.
	if got, want := describeRole("", "hactl: cannot reach the agent at /run/hagent.sock: no such file\nmore"), "no role (hactl: cannot reach the agent at /run/hagent.sock: no such file)"; got != want {
		t.Errorf("describeRole: %q, want %q", got, want)
	}
	if got, want := (&failure{"takeover", "ha2 did not become active within 20s"}).Error(), "takeover: ha2 did not become active within 20s"; got != want {
		t.Errorf("failure: %q", got)
	}
}

// The demo's image turns nat.udp_tunnel on in both members' configs and
// changes nothing else: in particular not the per-node udp_tunnel keys,
// which the reference config sets too.
func TestDemoConfigs(t *testing.T) {
	ref, err := os.ReadFile(filepath.Join("..", "..", "..", "rootfs", "etc", "hagent.toml"))
	if err != nil {
		t.Fatal(err)
	}
	ga, gb, err := vm.GroupConfigs(string(ref))
	if err != nil {
		t.Fatal(err)
	}
	a, b, err := demoConfigs(string(ref))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct{ name, group, demo string }{{"a", ga, a}, {"b", gb, b}} {
		gl, dl := strings.Split(x.group, "\n"), strings.Split(x.demo, "\n")
		if len(gl) != len(dl) {
			t.Fatalf("%s: %d lines, the group config has %d", x.name, len(dl), len(gl))
		}
		var changed []string
		for i := range gl {
			if gl[i] != dl[i] {
				changed = append(changed, gl[i]+" → "+dl[i])
			}
		}
		if len(changed) != 1 || changed[0] != "udp_tunnel = false → udp_tunnel = true" {
			t.Errorf("%s: changed lines %q, want only [nat] udp_tunnel turned on", x.name, changed)
		}
		if _, nat, _ := strings.Cut(x.demo, "\n[nat]\n"); !strings.Contains(nat, "\nudp_tunnel = true\n") {
			t.Errorf("%s: [nat] has no udp_tunnel = true", x.name)
		}
	}
	if _, err := setKey("[nat]\nkeepalive_interval = \"110s\"\n[[node]]\nudp_tunnel = false\n", "nat", "udp_tunnel", "true"); err == nil {
		t.Error("setKey found udp_tunnel in [nat] where only [[node]] has it")
	}
}

// The NAT capture's check compares the outer header only: tshark decodes
// the tunnelled ICMP packet too and lists its addresses after the outer ones.
func TestParseNATFrame(t *testing.T) {
	out := "192.0.2.1,192.0.2.100\t434\t198.51.100.50,192.0.2.130\t42259\t52:54:00:4a:00:02\n"
	f, ok := parseNATFrame(out)
	want := natFrame{src: "192.0.2.1:434", dst: "198.51.100.50:42259", eth: "52:54:00:4a:00:02"}
	if !ok || f != want {
		t.Errorf("parseNATFrame: %+v %v, want %+v", f, ok, want)
	}
	if got := f.String(); got != "UDP 192.0.2.1:434 → 198.51.100.50:42259 from MAC 52:54:00:4a:00:02" {
		t.Errorf("String: %q", got)
	}
	if f, ok := parseNATFrame(""); ok || f.String() != "nothing" {
		t.Errorf("nothing captured: %+v %v %q", f, ok, f.String())
	}
}
