package agent

import (
	"net/netip"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/advert"
	"github.com/hagent/hagent/ha/internal/config"
)

func TestAdvertConfig(t *testing.T) {
	var cfg config.Config
	cfg.Agent.Interface = "eth1"
	cfg.Agent.Address = netip.MustParseAddr("192.0.2.2")
	cfg.Agent.HomeNetwork = netip.MustParsePrefix("192.0.2.0/24")
	cfg.Agent.MaxLifetime = 600
	cfg.Agent.Encapsulations = []string{"ipip", "minimal"}
	cfg.Advert = config.Advert{Enabled: true, Interval: 3 * time.Second, Lifetime: 9 * time.Second, Destination: netip.MustParseAddr("224.0.0.1")}
	c := advertConfig(&cfg)
	if c.Interface != "eth1" || c.Address != cfg.Agent.Address || c.HomeNetwork != cfg.Agent.HomeNetwork ||
		c.RegLifetime != 600 || c.Flags() != advert.FlagH|advert.FlagM || c.Validate() != nil {
		t.Fatalf("%+v", c)
	}
	if want := (advert.Schedule{Interval: 3 * time.Second, Lifetime: 9 * time.Second, Destination: cfg.Advert.Destination}); c.Advert != want {
		t.Fatalf("schedule %+v, want %+v", c.Advert, want)
	}
}
