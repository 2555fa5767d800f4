package datapath

import "os"

// AdoptTunnelEnv, set to "1" in the agent's environment, makes Open adopt an
// existing device named Config.TunnelName whatever its kind, as the
// datapath's own tests do. It exists for the integration tests of the agent
// binary on kernels without the ipip driver (the build machines'): a VXLAN
// device in external mode stands in for mip0, and the routes, their
// protocol and metrics and the reverse check are programmed exactly as on
// ipip; what leaves through it is VXLAN, not IP in IP, so it is never for a
// real deployment. Without it a device of the wrong kind is refused.
const AdoptTunnelEnv = "HAGENT_TEST_ADOPT_TUNNEL"

func adoptFromEnv(cfg *Config) {
	if os.Getenv(AdoptTunnelEnv) == "1" {
		cfg.anyTunnel = true
	}
}
