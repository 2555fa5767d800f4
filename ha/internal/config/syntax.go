package config

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

// BurntSushi/toml reports syntax errors in its own words ("Key 'agent' has
// already been defined.", "… is out of range for int64") and, for an error at
// the end of a line, on the line after it. syntaxError turns the ones an
// operator meets into messages that say what to do, placed on the line the
// text shows. The library's messages are not an API: a test pins each case,
// and anything not recognised is passed on as "TOML syntax error: …".

var (
	reDefined    = regexp.MustCompile(`^Key '(.+)' has already been defined\.$`)
	reNotArray   = regexp.MustCompile(`^Key '(.+)' was already created and cannot be used as an array\.$`)
	reOutOfRange = regexp.MustCompile(`^(\S+) is out of range for (?:int64|float64)$`)
	reOpenHeader = regexp.MustCompile(`^expected (?:'\.' or '\]' to end table name|end of table array name delimiter '\]'), but got '\\[rn]' instead$`)
)

func (d *decoder) syntaxError(data []byte, pe toml.ParseError) {
	line := errorLine(data, pe.Position)
	msg := pe.Message
	switch {
	case reDefined.MatchString(msg):
		key := reDefined.FindStringSubmatch(msg)[1]
		path, first := firstDefinition(data, key, line)
		if isHeader(data, line) && first > 0 && !isHeader(data, first) {
			d.errorf(line, "", "[%s] redefines %s, a key set at line %d: a name is either a section or a key; remove or rename one", key, path, first)
			return
		}
		if isHeader(data, line) {
			at := ""
			if first > 0 {
				at = fmt.Sprintf(" (first at line %d)", first)
			}
			d.errorf(line, "", "[%s] appears twice%s: merge them into one section", key, at)
			return
		}
		if first > 0 {
			d.errorf(line, path, "is set twice (first at line %d): keep one", first)
		} else {
			d.errorf(line, key, "is set twice: keep one")
		}
	case reNotArray.MatchString(msg):
		key := reNotArray.FindStringSubmatch(msg)[1]
		at := ""
		if _, first := firstDefinition(data, key, line); first > 0 {
			at = fmt.Sprintf(" (line %d)", first)
		}
		d.errorf(line, "", "[[%s]] cannot follow %s%s, which is not an array of tables: write [%s] once, or [[%s]] for every entry", key, key, at, key, key)
	case reOutOfRange.MatchString(msg):
		num := reOutOfRange.FindStringSubmatch(msg)[1]
		what := "too large"
		if strings.HasPrefix(num, "-") {
			what = "too small"
		}
		d.errorf(line, pe.LastKey, "%s is %s: see docs/config.md for the range of each key", num, what)
	case reOpenHeader.MatchString(msg):
		d.errorf(line, "", "TOML syntax error: the section header is not closed: end it with ']' (or ']]')")
	default:
		d.errorf(line, "", "TOML syntax error: %s", msg)
	}
}

// errorLine is the line holding the byte the error points at. The library
// counts a newline as the start of the next line, so an error found at the
// end of a line (an unclosed "[agent") came out one line late.
func errorLine(data []byte, p toml.Position) int {
	// The library drops a byte-order mark before it counts offsets.
	for _, bom := range []string{"\xef\xbb\xbf", "\xff\xfe", "\xfe\xff"} {
		if bytes.HasPrefix(data, []byte(bom)) {
			data = data[len(bom):]
			break
		}
	}
	if p.Start < 0 || p.Start > len(data) || (p.Start == 0 && p.Line > 1) {
		return p.Line
	}
	return bytes.Count(data[:p.Start], []byte("\n")) + 1
}

// isHeader reports whether line (1-based) is a [table] or [[array]] header.
func isHeader(data []byte, line int) bool {
	lines := strings.Split(string(data), "\n")
	if line < 1 || line > len(lines) {
		return false
	}
	return strings.HasPrefix(strings.TrimLeft(lines[line-1], " \t\ufeff"), "[")
}

// firstDefinition finds the earlier definition of key (dotted, without array
// indexes, as the library names it) before line: its indexed path and line,
// or 0 when the scanner cannot place it.
func firstDefinition(data []byte, key string, line int) (path string, first int) {
	for p, l := range scanPositions(data) {
		if stripIndexes(p) == key && l < line && l > first {
			path, first = p, l
		}
	}
	if path == "" {
		path = key
	}
	return path, first
}
