// Package hostiletoml generates configuration texts that cost the TOML
// parser far more memory than their size. Only tests import it: the config
// package's unit tests and the tests that run `hagent -check` and SIGHUP on
// them and measure the process's peak memory.
package hostiletoml

import (
	"fmt"
	"strings"
)

// File is one such text, generated rather than kept as megabytes of
// fixtures, with what the refusal must say.
type File struct {
	Name string
	Text []byte
	Line int    // the line the error must name (0: the file as a whole)
	Want string // a phrase of the error
}

// hostileBase is a valid [agent] of four lines; the hostile part starts on
// line 5.
const hostileBase = "[agent]\ninterface = \"eth0\"\naddress = \"10.0.0.1\"\nhome_network = \"10.0.0.0/8\"\n"

// Files returns the shapes that cost quadratic (or just huge) memory
// in BurntSushi/toml v1.6.0 before they were bounded; the figures are RSS of
// `hagent -check` then.
func Files() []File {
	rep := strings.Repeat
	var keys, heads, wide strings.Builder
	keys.WriteString(hostileBase + "[" + rep("a", 200) + "." + rep("b", 200) + "]\n")
	for i := 0; keys.Len() < 1<<20; i++ {
		fmt.Fprintf(&keys, "k%x=1\n", i) // 180 MB: every key stores the 400-byte header again
	}
	for i := 0; heads.Len() < 1<<20; i++ {
		fmt.Fprintf(&heads, "k%x=1\n", i) // 80 MB: 150,000 tiny keys
	}
	wide.WriteString(hostileBase + "x = [\n")
	for wide.Len() < 1<<20 {
		wide.WriteString(rep("{},", 40) + "\n") // 75 MB: 350,000 empty inline tables
	}
	wide.WriteString("]\n")
	return []File{
		// 16 KB, 726 MB: each level of an inline table copies the path so far.
		{"inline-16k", []byte(hostileBase + "x = " + rep("{a = ", 2700) + "1" + rep("}", 2700) + "\n"), 5, "line is 16205 bytes long"},
		// 200 KB: killed by the OOM killer at 24 GB.
		{"inline-200k", []byte(hostileBase + "x = " + rep("{a = ", 40000) + "1" + rep("}", 40000) + "\n"), 5, "line is 240005 bytes long"},
		// The same nesting spread over lines (TOML 1.1 lets inline tables span lines).
		{"inline-lines", []byte(hostileBase + "x = " + rep("{a = \n", 2700) + "1" + rep("}\n", 2700)), 7, "more than 4 parts"},
		{"arrays-lines", []byte(hostileBase + "x = " + rep("[\n", 5000) + rep("]\n", 5000)), 13, "nest more than 8 deep"},
		// 240 MB at 4,000 parts: every implicit table stores its whole path.
		{"dotted-key", []byte(hostileBase + rep("a.", 2000) + "a = 1\n"), 5, "more than 4 parts"},
		{"dotted-header", []byte(hostileBase + "[" + rep("a.", 2000) + "a]\n"), 5, "more than 4 parts"},
		{"long-header-keys", []byte(keys.String()), 5, "longer than 64 bytes"},
		{"many-keys", []byte(hostileBase + "[x]\n" + heads.String()), 55001, "more than 55000 entries"},
		{"many-inline-tables", []byte(wide.String()), 1380, "more than 55000 entries"},
		{"long-line", []byte(hostileBase + "x = \"" + rep("a", 100_000) + "\"\n"), 5, "line is 100006 bytes long"},
		{"huge", []byte(hostileBase + rep("# a comment that makes the file large\n", 3<<20/38)), 0, "larger than 2048 KiB"},
	}
}

// WithinBounds returns the costliest shapes that the bounds admit: the
// parser reads them whole and validation refuses them (unknown sections and
// keys). They show that the bounds, not luck, keep parsing cheap.
func WithinBounds() []File {
	var hdrs, paths, inline strings.Builder
	hdrs.WriteString(hostileBase)
	for i := 0; i < 13700; i++ { // 3-part headers of 48 bytes, each with a key
		fmt.Fprintf(&hdrs, "[a%05x.b.%s]\nc=1\n", i, strings.Repeat("c", 40))
	}
	paths.WriteString(hostileBase + "[" + strings.Repeat("a", 18) + "." + strings.Repeat("a", 18) + "." + strings.Repeat("a", 18) + "]\n")
	for i := 0; i < 54990; i++ { // the longest key paths, as many as fit
		fmt.Fprintf(&paths, "k%04x=1\n", i)
	}
	inline.WriteString(hostileBase + "x = [\n")
	for i := 0; i < 2740; i++ {
		inline.WriteString(strings.Repeat("{a=1},", 10) + "\n")
	}
	inline.WriteString("]\n")
	return []File{
		{"sections-in-bounds", []byte(hdrs.String()), 0, "unknown section"},
		{"paths-in-bounds", []byte(paths.String()), 0, "unknown section"},
		{"inline-in-bounds", []byte(inline.String()), 5, "unknown key"},
	}
}
