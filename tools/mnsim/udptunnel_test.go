package main

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hagent/hagent/ha/mip"
	"github.com/hagent/hagent/tools/mnsim/sim"
)

func TestRegisterCLIUDPTunnel(t *testing.T) {
	var seen atomic.Value // the last request's UDP Tunnel Request
	ha := responder(t, sim.ResponderConfig{UDPTunnelKeepalive: 110, Decide: func(r *mip.Request) (mip.Code, uint16) {
		seen.Store(r.UDPTunnel)
		return mip.CodeAccepted, r.Lifetime
	}})
	base := []string{"register", "-ha", ha, "-home", "10.1.0.5", "-coa", "172.16.0.2", "-spi", "300", "-key", "secret"}

	code, out, errs := mnsim(t, append(base, "-udp-tunnel", "gre,force")...)
	if code != 0 || !strings.HasSuffix(out, " udp-tunnel: 0 will do UDP tunnelling keepalive 110s forced\n") {
		t.Fatalf("register -udp-tunnel: %d %q %q", code, out, errs)
	}
	got := seen.Load().(mip.UDPTunnelRequest)
	if want := (mip.UDPTunnelRequest{Present: true, Flags: mip.UDPTunnelForce, Encapsulation: mip.NextGRE, Authenticated: true}); got != want {
		t.Fatalf("the home agent saw %+v, want %+v", got, want)
	}

	code, out, _ = mnsim(t, append(base, "-udp-tunnel", "ipip", "-json")...)
	var j singleJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil || code != 0 || j.UDPTunnel == nil ||
		*j.UDPTunnel != (udpTunnelJSON{Code: 0, Name: "will do UDP tunnelling", Keepalive: 110}) {
		t.Fatalf("-json: %d %q %v", code, out, err)
	}
	if got := seen.Load().(mip.UDPTunnelRequest); got.Encapsulation != mip.NextIPv4 || got.Flags != 0 {
		t.Fatalf("the home agent saw %+v", got)
	}

	// Without the flag nothing is added, and nothing is printed about it.
	if code, out, _ = mnsim(t, base...); code != 0 || strings.Contains(out, "udp-tunnel") || seen.Load().(mip.UDPTunnelRequest).Present {
		t.Fatalf("plain register: %d %q", code, out)
	}

	// A home agent without RFC 3519 ignores the skippable extension.
	plain := responder(t, sim.ResponderConfig{})
	code, out, _ = mnsim(t, "register", "-ha", plain, "-home", "10.1.0.5", "-coa", "172.16.0.2", "-spi", "300", "-key", "secret", "-udp-tunnel", "ipip,fa")
	if code != 0 || !strings.Contains(out, "udp-tunnel: no reply extension") {
		t.Fatalf("home agent without RFC 3519: %d %q", code, out)
	}

	for _, bad := range []string{"udp", "force", "ipip,now", "ipip,gre"} {
		if code, _, _ := mnsim(t, append(base, "-udp-tunnel="+bad)...); code != 2 {
			t.Errorf("-udp-tunnel %q: exit %d, want 2", bad, code)
		}
	}
}

// -tun is the UDP tunnel's: without -udp-tunnel, or for a de-registration,
// it is refused before any device is created.
func TestTunFlagNeedsUDPTunnel(t *testing.T) {
	base := []string{"-ha", "127.0.0.1:9", "-home", "10.1.0.5", "-coa", "172.16.0.2", "-spi", "300", "-key", "secret", "-tun", "mntunx"}
	for _, args := range [][]string{
		append([]string{"register"}, base...),
		append([]string{"deregister", "-udp-tunnel", "ipip"}, base...),
		append([]string{"register", "-udp-tunnel", "ipip", "-lifetime", "0"}, base...),
	} {
		if code, _, errs := mnsim(t, args...); code != 2 || !strings.Contains(errs, "-tun needs") {
			t.Errorf("%q: exit %d %q", args, code, errs)
		}
	}
}
