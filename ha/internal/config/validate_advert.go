package config

import (
	"net/netip"
	"time"
)

func (d *decoder) buildAdvert(r *rawConfig, c *Config) {
	ra, v := &r.Advert, &c.Advert
	v.Enabled = d.boolOr(ra.Enabled, false)
	v.Interval = d.durIn(ra.Interval, DefaultAdvertInterval, time.Second, 30*time.Minute)
	if f := ra.Interval; f.Set && v.Interval%time.Second != 0 {
		d.errorf(f.Line, f.Key, "%s is not a whole number of seconds", f.V)
		v.Interval = DefaultAdvertInterval
	}
	v.Lifetime = d.durIn(ra.Lifetime, max(DefaultAdvertLifetime, 3*v.Interval), time.Second, 65535*time.Second)
	if f := ra.Lifetime; f.Set {
		switch {
		case v.Lifetime%time.Second != 0:
			d.errorf(f.Line, f.Key, "%s is not a whole number of seconds: the ICMP lifetime field counts seconds", f.V)
			v.Lifetime = DefaultAdvertLifetime
		case v.Lifetime < v.Interval:
			d.errorf(f.Line, f.Key, "%s is shorter than advertise.interval %s: nodes would forget the agent between advertisements (3 × interval is usual)", fmtDur(v.Lifetime), fmtDur(v.Interval))
		}
	}
	v.Destination = netip.MustParseAddr(DefaultAdvertDestination)
	if f := ra.Destination; f.Set {
		if a := d.ipv4(f, true, ""); a.IsValid() {
			if a == netip.MustParseAddr("224.0.0.1") || a == netip.MustParseAddr("255.255.255.255") {
				v.Destination = a
			} else {
				d.errorf(f.Line, f.Key, "%s: advertisements go to 224.0.0.1 (all systems) or 255.255.255.255 (RFC 5944 §2.1)", a)
			}
		}
	}
}
