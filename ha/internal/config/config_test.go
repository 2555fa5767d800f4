package config

import (
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const referencePath = "../../../rootfs/etc/hagent.toml"

// base is the smallest valid config: four lines, so a case's first own line is 5.
const base = `[agent]
interface = "eth0"
address = "192.0.2.2"
home_network = "192.0.2.0/24"
`

func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	c, err := Parse("x.toml", []byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, base)
	a := c.Agent
	want := Agent{
		Interface:         "eth0",
		Address:           netip.MustParseAddr("192.0.2.2"),
		HomeNetwork:       netip.MustParsePrefix("192.0.2.0/24"),
		ListenPort:        434,
		Capacity:          10000,
		TombstoneCapacity: 2500,
		TombstoneLifetime: 5 * time.Minute,
		MaxLifetime:       1800,
		ReplayTolerance:   7 * time.Second,
		ReverseTunnel:     true,
		Encapsulations:    []string{"ipip"},
		ConsoleSocket:     "/run/hagent.sock",
		LogLevel:          slog.LevelInfo,
		AgentID:           0xc0000202,
	}
	if a.VirtualAddress.IsValid() || a.SimultaneousBindings {
		t.Errorf("optional agent fields set: %+v", a)
	}
	a.Encapsulations, want.Encapsulations = nil, nil
	if !reflect.DeepEqual(a, want) {
		t.Errorf("agent defaults\n got %+v\nwant %+v", a, want)
	}
	if !slices.Equal(c.Agent.Encapsulations, []string{"ipip"}) {
		t.Errorf("encapsulations = %v", c.Agent.Encapsulations)
	}
	g := c.Group
	if g.Enabled || g.Address != netip.MustParseAddr("224.0.0.240") || g.Port != 4343 || g.KeyID != 1 ||
		g.AckTimeout != 250*time.Millisecond || g.MaxRetries != 5 ||
		g.AntiEntropyInterval != 30*time.Second || !g.AckBeforeReply || g.RequireReplication ||
		g.Key != nil || g.Peers != nil {
		t.Errorf("group defaults: %+v", g)
	}
	v := c.VRRP
	if v.Enabled || v.VRID != 1 || v.Priority != 100 || v.AdvertInterval != time.Second || !v.Preempt ||
		v.PreemptDelay != 0 || !v.Accept || v.GARPCount != 3 || v.GARPInterval != time.Second ||
		v.TrackInterfaces != nil || v.NotifyCommand != "" {
		t.Errorf("vrrp defaults: %+v", v)
	}
	h := c.HSRP
	// Hello and Hold 0: learnt from the active router (RFC 2281 §5.1).
	if h != (HSRP{Priority: 100, Auth: "cisco", UseVirtualMAC: true, Reclaim: Reclaim{LowerPrioCount: 3, LowerPrioInterval: time.Second, RefreshCount: 1}}) {
		t.Errorf("hsrp defaults: %+v", h)
	}
	if d := c.Datapath; d != (Datapath{Enabled: true, TunnelDevice: "mip0", RouteProtocol: 77, ProxyARP: true, ProxyARPMode: "entries", ReverseCheck: true, TunnelDF: true, ReconcileInterval: 30 * time.Second}) {
		t.Errorf("datapath defaults: %+v", d)
	}
	if ad := c.Advert; ad != (Advert{Interval: 3 * time.Second, Lifetime: 9 * time.Second, Destination: netip.MustParseAddr("224.0.0.1")}) {
		t.Errorf("advertise defaults: %+v", ad)
	}
	if c.Path != "x.toml" || c.Nodes != nil || c.ForeignAgents != nil || len(ownWarnings(c)) != 0 {
		t.Errorf("config: %+v", c)
	}
}

func TestNodeDefaults(t *testing.T) {
	c := mustParse(t, base+`
[[node]]
home_address = "192.0.2.10"
spi = 256
key = "text:0123456789abcdef"
[[node]]
pool = "192.0.2.64/26"
spi = 256
key = "hex:000102030405060708090a0b0c0d0e0f"
`)
	want := []Node{
		{Name: "node1", HomeAddress: netip.MustParseAddr("192.0.2.10"), SPI: 256, Key: []byte("0123456789abcdef"),
			Algorithm: "hmac-md5", Replay: "timestamp", ReverseTunnel: true, Line: 6},
		{Name: "node2", Pool: netip.MustParsePrefix("192.0.2.64/26"), SPI: 256,
			Key:       []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
			Algorithm: "hmac-md5", Replay: "timestamp", ReverseTunnel: true, Line: 10},
	}
	if len(c.Nodes) != 2 {
		t.Fatalf("nodes: %+v", c.Nodes)
	}
	for i := range want {
		g, w := c.Nodes[i], want[i]
		if g.Name != w.Name || g.HomeAddress != w.HomeAddress || g.Pool != w.Pool || g.SPI != w.SPI ||
			string(g.Key) != string(w.Key) || g.Algorithm != w.Algorithm || g.Replay != w.Replay ||
			g.ReverseTunnel != w.ReverseTunnel || g.Line != w.Line || g.MaxLifetime != 0 || g.NAI != "" {
			t.Errorf("node %d\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func TestDerivedDefaults(t *testing.T) {
	c := mustParse(t, base+"capacity = 100\nagent_id = 7\nvirtual_address = \"192.0.2.2\"\n[vrrp]\nenabled = true\n[advertise]\ninterval = \"10s\"\n")
	if c.Agent.TombstoneCapacity != 64 {
		t.Errorf("tombstone_capacity = %d, want 64 (the minimum)", c.Agent.TombstoneCapacity)
	}
	if c.Agent.AgentID != 7 {
		t.Errorf("agent_id = %d", c.Agent.AgentID)
	}
	if c.VRRP.Priority != 255 {
		t.Errorf("owner's vrrp priority = %d, want 255", c.VRRP.Priority)
	}
	if c.Advert.Lifetime != 30*time.Second {
		t.Errorf("advertise.lifetime = %v, want 3 × interval", c.Advert.Lifetime)
	}
}

// garp_interval is the delay before one repeat burst; 0 turns the repeat off
// (vrrp.Config.GARPRepeat), so it must be accepted.
func TestGARPIntervalZero(t *testing.T) {
	c := mustParse(t, base+"[vrrp]\ngarp_interval = \"0s\"\n")
	if c.VRRP.GARPInterval != 0 {
		t.Errorf("garp_interval = %v, want 0 (no second burst)", c.VRRP.GARPInterval)
	}
}

func TestReference(t *testing.T) {
	c, err := Load(referencePath)
	if err != nil {
		t.Fatalf("the shipped reference config does not load:\n%v", err)
	}
	// Its only warnings are about its own example keys, one per key.
	if len(c.Warnings) != len(exampleKeys) {
		t.Errorf("reference config: %d warnings, want one per example key (%d): %q", len(c.Warnings), len(exampleKeys), c.Warnings)
	}
	for _, w := range c.Warnings {
		if !strings.Contains(w, "is an example key published") {
			t.Errorf("reference config warning: %s", w)
		}
	}
	if c.Path != referencePath || len(c.Nodes) != 3 || len(c.ForeignAgents) != 1 || !c.Group.Enabled || !c.VRRP.Enabled ||
		c.HSRP.Enabled || len(c.VRRP.TrackInterfaces) != 1 || c.VRRP.TrackInterfaces[0] != (Track{"eth1", 50}) {
		t.Errorf("reference config: %+v", c)
	}
	if c.Nodes[1].NAI == "" || !c.Nodes[2].Pool.IsValid() {
		t.Errorf("reference should show one node with an NAI and one pool: %+v", c.Nodes)
	}
	// Derived values stay derived in the reference (agent_id = 0 etc.).
	if c.Agent.AgentID != 0xc0000202 || c.Agent.TombstoneCapacity != 2500 {
		t.Errorf("derived defaults: agent_id %d tombstone_capacity %d", c.Agent.AgentID, c.Agent.TombstoneCapacity)
	}
}

// exampleKeys is exactly the set of key = "..." values of the reference
// config, so that every published secret draws a warning.
func TestExampleKeysMatchReference(t *testing.T) {
	ref, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	var inFile []string
	for _, m := range regexp.MustCompile(`(?m)^[ \t]*key[ \t]*=[ \t]*"([^"]*)"`).FindAllSubmatch(ref, -1) {
		if !slices.Contains(inFile, string(m[1])) {
			inFile = append(inFile, string(m[1]))
		}
	}
	if len(inFile) < 6 {
		t.Fatalf("only %d keys found in %s", len(inFile), referencePath)
	}
	want := slices.Sorted(slices.Values(exampleKeys))
	slices.Sort(inFile)
	if !slices.Equal(inFile, want) {
		t.Errorf("exampleKeys differ from the key = values of %s\n file: %q\n list: %q", referencePath, inFile, want)
	}
}

// A file without [agent] (an empty one, typically) gets one error that
// names what is missing, not one per required key.
func TestNoAgentSection(t *testing.T) {
	for _, text := range []string{"", "# nothing yet\n", "[group]\n"} {
		_, err := Parse("x.toml", []byte(text))
		errs := Errors(err)
		if len(errs) != 1 || errs[0].Error() != "config: x.toml: no [agent] section: interface, address and home_network are required (see docs/config.md)" {
			t.Errorf("%q: %d errors:\n%v", text, len(errs), err)
		}
	}
}

// No [[node]] entry means every registration is refused: a warning says so.
func TestNoNodesWarning(t *testing.T) {
	c := mustParse(t, base)
	want := "x.toml: no [[node]] entries: every registration request would be answered 129 (administratively prohibited); add a [[node]] with home_address or pool"
	if len(c.Warnings) != 1 || c.Warnings[0] != want {
		t.Errorf("warnings %q\nwant %q", c.Warnings, want)
	}
	if c := mustParse(t, base+node(`pool = "192.0.2.128/25"`)+"\n"); len(c.Warnings) != 0 {
		t.Errorf("with a pool: warnings %q", c.Warnings)
	}
}

// ownWarnings drops the no-[[node]] warning, which every config built on
// base (no nodes) draws, for tests about other warnings.
func ownWarnings(c *Config) []string {
	var out []string
	for _, w := range c.Warnings {
		if !strings.Contains(w, "no [[node]] entries") {
			out = append(out, w)
		}
	}
	return out
}

func TestLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(p)
	if err == nil || !strings.Contains(err.Error(), "config: "+p+": cannot read: no such file or directory") {
		t.Errorf("err = %v", err)
	}
	if err := os.WriteFile(p, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err != nil {
		t.Errorf("Load: %v", err)
	}
}

// errCase appends text to base (its first line is line 5) unless full is set.
type errCase struct {
	name string
	text string
	full bool
	want string // substring of the joined error; includes "x.toml:<line>: <key>"
}

func TestRequireReplication(t *testing.T) {
	c := mustParse(t, base+"[group]\nenabled = true\nkey = \"text:k\"\nrequire_replication = true\n")
	if !c.Group.RequireReplication || !c.Group.AckBeforeReply {
		t.Fatalf("group: %+v", c.Group)
	}
	// false is always valid, with or without a group.
	if c := mustParse(t, base+"[group]\nrequire_replication = false\n"); c.Group.RequireReplication {
		t.Fatal("require_replication = false parsed as true")
	}
}

func TestErrors(t *testing.T) {
	cases := []errCase{
		// types
		{"capacity string", `capacity = "ten"`, false, `x.toml:5: agent.capacity must be an integer, got string "ten"`},
		{"bool as string", `reverse_tunnel = "yes"`, false, `x.toml:5: agent.reverse_tunnel must be true or false, got string "yes"`},
		{"duration as int", `tombstone_lifetime = 300`, false, `x.toml:5: agent.tombstone_lifetime must be a duration string with a unit, e.g. "300s"`},
		{"top-level key", "capacity = 5\n" + base, true, `x.toml:1: unknown key capacity at the top level; it belongs in [agent]: move it below that header`},
		{"wrong section", "[vrrp]\ncapacity = 5", false, `x.toml:6: vrrp.capacity unknown key in [vrrp]; it belongs in [agent]`},
		{"later section", "tunnel_device = \"mip1\"", false, `x.toml:5: agent.tunnel_device unknown key in [agent]; it belongs in [datapath]`},
		{"array element", `encapsulations = ["ipip", 4]`, false, `x.toml:5: agent.encapsulations[2] must be a string, got integer 4`},
		{"float", `capacity = 1.5`, false, `x.toml:5: agent.capacity must be an integer, got float 1.5`},
		{"section not table", "agent = 5\n", true, `x.toml:1: agent must be a table ([agent]), got integer 5`},
		{"node not array", "[node]\nspi = 300\n", false, `x.toml:5: node must be an array of tables ([[node]]), got table`},
		{"datetime", `address = 1979-05-27T07:32:00Z`, true, "x.toml:1: unknown key address at the top level"},
		// unknown keys, one per section
		{"unknown agent", `capcity = 5`, false, `x.toml:5: agent.capcity unknown key in [agent]; did you mean "capacity"?`},
		{"unknown case", `Capacity = 5`, false, `x.toml:5: agent.Capacity unknown key in [agent]; did you mean "capacity"?`},
		{"unknown node", "[[node]]\nhome_address = \"192.0.2.9\"\nspi = 256\nkey = \"text:k\"\ncolour = \"red\"", false, `x.toml:9: node[1].colour unknown key in [[node]]; known keys: name, home_address`},
		{"unknown fa", "[[foreign_agent]]\naddress = \"198.51.100.1\"\nspi = 256\nkey = \"text:k\"\nport = 1", false, `x.toml:9: foreign_agent[1].port unknown key in [[foreign_agent]]`},
		{"unknown group", "[group]\nmcast = \"x\"", false, `x.toml:6: group.mcast unknown key in [group]`},
		{"unknown vrrp", "[vrrp]\npriorty = 5", false, `x.toml:6: vrrp.priorty unknown key in [vrrp]; did you mean "priority"?`},
		{"unknown track", "[vrrp]\n[[vrrp.track_interfaces]]\ninterface = \"eth1\"\ncost = 5", false, `x.toml:8: vrrp.track_interfaces[1].cost unknown key`},
		{"unknown hsrp", "[hsrp]\nhelo = \"1s\"", false, `x.toml:6: hsrp.helo unknown key in [hsrp]; did you mean "hello"?`},
		{"unknown datapath", "[datapath]\ndevice = \"x\"", false, `x.toml:6: datapath.device unknown key in [datapath]`},
		{"unknown advertise", "[advertise]\nttl = 1", false, `x.toml:6: advertise.ttl unknown key in [advertise]`},
		{"unknown section", "[vrpp]\nenabled = true", false, `x.toml:5: unknown section [vrpp]; did you mean [vrrp]?`},
		{"unknown section far", "[bogus]\nx = 1", false, `x.toml:5: unknown section [bogus]; known sections: [agent], [[node]], [[foreign_agent]], [group], [vrrp], [hsrp], [datapath], [advertise]`},
		{"unknown array section", "[[nodes]]\nx = 1", false, `x.toml:5: unknown section [[nodes]]; did you mean [[node]]?`},
		{"unknown top-level scalar", "bogus = 1\n" + base, true, `x.toml:1: unknown key bogus at the top level`},
		{"unknown inline", "[vrrp]\ntrack_interfaces = [{interface = \"eth1\", wieght = 5}]", false, `x.toml:6: vrrp.track_interfaces[1].wieght unknown key`},
		{"unknown dotted", "[group]\nkey.id = 5", false, `x.toml:6: group.key must be a string, got table`},
		// syntax
		{"syntax", "capacity = \n", false, `x.toml:5: TOML syntax error: expected value`},
		{"duplicate", "capacity = 1\ncapacity = 2\n", false, `x.toml:6: agent.capacity is set twice (first at line 5): keep one`},
		{"duplicate section", "\n[agent]\ncapacity = 5\n", false, `x.toml:6: [agent] appears twice (first at line 1): merge them into one section`},
		{"section over key", "vrrp = 1\n" + base + "[vrrp]\n", true, `x.toml:6: [vrrp] redefines vrrp, a key set at line 1: a name is either a section or a key; remove or rename one`},
		{"duplicate in array", "[[node]]\nspi = 256\nspi = 257\n", false, `x.toml:7: node[1].spi is set twice (first at line 6): keep one`},
		{"array after table", "[[agent]]\n", false, `x.toml:5: [[agent]] cannot follow agent (line 1), which is not an array of tables: write [agent] once, or [[agent]] for every entry`},
		{"int too large", "capacity = 99999999999999999999", false, `x.toml:5: agent.capacity 99999999999999999999 is too large: see docs/config.md for the range of each key`},
		{"int too small", "capacity = -99999999999999999999", false, `x.toml:5: agent.capacity -99999999999999999999 is too small: see docs/config.md for the range of each key`},
		{"float too large", "capacity = 1e999", false, `x.toml:5: agent.capacity 1e999 is too large: see docs/config.md for the range of each key`},
		{"unclosed header", "[group\nenabled = true", false, `x.toml:5: TOML syntax error: the section header is not closed: end it with ']' (or ']]')`},
		{"section is array of tables", "[[vrrp]]\nenabled = true", false, `x.toml:5: vrrp must be a table ([vrrp]), got array of tables`},
		// agent
		{"no agent", "[vrrp]\n", true, `config: x.toml: no [agent] section: interface, address and home_network are required`},
		{"missing interface", "[agent]\naddress = \"192.0.2.2\"\nhome_network = \"192.0.2.0/24\"\n", true, `x.toml:1: agent.interface is required`},
		{"ifname long", over("interface", `"abcdefghijklmnop"`), true, `x.toml:2: agent.interface "abcdefghijklmnop" must be an interface name of 1..15 bytes`},
		{"ifname slash", over("interface", `"eth/0"`), true, `x.toml:2: agent.interface "eth/0" is not a valid interface name`},
		{"ipv6", over("address", `"2001:db8::1"`), true, `x.toml:3: agent.address 2001:db8::1 is not IPv4`},
		{"mapped", over("address", `"::ffff:192.0.2.2"`), true, `x.toml:3: agent.address ::ffff:192.0.2.2 is not IPv4`},
		{"bad addr", over("address", `"192.0.2"`), true, `x.toml:3: agent.address "192.0.2" is not an IP address`},
		{"multicast addr", over("address", `"224.0.0.5"`), true, `x.toml:3: agent.address 224.0.0.5 is not a unicast address`},
		{"outside", over("address", `"198.51.100.2"`), true, `x.toml:3: agent.address 198.51.100.2 is outside agent.home_network 192.0.2.0/24`},
		{"broadcast", over("address", `"192.0.2.255"`), true, `x.toml:3: agent.address 192.0.2.255 is the broadcast address of 192.0.2.0/24`},
		{"network", `virtual_address = "192.0.2.0"`, false, `x.toml:5: agent.virtual_address 192.0.2.0 is the network address`},
		{"host bits", over("home_network", `"192.0.2.1/24"`), true, `x.toml:4: agent.home_network 192.0.2.1/24 has host bits set: write 192.0.2.0/24`},
		{"not prefix", over("home_network", `"192.0.2.0"`), true, `x.toml:4: agent.home_network "192.0.2.0" is not a prefix`},
		{"slash 31", over("home_network", `"192.0.2.2/31"`), true, `x.toml:4: agent.home_network 192.0.2.2/31 leaves no room`},
		{"port range", `listen_port = 70000`, false, `x.toml:5: agent.listen_port 70000 out of range 1..65535`},
		{"capacity range", `capacity = 4000001`, false, `x.toml:5: agent.capacity 4000001 out of range 1..4000000`},
		{"memory limit range", `memory_limit_mib = 70000`, false, `x.toml:5: agent.memory_limit_mib 70000 out of range 0..65536`},
		{"tombstone range", `tombstone_lifetime = "25h"`, false, `x.toml:5: agent.tombstone_lifetime 25h out of range 1s..24h`},
		{"bad duration", `replay_tolerance = "7 s"`, false, `x.toml:5: agent.replay_tolerance "7 s" is not a duration`},
		{"negative duration", `replay_tolerance = "-1s"`, false, `x.toml:5: agent.replay_tolerance -1s out of range 1s..1h`},
		{"max lifetime", `max_lifetime = 0`, false, `x.toml:5: agent.max_lifetime 0 out of range 1..65534`},
		{"max lifetime infinite", `max_lifetime = 65535`, false, `x.toml:5: agent.max_lifetime 65535 is "infinity" in a Registration Reply (RFC 5944 §3.4), and hagent expires every binding: a node granted it would count on a binding that lapses after 18h12m15s; use 65534, the longest finite lifetime`},
		{"max lifetime over", `max_lifetime = 70000`, false, `x.toml:5: agent.max_lifetime 70000 out of range 1..65534`},
		{"encap", `encapsulations = ["ipip", "udp"]`, false, `x.toml:5: agent.encapsulations has "udp": supported are "ipip" (RFC 2003) and "gre" (RFC 2784)`},
		{"encap minimal", `encapsulations = ["ipip", "minimal"]`, false, `x.toml:5: agent.encapsulations has "minimal": the Linux datapath has no minimal encapsulation (RFC 2004); use "ipip" and/or "gre"`},
		{"encap dup", `encapsulations = ["gre", "gre"]`, false, `x.toml:5: agent.encapsulations lists "gre" twice`},
		{"encap empty", `encapsulations = []`, false, `x.toml:5: agent.encapsulations is empty`},
		{"socket", `console_socket = "hagent.sock"`, false, `x.toml:5: agent.console_socket "hagent.sock" must be an absolute path`},
		{"log level", `log_level = "verbose"`, false, `x.toml:5: agent.log_level "verbose" is not a level`},
		{"agent id", `agent_id = -1`, false, `x.toml:5: agent.agent_id -1 out of range 0..4294967295`},
		{"tombstones", `tombstone_capacity = 4000001`, false, `x.toml:5: agent.tombstone_capacity 4000001 out of range 0..4000000`},
		// nodes
		{"node neither", "[[node]]\nspi = 256\nkey = \"text:k\"", false, `x.toml:5: node[1] needs home_address`},
		{"node both", "[[node]]\nhome_address = \"192.0.2.9\"\npool = \"192.0.2.128/25\"\nspi = 256\nkey = \"text:k\"", false, `x.toml:7: node[1].pool and home_address are both set`},
		{"node outside", node("home_address = \"198.51.100.9\""), false, `x.toml:6: node[1].home_address 198.51.100.9 is outside agent.home_network 192.0.2.0/24`},
		{"node agent addr", node("home_address = \"192.0.2.2\""), false, `x.toml:6: node[1].home_address 192.0.2.2 is agent.address: the Home Agent's own address cannot be a mobile node's`},
		{"node vip", "virtual_address = \"192.0.2.1\"\n" + node("home_address = \"192.0.2.1\""), false, `x.toml:7: node[1].home_address 192.0.2.1 is agent.virtual_address`},
		{"node ipv6", node("home_address = \"2001:db8::9\""), false, `x.toml:6: node[1].home_address 2001:db8::9 is not IPv4`},
		{"pool outside", node("pool = \"192.0.0.0/16\""), false, `x.toml:6: node[1].pool 192.0.0.0/16 is not inside agent.home_network 192.0.2.0/24`},
		{"pool agent", node("pool = \"192.0.2.0/28\""), false, `x.toml:6: node[1].pool 192.0.2.0/28 contains agent.address 192.0.2.2`},
		{"pool host bits", node("pool = \"192.0.2.130/25\""), false, `x.toml:6: node[1].pool 192.0.2.130/25 has host bits set: write 192.0.2.128/25`},
		{"dup address", node("home_address = \"192.0.2.9\"") + "\n" + node("home_address = \"192.0.2.9\""), false, `x.toml:10: node[2].home_address 192.0.2.9 is already the home address of node[1] (line 5)`},
		{"addr in pool", node("home_address = \"192.0.2.130\"") + "\n" + node("pool = \"192.0.2.128/25\""), false, `x.toml:6: node[1].home_address 192.0.2.130 lies inside node[2].pool 192.0.2.128/25 of node[2] (line 9): ambiguous`},
		{"pool overlap", node("pool = \"192.0.2.128/25\"") + "\n" + node("pool = \"192.0.2.192/26\""), false, `x.toml:10: node[2].pool 192.0.2.192/26 overlaps node[1].pool 192.0.2.128/25 of node[1] (line 5)`},
		{"nai dup", node("home_address = \"192.0.2.9\"\nnai = \"a@b.example\"") + "\n" + node("home_address = \"192.0.2.10\"\nnai = \"A@B.example\""), false, `x.toml:12: node[2].nai "A@B.example" is already the NAI of node[1] (line 5)`},
		{"nai space", node("home_address = \"192.0.2.9\"\nnai = \"a b\""), false, `x.toml:7: node[1].nai "a b" must be printable ASCII`},
		{"name dup", node("name = \"x\"\nhome_address = \"192.0.2.9\"") + "\n" + node("name = \"x\"\nhome_address = \"192.0.2.10\""), false, `x.toml:11: node[2].name "x" is already the name of node[1] ("x", line 5)`},
		{"spi reserved", "[[node]]\nhome_address = \"192.0.2.9\"\nspi = 255\nkey = \"text:k\"", false, `x.toml:7: node[1].spi 255 is reserved`},
		{"spi big", "[[node]]\nhome_address = \"192.0.2.9\"\nspi = 4294967296\nkey = \"text:k\"", false, `x.toml:7: node[1].spi 4294967296 out of range 256..4294967295`},
		{"spi missing", "[[node]]\nhome_address = \"192.0.2.9\"\nkey = \"text:k\"", false, `x.toml:5: node[1].spi is required`},
		{"key missing", "[[node]]\nhome_address = \"192.0.2.9\"\nspi = 256", false, `x.toml:5: node[1].key is required`},
		{"key plain", "[[node]]\nhome_address = \"192.0.2.9\"\nspi = 256\nkey = \"secret\"", false, `x.toml:8: node[1].key must start with "hex:" or "text:"`},
		{"key odd hex", "[[node]]\nhome_address = \"192.0.2.9\"\nspi = 256\nkey = \"hex:abc\"", false, `x.toml:8: node[1].key has an odd number of hex digits (3)`},
		{"key bad hex", "[[node]]\nhome_address = \"192.0.2.9\"\nspi = 256\nkey = \"hex:zz\"", false, `x.toml:8: node[1].key is not valid hex`},
		{"key empty", "[[node]]\nhome_address = \"192.0.2.9\"\nspi = 256\nkey = \"text:\"", false, `x.toml:8: node[1].key is 0 bytes: use 1..256`},
		{"key type", "[[node]]\nhome_address = \"192.0.2.9\"\nspi = 256\nkey = 1234", false, `x.toml:8: node[1].key must be a string, got integer`},
		{"algorithm", node("home_address = \"192.0.2.9\"\nalgorithm = \"keyed-md5\""), false, `x.toml:7: node[1].algorithm "keyed-md5" is not supported: the only algorithm is "hmac-md5"`},
		{"replay", node("home_address = \"192.0.2.9\"\nreplay = \"counter\""), false, `x.toml:7: node[1].replay "counter" is not supported`},
		{"node lifetime", node("home_address = \"192.0.2.9\"\nmax_lifetime = 3600"), false, `x.toml:7: node[1].max_lifetime 3600 exceeds agent.max_lifetime 1800`},
		{"node lifetime duration", node("home_address = \"192.0.2.9\"\nmax_lifetime = \"10m\""), false, `x.toml:7: node[1].max_lifetime must be an integer (seconds, e.g. 600), got string "10m"`},
		{"agent lifetime duration", `max_lifetime = "30m"`, false, `x.toml:5: agent.max_lifetime must be an integer (seconds, e.g. 1800), got string "30m"`},
		// foreign agents
		{"fa dup", fa("198.51.100.1") + "\n" + fa("198.51.100.1"), false, `x.toml:10: foreign_agent[2].address 198.51.100.1 already has a security association in foreign_agent[1] (line 5)`},
		{"fa missing", "[[foreign_agent]]\nspi = 256\nkey = \"text:k\"", false, `x.toml:5: foreign_agent[1].address is required`},
		{"fa self", fa("192.0.2.2"), false, `x.toml:6: foreign_agent[1].address 192.0.2.2 is agent.address: the Home Agent's own address cannot be a foreign agent's`},
		{"fa vip", "virtual_address = \"192.0.2.1\"\n" + fa("192.0.2.1"), false, `x.toml:7: foreign_agent[1].address 192.0.2.1 is agent.virtual_address: the group's address cannot be a foreign agent's`},
		// group
		{"group no key", "[group]\nenabled = true", false, `x.toml:6: group.key is required when group.enabled is true`},
		{"group unicast", "[group]\naddress = \"192.0.2.9\"", false, `x.toml:6: group.address 192.0.2.9 is not a multicast address: use one in 224.0.0.0/4, e.g. 224.0.0.240 (the default, in RFC 5771's Local Network Control Block 224.0.0.0/24)`},
		{"group port", "[group]\nport = 434", false, `x.toml:6: group.port 434 is agent.listen_port (default): the group protocol needs its own port`},
		{"group port both written", "listen_port = 5000\n[group]\nport = 5000", false, `x.toml:7: group.port 5000 is agent.listen_port (line 5): the group protocol needs its own port`},
		{"group port default", "listen_port = 4343\n[group]\nenabled = true\nkey = \"text:k\"", false, `x.toml:5: agent.listen_port 4343 is group.port (default): the group protocol needs its own port; choose another listen_port, or set group.port`},
		{"heartbeat port is listen_port", "listen_port = 5001\n[group]\nport = 5000", false, `x.toml:7: group.port 5000 + 1 is agent.listen_port: the group heartbeat uses group.port + 1; choose ports two apart`},
		{"heartbeat port past 65535", "[group]\nport = 65535", false, `x.toml:6: group.port is 65535: the group heartbeat uses group.port + 1; choose a port below 65535`},
		{"group peers self", "[group]\npeers = [\"192.0.2.3\", \"192.0.2.2\"]", false, `x.toml:6: group.peers[2] 192.0.2.2 is this agent's own address`},
		{"group max_members below peers", "[group]\nmax_members = 2\npeers = [\"192.0.2.3\", \"192.0.2.4\"]", false, `x.toml:6: group.max_members is 2 but group.peers lists 2 other members: raise max_members to at least 3`},
		{"group max_members range", "[group]\nmax_members = 101", false, `x.toml:6: group.max_members 101 out of range 2..100`},
		{"group peers dup", "[group]\npeers = [\n \"192.0.2.3\",\n \"192.0.2.3\",\n]", false, `x.toml:6: group.peers[2] 192.0.2.3 is listed twice`},
		{"accept key id is key_id", "[group]\nkey_id = 3\n[[group.accept_keys]]\nid = 3\nkey = \"text:k\"", false, `x.toml:8: group.accept_keys[1].id 3 is used twice (also at line 6): group.key_id and the accept_keys ids must all differ`},
		{"accept key id is default key_id", "[group]\n[[group.accept_keys]]\nid = 1\nkey = \"text:k\"", false, `x.toml:7: group.accept_keys[1].id 1 is used twice (also group.key_id, by default): group.key_id and the accept_keys ids must all differ`},
		{"accept key ids", "[group]\n[[group.accept_keys]]\nid = 2\nkey = \"text:k\"\n[[group.accept_keys]]\nid = 2\nkey = \"text:l\"", false, `x.toml:10: group.accept_keys[2].id 2 is used twice (also at line 7): group.key_id and the accept_keys ids must all differ`},
		{"group ttl is not configurable", "[group]\nttl = 1", false, `x.toml:6: group.ttl unknown key in [group]`},
		{"require replication standalone", "[group]\nrequire_replication = true", false, `x.toml:6: group.require_replication is true but group.enabled is false`},
		{"require replication unheld", "[group]\nenabled = true\nkey = \"text:k\"\nack_before_reply = false\nrequire_replication = true", false, `x.toml:9: group.require_replication is true but group.ack_before_reply is false`},
		{"require replication type", "[group]\nrequire_replication = \"yes\"", false, `x.toml:6: group.require_replication must be true or false`},
		// vrrp
		{"vrrp priority", "virtual_address = \"192.0.2.1\"\n[vrrp]\nenabled = true\npriority = 300", false, `x.toml:8: vrrp.priority 300 out of range 1..254`},
		{"vrrp 255", "[vrrp]\npriority = 255", false, `x.toml:6: vrrp.priority 255 is reserved for the address owner`},
		{"vrrp owner", "virtual_address = \"192.0.2.2\"\n[vrrp]\nenabled = true\npriority = 100", false, `x.toml:8: vrrp.priority 100: this agent owns the virtual address`},
		{"vrrp no vip", "[vrrp]\nenabled = true", false, `x.toml:6: vrrp.enabled is true but agent.virtual_address is not set`},
		{"vrrp cs", "[vrrp]\nadvert_interval = \"15ms\"", false, `x.toml:6: vrrp.advert_interval 15ms is not a multiple of 10ms`},
		{"vrrp interval", "[vrrp]\nadvert_interval = \"41s\"", false, `x.toml:6: vrrp.advert_interval 41s out of range 10ms..40.95s`},
		{"vrrp vrid", "[vrrp]\nvrid = 0", false, `x.toml:6: vrrp.vrid 0 out of range 1..255`},
		{"vrrp track", "[vrrp]\n[[vrrp.track_interfaces]]\nweight = 300", false, `x.toml:7: vrrp.track_interfaces[1].weight 300 out of range 0..254`},
		{"vrrp track ifname", "[vrrp]\n[[vrrp.track_interfaces]]\nweight = 3", false, `x.toml:6: vrrp.track_interfaces[1].interface is required`},
		{"vrrp track dup", "[vrrp]\ntrack_interfaces = [{interface = \"eth1\"}, {interface = \"eth1\"}]", false, `x.toml:6: vrrp.track_interfaces[2].interface "eth1" is tracked twice`},
		{"vrrp garp interval", "[vrrp]\ngarp_interval = \"2m\"", false, `x.toml:6: vrrp.garp_interval 2m out of range 0s..1m`},
		{"vrrp notify", "[vrrp]\nnotify_command = \"notify.sh\"", false, `x.toml:6: vrrp.notify_command "notify.sh" must be an absolute path`},
		{"both", "virtual_address = \"192.0.2.1\"\n[vrrp]\nenabled = true\n[hsrp]\nenabled = true", false, `x.toml:9: hsrp.enabled and vrrp.enabled (line 7) are both true`},
		// hsrp
		{"hsrp hold", "virtual_address = \"192.0.2.1\"\n[hsrp]\nenabled = true\nhello = \"5s\"\nhold = \"5s\"", false, `x.toml:9: hsrp.hold 5s must be longer than hsrp.hello 5s: set hold to at least 3 × hello, e.g. "15s"`},
		{"hsrp hold default", "virtual_address = \"192.0.2.1\"\n[hsrp]\nenabled = true\nhello = \"15s\"", false, `x.toml:8: hsrp.hold 10s (default) must be longer than hsrp.hello 15s: set hold to at least 3 × hello, e.g. "45s"`},
		{"hsrp hello default", "virtual_address = \"192.0.2.1\"\n[hsrp]\nenabled = true\nhold = \"2s\"", false, `x.toml:8: hsrp.hold 2s must be longer than hsrp.hello 3s (default): set hold to at least 3 × hello, e.g. "9s"`},
		{"hsrp hold over 255s", "virtual_address = \"192.0.2.1\"\n[hsrp]\nenabled = true\nhello = \"100s\"\nhold = \"90s\"", false, `x.toml:9: hsrp.hold 90s must be longer than hsrp.hello 100s: lower hello, so that hold (at most 255s) can be 3 × hello`},
		{"hsrp fraction", "[hsrp]\nhello = \"1500ms\"", false, `x.toml:6: hsrp.hello 1500ms is not a whole number of seconds`},
		{"hsrp auth", "[hsrp]\nauth = \"123456789\"", false, `x.toml:6: hsrp.auth is 9 bytes long`},
		{"hsrp owner", "virtual_address = \"192.0.2.2\"\n[hsrp]\nenabled = true", false, `x.toml:7: hsrp.enabled is true but agent.virtual_address equals agent.address`},
		// datapath
		{"route proto bgp", "[datapath]\nroute_protocol = 186", false, `x.toml:6: datapath.route_protocol 186 is the route protocol of "bgp"`},
		{"route proto range", "[datapath]\nroute_protocol = 256", false, `x.toml:6: datapath.route_protocol 256 out of range 5..255`},
		{"tunnel dev", "[datapath]\ntunnel_device = \"eth0\"", false, `x.toml:6: datapath.tunnel_device "eth0" is agent.interface`},
		{"reconcile", "[datapath]\nreconcile_interval = \"0s\"", false, `x.toml:6: datapath.reconcile_interval 0s out of range 1s..1h`},
		{"proxy mode", "[datapath]\nproxy_arp_mode = \"route\"", false, `x.toml:6: datapath.proxy_arp_mode "route": want "entries" (one proxy entry per away node) or "interface"`},
		// advertise
		{"adv dest", "[advertise]\ndestination = \"224.0.0.2\"", false, `x.toml:6: advertise.destination 224.0.0.2: advertisements go to 224.0.0.1`},
		{"adv lifetime", "[advertise]\ninterval = \"10s\"\nlifetime = \"5s\"", false, `x.toml:7: advertise.lifetime 5s is shorter than advertise.interval 10s`},
		{"adv whole", "[advertise]\ninterval = \"1.5s\"", false, `x.toml:6: advertise.interval 1.5s is not a whole number of seconds`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.text
			if !tc.full {
				text = base + tc.text + "\n"
			}
			c, err := Parse("x.toml", []byte(text))
			if err == nil {
				t.Fatalf("no error; config %+v", c)
			}
			if c != nil {
				t.Errorf("config returned with an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not contain %q:\n%v", tc.want, err)
			}
			for _, e := range Errors(err) {
				if e.File != "x.toml" || !strings.HasPrefix(e.Error(), "config: x.toml") {
					t.Errorf("error without file: %q", e)
				}
			}
		})
	}
}

// over returns base with one agent key's value replaced, on the same line.
func over(key, value string) string {
	lines := strings.Split(base, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, key+" = ") {
			lines[i] = key + " = " + value
		}
	}
	return strings.Join(lines, "\n")
}

func node(lines string) string {
	return "[[node]]\n" + lines + "\nspi = 256\nkey = \"text:0123456789abcdef\""
}

func fa(addr string) string {
	return "[[foreign_agent]]\naddress = \"" + addr + "\"\nspi = 256\nkey = \"text:0123456789abcdef\""
}

func TestSecretsNeverEchoed(t *testing.T) {
	for _, text := range []string{
		base + "[[node]]\nhome_address = \"192.0.2.9\"\nspi = 256\nkey = \"hunter2-plain\"\n",
		base + "[group]\nkey = \"hex:hunter2-plain\"\n",
		base + "[hsrp]\nauth = \"hunter2-plain\"\n",
		base + "[[node]]\nhome_address = \"192.0.2.9\"\nspi = 256\nkey = [\"hunter2-plain\"]\n",
	} {
		_, err := Parse("x.toml", []byte(text))
		if err == nil {
			t.Fatalf("no error for %q", text)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("secret echoed: %v", err)
		}
	}
}

func TestAllErrorsReported(t *testing.T) {
	text := `[agent]
interface = "eth0"
address = "192.0.2.2"
home_network = "192.0.2.0/24"
capacity = "ten"
log_level = "loud"
bogus = 1

[[node]]
home_address = "192.0.2.9"
spi = 12
key = "plain"

[vrrp]
priority = 300
advert_interval = "15ms"

[hsrp]
auth = "much-too-long"
`
	_, err := Parse("x.toml", []byte(text))
	errs := Errors(err)
	want := []string{
		`x.toml:5: agent.capacity must be an integer`,
		`x.toml:6: agent.log_level "loud" is not a level`,
		`x.toml:7: agent.bogus unknown key`,
		`x.toml:11: node[1].spi 12 is reserved`,
		`x.toml:12: node[1].key must start with`,
		`x.toml:15: vrrp.priority 300 out of range 1..254`,
		`x.toml:16: vrrp.advert_interval 15ms is not a multiple of 10ms`,
		`x.toml:19: hsrp.auth is 13 bytes long`,
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		if !strings.Contains(errs[i].Error(), w) {
			t.Errorf("error %d = %q, want it to contain %q", i, errs[i], w)
		}
	}
	// One error per line of the joined text, in line order.
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(want) {
		t.Errorf("joined error has %d lines", len(lines))
	}
	var ce *Error
	if !errors.As(err, &ce) || ce.Line != 5 {
		t.Errorf("errors.As: %v", ce)
	}
}

func TestWarnings(t *testing.T) {
	c := mustParse(t, base+"virtual_address = \"192.0.2.1\"\nreverse_tunnel = false\n[[node]]\nhome_address = \"192.0.2.9\"\nspi = 256\nkey = \"text:short\"\nreverse_tunnel = true\n[hsrp]\nenabled = true\nhello = \"4s\"\n")
	want := []string{
		"x.toml:10: node[1].key is 5 bytes; 16 or more are recommended",
		"x.toml:11: node[1].reverse_tunnel has no effect while agent.reverse_tunnel is false",
		`x.toml:14: hsrp.hold 10s (default) is less than 3 × hsrp.hello 4s: one lost hello can cause a takeover; set hold to at least 3 × hello, e.g. "12s"`, // hold is absent: the line of hello
		"x.toml:13: hsrp.enabled is true but group.enabled is false: a backup that takes over has no bindings",                                               // the enabling key's line, never :0
	}
	if len(c.Warnings) != len(want) {
		t.Fatalf("warnings %q", c.Warnings)
	}
	for i, w := range want {
		if !strings.HasPrefix(c.Warnings[i], w) {
			t.Errorf("warning %d = %q, want %q", i, c.Warnings[i], w)
		}
	}
}

// In a group the agent raises tombstone_lifetime to max_lifetime
// (agent/group.go); a written value below it draws a warning, the default
// does not (the docs say it is raised).
// A disabled HSRP section is not checked for its timers (nothing runs them);
// an invalid hello is reported once, not compared with hold as its default.
func TestHSRPTimersOnlyWhenEnabled(t *testing.T) {
	if c := mustParse(t, base+"[hsrp]\nhello = \"5s\"\nhold = \"5s\"\n"); len(ownWarnings(c)) != 0 {
		t.Errorf("disabled hsrp: warnings %q", c.Warnings)
	}
	if c := mustParse(t, base+"[hsrp]\nhello = \"4s\"\n"); len(ownWarnings(c)) != 0 {
		t.Errorf("disabled hsrp: warnings %q", c.Warnings)
	}
	_, err := Parse("x.toml", []byte(base+"virtual_address = \"192.0.2.1\"\n[hsrp]\nenabled = true\nhello = \"1500ms\"\nhold = \"2s\"\n"))
	if errs := Errors(err); len(errs) != 1 || !strings.Contains(errs[0].Error(), "x.toml:8: hsrp.hello 1500ms is not a whole number of seconds") {
		t.Errorf("want only the hello error, got:\n%v", err)
	}
}

func TestTombstoneLifetimeWarning(t *testing.T) {
	grp := "[group]\nenabled = true\nkey = \"text:0123456789abcdef\"\n"
	c := mustParse(t, base+"tombstone_lifetime = \"5m\"\n"+grp)
	want := `x.toml:5: agent.tombstone_lifetime 5m is shorter than agent.max_lifetime 1800 (30m): in a group it is raised to 30m, because a shorter tombstone could let a delayed update resurrect a de-registered binding; set it to at least "30m"`
	if w := ownWarnings(c); len(w) != 1 || w[0] != want {
		t.Errorf("warnings %q\nwant %q", c.Warnings, want)
	}
	for _, text := range []string{
		base + "tombstone_lifetime = \"5m\"\n",                          // no group
		base + grp,                                                      // the default: documented as raised
		base + "tombstone_lifetime = \"30m\"\n" + grp,                   // equal
		base + "tombstone_lifetime = \"1m\"\nmax_lifetime = 60\n" + grp, // equal, other units
	} {
		if c := mustParse(t, text); len(ownWarnings(c)) != 0 {
			t.Errorf("%q: warnings %q", text, c.Warnings)
		}
	}
}

// A large table with per-node proxy entries draws a warning naming the
// line (or the section when the key is absent); "interface" does not.
func TestProxyEntriesWarning(t *testing.T) {
	big := strings.Replace(base, "[agent]\n", "[agent]\ncapacity = 100000\n", 1)
	for _, c := range []struct {
		extra, want string
	}{
		{"[datapath]\nproxy_arp_mode = \"entries\"\n", `x.toml:7: datapath.proxy_arp_mode "entries" with agent.capacity 100000: the kernel installs proxy entries in O(N²)`},
		{"[datapath]\n", `x.toml:6: datapath.proxy_arp_mode "entries" with agent.capacity 100000`},
		{"", `x.toml:2: datapath.proxy_arp_mode "entries" with agent.capacity 100000`}, // no [datapath]: the line of agent.capacity
		{"[datapath]\nproxy_arp_mode = \"interface\"\n", ""},
		{"[datapath]\nproxy_arp = false\n", ""},
	} {
		cfg := mustParse(t, big+c.extra)
		if c.want == "" {
			if len(ownWarnings(cfg)) != 0 {
				t.Errorf("%q: warnings %q", c.extra, cfg.Warnings)
			}
			if c.extra == "[datapath]\nproxy_arp_mode = \"interface\"\n" && cfg.Datapath.ProxyARPMode != ProxyARPInterface {
				t.Errorf("mode %q", cfg.Datapath.ProxyARPMode)
			}
			continue
		}
		if w := ownWarnings(cfg); len(w) != 1 || !strings.HasPrefix(w[0], c.want) {
			t.Errorf("%q: warnings %q, want %q", c.extra, cfg.Warnings, c.want)
		}
	}
}

// A required key that is present with the wrong type is one mistake: the
// type error names it, and no "is required" follows for the same key.
func TestWrongTypeOfRequiredKeyIsOneError(t *testing.T) {
	cases := []struct{ name, text, want string }{
		{"node spi string", "[[node]]\nhome_address = \"192.0.2.9\"\nspi = \"256\"\nkey = \"text:k\"", `x.toml:8: node[1].spi must be an integer, got string "256"`},
		{"node key int", "[[node]]\nhome_address = \"192.0.2.9\"\nspi = 256\nkey = 5", `x.toml:9: node[1].key must be a string`},
		{"fa spi string", "[[foreign_agent]]\naddress = \"198.51.100.1\"\nspi = \"256\"\nkey = \"text:k\"", `x.toml:8: foreign_agent[1].spi must be an integer, got string "256"`},
		{"fa address int", "[[foreign_agent]]\naddress = 5\nspi = 256\nkey = \"text:k\"", `x.toml:7: foreign_agent[1].address must be a string`},
		{"group key int", "[group]\nenabled = true\nkey = 5", `x.toml:8: group.key must be a string`},
		{"agent interface int", "", `x.toml:2: agent.interface must be a string`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := base + "\n" + c.text
			if c.text == "" {
				text = "[agent]\ninterface = 5\naddress = \"192.0.2.2\"\nhome_network = \"192.0.2.0/24\"\n"
			}
			_, err := Parse("x.toml", []byte(text))
			errs := Errors(err)
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want exactly 1 (%s):\n%v", len(errs), c.want, err)
			}
			if !strings.Contains(errs[0].Error(), c.want) {
				t.Errorf("error = %q, want it to contain %q", errs[0], c.want)
			}
		})
	}
}

// The agent owns the namespace's redirects unless told to leave them.
func TestSendRedirects(t *testing.T) {
	if c := mustParse(t, base); c.Datapath.SendRedirects {
		t.Fatalf("default: %+v", c.Datapath)
	}
	if c := mustParse(t, base+"[datapath]\nsend_redirects = true\n"); !c.Datapath.SendRedirects || !c.Datapath.TunnelDF {
		t.Fatalf("send_redirects = true: %+v", c.Datapath)
	}
}

func TestTunnelDFOff(t *testing.T) {
	c := mustParse(t, base+"[datapath]\ntunnel_df = false\n")
	if c.Datapath.TunnelDF || !c.Datapath.ReverseCheck {
		t.Fatalf("datapath: %+v", c.Datapath)
	}
}
