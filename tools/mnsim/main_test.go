package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/mip"
	"github.com/hagent/hagent/tools/mnsim/sim"
)

func responder(t *testing.T, cfg sim.ResponderConfig) string {
	t.Helper()
	cfg.Addr, cfg.SPI, cfg.Key = netip.MustParseAddrPort("127.0.0.1:0"), 300, []byte("secret")
	r, err := sim.StartResponder(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r.Addr().String()
}

func mnsim(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(t.Context(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestRegisterCLI(t *testing.T) {
	ha := responder(t, sim.ResponderConfig{})
	base := []string{"-ha", ha, "-home", "10.1.0.5", "-spi", "300", "-key", "secret"}

	code, out, errs := mnsim(t, append([]string{"register", "-coa", "127.0.0.1", "-flags", "T,G", "-nai", "mn@x"}, base...)...)
	if code != 0 || !strings.HasPrefix(out, "0 accepted lifetime 600 home 10.1.0.5 ") {
		t.Fatalf("register: %d %q %q", code, out, errs)
	}

	code, out, _ = mnsim(t, append([]string{"renew", "-coa", "127.0.0.1", "-json", "-lifetime", "30", "-id", "0x1234"}, base...)...)
	var j singleJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil || code != 0 || !j.Accepted || j.Lifetime != 30 ||
		j.ID != "0x0000000000001234" || !j.Authenticated || j.Name != "accepted" {
		t.Fatalf("renew -json: %d %q %v", code, out, err)
	}

	code, out, _ = mnsim(t, append([]string{"deregister", "-coa-home"}, base...)...)
	if code != 0 || !strings.Contains(out, "lifetime 0 ") {
		t.Fatalf("deregister: %d %q", code, out)
	}
	// -key-hex is the same secret.
	code, _, _ = mnsim(t, "register", "-ha", ha, "-home", "10.1.0.5", "-coa", "127.0.0.1", "-spi", "300", "-key-hex", "736563726574")
	if code != 0 {
		t.Fatalf("-key-hex: %d", code)
	}
}

func TestRegisterCLIExitCodes(t *testing.T) {
	denying := responder(t, sim.ResponderConfig{Decide: func(*mip.Request) (mip.Code, uint16) { return mip.CodeInsufficientResources, 0 }})
	code, out, _ := mnsim(t, "register", "-ha", denying, "-home", "10.1.0.5", "-coa", "127.0.0.1", "-spi", "300", "-key", "secret")
	if code != 1 || !strings.HasPrefix(out, "130 insufficient resources") {
		t.Fatalf("denied: %d %q", code, out)
	}
	badAuth := responder(t, sim.ResponderConfig{ReplyKey: []byte("forged")})
	code, out, errs := mnsim(t, "register", "-ha", badAuth, "-home", "10.1.0.5", "-coa", "127.0.0.1", "-spi", "300", "-key", "secret")
	if code != 2 || !strings.Contains(out, "unauthenticated") || !strings.Contains(errs, "authentication") {
		t.Fatalf("forged reply: %d %q %q", code, out, errs)
	}
	skewed := responder(t, sim.ResponderConfig{Tolerance: 7 * time.Second})
	// -id far in the past: 133; with -resync accepted.
	args := []string{"register", "-ha", skewed, "-home", "10.1.0.5", "-coa", "127.0.0.1", "-spi", "300", "-key", "secret", "-id", "0x100000000"}
	if code, out, _ := mnsim(t, args...); code != 1 || !strings.HasPrefix(out, "133 identification mismatch") {
		t.Fatalf("133: %d %q", code, out)
	}
	if code, out, _ := mnsim(t, append(args, "-resync")...); code != 0 || !strings.Contains(out, "resynced") {
		t.Fatalf("-resync: %d %q", code, out)
	}
	for _, bad := range [][]string{
		{},
		{"fly"},
		{"register"},
		{"register", "-ha", "127.0.0.1", "-home", "10.1.0.5", "-coa", "127.0.0.1"},        // no key
		{"register", "-ha", "::1", "-home", "10.1.0.5", "-coa", "127.0.0.1", "-key", "k"}, // IPv6
		{"register", "-ha", "127.0.0.1", "-home", "10.1.0.5", "-key", "k"},                // no care-of
		{"register", "-ha", "127.0.0.1", "-home", "10.1.0.5", "-coa", "1.2.3.4", "-key", "k", "-flags", "Q"},
		{"register", "-ha", "127.0.0.1", "-home", "10.1.0.5", "-coa", "1.2.3.4", "-key", "k", "-id", "x"},
		{"load", "-ha", "127.0.0.1", "-key", "k"}, // no base
	} {
		if code, _, _ := mnsim(t, bad...); code != 2 {
			t.Errorf("%q: exit %d, want 2", bad, code)
		}
	}
}

func TestLoadCLI(t *testing.T) {
	ha := responder(t, sim.ResponderConfig{})
	code, out, errs := mnsim(t, "load", "-ha", ha, "-base", "10.3.0.1", "-n", "50", "-rate", "2000", "-duration", "150ms",
		"-spi", "300", "-key", "secret", "-json")
	var r sim.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 || r.Replies == 0 || r.Replies != r.Sent {
		t.Fatalf("load: %d %q %q %v", code, out, errs, err)
	}
	code, out, _ = mnsim(t, "load", "-ha", ha, "-base", "10.3.0.1", "-n", "5", "-duration", "50ms", "-spi", "300", "-key", "secret")
	if code != 0 || !strings.Contains(out, "replies/s") || !strings.Contains(out, "p99.9") {
		t.Fatalf("load text: %d %q", code, out)
	}
}

func TestNobodyListens(t *testing.T) {
	// A port that was just free: the kernel answers ICMP port unreachable.
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	code, _, errs := mnsim(t, "register", "-ha", addr, "-home", "10.1.0.5", "-coa", "127.0.0.1", "-spi", "300", "-key", "secret")
	if want := "mnsim: no Home Agent listening at " + addr + " (ICMP port unreachable)\n"; code != 2 || errs != want {
		t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errs, want)
	}
	if code, _, _ := mnsim(t, "register", "-h"); code != 0 {
		t.Fatalf("register -h: exit %d, want 0", code)
	}
}
