package config

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestRestartNeeded(t *testing.T) {
	base := func() *Config {
		c := &Config{}
		c.Agent.Interface = "eth1"
		c.Agent.Address = netip.MustParseAddr("192.0.2.2")
		c.Agent.Encapsulations = []string{"ipip", "gre"}
		c.Agent.MaxLifetime = 600
		c.Group.Enabled = true
		c.Group.Key = []byte("k1")
		c.Group.KeyID = 1
		c.Group.AckBeforeReply = true
		return c
	}
	tests := []struct {
		name   string
		change func(c *Config)
		want   []string
		keys   bool // GroupKeysChanged
	}{
		{name: "nothing", change: func(c *Config) {}},
		// What a reload may change.
		{name: "lifetime and nodes", change: func(c *Config) {
			c.Agent.MaxLifetime = 300
			c.Agent.ReplayTolerance = time.Second
			c.Nodes = append(c.Nodes, Node{Name: "n"})
		}},
		{name: "mobile networks and node udp tunnel", change: func(c *Config) {
			c.Nodes = []Node{{Name: "r", MobileNetworks: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/24")}, MaxMobileNetworks: 4, UDPTunnel: true}}
		}},
		{name: "nat keepalive and accept_forced", change: func(c *Config) {
			c.NAT.Keepalive = 30 * time.Second
			c.NAT.AcceptForced = false
		}},
		{name: "encapsulations reordered", change: func(c *Config) { c.Agent.Encapsulations = []string{"gre", "ipip"} }},
		{name: "require_replication", change: func(c *Config) { c.Group.RequireReplication = true }},
		{name: "group key", change: func(c *Config) { c.Group.Key = []byte("k2") }, keys: true},
		{name: "group key id", change: func(c *Config) { c.Group.KeyID = 2 }, keys: true},
		{name: "accept key added", change: func(c *Config) { c.Group.AcceptKeys = []GroupKey{{ID: 2, Key: []byte("k0")}} }, keys: true},
		{name: "group key emptied", change: func(c *Config) { c.Group.Key = []byte{} }, keys: true},
		// What needs a restart.
		{name: "interface", change: func(c *Config) { c.Agent.Interface = "eth2" }, want: []string{"agent.interface"}},
		{name: "address", change: func(c *Config) { c.Agent.Address = netip.MustParseAddr("192.0.2.3") }, want: []string{"agent.address"}},
		{name: "virtual address", change: func(c *Config) { c.Agent.VirtualAddress = netip.MustParseAddr("192.0.2.1") }, want: []string{"agent.virtual_address"}},
		{name: "home network", change: func(c *Config) { c.Agent.HomeNetwork = netip.MustParsePrefix("192.0.2.0/24") }, want: []string{"agent.home_network"}},
		{name: "listen port", change: func(c *Config) { c.Agent.ListenPort = 435 }, want: []string{"agent.listen_port"}},
		{name: "capacity", change: func(c *Config) { c.Agent.Capacity = 10 }, want: []string{"agent.capacity"}},
		{name: "tombstone capacity", change: func(c *Config) { c.Agent.TombstoneCapacity = 10 }, want: []string{"agent.tombstone_capacity"}},
		{name: "console socket", change: func(c *Config) { c.Agent.ConsoleSocket = "/x" }, want: []string{"agent.console_socket"}},
		{name: "agent id", change: func(c *Config) { c.Agent.AgentID = 7 }, want: []string{"agent.agent_id"}},
		{name: "encapsulation removed", change: func(c *Config) { c.Agent.Encapsulations = []string{"ipip"} }, want: []string{"agent.encapsulations"}},
		{name: "group port", change: func(c *Config) { c.Group.Port = 4344 }, want: []string{"[group] (other than its keys and require_replication)"}},
		{name: "ack_before_reply", change: func(c *Config) { c.Group.AckBeforeReply = false }, want: []string{"[group] (other than its keys and require_replication)"}},
		{name: "vrrp", change: func(c *Config) { c.VRRP.Priority = 200 }, want: []string{"[vrrp]"}},
		{name: "hsrp", change: func(c *Config) { c.HSRP.Priority = 200 }, want: []string{"[hsrp]"}},
		{name: "datapath", change: func(c *Config) { c.Datapath.Enabled = true }, want: []string{"[datapath]"}},
		{name: "advertise", change: func(c *Config) { c.Advert.Enabled = true }, want: []string{"[advertise]"}},
		{name: "nat udp_tunnel", change: func(c *Config) { c.NAT.UDPTunnel = true }, want: []string{"nat.udp_tunnel"}},
		{name: "several, in order", change: func(c *Config) {
			c.Advert.Enabled = true
			c.Agent.Capacity = 10
			c.Agent.Interface = "eth2"
			c.NAT.UDPTunnel = true
		}, want: []string{"agent.interface", "agent.capacity", "[advertise]", "nat.udp_tunnel"}},
	}
	for _, tt := range tests {
		old, new := base(), base()
		tt.change(new)
		if got := RestartNeeded(old, new); !slices.Equal(got, tt.want) {
			t.Errorf("%s: RestartNeeded = %q, want %q", tt.name, got, tt.want)
		}
		if got := GroupKeysChanged(&old.Group, &new.Group); got != tt.keys {
			t.Errorf("%s: GroupKeysChanged = %v, want %v", tt.name, got, tt.keys)
		}
	}
}
