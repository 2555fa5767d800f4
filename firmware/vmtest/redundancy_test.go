package vmtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/firmware/vm"
)

// redundancyView is the part of `hactl -json show redundancy` the group
// check compares (the console's JSON field names are stable).
type redundancyView struct {
	Redundancy struct {
		Role     string `json:"role"`
		Election struct {
			State       string `json:"state"`
			Master      string `json:"master_address"`
			MasterLocal bool   `json:"master_is_local"`
			Priority    int    `json:"priority"`
			MasterPrio  int    `json:"master_priority"`
		} `json:"election"`
		Peers []struct {
			Address     string `json:"address"`
			State       string `json:"state"`
			Acking      bool   `json:"acking"`
			TablesEqual bool   `json:"tables_equal"`
		} `json:"peers"`
	} `json:"redundancy"`
}

func showRedundancy(t *testing.T, m *vm.Machine) (redundancyView, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _, err := m.Run(ctx, "hactl -json show redundancy")
	if err != nil {
		t.Fatal(err)
	}
	var v redundancyView
	// Log lines on the shared console are whole lines: drop them first.
	if err := json.Unmarshal([]byte(vm.StripLogs(out)), &v); err != nil {
		return v, fmt.Sprintf("not JSON (%v): %s", err, out)
	}
	return v, ""
}

// checkGroupAgrees reads `show redundancy` on both guests until they tell
// the same story: one master, the active one, named alike by both (with its
// priority), and each listing the other as an up peer whose table equals
// its own (the digest exchange runs every anti-entropy period).
func checkGroupAgrees(t *testing.T, active, standby *vm.Machine, activeAddr, standbyAddr string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		a, errA := showRedundancy(t, active)
		b, errB := showRedundancy(t, standby)
		why := errA + errB
		ra, rb := a.Redundancy, b.Redundancy
		peer := func(v redundancyView, addr string) string {
			for _, p := range v.Redundancy.Peers {
				if p.Address == addr {
					if p.State != "up" || !p.TablesEqual {
						return fmt.Sprintf("peer %s %s, tables equal %v", addr, p.State, p.TablesEqual)
					}
					return ""
				}
			}
			return "no peer " + addr
		}
		switch {
		case why != "":
		case ra.Role != "active" || rb.Role != "standby":
			why = fmt.Sprintf("roles %s / %s", ra.Role, rb.Role)
		case ra.Election.Master != activeAddr || !ra.Election.MasterLocal:
			why = fmt.Sprintf("the active one names master %s (local %v)", ra.Election.Master, ra.Election.MasterLocal)
		case rb.Election.Master != activeAddr || rb.Election.MasterLocal:
			why = fmt.Sprintf("the standby names master %s (local %v)", rb.Election.Master, rb.Election.MasterLocal)
		case rb.Election.MasterPrio != ra.Election.Priority:
			why = fmt.Sprintf("the standby hears master priority %d, the master has %d", rb.Election.MasterPrio, ra.Election.Priority)
		default:
			why = peer(a, standbyAddr) + peer(b, activeAddr)
		}
		if why == "" {
			t.Logf("show redundancy agrees: master %s priority %d; each lists the other up with equal tables",
				activeAddr, ra.Election.Priority)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("show redundancy on the two guests disagrees after %v: %s", within, why)
		}
		time.Sleep(2 * time.Second)
	}
}

// checkVersion: the guest reports the version the image was stamped with
// (mkimage records it in sizes), never "dev".
func checkVersion(t *testing.T, m *vm.Machine, img vm.Image) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(img.Dir, "sizes"))
	if err != nil {
		t.Fatal(err)
	}
	var want string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VERSION="); ok {
			want = v
		}
	}
	got := vm.Field(vm.StripLogs(run(t, m, "hactl show version")), "version")
	if want == "" || got != want || got == "dev" {
		t.Fatalf("hactl show version in the guest says version %q, the image was stamped %q", got, want)
	}
}
