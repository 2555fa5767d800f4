package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/hagent/hagent/tools/lab/reap"
)

// Lab is a test-made LAN: a network namespace holding a bridge (multicast
// snooping off, so VRRP and group multicast reach every port), the guests'
// tap devices, and veth links to host namespaces (mobile node,
// correspondent). Close removes everything it made, whatever failed before.
type Lab struct {
	Prefix string // unique per lab: names of namespaces and taps start with it
	Netns  string // the bridge's namespace
	spaces []string
	n      int
}

// NewLab creates the bridge namespace. prefix must be short (interface names
// are at most 15 bytes) and unique on the machine; LabPrefix makes one.
// First it removes the namespaces labs of ended processes left behind (a
// killed test or demo: see LabPrefix).
func NewLab(ctx context.Context, prefix string) (*Lab, error) {
	if _, err := reap.Netns(labKind); err != nil {
		fmt.Fprintln(os.Stderr, "vm: removing the namespaces of ended runs:", err)
	}
	l := &Lab{Prefix: prefix, Netns: prefix + "-lan"}
	if err := l.addNetns(ctx, l.Netns); err != nil {
		return nil, err
	}
	if err := runAll(ctx,
		[]string{"ip", "-n", l.Netns, "link", "set", "lo", "up"},
		[]string{"ip", "-n", l.Netns, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0"},
		[]string{"ip", "-n", l.Netns, "link", "set", "br0", "up"},
	); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// labKind starts LabPrefix.
const labKind = "hf"

// LabPrefix is a short name unique to this process: "hfp" + pid
// (reap.Tag), at most 10 bytes. The PID lets NewLab tell a dead run's
// namespaces from a live one's.
func LabPrefix() string { return reap.Tag(labKind) }

func (l *Lab) addNetns(ctx context.Context, name string) error {
	if err := run(ctx, "ip", "netns", "add", name); err != nil {
		return err
	}
	l.spaces = append(l.spaces, name)
	return nil
}

// AddTap makes a tap device on the bridge for one guest NIC and returns its
// name; start QEMU with Options.Netns = l.Netns and TapNIC(name).
func (l *Lab) AddTap(ctx context.Context) (string, error) {
	l.n++
	name := l.Prefix + "t" + strconv.Itoa(l.n)
	return name, runAll(ctx,
		[]string{"ip", "-n", l.Netns, "tuntap", "add", "dev", name, "mode", "tap"},
		[]string{"ip", "-n", l.Netns, "link", "set", name, "master", "br0", "up"},
	)
}

// TapNIC is the NIC of a tap made by AddTap.
func TapNIC(tap, mac string) NIC {
	return NIC{Netdev: "tap,ifname=" + tap + ",script=no,downscript=no", MAC: mac}
}

// AddHost makes a namespace named l.Prefix+"-"+name with eth0 on the
// bridge, the given addresses (CIDR) and routes (`ip route add` arguments),
// and returns the namespace's name.
func (l *Lab) AddHost(ctx context.Context, name string, addrs []string, routes [][]string) (string, error) {
	ns := l.Prefix + "-" + name
	if err := l.addNetns(ctx, ns); err != nil {
		return "", err
	}
	l.n++
	peer := l.Prefix + "v" + strconv.Itoa(l.n)
	cmds := [][]string{
		{"ip", "-n", l.Netns, "link", "add", peer, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"ip", "-n", l.Netns, "link", "set", peer, "master", "br0", "up"},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
	}
	for _, a := range addrs {
		cmds = append(cmds, []string{"ip", "-n", ns, "addr", "add", a, "dev", "eth0"})
	}
	for _, r := range routes {
		cmds = append(cmds, append([]string{"ip", "-n", ns, "route", "add"}, r...))
	}
	return ns, runAll(ctx, cmds...)
}

// Exec runs a command inside namespace ns and returns its combined output.
func Exec(ctx context.Context, ns string, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w", name, strings.Join(args, " "), ns, err)
	}
	return string(out), nil
}

// Close deletes the lab's namespaces (and so its bridge, taps and veths).
// Stop the guests first: a tap held by QEMU dies with the namespace anyway,
// but QEMU would then run on without a network.
func (l *Lab) Close() error {
	var errs []string
	for i := len(l.spaces) - 1; i >= 0; i-- {
		if out, err := exec.Command("ip", "netns", "del", l.spaces[i]).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Sprintf("ip netns del %s: %v %s", l.spaces[i], err, strings.TrimSpace(string(out))))
		}
	}
	l.spaces = nil
	if len(errs) > 0 {
		return fmt.Errorf("vm: lab cleanup: %s", strings.Join(errs, "; "))
	}
	return nil
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("vm: %s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func runAll(ctx context.Context, cmds ...[]string) error {
	for _, c := range cmds {
		if err := run(ctx, c[0], c[1:]...); err != nil {
			return err
		}
	}
	return nil
}
