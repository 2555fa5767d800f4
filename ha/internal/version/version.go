// Package version holds the build's version string, stamped by the Makefile
// with -ldflags -X so that `hagent -version` and the console report what runs.
package version

// Version is overwritten at link time; "dev" means an unstamped build.
var Version = "dev"
