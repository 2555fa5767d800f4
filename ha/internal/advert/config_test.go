package advert

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func testConfig() Config {
	return Config{
		Advert:      Schedule{Interval: 3 * time.Second, Lifetime: 9 * time.Second, Destination: netip.MustParseAddr("224.0.0.1")},
		Interface:   "eth0",
		Address:     netip.MustParseAddr("192.0.2.2"),
		HomeNetwork: netip.MustParsePrefix("192.0.2.0/24"),
		RegLifetime: 1800,
	}
}

func TestConfigFlags(t *testing.T) {
	for encaps, want := range map[string]string{
		"ipip":             "H",
		"ipip gre":         "H G",
		"ipip minimal gre": "H M G",
	} {
		c := testConfig()
		c.Encapsulations = strings.Fields(encaps)
		if got := c.Flags().String(); got != want {
			t.Errorf("%s: flags %s, want %s", encaps, got, want)
		}
	}
	c := testConfig()
	c.UDPTunnel = true
	if got := c.Flags().String(); got != "H U" {
		t.Errorf("UDP tunnelling offered: flags %s, want H U", got)
	}
}

func TestConfigValidate(t *testing.T) {
	c := testConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, f := range map[string]func(c *Config){
		"no interface":    func(c *Config) { c.Interface = "" },
		"interval 0":      func(c *Config) { c.Advert.Interval = 0 },
		"interval 1.5s":   func(c *Config) { c.Advert.Interval = 1500 * time.Millisecond },
		"lifetime < int":  func(c *Config) { c.Advert.Lifetime = time.Second },
		"lifetime 65536s": func(c *Config) { c.Advert.Lifetime = 65536 * time.Second },
		"unicast dst":     func(c *Config) { c.Advert.Destination = netip.MustParseAddr("192.0.2.9") },
		"ipv6 address":    func(c *Config) { c.Address = netip.MustParseAddr("::1") },
	} {
		c := testConfig()
		f(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The advertisement the runner sends for the default configuration is the
// home-agent golden.
func TestTemplateIsGolden(t *testing.T) {
	c := testConfig()
	c.Encapsulations = []string{"ipip", "gre"}
	a := c.template()
	a.Routers[0].Addr = netip.MustParseAddr("192.0.2.1")
	a.Lifetime = 9
	b, err := a.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := unhex(t, goldenHA); string(b) != string(want) {
		t.Fatalf("got % x\nwant % x", b, want)
	}
}
