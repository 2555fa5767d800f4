// Package version holds the build's version string, stamped by the Makefile
// and by firmware/mkimage.sh with -ldflags -X so that `hagent -version` and
// the console report what runs.
package version

import (
	"runtime/debug"
	"sync"
)

// Version is overwritten at link time; "dev" means an unstamped build.
var Version = "dev"

// String is the version to report: the stamped one, or else the commit Go
// embedded in the binary (a plain `go build` in a git checkout records
// vcs.revision and vcs.modified), or "dev" when neither is known.
func String() string {
	if Version != "dev" && Version != "" {
		return Version
	}
	once.Do(func() {
		fallback = "dev"
		if bi, ok := debug.ReadBuildInfo(); ok {
			fallback = fromBuildInfo(bi)
		}
	})
	return fallback
}

var (
	once     sync.Once
	fallback string
)

// fromBuildInfo renders the VCS settings like `git describe --always
// --dirty` does for an untagged commit: the abbreviated hash, "-dirty" when
// the tree had uncommitted changes.
func fromBuildInfo(bi *debug.BuildInfo) string {
	var rev string
	var dirty bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}
