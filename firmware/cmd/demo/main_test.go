package main

import (
	"strings"
	"testing"
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
