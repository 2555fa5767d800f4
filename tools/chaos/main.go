// Command chaos runs hagent's chaos test (issue 7): three agents and a
// mobile-node host in network namespaces, registrations churning through
// the virtual address, a seeded schedule of faults, and an invariant check
// after every heal. It needs root. A failing run prints its seed; the same
// seed replays the same fault schedule.
//
//	go run ./tools/chaos -duration 10m [-seed N] [-nodes 300] [-rounds N] [-isolated-crash] [-require-replication] [-attacks]
//	go run ./tools/chaos -mass 10000 [-loss-every 20] [-cut 8s] [-forge] [-seed N]
//
// -mass runs the mass de-registration scenario instead of fault rounds
// (chaos/mass.go): N bindings, every node de-registering while ha3 misses
// every k-th group datagram and/or is cut off, then forged updates.
//
// Exit status: 0 every check passed, 1 an invariant was violated, 2 the lab
// could not be run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hagent/hagent/tools/chaos/chaos"
)

func main() { os.Exit(run()) }

func run() int {
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	duration := fs.Duration("duration", time.Minute, "how long to inject faults (a round under way is finished)")
	seed := fs.Uint64("seed", 0, "fault schedule seed; 0: from the clock (printed)")
	nodes := fs.Int("nodes", 300, "mobile nodes (home addresses from the pool 10.1.4.0/22)")
	converge := fs.Duration("converge", 60*time.Second, "how long a heal may take to converge")
	logDir := fs.String("logdir", os.TempDir(), "where the agents' logs go on a violation")
	rounds := fs.Int("rounds", 0, "stop after this many rounds instead of -duration (replays a failing round)")
	verbose := fs.Bool("v", false, "log the tool's own debug lines")
	isolated := fs.Bool("isolated-crash", false, "also kill an agent while both others are cut off; implies -require-replication (a member serving alone loses its last acceptances with it: issue 7)")
	require := fs.Bool("require-replication", false, "run the agents with group.require_replication = true")
	mass := fs.Int("mass", 0, "run the mass de-registration scenario with this many bindings instead of fault rounds")
	lossEvery := fs.Int("loss-every", 20, "-mass: drop every k-th group datagram to ha3 while the nodes de-register (20: 5 %; 0: none)")
	cut := fs.Duration("cut", 0, "-mass: cut ha3 off for this long from the first de-registration")
	bins := fs.String("bins", "", "directory holding a built hagent (default: build it)")
	forge := fs.Bool("forge", false, "-mass: then send Binding Updates forged with the group key for addresses no member may bind")
	attacks := fs.Bool("attacks", false, "add attacks on the group protocol from a LAN host: old-session replay after a restart, fake peers with the key")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	fmt.Printf("chaos: seed %d\n", *seed)

	// SIGINT/SIGTERM cancel the run; Run removes the lab before returning.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *mass > 0 {
		res, err := chaos.RunMass(ctx, chaos.MassOptions{Seed: *seed, N: *mass, LossEvery: *lossEvery, Cut: *cut, Forge: *forge,
			Converge: *converge, LogDir: *logDir, Logger: log, Out: os.Stdout, Bins: *bins})
		fmt.Printf("chaos mass: %s\n", res)
		var v *chaos.Violation
		switch {
		case err == nil:
			return 0
		case errors.As(err, &v):
			fmt.Fprint(os.Stderr, v.Error())
			return 1
		default:
			fmt.Fprintf(os.Stderr, "chaos: %v (seed %d)\n", err, *seed)
			return 2
		}
	}
	err := chaos.Run(ctx, chaos.Options{Duration: *duration, Seed: *seed, Nodes: *nodes, Converge: *converge,
		LogDir: *logDir, Logger: log, Out: os.Stdout, Bins: *bins, IsolatedCrash: *isolated, RequireReplication: *require, Rounds: *rounds, Attacks: *attacks})
	var v *chaos.Violation
	switch {
	case err == nil:
		return 0
	case errors.As(err, &v):
		fmt.Fprint(os.Stderr, v.Error())
		return 1
	case ctx.Err() != nil:
		fmt.Fprintf(os.Stderr, "chaos: interrupted (seed %d); lab removed\n", *seed)
		return 2
	default:
		fmt.Fprintf(os.Stderr, "chaos: %v (seed %d)\n", err, *seed)
		return 2
	}
}
