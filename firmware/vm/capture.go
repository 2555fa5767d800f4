package vm

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// CaptureTunnel listens with tshark in namespace ns for IP-in-IP packets
// while trigger runs (e.g. a ping to the home address from a correspondent),
// and reports whether one arrived carrying a packet for home to care-of
// address coa. It returns what tshark printed (outer,inner addresses).
func CaptureTunnel(ctx context.Context, ns, coa, home string, trigger func()) (bool, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "tshark", "-i", "eth0", "-n", "-l",
		"-c", "1", "-a", "duration:15", "-f", "ip proto 4 or ip proto 47",
		"-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		return false, "", fmt.Errorf("vm: tshark in %s: %w", ns, err)
	}
	// tshark prints "Capturing on" once its filter is in place.
	for i := 0; i < 100 && !strings.Contains(errb.String(), "Capturing on"); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	trigger()
	err := cmd.Wait()
	got := strings.TrimSpace(out.String())
	for _, l := range strings.Split(got, "\n") {
		f := strings.Split(l, "\t")
		if len(f) >= 2 && strings.Contains(f[1], coa) && strings.Contains(f[1], home) {
			return true, got, nil
		}
	}
	if err != nil && got == "" {
		return false, got, fmt.Errorf("vm: tshark in %s: %v: %s", ns, err, strings.TrimSpace(errb.String()))
	}
	return false, got, nil
}
