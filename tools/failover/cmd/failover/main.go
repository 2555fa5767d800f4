// Command failover measures redundancy-group failover, hagent and
// keepalived side by side, in network namespaces it creates and removes.
// Needs root. See package github.com/hagent/hagent/tools/failover.
//
//	go run ./tools/failover/cmd/failover [-trials 7] [-intervals 100ms,1s] [-kinds kill+linkdown,linkdown,sigterm] [-heartbeat 100ms] [-json]
//	go run ./tools/failover/cmd/failover -idle 30s [-intervals 100ms] [-heartbeat 100ms] [-json]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hagent/hagent/tools/failover"
	"github.com/hagent/hagent/tools/lab/reap"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("failover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	trials := fs.Int("trials", 7, "trials per scenario")
	intervals := fs.String("intervals", "100ms,1s", "VRRP advertisement intervals, comma-separated")
	kinds := fs.String("kinds", "kill+linkdown,linkdown,sigterm", "faults: kill+linkdown, linkdown, sigterm")
	nodes := fs.Int("nodes", 50, "mobile nodes renewing on the virtual address (≤ 120)")
	impls := fs.String("impl", "hagent,keepalived", "what to measure: hagent, keepalived")
	bins := fs.String("bin", "", "directory holding the hagent binary (default: build it from the module in the current directory)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	jsonFile := fs.String("o", "", "also write the JSON report to this file")
	verbose := fs.Bool("v", false, "log every trial to stderr")
	heartbeat := fs.Duration("heartbeat", 0, "hagent's group.heartbeat_interval (0: hagent's default; negative: heartbeat off)")
	idle := fs.Duration("idle", 0, "instead of failovers, measure an idle pair of each (first -intervals value) for this long: CPU, bytes sent, context switches")
	windows := fs.Int("windows", 1, "with -idle: measure this many consecutive spans of -idle each, hagent's CPU as a multiple of keepalived's in each and their median")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *windows < 1 {
		fmt.Fprintf(stderr, "failover: -windows %d: want at least 1\n", *windows)
		return 2
	}
	cfg := failover.Config{Trials: *trials, Nodes: *nodes, Bins: *bins, Heartbeat: *heartbeat}
	for _, s := range strings.Split(*intervals, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			fmt.Fprintf(stderr, "failover: -intervals %q: %v\n", s, err)
			return 2
		}
		cfg.Intervals = append(cfg.Intervals, d)
	}
	for _, s := range strings.Split(*kinds, ",") {
		k := failover.Kind(strings.TrimSpace(s))
		if !contains(failover.Kinds, k) {
			fmt.Fprintf(stderr, "failover: -kinds: unknown fault %q (want kill+linkdown, linkdown, sigterm)\n", s)
			return 2
		}
		cfg.Kinds = append(cfg.Kinds, k)
	}
	for _, s := range strings.Split(*impls, ",") {
		switch strings.TrimSpace(s) {
		case "hagent":
			cfg.Hagent = true
		case "keepalived":
			cfg.Keepalived = true
		default:
			fmt.Fprintf(stderr, "failover: -impl: unknown %q (want hagent, keepalived)\n", s)
			return 2
		}
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "failover: needs root (it creates network namespaces)")
		return 2
	}
	if cfg.Hagent && cfg.Bins == "" {
		dir, err := reap.TempDir("failover-bin") // a killed run's goes with the next run
		if err != nil {
			fmt.Fprintln(stderr, "failover:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		cmd := exec.Command("go", "build", "-o", dir+"/", "./ha/cmd/hagent")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(stderr, "failover: building hagent (run from the hagent module, or pass -bin): %v\n%s", err, out)
			return 1
		}
		cfg.Bins = dir
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *idle > 0 {
		return runIdle(ctx, failover.IdleConfig{Bins: cfg.Bins, Interval: cfg.Intervals[0], Duration: *idle,
			Heartbeat: *heartbeat, Keepalived: cfg.Keepalived, Windows: *windows}, *asJSON, *jsonFile, stdout, stderr)
	}
	rep, err := failover.Run(ctx, cfg)
	if rep != nil {
		rep.Summary = failover.Summarise(rep.Trials)
		if *jsonFile != "" {
			b, _ := json.MarshalIndent(rep, "", "  ")
			if err := os.WriteFile(*jsonFile, append(b, '\n'), 0o644); err != nil {
				fmt.Fprintln(stderr, "failover:", err)
			}
		}
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(rep)
		} else {
			rep.Table(stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, t := range rep.Trials {
		if !t.OK() {
			return 1
		}
	}
	return 0
}

func contains(ks []failover.Kind, k failover.Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

func runIdle(ctx context.Context, cfg failover.IdleConfig, asJSON bool, jsonFile string, stdout, stderr io.Writer) int {
	rep, err := failover.Idle(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if jsonFile != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(jsonFile, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(stderr, "failover:", err)
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		rep.Table(stdout)
	}
	return 0
}
