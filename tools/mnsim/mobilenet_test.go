package main

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/hagent/hagent/tools/mnsim/sim"
)

func TestRegisterCLIMobileRouter(t *testing.T) {
	ha := responder(t, sim.ResponderConfig{MobileNetworks: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("10.9.0.0/24")}})
	base := []string{"register", "-ha", ha, "-home", "10.1.0.5", "-coa", "172.16.0.2", "-spi", "300", "-key", "secret"}

	// Explicit mode, every prefix authorised: exit 0, one line each.
	code, out, errs := mnsim(t, append(base, "-mobile-network", "10.1.2.0/24", "-mobile-network", "10.9.0.0/24")...)
	if code != 0 || !strings.HasSuffix(out, "\nmobile-network 10.1.2.0/24 explicit: 0 success\nmobile-network 10.9.0.0/24 explicit: 0 success\n") {
		t.Fatalf("explicit: %d %q %q", code, out, errs)
	}
	// One unauthorised, one with host bits: accepted registration, but
	// not every network routed: exit 1, and the codes say why.
	code, out, _ = mnsim(t, append(base, "-mobile-network", "10.1.2.0/24", "-mobile-network", "10.2.0.0/24", "-mobile-network", "10.9.0.1/24")...)
	for _, want := range []string{
		"mobile-network 10.1.2.0/24 explicit: 0 success\n",
		"mobile-network 10.2.0.0/24 explicit: 2 mobile router is not authorized for prefix\n",
		"mobile-network 10.9.0.1/24 explicit: 1 invalid prefix\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("mixed: no %q in %q", want, out)
		}
	}
	if code != 1 || !strings.HasPrefix(out, "0 accepted") {
		t.Errorf("mixed: exit %d %q", code, out)
	}
	// Implicit mode: the home agent's prefixes come back.
	code, out, _ = mnsim(t, append(base, "-implicit")...)
	if code != 0 || !strings.HasSuffix(out, "\nmobile-network 10.1.0.0/16 implicit: 0 success\nmobile-network 10.9.0.0/24 implicit: 0 success\n") {
		t.Fatalf("implicit: %d %q", code, out)
	}
	code, out, _ = mnsim(t, append(base, "-implicit", "-json")...)
	var j singleJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil || code != 0 || j.MobileNet == nil || j.MobileNet.Mode != "implicit" ||
		!j.MobileNet.Implicit || !j.MobileNet.Routed || len(j.MobileNet.Acks) != 2 || j.MobileNet.Acks[1] != (mobileAckJS{"10.9.0.0/24", 0, "success"}) {
		t.Fatalf("implicit -json: %d %q %v", code, out, err)
	}
	code, out, _ = mnsim(t, append(base, "-mobile-network", "10.3.0.0/24", "-json")...)
	j = singleJSON{}
	if err := json.Unmarshal([]byte(out), &j); err != nil || code != 1 || j.MobileNet.Routed || j.MobileNet.Acks[0].Code != 2 {
		t.Fatalf("explicit -json: %d %q %v", code, out, err)
	}

	// A home agent without RFC 5177 ignores the skippable extensions.
	plain := responder(t, sim.ResponderConfig{})
	code, out, _ = mnsim(t, "register", "-ha", plain, "-home", "10.1.0.5", "-coa", "172.16.0.2", "-spi", "300", "-key", "secret", "-mobile-network", "10.1.2.0/24")
	if code != 1 || !strings.Contains(out, "mobile-networks: no acknowledgement (explicit mode asked") {
		t.Fatalf("home agent without RFC 5177: %d %q", code, out)
	}

	nine := append([]string(nil), base...)
	for i := range 9 {
		nine = append(nine, "-mobile-network", "10.1."+string(rune('0'+i))+".0/24")
	}
	for name, args := range map[string][]string{
		"both modes": append(base, "-implicit", "-mobile-network", "10.1.2.0/24"),
		"not prefix": append(base, "-mobile-network", "10.1.2.0"),
		"ipv6":       append(base, "-mobile-network", "2001:db8::/64"),
		"nine":       nine,
	} {
		if code, _, _ := mnsim(t, args...); code != 2 {
			t.Errorf("%s: exit %d, want 2", name, code)
		}
	}
}
