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

// TestChaos is the 60-second version of `make soak` (issue 7): three agents,
// churning mobile nodes, a seeded fault schedule, and the invariant check
// after every heal. The seed comes from the clock and is printed; replay a
// failure with `go run ./tools/chaos -seed N -duration 60s`.
func TestChaos(t *testing.T) {
	lab.Require(t)
	requireNft(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("chaos seed %d (replay: go run ./tools/chaos -seed %d -duration 60s)", seed, seed)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	err := chaos.Run(ctx, chaos.Options{
		Duration: 60 * time.Second, Seed: seed, Bins: Bins(t), LogDir: t.TempDir(),
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
