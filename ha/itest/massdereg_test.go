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

// TestMassDeregistration: three members hold 10,000 bindings (capacity
// 10,000, tombstone capacity 2,500), then every node de-registers while ha3
// misses every 20th group datagram sent to it and is cut off for 22 s
// (longer than the 15.75 s retransmission budget: only anti-entropy can
// repair it); afterwards Binding Updates
// forged with the group key for 8.8.8.8, the virtual address, an address no
// pool holds and the members' addresses. The chaos tool's model judges: no
// de-registered binding live again, none lost, every table equal, no
// tombstone evicted early, no forged record stored. Before tombstones kept
// their slots, 7,500 bindings came back (7,501 tombstones evicted on two
// members, tables unequal); before records were admitted, all 6 forged
// ones were stored on every member.
func TestMassDeregistration(t *testing.T) {
	lab.Require(t)
	requireNft(t)
	const seed = 2
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := chaos.RunMass(ctx, chaos.MassOptions{
		Seed: seed, N: 10000, LossEvery: 20, Cut: 22 * time.Second, Forge: true, Bins: Bins(t), LogDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Out: t.Output(),
	})
	t.Logf("figures: %s", res)
	var v *chaos.Violation
	if errors.As(err, &v) {
		t.Fatalf("replay: go run ./tools/chaos -mass 10000 -loss-every 20 -cut 22s -forge -seed %d\n%s", seed, v.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Resurrected != 0 || res.Lost != 0 || res.Unequal || res.Planted != 0 {
		t.Fatalf("figures: %s", res)
	}
}
