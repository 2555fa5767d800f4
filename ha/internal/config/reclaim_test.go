package config

import (
	"strings"
	"testing"
	"time"
)

func TestReclaimKeys(t *testing.T) {
	for _, sec := range []string{"vrrp", "hsrp"} {
		c := mustParse(t, base+"["+sec+"]\ngarp_lower_prio_count = 0\ngarp_lower_prio_interval = \"250ms\"\ngarp_refresh = \"30s\"\ngarp_refresh_count = 2\n")
		r := c.VRRP.Reclaim
		if sec == "hsrp" {
			r = c.HSRP.Reclaim
		}
		if r != (Reclaim{LowerPrioCount: 0, LowerPrioInterval: 250 * time.Millisecond, Refresh: 30 * time.Second, RefreshCount: 2}) {
			t.Errorf("%s: %+v", sec, r)
		}
		for _, tc := range []struct{ line, want string }{
			{"garp_lower_prio_count = 101", "x.toml:6: " + sec + ".garp_lower_prio_count 101 out of range 0..100"},
			{"garp_lower_prio_interval = \"1ms\"", "x.toml:6: " + sec + ".garp_lower_prio_interval 1ms out of range 10ms..1m"},
			{"garp_refresh = \"2h\"", "x.toml:6: " + sec + ".garp_refresh 2h out of range 0s..1h"},
			{"garp_refresh_count = 0", "x.toml:6: " + sec + ".garp_refresh_count 0 out of range 1..100"},
		} {
			_, err := Parse("x.toml", []byte(base+"["+sec+"]\n"+tc.line+"\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v, want %q", tc.line, err, tc.want)
			}
		}
	}
}

// HSRP timers: learnt when neither key is set (RFC 2281 §5.1: never one
// configured and one learnt), the other's default when one is.
func TestHSRPTimersLearnt(t *testing.T) {
	for _, tc := range []struct {
		keys        string
		hello, hold time.Duration
	}{
		{"", 0, 0},
		{"hello = \"1s\"\nhold = \"4s\"\n", time.Second, 4 * time.Second},
		{"hello = \"2s\"\n", 2 * time.Second, DefaultHSRPHold},
		{"hold = \"15s\"\n", DefaultHSRPHello, 15 * time.Second},
	} {
		c := mustParse(t, base+"[hsrp]\n"+tc.keys)
		if c.HSRP.Hello != tc.hello || c.HSRP.Hold != tc.hold {
			t.Errorf("%q: hello %v hold %v, want %v %v", tc.keys, c.HSRP.Hello, c.HSRP.Hold, tc.hello, tc.hold)
		}
	}
}
