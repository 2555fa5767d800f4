package ci

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func plan(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"deps.sh"}, args...)...)
	cmd.Env = append(os.Environ(), "HAGENT_DEPS_PLAN=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("deps.sh %v: %v", args, err)
	}
	return strings.Fields(string(out))
}

// make demo installs what the demo needs and nothing of the other tiers:
// no test peers (keepalived, frr: daemons), no other architecture's QEMU.
// make test installs every tier.
func TestDepsPerTarget(t *testing.T) {
	demo := plan(t, "demo")
	for _, p := range []string{"qemu-system-arm", "tshark", "kmod", "cpio", "xz-utils", "iproute2", "nftables"} {
		if !slices.Contains(demo, p) {
			t.Errorf("make demo would not install %s: %v", p, demo)
		}
	}
	for _, p := range []string{"keepalived", "frr", "qemu-system-mips", "qemu-system-x86", "qemu-user-static"} {
		if slices.Contains(demo, p) {
			t.Errorf("make demo would install %s, which only make test needs: %v", p, demo)
		}
	}
	if x86 := plan(t, "demo", "qemu-x86_64"); !slices.Contains(x86, "qemu-system-x86") || slices.Contains(x86, "qemu-system-arm") {
		t.Errorf("make demo BOARD=qemu-x86_64 plans %v", x86)
	}
	all := plan(t, "test")
	for _, p := range append(demo, "keepalived", "frr", "qemu-system-mips", "qemu-system-x86", "qemu-user-static", "nftables") {
		if !slices.Contains(all, p) {
			t.Errorf("make test would not install %s: %v", p, all)
		}
	}
}
