package config

import "time"

// Heartbeat defaults: a peer is down after 300 ms of silence.
const (
	DefaultHeartbeatInterval   = 100 * time.Millisecond
	DefaultHeartbeatMultiplier = 3
)

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
