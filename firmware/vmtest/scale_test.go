package vmtest

import (
	"cmp"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/firmware/vm"
)

// TestScale100kInGuest is a measurement, not a CI test (HAGENT_VMTEST_SCALE=1,
// several minutes under TCG): the reference config widened to 100,000
// bindings of one pool, the kernel datapath on (proxy ARP by route), mnsim
// registering them from the care-of namespace; it logs what `hactl show
// stats` says of memory and of the periodic check, after one has run at
// that size. docs/datapath.md quotes the figures. HAGENT_VMTEST_SCALE_MEMLIMIT=N
// sets agent.memory_limit_mib.
func TestScale100kInGuest(t *testing.T) {
	if os.Getenv("HAGENT_VMTEST_SCALE") != "1" {
		t.Skip("set HAGENT_VMTEST_SCALE=1 to measure 100,000 bindings in the arm64 guest")
	}
	need(t, true, "ip", "depmod", "xz")
	root, err := vm.Root()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := os.ReadFile(filepath.Join(root, "rootfs/etc/hagent.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(ref)
	for _, r := range [][2]string{
		{`home_network = "192.0.2.0/24"`, `home_network = "192.0.0.0/14"`},
		{"capacity = 10000", "capacity = 110000"},
		{`proxy_arp_mode = "entries"`, `proxy_arp_mode = "interface"`},
		{"memory_limit_mib = 0", "memory_limit_mib = " + cmp.Or(os.Getenv("HAGENT_VMTEST_SCALE_MEMLIMIT"), "0")},
	} {
		if !strings.Contains(cfg, r[0]) {
			t.Fatalf("the reference config has no %q any more: update this test", r[0])
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	cfg += "\n[[node]]\nname = \"scale\"\npool = \"192.2.0.0/15\"\nspi = 700\nkey = \"text:scale-fleet-secret-0123\"\n"
	path := filepath.Join(t.TempDir(), "hagent.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	img := buildImage(t, defaultBoard, vm.BuildOptions{Config: path, OutDir: filepath.Join(t.TempDir(), "fw")})
	l := newLab(t)
	m := l.guest(t, img, "ha1", 0)
	waitReady(t, m, "ha1")
	l.register(t, haAddr) // active, with the reference node

	const n = 100_000
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	out, err := vm.Exec(ctx, l.mnNS, l.mnsim, "load", "-ha", haAddr, "-base", "192.2.0.1", "-n", "100000",
		"-spi", "700", "-key", "scale-fleet-secret-0123", "-coa", coa, "-lifetime", "1800",
		"-rate", "2500", "-duration", "170s", "-timeout", "3s") // TCG: about 750 registrations/s get through
	cancel()
	t.Logf("mnsim load (%v): %v\n%s", time.Since(start).Round(time.Second), err, out)
	live := counter(run(t, m, "hactl show stats"), "live")
	t.Logf("live bindings %d after %v", live, time.Since(start).Round(time.Second))
	if live < n {
		t.Errorf("%d live bindings, want %d: the load ended early (see mnsim's figures above)", live, n)
	}
	// One periodic check (30 s in the reference config) at this size.
	first := counter(run(t, m, "hactl show stats"), "periodic checks done")
	deadline := time.Now().Add(90 * time.Second)
	for counter(run(t, m, "hactl show stats"), "periodic checks done") <= first && time.Now().Before(deadline) {
		time.Sleep(5 * time.Second)
	}
	run(t, m, "hactl show stats")
	run(t, m, "cat /proc/meminfo")
	poweroff(t, m, "ha1")
}
