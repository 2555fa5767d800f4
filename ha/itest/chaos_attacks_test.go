package itest

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/chaos/chaos"
	"github.com/hagent/hagent/tools/lab"
)

// TestChaosAttacks is a short chaos run with the group-protocol attacks on
// (tools/chaos/chaos/attack.go): a member restarted and every captured
// datagram of earlier sessions replayed to the group (round 1), a key
// holder posing as 40 members that never acknowledge (round 2), on top of
// the usual faults of seed 3; the invariant checker judges every heal.
// Same run by hand: go run ./tools/chaos -attacks -seed 3 -rounds 2.
func TestChaosAttacks(t *testing.T) {
	lab.Require(t)
	requireNft(t)
	const seed = 3 // round 1: restart + old-session replay, round 2: fake peers
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	err := chaos.Run(ctx, chaos.Options{
		Rounds: 2, Seed: seed, Bins: Bins(t), LogDir: t.TempDir(), Attacks: true,
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
