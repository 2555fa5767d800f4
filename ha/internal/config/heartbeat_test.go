package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestHeartbeatKeys(t *testing.T) {
	c := mustParse(t, base+"[group]\nenabled = true\nkey = \"text:k\"\n")
	g := c.Group
	if !g.Heartbeat || g.HeartbeatInterval != 100*time.Millisecond || g.HeartbeatMultiplier != 3 || !g.HeartbeatFailover {
		t.Fatalf("defaults: %+v", g)
	}
	c = mustParse(t, base+"[group]\nheartbeat_interval = \"30ms\"\nheartbeat_multiplier = 5\nheartbeat_failover = false\n")
	if g := c.Group; g.HeartbeatInterval != 30*time.Millisecond || g.HeartbeatMultiplier != 5 || g.HeartbeatFailover {
		t.Fatalf("set: %+v", g)
	}
	if c := mustParse(t, base+"[group]\nheartbeat = false\n"); c.Group.Heartbeat || c.Group.HeartbeatFailover {
		t.Fatalf("heartbeat off leaves the failover on: %+v", c.Group)
	}
	for _, c := range []struct{ text, want string }{
		{"[group]\nheartbeat_interval = \"5ms\"", `x.toml:6: group.heartbeat_interval 5ms out of range 10ms..10s`},
		{"[group]\nheartbeat_multiplier = 0", `x.toml:6: group.heartbeat_multiplier 0 out of range 1..255`},
		{"[group]\nheartbeat = false\nheartbeat_failover = true", `x.toml:7: group.heartbeat_failover is true but group.heartbeat is false`},
		{"[group]\nheartbeat = 1", `x.toml:6: group.heartbeat must be true or false`},
	} {
		_, err := Parse("x.toml", []byte(base+c.text))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.text, err, c.want)
		}
	}
}

// Without heartbeat_interval the heartbeat follows the election's
// advertisement interval: a third of it, at most 100 ms; a set key wins.
func TestHeartbeatFollowsAdvert(t *testing.T) {
	vrrp := base + "virtual_address = \"192.0.2.1\"\n[group]\nenabled = true\nkey = \"text:k\"\n%s[vrrp]\nenabled = true\nadvert_interval = %q\n"
	for _, c := range []struct {
		key, advert string
		want        time.Duration
	}{
		{"", "100ms", 100 * time.Millisecond},
		{"", "1s", 100 * time.Millisecond},
		{"", "50ms", 50 * time.Millisecond},
		{"", "20ms", 20 * time.Millisecond},
		{"heartbeat_interval = \"50ms\"\n", "100ms", 50 * time.Millisecond},
	} {
		c2 := mustParse(t, fmt.Sprintf(vrrp, c.key, c.advert))
		if got := c2.Group.HeartbeatInterval; got != c.want {
			t.Errorf("advert %s, key %q: heartbeat %v, want %v", c.advert, c.key, got, c.want)
		}
	}
	hsrp := base + "virtual_address = \"192.0.2.1\"\n[group]\nenabled = true\nkey = \"text:k\"\n[hsrp]\nenabled = true\nhello = \"1s\"\nhold = \"3s\"\n"
	if got := mustParse(t, hsrp).Group.HeartbeatInterval; got != 100*time.Millisecond {
		t.Errorf("hsrp hello 1s: heartbeat %v, want 100ms", got)
	}
}
