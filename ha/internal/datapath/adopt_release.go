//go:build !hagent_testhooks

package datapath

// The release build: no environment variable changes what Open adopts
// (adopt.go, build tag hagent_testhooks, is for the integration tests).

// AdoptTunnelEnv is the test build's variable (adopt.go); a release build
// ignores it.
const AdoptTunnelEnv = "HAGENT_TEST_ADOPT_TUNNEL"

// TestHooks reports whether this build carries the test hooks.
const TestHooks = false

func adoptFromEnv(*Config) {}
