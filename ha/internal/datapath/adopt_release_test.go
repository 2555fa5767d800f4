//go:build !hagent_testhooks

package datapath

import "testing"

// TestNoTestHooksInRelease: in the build that ships, the test-only variable
// changes nothing — a device of the wrong kind named as the tunnel is
// refused, whatever the environment says.
func TestNoTestHooksInRelease(t *testing.T) {
	t.Setenv(AdoptTunnelEnv, "1")
	var cfg Config
	adoptFromEnv(&cfg)
	if cfg.anyTunnel {
		t.Fatalf("%s=1 makes a release build adopt any device as its tunnel", AdoptTunnelEnv)
	}
}
