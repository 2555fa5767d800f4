//go:build linux

package datapath

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// periodicCheck runs the agent's periodic check by hand: the read, one
// slice of homes and networks, the prefix finish, the home finish. between
// runs after the kernel was read.
func periodicCheck(t *testing.T, k *kernel, homes []Binding, nets []MobileNet, between func()) (pa, pr, ha, hr int) {
	t.Helper()
	s := k.BeginScan()
	k.ScanKernel(s)
	if between != nil {
		between()
	}
	if err := k.ConvergeStart(s); err != nil {
		t.Fatal(err)
	}
	if err := k.ConvergeSome(s, slices.Values(homes)); err != nil {
		t.Fatal(err)
	}
	var pc PrefixChecker = k
	if err := pc.ConvergePrefixes(s, nets); err != nil {
		t.Fatal(err)
	}
	pa, pr, err := pc.FinishPrefixes(s)
	if err != nil {
		t.Fatal(err)
	}
	ha, hr, err = k.ConvergeFinish(s)
	if err != nil {
		t.Fatal(err)
	}
	return pa, pr, ha, hr
}

// The periodic check repairs the mobile networks' routes as it does the
// home addresses': a route deleted by hand comes back, a stray route of
// ours (protocol 77, a metric in the prefix range) no binding wants goes, a
// route of ours left for a network no longer wanted goes with its state,
// the operator's own route stays, and a network ApplyPrefixes changed while
// the kernel was read is left as it was made.
func TestNetnsPeriodicCheckRepairsPrefixes(t *testing.T) {
	n := newNetns(t)
	k := n.open(t, false)
	home := Binding{Home: netip.MustParseAddr("10.1.0.5"), CareOf: netip.MustParseAddr("192.0.2.5"), Encap: IPIP}
	if errs := k.Apply([]Binding{home}, nil); errs != nil {
		t.Fatal(errs)
	}
	nets := []MobileNet{
		mobileNet("10.9.1.0/24", "192.0.2.5"),
		mobileNet("10.9.2.0/24", "192.0.2.5"),
		mobileNet("10.9.3.7/32", "192.0.2.5"),
	}
	left := mobileNet("10.44.0.0/16", "192.0.2.5") // ours, but no binding wants it any more
	if errs := k.ApplyPrefixes(append(slices.Clone(nets), left), nil); errs != nil {
		t.Fatal(errs)
	}
	if pa, pr, ha, hr := periodicCheck(t, k, []Binding{home}, nets, nil); pa != 0 || pr != 1 || ha != 0 || hr != 0 {
		t.Fatalf("first check: prefixes +%d -%d, homes +%d -%d; want -1 (the network no binding wants)", pa, pr, ha, hr)
	}
	want := prefixRoutes(t, n)
	if strings.Contains(strings.Join(want, "\n"), "10.44.0.0") || len(want) != 4 {
		t.Fatalf("after the first check:\n%s", strings.Join(want, "\n"))
	}

	// Drift: one network's route deleted by hand, a stray route of ours, an
	// operator's route of another protocol for a network of ours.
	m := k.prefixes.metrics[pfxOf(nets[1].Prefix)]
	n.ip(t, "route", "del", "10.9.2.0/24", "proto", "77", "metric", fmt.Sprint(m))
	n.ip(t, "route", "add", "10.66.0.0/16", "dev", "tun0", "proto", "77", "metric", fmt.Sprint(PrefixMetricBase+500))
	n.ip(t, "route", "add", "10.9.1.0/24", "dev", "tun0", "proto", "static", "metric", "5")
	// While the kernel is read, the agent adds a network: not undone.
	fresh := mobileNet("10.9.9.0/24", "192.0.2.5")
	pa, pr, ha, hr := periodicCheck(t, k, []Binding{home}, nets, func() {
		if errs := k.ApplyPrefixes([]MobileNet{fresh}, nil); errs != nil {
			t.Fatal(errs)
		}
	})
	if pa != 1 || pr != 1 || ha != 0 || hr != 0 {
		t.Fatalf("check after drift: prefixes +%d -%d, homes +%d -%d; want +1 -1", pa, pr, ha, hr)
	}
	got := prefixRoutes(t, n)
	want = append(want, "10.9.9.0/24 dst 192.0.2.5 dev tun0 metric "+fmt.Sprint(k.prefixes.metrics[pfxOf(fresh.Prefix)]))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("routes after the check:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if out := n.ip(t, "route", "show", "10.9.1.0/24", "proto", "static"); !strings.Contains(out, "metric 5") {
		t.Fatalf("the operator's route went: %q", out)
	}
	// Nothing left to do.
	if pa, pr, ha, hr := periodicCheck(t, k, []Binding{home}, append(slices.Clone(nets), fresh), nil); pa+pr+ha+hr != 0 {
		t.Fatalf("third check: +%d -%d, homes +%d -%d; want nothing", pa, pr, ha, hr)
	}
}
