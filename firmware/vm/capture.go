package vm

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/hagent/hagent/tools/lab/reap"
)

// Tunnelled is one captured tunnel packet: the outer header (Home Agent to
// care-of address) and the packet it carries.
type Tunnelled struct {
	OuterSrc, OuterDst string
	InnerSrc, InnerDst string
	Proto              string // outer IP protocol: 4 IP-in-IP, 47 GRE, 55 minimal encapsulation
	// EthSrc is the Ethernet source of the tunnelled frame: the MAC of the
	// Home Agent that tunnelled it ("" if tshark did not print it).
	EthSrc string
}

// String reads "outer 192.0.2.1 → 198.51.100.7 proto 4 (IP-in-IP), inner
// 192.0.2.100 → 192.0.2.10".
func (t Tunnelled) String() string {
	name := map[string]string{"4": "IP-in-IP", "47": "GRE", "55": "minimal encapsulation"}[t.Proto]
	if name != "" {
		name = " (" + name + ")"
	}
	return fmt.Sprintf("outer %s → %s proto %s%s, inner %s → %s", t.OuterSrc, t.OuterDst, t.Proto, name, t.InnerSrc, t.InnerDst)
}

// ParseTunnelled finds, in what CaptureTunnel's tshark printed (one packet
// per line: ip.src, ip.dst, ip.proto, each "outer,inner", then eth.src), the first packet
// to care-of address coa that carries a packet for home.
func ParseTunnelled(out, coa, home string) (Tunnelled, bool) {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Split(l, "\t")
		if len(f) < 3 {
			continue
		}
		src, dst, proto := strings.Split(f[0], ","), strings.Split(f[1], ","), strings.Split(f[2], ",")
		if len(src) < 2 || len(dst) < 2 || dst[0] != coa || dst[1] != home {
			continue
		}
		t := Tunnelled{OuterSrc: src[0], OuterDst: dst[0], InnerSrc: src[1], InnerDst: dst[1], Proto: proto[0]}
		if len(f) > 3 {
			t.EthSrc = strings.TrimSpace(f[3])
		}
		return t, true
	}
	return Tunnelled{}, false
}

// CaptureTunnel listens with tshark in namespace ns for IP-in-IP and GRE
// packets while trigger runs (e.g. a ping to the home address from a
// correspondent), and reports whether one arrived at care-of address coa
// carrying a packet for home. It returns what tshark printed (see
// ParseTunnelled for the format).
func CaptureTunnel(ctx context.Context, ns, coa, home string, trigger func()) (bool, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "tshark", "-i", "eth0", "-n", "-l",
		"-c", "1", "-a", "duration:15", "-f", "ip proto 4 or ip proto 47",
		"-T", "fields", "-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto", "-e", "eth.src")
	var out strings.Builder
	var errb syncBuf // read below while tshark writes it
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := reap.Start(cmd); err != nil {
		return false, "", fmt.Errorf("vm: tshark in %s: %w", ns, err)
	}
	// tshark prints "Capturing on" once its filter is in place.
	for i := 0; i < 100 && !strings.Contains(errb.String(), "Capturing on"); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	trigger()
	err := cmd.Wait()
	got := strings.TrimSpace(out.String())
	if _, ok := ParseTunnelled(got, coa, home); ok {
		return true, got, nil
	}
	if err != nil && got == "" {
		return false, got, fmt.Errorf("vm: tshark in %s: %v: %s", ns, err, strings.TrimSpace(errb.String()))
	}
	return false, got, nil
}

// syncBuf is a strings.Builder safe to read while a process writes to it.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
