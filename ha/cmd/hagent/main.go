// Command hagent is the Mobile IPv4 Home Agent daemon. main only wires:
// flags → config → agent → run until SIGTERM/SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/hagent/hagent/ha/internal/agent"
	"github.com/hagent/hagent/ha/internal/config"
	"github.com/hagent/hagent/ha/internal/version"
)

func main() {
	oneProc()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// oneProc runs Go code on one thread at a time unless the GOMAXPROCS
// environment variable says otherwise. The agent's work is a few owner
// loops that hand packets to each other; with more than one P, every
// hand-over wakes a second thread to look for work (and the runtime's
// monitor with it), which on an idle group multiplied the context switches
// per advertisement several times. A router has one or two cores, shared
// with the kernel's forwarding: the agent needs no parallelism of its own.
func oneProc() {
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(1)
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hagent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/hagent.toml", "configuration file")
	check := fs.Bool("check", false, "validate the configuration and exit (0 = valid)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	logLevel := fs.String("log-level", "", "override agent.log_level (debug, info, warn, error)")
	help := func(w io.Writer) {
		fs.SetOutput(w)
		fmt.Fprintln(w, "usage: hagent [-config FILE] [-check] [-log-level LEVEL] [-version]")
		fs.PrintDefaults()
	}
	fs.Usage = func() {} // Parse would print it to stderr even for -h; see below
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			// Help asked for is an answer, not an error: stdout, exit 0.
			help(stdout)
			return 0
		}
		help(stderr) // after Parse's own line naming the bad flag
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "hagent: unexpected argument %q (flags only; see -h)\n", fs.Arg(0))
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "hagent", version.String())
		return 0
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if *check {
		for _, w := range cfg.Warnings {
			fmt.Fprintln(stdout, "warning:", w)
		}
		entries := "entries"
		if len(cfg.Nodes) == 1 {
			entries = "entry"
		}
		fmt.Fprintf(stdout, "%s: ok (%d mobile node %s, capacity %d)\n", *path, len(cfg.Nodes), entries, cfg.Agent.Capacity)
		return 0
	}
	level := cfg.Agent.LogLevel
	if *logLevel != "" {
		if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
			fmt.Fprintf(stderr, "hagent: -log-level %q: use debug, info, warn or error\n", *logLevel)
			return 2
		}
	}
	var lv slog.LevelVar // SIGHUP may change it
	lv.Set(level)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: &lv}))

	for _, w := range cfg.Warnings {
		log.Warn("config warning", "warning", w)
	}
	a, err := agent.New(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	// SIGHUP re-reads the config file: an invalid file or a change that
	// needs a restart is refused with the reason and the old one stays.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			ncfg, err := loadConfig(*path)
			if err != nil {
				log.Error("reload refused: the new configuration is invalid; the running one stays", "err", err)
				continue
			}
			if err := a.Reload(ncfg); err != nil {
				log.Error("reload refused", "err", err)
				continue
			}
			for _, w := range ncfg.Warnings {
				log.Warn("config warning", "warning", w)
			}
			if *logLevel == "" {
				lv.Set(ncfg.Agent.LogLevel)
			}
		}
	}()
	if err := a.Run(ctx); err != nil {
		log.Error("stopped with error", "err", err)
		return 1
	}
	return 0
}

// loadConfig reads the configuration with the collector at a quarter of its
// usual headroom. Parsing makes mostly garbage (the TOML library's maps and
// key paths, up to about 25 MB for the largest file config.Load admits), and
// a reload runs beside a running agent: with the default headroom the peak
// would be about twice that. The setting is the process's, so the owner
// loop collects more often for the second or so a reload takes; that costs
// CPU, never a registration.
func loadConfig(path string) (*config.Config, error) {
	defer debug.SetGCPercent(debug.SetGCPercent(25))
	return config.Load(path)
}
