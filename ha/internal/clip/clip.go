// Package clip quotes values echoed in error messages and log lines with a
// bound on their length: a configuration value or a console argument can be
// megabytes long, and each echo of it would be a line that long on the
// serial console. Every error that repeats a value an operator or a client
// wrote goes through Quote.
package clip

import (
	"strconv"
	"unicode/utf8"
)

// Max is the number of bytes of a value that Quote keeps.
const Max = 64

// Quote returns s quoted as %q does. A value longer than Max bytes is cut
// (on a character boundary) and marked: "aaaa…" (10485760 bytes).
func Quote(s string) string {
	if len(s) <= Max {
		return strconv.Quote(s)
	}
	cut := Max
	for cut > Max-utf8.UTFMax && !utf8.RuneStart(s[cut]) {
		cut--
	}
	q := strconv.Quote(s[:cut])
	return q[:len(q)-1] + `…" (` + strconv.Itoa(len(s)) + " bytes)"
}
