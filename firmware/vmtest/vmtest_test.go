// Package vmtest boots the firmware image under QEMU (TCG) and checks the
// agent from its serial console: tier 3 of the test plan. The image is built
// by firmware/mkimage.sh, exactly as `make image` builds it, and cached by its
// inputs, so a second run only boots.
package vmtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/firmware/vm"
)

const (
	defaultBoard = "qemu-arm64"
	otherBoard   = "qemu-arm" // the class of router users flash
	readyLine    = `msg="hagent ready"`

	// Addresses of the reference config (rootfs/etc/hagent.toml).
	haAddr   = "192.0.2.2"
	haAddrB  = "192.0.2.3"
	vip      = "192.0.2.1"
	homeAddr = "192.0.2.10"
	spi      = "256"
	keyHex   = "00112233445566778899aabbccddeeff"
	// The mobile node's foreign network, on the same LAN for simplicity.
	haForeign  = "198.51.100.2/24"
	haForeignB = "198.51.100.3/24"
	coa        = "198.51.100.7"
	wrongCoA   = "198.51.100.8" // also in the node's namespace: a care-of it did not register
	cnAddr     = "192.0.2.100"
)

// need skips (or, with HAGENT_TEST_STRICT=1, fails) when a prerequisite is
// missing, and always skips under -short.
func need(t testing.TB, root bool, cmds ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("boots QEMU guests: not under -short")
	}
	var missing []string
	if root && os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces, taps)")
	}
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "needs " + strings.Join(missing, ", ") + " (make deps installs them)"
	if os.Getenv("HAGENT_TEST_STRICT") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func buildImage(t testing.TB, board string, o vm.BuildOptions) vm.Image {
	t.Helper()
	root, err := vm.Root()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	start := time.Now()
	o.Log = testWriter{t}
	img, err := vm.Build(ctx, root, board, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s: cpio %d KiB, xz %d KiB, %v", board, img.CPIOBytes/1024, img.XZBytes/1024, time.Since(start).Round(time.Millisecond))
	return img
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// consoleLog collects a guest's console; it is printed when the test fails.
type consoleLog struct {
	name string
	b    strings.Builder
}

func (c *consoleLog) Write(p []byte) (int, error) { return c.b.Write(p) }

func boot(t testing.TB, o vm.Options) *vm.Machine {
	t.Helper()
	log := &consoleLog{name: o.Name}
	o.Log = log
	m, err := vm.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: QEMU pid %d", o.Name, m.PID())
	t.Cleanup(func() {
		m.Kill() // by PID; a no-op after a clean power-off
		if t.Failed() || testing.Verbose() {
			t.Logf("---- console of %s ----\n%s", o.Name, log.b.String())
		}
	})
	return m
}

// waitReady waits for the agent's ready line.
func waitReady(t testing.TB, m *vm.Machine, name string) time.Duration {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := m.ExpectAny(ctx, readyLine); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	d := time.Since(start)
	t.Logf("%s: hagent ready %v after QEMU start", name, d.Round(time.Millisecond))
	return d
}

func run(t testing.TB, m *vm.Machine, cmd string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, status, err := m.Run(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if status != 0 {
		t.Fatalf("console: %s: exit %d\n%s", cmd, status, out)
	}
	t.Logf("console: %s\n%s", cmd, out)
	return out
}

func poweroff(t testing.TB, m *vm.Machine, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := m.Poweroff(ctx); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// singleGuest boots one guest on user-mode networking (no root needed),
// waits for the agent, asks it for its bindings and powers off.
func singleGuest(t *testing.T, board string) {
	need(t, false, "depmod", "xz")
	img := buildImage(t, board, vm.BuildOptions{})
	need(t, false, img.Board.QEMU)
	m := boot(t, vm.Options{
		Image: img, Name: board,
		Append: []string{"hagent.ip=eth0:" + haAddr + "/24"},
		NICs:   []vm.NIC{{Netdev: "user,net=192.0.2.0/24,host=192.0.2.254,dns=192.0.2.253,dhcpstart=192.0.2.200"}},
	})
	waitReady(t, m, board)
	run(t, m, "hactl show bindings")
	poweroff(t, m, board)
}

func TestBootDefaultBoard(t *testing.T) { singleGuest(t, defaultBoard) }

func TestBootOtherBoard(t *testing.T) { singleGuest(t, otherBoard) }

// lab is the networked topology: guests on a bridge, a mobile node and a
// correspondent in their own namespaces on the same LAN.
type lab struct {
	*vm.Lab
	mnsim, mnNS, cnNS string
}

func newLab(t testing.TB) *lab {
	t.Helper()
	ctx := context.Background()
	l, err := vm.NewLab(ctx, vm.LabPrefix())
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the guests' cleanups, so it runs after them.
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	mn, err := l.AddHost(ctx, "mn", []string{coa + "/24", wrongCoA + "/24"}, [][]string{{"192.0.2.0/24", "via", strings.Split(haForeign, "/")[0]}})
	if err != nil {
		t.Fatal(err)
	}
	cn, err := l.AddHost(ctx, "cn", []string{cnAddr + "/24"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := vm.Root()
	bin := filepath.Join(t.TempDir(), "mnsim")
	if out, err := exec.Command("go", "build", "-C", root, "-o", bin, "./tools/mnsim").CombinedOutput(); err != nil {
		t.Fatalf("building mnsim: %v\n%s", err, out)
	}
	return &lab{Lab: l, mnsim: bin, mnNS: mn, cnNS: cn}
}

func (l *lab) guest(t *testing.T, img vm.Image, name string, idx int, extra ...string) *vm.Machine {
	t.Helper()
	tap, err := l.AddTap(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	addr, foreign := haAddr, haForeign
	if idx == 1 {
		addr, foreign = haAddrB, haForeignB
	}
	return boot(t, vm.Options{
		Image: img, Name: name, Netns: l.Netns,
		Append: append([]string{"hagent.ip=eth0:" + addr + "/24,eth0:" + foreign, "hagent.hostname=" + name}, extra...),
		NICs:   []vm.NIC{vm.TapNIC(tap, fmt.Sprintf("52:54:00:4a:00:%02x", idx+1))},
	})
}

// register runs mnsim in the mobile node's namespace until the agent
// accepts: "hagent ready" comes before the agent is active (with VRRP it
// answers once it is master, a few advertisement intervals later).
func (l *lab) register(t *testing.T, ha string) string {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := vm.Exec(ctx, l.mnNS, l.mnsim, "register", "-ha", ha, "-home", homeAddr, "-coa", coa,
			"-spi", spi, "-key-hex", keyHex, "-timeout", "2s")
		cancel()
		if err == nil {
			t.Logf("mnsim register: %s", strings.TrimSpace(out))
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("mnsim register -ha %s: not accepted within 45s: %v\n%s", ha, err, out)
		}
		t.Logf("mnsim register: %s; retrying", strings.TrimSpace(out))
	}
}

func TestNetworkedRegistration(t *testing.T) {
	need(t, true, "ip", "depmod", "xz")
	img := buildImage(t, defaultBoard, vm.BuildOptions{})
	need(t, true, img.Board.QEMU)
	l := newLab(t)
	m := l.guest(t, img, "ha1", 0)
	waitReady(t, m, "ha1")
	l.register(t, haAddr)
	out := run(t, m, "hactl show bindings")
	if !strings.Contains(out, homeAddr) || !strings.Contains(out, coa) {
		t.Fatalf("hactl show bindings does not list %s -> %s:\n%s", homeAddr, coa, out)
	}
	poweroff(t, m, "ha1")
}

// TestTunnelToCareOf: correspondent -> home address arrives IP-in-IP at the
// care-of namespace.
func TestTunnelToCareOf(t *testing.T) {
	need(t, true, "ip", "depmod", "xz", "tshark", "ping")
	img := buildImage(t, defaultBoard, vm.BuildOptions{})
	l := newLab(t)
	m := l.guest(t, img, "ha1", 0)
	waitReady(t, m, "ha1")
	l.register(t, haAddr)
	capture(t, l.mnNS, ping(l))
	checkReverseAndDeregistration(t, l, m)
	checkGRE(t, l, m)
	poweroff(t, m, "ha1")
}

// capture runs fn (traffic from the correspondent) while tshark listens in
// the mobile node's namespace, and fails unless a tunnelled packet for the
// home address reached the care-of address.
func capture(t *testing.T, ns string, fn func()) {
	t.Helper()
	ok, out, err := vm.CaptureTunnel(context.Background(), ns, coa, homeAddr, fn)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("no tunnelled packet for %s at the care-of address %s; tshark saw:\n%s", homeAddr, coa, out)
	}
	tun, _ := vm.ParseTunnelled(out, coa, homeAddr)
	t.Logf("tunnelled: %s", tun)
}

func ping(l *lab) func() {
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, _ = vm.Exec(ctx, l.cnNS, "ping", "-c", "3", "-W", "1", homeAddr)
	}
}

// TestFailover: two guests, VRRP elects one, the registration replicates,
// the active guest is killed (QEMU by PID), the other takes over with the
// binding and keeps the tunnel working.
func TestFailover(t *testing.T) {
	need(t, true, "ip", "depmod", "xz", "tshark", "ping")
	img := twoGuestImage(t)
	l := newLab(t)
	a := l.guest(t, img, "ha1", 0)
	b := l.guest(t, img, "ha2", 1, "hagent.config=/etc/hagent-b.toml")
	waitReady(t, a, "ha1")
	waitReady(t, b, "ha2")
	checkVersion(t, a, img)
	// ha1 has the higher priority (config a: 200, b: 100) and preempts:
	// it ends up active with ha2 standby, as hactl (not a log line) says.
	waitRole(t, a, "ha1", "active", 30*time.Second)
	waitRole(t, b, "ha2", "standby", 30*time.Second)
	l.register(t, vip)
	for _, g := range []struct {
		m    *vm.Machine
		name string
	}{{a, "ha1"}, {b, "ha2"}} {
		waitBinding(t, g.m, g.name, 10*time.Second)
	}
	checkGroupAgrees(t, a, b, haAddr, "192.0.2.3", 60*time.Second)
	a.Kill()
	waitRole(t, b, "ha2", "active", 20*time.Second)
	waitBinding(t, b, "ha2", 0)
	capture(t, l.mnNS, ping(l))
	poweroff(t, b, "ha2")
}

// waitRole polls `hactl show redundancy` on m until its role starts with
// want.
func waitRole(t testing.TB, m *vm.Machine, name, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, _, err := m.Run(ctx, "hactl show redundancy")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		role := vm.Role(vm.StripLogs(out))
		if strings.HasPrefix(role, want) {
			t.Logf("%s: role %s", name, role)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: role should be %s within %v; hactl show redundancy says role %q:\n%s", name, want, within, role, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// waitBinding polls `hactl show bindings` on m until it lists the node's
// live binding to its care-of address.
func waitBinding(t *testing.T, m *vm.Machine, name string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, _, err := m.Run(ctx, "hactl show bindings "+homeAddr)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if line, f, ok := vm.BindingRow(out, homeAddr); ok && f[1] == coa && f[3] == "live" {
			t.Logf("%s: %s", name, line)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no live binding %s -> %s within %v:\n%s", name, homeAddr, coa, within, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// twoGuestImage: ha1 boots /etc/hagent.toml (VRRP priority 200), ha2
// /etc/hagent-b.toml (192.0.2.3, priority 100).
func twoGuestImage(t *testing.T) vm.Image {
	t.Helper()
	root, err := vm.Root()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	img, err := vm.BuildGroup(ctx, root, defaultBoard, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestBootEveryBoard boots the boards CI does not (mipsle, x86_64): set
// HAGENT_VMTEST_ALL=1 (about a minute per board on 2 cores, once built).
func TestBootEveryBoard(t *testing.T) {
	if os.Getenv("HAGENT_VMTEST_ALL") != "1" {
		t.Skip("set HAGENT_VMTEST_ALL=1 to boot every board")
	}
	for _, b := range []string{"qemu-mipsle", "qemu-x86_64"} {
		t.Run(b, func(t *testing.T) { singleGuest(t, b) })
	}
}
