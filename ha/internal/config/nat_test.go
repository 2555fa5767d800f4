package config

import (
	"strings"
	"testing"
	"time"
)

func TestNATDefaults(t *testing.T) {
	c := mustParse(t, base+router("192.0.2.9", ""))
	if c.NAT != (NAT{AcceptForced: true, Keepalive: 110 * time.Second, Uplink: c.Agent.Interface}) || c.NAT.KeepaliveSeconds() != 110 || c.Nodes[0].UDPTunnel {
		t.Fatalf("defaults: %+v, node udp_tunnel %v", c.NAT, c.Nodes[0].UDPTunnel)
	}
	c = mustParse(t, base+"[nat]\nudp_tunnel = true\naccept_forced = false\nkeepalive_interval = \"25s\"\nuplink_interface = \"wan0\"\n"+
		router("192.0.2.9", "")+router("192.0.2.10", "udp_tunnel = false"))
	if c.NAT != (NAT{UDPTunnel: true, Keepalive: 25 * time.Second, Uplink: "wan0"}) || c.NAT.KeepaliveSeconds() != 25 {
		t.Fatalf("set: %+v", c.NAT)
	}
	// A node follows nat.udp_tunnel unless it says otherwise.
	if !c.Nodes[0].UDPTunnel || c.Nodes[1].UDPTunnel {
		t.Fatalf("nodes: %v %v", c.Nodes[0].UDPTunnel, c.Nodes[1].UDPTunnel)
	}
	c = mustParse(t, base+"[nat]\nkeepalive_interval = \"65535s\"\n")
	if c.NAT.KeepaliveSeconds() != 65535 {
		t.Fatalf("longest keepalive: %d", c.NAT.KeepaliveSeconds())
	}
	if w := ownWarnings(c); len(w) != 1 || !strings.HasPrefix(w[0], "x.toml:6: nat.keepalive_interval 18h12m15s is longer than 2m: many NATs drop a silent UDP mapping sooner") {
		t.Errorf("warnings %q", w)
	}
	if w := ownWarnings(mustParse(t, base+"[nat]\nkeepalive_interval = \"120s\"\n")); len(w) != 0 {
		t.Errorf("120s: warnings %q", w)
	}
}

func TestNATErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"[nat]\nkeepalive_interval = \"0s\"", `x.toml:6: nat.keepalive_interval 0s out of range 1s..18h12m15s`},
		{"[nat]\nkeepalive_interval = \"65536s\"", `x.toml:6: nat.keepalive_interval 65536s out of range 1s..18h12m15s`},
		{"[nat]\nkeepalive_interval = \"1500ms\"", `x.toml:6: nat.keepalive_interval 1500ms is not a whole number of seconds: the UDP Tunnel Reply carries seconds`},
		{"[nat]\nkeepalive_interval = 110", `x.toml:6: nat.keepalive_interval must be a duration string with a unit, e.g. "110s"`},
		{"[nat]\nudp_tunnel = \"yes\"", `x.toml:6: nat.udp_tunnel must be true or false`},
		{"[nat]\naccept_forced = 1", `x.toml:6: nat.accept_forced must be true or false`},
		{"[nat]\nuplink_interface = \"a/b\"", `x.toml:6: nat.uplink_interface "a/b" is not a valid interface name`},
		{"[nat]\nkeepalive_intervl = \"10s\"", `x.toml:6: nat.keepalive_intervl unknown key in [nat]; did you mean "keepalive_interval"?`},
		{router("192.0.2.9", "udp_tunnel = true"), `x.toml:9: node[1].udp_tunnel is true but nat.udp_tunnel is false: the UDP tunnel is not set up at all; set nat.udp_tunnel = true`},
		{"[nat]\nudp_tunnel = false\n" + router("192.0.2.9", "udp_tunnel = true"), `x.toml:11: node[1].udp_tunnel is true but nat.udp_tunnel is false`},
		{router("192.0.2.9", "udp_tunnel = 1"), `x.toml:9: node[1].udp_tunnel must be true or false`},
		{"udp_tunnel = true", `x.toml:5: agent.udp_tunnel unknown key in [agent]; it belongs in [nat]`},
	} {
		c, err := Parse("x.toml", []byte(base+tc.text+"\n"))
		if err == nil {
			t.Errorf("%q: no error; %+v", tc.text, c.NAT)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error does not contain %q:\n%v", tc.text, tc.want, err)
		}
	}
}
