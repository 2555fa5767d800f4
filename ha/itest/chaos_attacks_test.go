package itest

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/chaos/chaos"
	"github.com/hagent/hagent/tools/lab"
)

// TestChaosAttacks is a short chaos run with the group-protocol attacks on
// (tools/chaos/chaos/attack.go): a member restarted and every captured
// datagram of earlier sessions replayed to the group, and a key holder
// posing as 40 members that never acknowledge, on top of the usual faults;
// the invariant checker judges every heal. The seed comes from the clock
// and is printed; replay: go run ./tools/chaos -attacks -seed N -duration 30s.
func TestChaosAttacks(t *testing.T) {
	lab.Require(t)
	if _, err := exec.LookPath("nft"); err != nil {
		if os.Getenv("HAGENT_TEST_STRICT") == "1" {
			t.Fatal("HAGENT_TEST_STRICT=1 but nft (nftables) is missing: apt-get install nftables")
		}
		t.Skip("needs nft (nftables) for loss, partitions and duplication")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("chaos seed %d (replay: go run ./tools/chaos -attacks -seed %d -duration 30s)", seed, seed)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := chaos.Run(ctx, chaos.Options{
		Duration: 30 * time.Second, Seed: seed, Bins: Bins(t), LogDir: t.TempDir(), Attacks: true,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Out: t.Output(),
	})
	var v *chaos.Violation
	if errors.As(err, &v) {
		t.Fatalf("seed %d:\n%s", seed, v.Error())
	}
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
}
