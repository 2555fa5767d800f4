package clip

import (
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", `""`},
		{"eth0", `"eth0"`},
		{"a\"b\n", `"a\"b\n"`},
		{strings.Repeat("x", Max), `"` + strings.Repeat("x", Max) + `"`},
		{strings.Repeat("x", 10<<20), `"` + strings.Repeat("x", Max) + `…" (10485760 bytes)`},
		// A cut never splits a character: 63 ASCII bytes, then "é" (2 bytes).
		{strings.Repeat("x", 63) + strings.Repeat("é", 10), `"` + strings.Repeat("x", 63) + `…" (83 bytes)`},
	} {
		if got := Quote(c.in); got != c.want {
			t.Errorf("Quote(%.80q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func FuzzQuote(f *testing.F) {
	f.Add("eth0")
	f.Add(strings.Repeat("é", 40))
	f.Fuzz(func(t *testing.T, s string) {
		// Bounded whatever the input: the quoted bytes (at most 4 per byte
		// kept, \xNN) plus the marker.
		if q := Quote(s); len(q) > 4*Max+40 {
			t.Fatalf("Quote of %d bytes is %d bytes long", len(s), len(q))
		}
	})
}
