package config

import (
	"strconv"
	"strings"
)

// positions maps a key path to the 1-based line that defines it. BurntSushi/toml
// keeps key positions private (and for arrays of tables only the last
// element's), so we find them ourselves with a small scanner over the text.
//
// Paths are dotted; an element of an array of tables carries its 1-based index:
// "agent.capacity", "node[2].spi", "vrrp.track_interfaces[1].weight". Keys
// inside inline tables are not recorded: line() falls back to the enclosing
// key, which is on the same line or the line where the value starts.
type positions map[string]int

// line returns the line of path, or of its nearest recorded ancestor, or 0.
func (p positions) line(path string) int {
	for path != "" {
		if l, ok := p[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
	return 0
}

func (p positions) setFirst(path string, line int) {
	if _, ok := p[path]; !ok {
		p[path] = line
	}
}

// scanPositions records the line of every table header and every key of a
// key/value pair. It is only run on text that BurntSushi/toml has already
// accepted, so it may assume valid TOML; on anything else it still terminates
// and simply records less.
func scanPositions(src []byte) positions {
	p := positions{}
	arrays := map[string]int{}                        // array-of-tables path -> elements seen so far
	cur := ""                                         // path of the current table ("" = root)
	var v valueScanner                                // state of a value spanning lines
	text := strings.TrimPrefix(string(src), "\ufeff") // a BOM is allowed and not content
	for i, s := range strings.Split(text, "\n") {
		lineNo := i + 1
		s = strings.TrimSuffix(s, "\r")
		if v.pending() {
			// Inside a multi-line string or array: no key can start on
			// this line (TOML needs a newline after a value).
			v.scan(s)
			continue
		}
		s = strings.TrimLeft(s, " \t")
		switch {
		case s == "" || s[0] == '#':
		case strings.HasPrefix(s, "[["):
			keys, _ := parseKeyPath(s[2:])
			cur = resolveHeader(keys, true, arrays)
			p.setFirst(cur, lineNo)
		case s[0] == '[':
			keys, _ := parseKeyPath(s[1:])
			cur = resolveHeader(keys, false, arrays)
			p.setFirst(cur, lineNo)
		default:
			keys, rest := parseKeyPath(s)
			path := cur
			for _, k := range keys {
				path = joinPath(path, k)
				p.setFirst(path, lineNo)
			}
			rest = strings.TrimLeft(rest, " \t")
			if strings.HasPrefix(rest, "=") {
				v.scan(rest[1:])
			}
		}
	}
	return p
}

func joinPath(base, k string) string {
	if base == "" {
		return k
	}
	return base + "." + k
}

// resolveHeader turns the keys of a [a.b] or [[a.b]] header into a path,
// indexing through arrays of tables: after two [[node]] headers, [node.x]
// belongs to "node[2].x". For [[...]] it counts the new element.
func resolveHeader(keys []string, array bool, arrays map[string]int) string {
	path := ""
	for i, k := range keys {
		path = joinPath(path, k)
		if array && i == len(keys)-1 {
			arrays[path]++
			return path + "[" + strconv.Itoa(arrays[path]) + "]"
		}
		if n := arrays[path]; n > 0 {
			path += "[" + strconv.Itoa(n) + "]"
		}
	}
	return path
}

// parseKeyPath reads a possibly dotted, possibly quoted key and returns its
// components and the text after it.
func parseKeyPath(s string) (keys []string, rest string) {
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return keys, s
		}
		var k string
		switch s[0] {
		case '"':
			i := 1
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(s) {
				return keys, ""
			}
			raw := s[:i+1]
			if u, err := strconv.Unquote(raw); err == nil {
				k = u
			} else {
				k = raw[1 : len(raw)-1]
			}
			s = s[i+1:]
		case '\'':
			i := strings.IndexByte(s[1:], '\'')
			if i < 0 {
				return keys, ""
			}
			k, s = s[1:1+i], s[2+i:]
		default:
			i := 0
			for i < len(s) && isBareKeyByte(s[i]) {
				i++
			}
			if i == 0 {
				return keys, s
			}
			k, s = s[:i], s[i:]
		}
		keys = append(keys, k)
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return keys, s
		}
		s = s[1:]
	}
}

func isBareKeyByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// valueScanner follows a value across lines: open brackets/braces and
// multi-line strings, so that their contents are never taken for keys.
type valueScanner struct {
	depth int
	mstr  byte // '"' inside """...""", '\'' inside '''...''', else 0
}

func (v *valueScanner) pending() bool { return v.depth > 0 || v.mstr != 0 }

func (v *valueScanner) scan(s string) {
	for i := 0; i < len(s); {
		if v.mstr != 0 {
			q := v.mstr
			if q == '"' && s[i] == '\\' {
				i += 2
				continue
			}
			if strings.HasPrefix(s[i:], string([]byte{q, q, q})) {
				for i < len(s) && s[i] == q { // """" closes with one quote of content
					i++
				}
				v.mstr = 0
				continue
			}
			i++
			continue
		}
		switch c := s[i]; c {
		case '#':
			return
		case '"', '\'':
			if strings.HasPrefix(s[i:], string([]byte{c, c, c})) {
				v.mstr = c
				i += 3
				continue
			}
			i++
			for i < len(s) && s[i] != c {
				if c == '"' && s[i] == '\\' {
					i++
				}
				i++
			}
			i++
			continue
		case '[', '{':
			v.depth++
		case ']', '}':
			if v.depth > 0 {
				v.depth--
			}
		}
		i++
	}
}
