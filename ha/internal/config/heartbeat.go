package config

import "time"

// Heartbeat defaults: a peer is down after 300 ms of silence, or sooner
// with fast VRRP advertisements (see deriveHeartbeat).
const (
	DefaultHeartbeatInterval   = 100 * time.Millisecond
	DefaultHeartbeatMultiplier = 3
)

// HeartbeatForAdvert is the default heartbeat interval for an election
// advertising every advert: the advertisement interval, at most
// DefaultHeartbeatInterval and at least 10 ms, in whole milliseconds. With
// slow advertisements the heartbeat detects the active member's death in
// 300 ms instead of three missed advertisements. A third of the
// advertisement interval would detect it in about one interval, but then a
// loop stalled for a hundred milliseconds on a loaded router (a fleet
// re-registering) is taken for dead and two members serve at once: that is
// an operator's choice (group.heartbeat_interval), not the default.
func HeartbeatForAdvert(advert time.Duration) time.Duration {
	d := min(advert, DefaultHeartbeatInterval)
	return max(d.Truncate(time.Millisecond), 10*time.Millisecond)
}

// deriveHeartbeat sets the default heartbeat interval from the election's
// advertisement interval (VRRP's advert_interval, HSRP's hello time) when
// group.heartbeat_interval is absent. Runs after the elections are built.
func (d *decoder) deriveHeartbeat(r *rawConfig, c *Config) {
	if r.Group.HeartbeatInterval.Set {
		return
	}
	switch {
	case c.VRRP.Enabled:
		c.Group.HeartbeatInterval = HeartbeatForAdvert(c.VRRP.AdvertInterval)
	case c.HSRP.Enabled && c.HSRP.Hello > 0:
		c.Group.HeartbeatInterval = HeartbeatForAdvert(c.HSRP.Hello)
	}
}

// buildHeartbeat reads the heartbeat keys of [group]. A member with the
// heartbeat off still hears its peers' heartbeats (they keep it informed);
// it only sends none, and its peers fall back to the dead interval for it.
func (d *decoder) buildHeartbeat(rg *rawGroup, g *Group) {
	g.Heartbeat = d.boolOr(rg.Heartbeat, true)
	g.HeartbeatInterval = d.durIn(rg.HeartbeatInterval, DefaultHeartbeatInterval, 10*time.Millisecond, 10*time.Second)
	g.HeartbeatMultiplier = int(d.intIn(rg.HeartbeatMultiplier, DefaultHeartbeatMultiplier, 1, 255))
	g.HeartbeatFailover = d.boolOr(rg.HeartbeatFailover, true) && g.Heartbeat
	if f := rg.HeartbeatFailover; f.Set && f.V && !g.Heartbeat {
		d.errorf(f.Line, f.Key, "is true but group.heartbeat is false: the fast failure detector is the heartbeat; set heartbeat = true or remove the key")
	}
}
