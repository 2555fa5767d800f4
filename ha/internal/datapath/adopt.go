//go:build hagent_testhooks

package datapath

import "os"

// This file is compiled only with the build tag hagent_testhooks, which the
// integration tests (ha/itest) build the agent binary with; the shipped
// binary has no trace of it (TestNoTestHooksInRelease).
//
// AdoptTunnelEnv, set to "1" in the environment of such a test build, makes
// Open adopt an existing device named Config.TunnelName whatever its kind,
// as the datapath's own tests do. It exists for the integration tests of the
// agent binary on kernels without the ipip driver (the build machines'): a
// VXLAN device in external mode stands in for mip0, and the routes, their
// protocol and metrics and the reverse check are programmed exactly as on
// ipip; what leaves through it is VXLAN, not IP in IP, so it is never for a
// real deployment. An operator who made the real device himself needs no
// hook: an existing device of the right kind in external mode named by
// datapath.tunnel_device is adopted by every build.
const AdoptTunnelEnv = "HAGENT_TEST_ADOPT_TUNNEL"

// TestHooks reports whether this build carries the test hooks.
const TestHooks = true

func adoptFromEnv(cfg *Config) {
	if os.Getenv(AdoptTunnelEnv) == "1" {
		cfg.anyTunnel = true
	}
}
