package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/hagent/hagent/ha/internal/advert"
	"github.com/hagent/hagent/ha/internal/config"
)

// advertiser runs Agent Advertisements on the home link (RFC 5944 §2) while
// this agent is active.
type advertiser struct {
	r      *advert.Runner
	cancel context.CancelFunc
	done   chan struct{}
}

// advertConfig maps the configuration onto what the advertisement runner
// needs: [advertise] and the agent's address, interface, home network,
// lifetime cap and encapsulations.
func advertConfig(c *config.Config) advert.Config {
	return advert.Config{
		Advert:         advert.Schedule{Interval: c.Advert.Interval, Lifetime: c.Advert.Lifetime, Destination: c.Advert.Destination},
		Interface:      c.Agent.Interface,
		Address:        c.Agent.Address,
		HomeNetwork:    c.Agent.HomeNetwork,
		RegLifetime:    c.Agent.MaxLifetime,
		Encapsulations: c.Agent.Encapsulations,
		UDPTunnel:      c.NAT.UDPTunnel,
	}
}

func (a *Agent) startAdvert() error {
	if !a.cfg.Advert.Enabled {
		return nil
	}
	r, err := advert.New(advertConfig(a.cfg), a.log.With("sub", "advert"))
	if err != nil {
		return fmt.Errorf("agent: agent advertisements: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ad := &advertiser{r: r, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(ad.done)
		if err := r.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Error("agent advertisements stopped", "err", err)
		}
	}()
	a.adv = ad
	// Standalone: advertise from the start (from the virtual address if
	// one is configured); in a group, the role decides.
	if a.grp.elector == nil && a.grp.m == nil {
		a.advertise(true)
	}
	return nil
}

// advertise follows the role: only the active member advertises, from the
// virtual address.
func (a *Agent) advertise(active bool) {
	if a.adv == nil {
		return
	}
	src := netip.Addr{}
	if active {
		src = a.cfg.Agent.VirtualAddress // invalid: the runner uses agent.address
	}
	a.adv.r.SetActive(active, src)
}

// stopAdvert ends advertisements (a final one with lifetime 0 when active)
// and waits a little for it to leave.
func (a *Agent) stopAdvert() {
	if a.adv == nil {
		return
	}
	a.adv.cancel() // a second call (deferred) finds done closed at once
	select {
	case <-a.adv.done:
	case <-time.After(2 * time.Second):
		a.log.Warn("agent advertisements did not stop within 2s")
	}
}
