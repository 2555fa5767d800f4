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

// TestGroupKeyRotation: the group key changes by SIGHUP in three steps
// without a moment where the members cannot understand each other, and
// registrations keep replicating.
func TestGroupKeyRotation(t *testing.T) {
	l := lab.NewT(t)
	mn := l.HostT(t, "mn", "192.0.2.50/24")
	const oldKey = `key = "text:group-secret-for-tests-0123"`
	const newKeys = `key = "text:the-rotated-group-secret-4567"
key_id = 2`
	const acceptOld = `
[[group.accept_keys]]
id = 1
key = "text:group-secret-for-tests-0123"
`
	const acceptNew = `
[[group.accept_keys]]
id = 2
key = "text:the-rotated-group-secret-4567"
`
	// withGroupExtra appends [[group.accept_keys]] right after the [group] table.
	withGroupExtra := func(cfg, key, extra string) string {
		cfg = strings.Replace(cfg, oldKey, key, 1)
		return strings.Replace(cfg, "\n[vrrp]", extra+"\n[vrrp]", 1)
	}
	var agents []*Agent
	for i := 1; i <= 2; i++ {
		h := l.HostT(t, fmt.Sprintf("ha%d", i), fmt.Sprintf("192.0.2.1%d/24", i))
		agents = append(agents, StartAgent(t, h, groupConfig(i)))
	}
	eventually(t, 10*time.Second, "member 1 active, 2 synced", func() (bool, string) {
		r1, r2 := redundancy(t, agents[0]), redundancy(t, agents[1])
		return strings.HasPrefix(r1.Role, "active") && r2.Synced, r1.Role + " / " + r2.Role
	})
	reload := func(i int, cfg string) {
		t.Helper()
		a := agents[i]
		cfg = strings.ReplaceAll(cfg, "@SOCKET@", a.Socket)
		if err := os.WriteFile(a.Config, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		before := strings.Count(a.Proc.Output(), "configuration reloaded")
		if err := a.Proc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, fmt.Sprintf("member %d reloaded", i+1), func() (bool, string) {
			out := a.Proc.Output()
			return strings.Count(out, "configuration reloaded") > before, lastLine(out)
		})
	}
	home := 65
	registerAndCheck := func(step string) {
		t.Helper()
		addr := fmt.Sprintf("192.0.2.%d", home)
		home++
		r, code := mnsimJSON(t, mn, "register", "-ha", "192.0.2.1", "-home", addr, "-coa", "198.51.100.7",
			"-spi", "300", "-key", "fleet-secret-01234", "-retries", "2")
		if code != 0 || r.Code != 0 {
			t.Fatalf("%s: register %s: exit %d %+v", step, addr, code, r)
		}
		eventually(t, 5*time.Second, step+": binding replicated to member 2", func() (bool, string) {
			return findRow(bindings(t, agents[1]), addr) != nil, "missing"
		})
	}
	registerAndCheck("before rotation")
	// 1. Everyone accepts the new key.
	for i := range agents {
		reload(i, withGroupExtra(groupConfig(i+1), oldKey, acceptNew))
	}
	registerAndCheck("step 1")
	// 2. Member 1 sends with the new key while member 2 still sends with the old.
	reload(0, withGroupExtra(groupConfig(1), newKeys, acceptOld))
	registerAndCheck("step 2")
	// 3. Member 2 too; then the old key goes.
	reload(1, withGroupExtra(groupConfig(2), newKeys, acceptOld))
	for i := range agents {
		reload(i, withGroupExtra(groupConfig(i+1), newKeys, ""))
	}
	registerAndCheck("after rotation")
	for i, a := range agents {
		if got := redundancy(t, a).Replication.SendKeyID; got != 2 {
			t.Errorf("member %d sends with key id %d after the rotation, want 2", i+1, got)
		}
		for _, c := range redundancy(t, a).Flat() {
			if (c.Key == "security.bad_auth" || c.Key == "security.unknown_key" || c.Key == "security.violations") && c.Value != 0 {
				t.Errorf("member %d: %s = %d during a clean rotation", i+1, c.Name, c.Value)
			}
		}
	}
	// A clean stop tells the group (Leave): member 1 marks member 2 down at
	// once, not after the 35 s dead interval.
	if err := agents[1].Proc.Stop(5 * time.Second); err != nil {
		t.Fatalf("member 2 did not stop cleanly: %v", err)
	}
	eventually(t, 3*time.Second, "member 1 sees member 2 leave", func() (bool, string) {
		r := redundancy(t, agents[0])
		for _, p := range r.Peers {
			if p.Address == "192.0.2.12" {
				return strings.HasPrefix(p.State, "down"), p.State
			}
		}
		return false, "member 2 not listed"
	})
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}
