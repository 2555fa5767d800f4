package initd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// NetPlan is the list of `ip` invocations that bring the network up; it is
// computed purely (PlanNet) and then run (RunNet), so the plan is testable and
// an operator sees on the console exactly what was done.
type NetPlan [][]string

// PlanNet brings every board interface up, then assigns the command line's
// addresses (interfaces named there but not by the board come up too), then
// the default route.
func PlanNet(boardIfaces []string, b Boot) NetPlan {
	var p NetPlan
	up := slices.Clone(boardIfaces)
	for _, a := range b.Addrs {
		if !slices.Contains(up, a.Iface) {
			up = append(up, a.Iface)
		}
	}
	for _, ifc := range up {
		p = append(p, []string{"link", "set", "dev", ifc, "up"})
	}
	for _, a := range b.Addrs {
		p = append(p, []string{"addr", "add", a.Prefix.String(), "dev", a.Iface})
	}
	if b.Gateway.IsValid() {
		p = append(p, []string{"route", "add", "default", "via", b.Gateway.String()})
	}
	return p
}

// WaitIfaces waits until each named interface exists under sysfs (the NIC
// driver is a module loaded just before us and binds asynchronously), and
// returns the ones still missing at the deadline.
func WaitIfaces(ctx context.Context, sysClassNet string, ifaces []string, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		for _, ifc := range ifaces {
			if _, err := os.Stat(filepath.Join(sysClassNet, ifc)); err != nil {
				missing = append(missing, ifc)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing
		}
		select {
		case <-ctx.Done():
			return missing
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// RunNet runs the plan with the ip command at ipPath. A failing step is
// logged and the rest still runs: a router with one bad address should still
// come up reachable on the others.
func RunNet(ctx context.Context, log *slog.Logger, ipPath string, p NetPlan) error {
	var failed []string
	for _, args := range p {
		out, err := exec.CommandContext(ctx, ipPath, args...).CombinedOutput()
		line := "ip " + strings.Join(args, " ")
		if err != nil {
			log.Error("hainit: network step failed", "cmd", line, "err", err, "out", strings.TrimSpace(string(out)))
			failed = append(failed, line)
			continue
		}
		log.Info("hainit: network", "cmd", line)
	}
	if len(failed) > 0 {
		return fmt.Errorf("initd: %d network step(s) failed: %s", len(failed), strings.Join(failed, "; "))
	}
	return nil
}
