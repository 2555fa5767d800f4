package itest

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/lab"
)

// TestReloadRevokesNodeInGroup: a [[node]] removed by SIGHUP on the active
// member loses its binding on both members (a tombstone replicated like a
// de-registration), anti-entropy does not bring it back, the removed
// node's own de-registration is answered 129 and changes nothing, and the
// other node's binding stays.
func TestReloadRevokesNodeInGroup(t *testing.T) {
	l := lab.NewT(t)
	mn := l.HostT(t, "mn", "192.0.2.50/24")
	const mn1Node = `
[[node]]
name = "mn1"
home_address = "192.0.2.10"
spi = 256
key = "text:mn1-secret-0123456"
`
	// withMN1 adds the mn1 entry after the fleet pool.
	withMN1 := func(cfg string) string { return strings.Replace(cfg, "\n[group]", mn1Node+"\n[group]", 1) }
	var agents []*Agent
	for i := 1; i <= 2; i++ {
		h := l.HostT(t, fmt.Sprintf("ha%d", i), fmt.Sprintf("192.0.2.1%d/24", i))
		agents = append(agents, StartAgent(t, h, withMN1(groupConfig(i))))
	}
	eventually(t, 10*time.Second, "member 1 active, 2 synced", func() (bool, string) {
		r1, r2 := redundancy(t, agents[0]), redundancy(t, agents[1])
		return strings.HasPrefix(r1.Role, "active") && r2.Synced, r1.Role + " / " + r2.Role
	})
	common := []string{"-ha", "192.0.2.1", "-coa", "198.51.100.7"}
	mn1 := append([]string{"-home", "192.0.2.10", "-spi", "256", "-key", "mn1-secret-0123456"}, common...)
	if r, code := mnsimJSON(t, mn, append([]string{"register"}, mn1...)...); code != 0 || r.Code != 0 {
		t.Fatalf("register mn1: exit %d %+v", code, r)
	}
	if r, code := mnsimJSON(t, mn, append([]string{"register", "-home", "192.0.2.70", "-spi", "300", "-key", "fleet-secret-01234"}, common...)...); code != 0 || r.Code != 0 {
		t.Fatalf("register a fleet address: exit %d %+v", code, r)
	}
	state := func(a *Agent, home string) string {
		if row := findRow(allBindings(t, a), home); row != nil {
			return row.State
		}
		return "absent"
	}
	for i, a := range agents {
		eventually(t, 5*time.Second, fmt.Sprintf("member %d holds both bindings", i+1), func() (bool, string) {
			s10, s70 := state(a, "192.0.2.10"), state(a, "192.0.2.70")
			return s10 == "live" && s70 == "live", s10 + " " + s70
		})
	}

	// Remove mn1 on the active member only.
	a := agents[0]
	cfg := strings.ReplaceAll(groupConfig(1), "@SOCKET@", a.Socket)
	if err := os.WriteFile(a.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.Proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "member 1 reloaded", func() (bool, string) {
		out := a.Proc.Output()
		return strings.Contains(out, "configuration reloaded"), lastLine(out)
	})
	for i, m := range agents {
		eventually(t, 5*time.Second, fmt.Sprintf("member %d: mn1's binding revoked", i+1), func() (bool, string) {
			s10, s70 := state(m, "192.0.2.10"), state(m, "192.0.2.70")
			return s10 == "tombstone" && s70 == "live", s10 + " " + s70
		})
	}
	if n := strings.Count(a.Proc.Output(), "bindings revoked"); n != 1 {
		t.Errorf("member 1 logged %d revocation lines, want 1 (once per node)", n)
	}

	// The removed node de-registers: 129, nothing changes.
	if r, code := mnsimJSON(t, mn, append([]string{"deregister", "-no-verify"}, mn1...)...); code != 1 || r.Code != 129 {
		t.Fatalf("de-registration of the removed node: exit %d %+v, want 129", code, r)
	}
	// Several anti-entropy rounds (2 s) later the tombstone still stands on
	// both members and their tables agree.
	time.Sleep(5 * time.Second)
	k1 := tableKey(allBindings(t, agents[0]))
	eventually(t, 10*time.Second, "tables equal after anti-entropy", func() (bool, string) {
		k2 := tableKey(allBindings(t, agents[1]))
		return k1 == k2, k1 + "\n  vs\n" + k2
	})
	for i, m := range agents {
		if s := state(m, "192.0.2.10"); s != "tombstone" {
			t.Errorf("member %d: mn1's binding is %s after anti-entropy, want tombstone", i+1, s)
		}
	}
}
