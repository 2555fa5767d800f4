package vmtest

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/firmware/vm"
)

// TestTunnelDF measures what the plain tunnels do with packets that no
// longer fit once encapsulated, in the arm64 guest (the build machine's
// kernel has no ipip or gre to measure it on). A correspondent on the home
// link sends the node 1,500-byte pings:
//   - with DF set, the agent answers ICMP "fragmentation needed" with the
//     tunnel device's MTU (1,480 for IP in IP, 1,476 for GRE on the 1,500
//     uplink): RFC 2003 §5.1 (and RFC 2784 by the same rule) has the
//     encapsulator return the tunnel MTU to the sender of a DF packet too
//     big for the tunnel, which is what lets the sender's path MTU
//     discovery work;
//   - the largest DF packet that fits (the tunnel MTU) arrives at the
//     care-of address as one 1,500-byte outer packet with DF set in the
//     outer header as in the inner one (RFC 2003 §3.1: an inner DF MUST
//     be copied to the outer header);
//   - without DF the kernel fragments the inner packet at the tunnel MTU
//     before encapsulating (ip_forward sees the route's MTU) and tunnels
//     each fragment whole, the outer header with DF set (the route's
//     flag, not per packet: RFC 2003 §3.1 lets the encapsulator set it):
//     the outer packets are never fragments, and the node reassembles
//     the inner one.
func TestTunnelDF(t *testing.T) {
	need(t, true, "ip", "depmod", "xz", "tshark", "ping")
	img := buildImage(t, defaultBoard, vm.BuildOptions{})
	need(t, true, img.Board.QEMU)
	l := newLab(t)
	m := l.guest(t, img, "ha1", 0)
	waitReady(t, m, "ha1")
	l.register(t, haAddr)
	checkTunnelDF(t, l, "IP in IP", "4", 1480)
	l.mnsimOnce(t, "register", "-flags", "G")
	checkTunnelDF(t, l, "GRE", "47", 1476)
	far := narrowPath(t, l)
	checkTunnelPMTU(t, l, far, "GRE", "47", 24)
	l.registerFrom(t, far)
	checkTunnelPMTU(t, l, far, "IP in IP", "4", 20)
	poweroff(t, m, "ha1")
}

var fragNeeded = regexp.MustCompile(`Frag needed and DF set \(mtu = (\d+)\)`)

func checkTunnelDF(t *testing.T, l *lab, name, proto string, mtu int) {
	t.Helper()
	// Five echoes where tshark listens: one sent while it is still
	// starting up would be missed.
	cnPing := func(count string, args ...string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, _ := vm.Exec(ctx, l.cnNS, "ping", append(args, "-c", count, "-i", "0.5", "-W", "2", homeAddr)...)
		return out
	}
	// The correspondent's cached path MTU from a previous round would
	// answer the ping locally: start from the link's.
	_, _ = vm.Exec(context.Background(), l.cnNS, "ip", "route", "flush", "cache")
	out := cnPing("1", "-M", "do", "-s", "1472")
	mm := fragNeeded.FindStringSubmatch(out)
	if mm == nil || mm[1] != itoa(mtu) {
		t.Fatalf("%s: a 1,500-byte DF ping to %s: want fragmentation needed with mtu = %d:\n%s", name, homeAddr, mtu, out)
	}
	t.Logf("%s: 1,500-byte DF ping: %s", name, mm[0])

	filter := "ip proto " + proto + " and dst host " + coa
	var pinged string
	fits := sniff(l.mnNS, "eth0", filter, func() { pinged = cnPing("5", "-M", "do", "-s", itoa(mtu-28)) })
	if !hasFrame(fits, 1514, "0,0") {
		t.Fatalf("%s: a %d-byte DF ping: want one 1,500-byte outer packet unfragmented at %s:\n%s\nping:\n%s", name, mtu, coa, fits, pinged)
	}
	if !hasDF(fits, 1514, "1,1") || hasDF(fits, 0, "0,1") {
		t.Fatalf("%s: a %d-byte DF ping: want DF set in the outer header as in the inner one (RFC 2003 §3.1) at %s (ip.flags.df, outer first, is the last column):\n%s", name, mtu, coa, fits)
	}
	t.Logf("%s: the %d-byte DF packet at the care-of address (DF flags outer,inner last): %s", name, mtu, firstFrame(fits, 1514))
	frag := sniff(l.mnNS, "eth0", filter, func() { pinged = cnPing("5", "-M", "dont", "-s", "1472") })
	if !hasFrame(frag, 0, "0,1") || hasFrame(frag, 0, "1,0") || hasFrame(frag, 0, "1,1") {
		t.Fatalf("%s: a 1,500-byte ping without DF: want inner fragments, each in a whole outer packet, at %s:\n%s\nping:\n%s", name, coa, frag, pinged)
	}
	if !hasDF(frag, 0, "1,0") || hasDF(frag, 0, "0,0") {
		t.Fatalf("%s: a 1,500-byte ping without DF: want the outer header of each tunnelled fragment with DF set at %s (ip.flags.df, outer first, is the last column):\n%s", name, coa, frag)
	}
	t.Logf("%s: %d bytes with DF arrive as one outer packet, outer DF set; 1,500 without DF as inner fragments, each tunnelled whole with outer DF set", name, mtu)
}

// hasFrame reports whether sniff's output holds a frame of length n (0:
// any) whose more-fragments flags are mf (tshark lists the flag of each
// IPv4 header, the outer one first: "0,1" is an inner fragment in a whole
// outer packet).
func hasFrame(out string, n int, mf string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 8 {
			continue
		}
		if (n == 0 || f[6] == itoa(n)) && f[7] == mf {
			return true
		}
	}
	return false
}

// hasDF reports whether sniff's output holds a frame of length n (0: any)
// whose don't-fragment flags (ip.flags.df, the last column, the outer
// header first) are df.
func hasDF(out string, n int, df string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 13 {
			continue
		}
		if (n == 0 || f[6] == itoa(n)) && strings.TrimSpace(f[12]) == df {
			return true
		}
	}
	return false
}

// firstFrame is sniff's first line for a frame of length n.
func firstFrame(out string, n int) string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Split(line, "\t"); len(f) >= 8 && f[6] == itoa(n) {
			return strings.Join(strings.Fields(line), " ")
		}
	}
	return ""
}

func itoa(n int) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		if n /= 10; n == 0 {
			return string(b)
		}
	}
}
