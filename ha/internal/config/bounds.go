package config

import (
	"bytes"
	"fmt"
)

// BurntSushi/toml stores the full dotted path of every key it meets (as a
// []string in its ordered key list and as a joined string in two maps), and
// rebuilds the path at every level of nesting. A key's cost is therefore
// its path length, and the path grows with the section header, the dotted
// key and every inline table around it: "x = {a = {a = {…}}}" n deep, or
// n keys under a header of n parts, costs n² bytes. Measured on v1.6.0: an
// inline table 4,000 deep (16 KB) took 670 MB; 1 MiB of tiny keys under a
// 400-byte header took 180 MB.
//
// checkBounds refuses such text before the parser sees it, with limits far
// above anything a real hagent.toml needs (its deepest keys, such as
// "vrrp.track_interfaces[1].weight", have 3 parts and nest 2 deep) and low enough
// that parsing any file that passes stays well under 64 MB (docs/config.md
// gives the measurements):
const (
	maxFileBytes = 2 << 20 // 2 MiB: 10,000 single-address nodes take 1.2 MB
	maxLineBytes = 4096    // the longest value is a 256-byte key as 512 hex digits
	maxNesting   = 8       // arrays and inline tables inside each other
	maxPathParts = 4       // parts of a key's full path: header + inline tables + dotted key
	maxPathBytes = 64      // bytes of a key's full path as written
	maxEntries   = 55_000  // keys, section headers and array elements, each by its dotted parts (a node is about 5)
)

// boundsError is the first limit the text exceeds.
type boundsError struct {
	line int
	msg  string
}

// checkBounds scans data once, in time and memory linear in its size, and
// reports the first limit it exceeds. It does not validate TOML: on text
// that is not TOML it still terminates and leaves the error to the parser.
// It mirrors the lexer where that matters for counting (strings, comments,
// keys versus values) and nowhere else.
func checkBounds(data []byte) *boundsError {
	if len(data) > maxFileBytes {
		return &boundsError{0, fmt.Sprintf("is larger than %d KiB: a configuration is a few KiB (10,000 nodes take 1.3 MB); is this the right file? Describe large fleets with pools ([[node]] pool = \"10.1.0.0/16\")", maxFileBytes>>10)}
	}
	for line, rest := 1, data; len(rest) > 0; line++ {
		n := bytes.IndexByte(rest, '\n')
		if n < 0 {
			n = len(rest)
		}
		if n > maxLineBytes {
			return &boundsError{line, fmt.Sprintf("the line is %d bytes long, more than %d: no setting needs a line that long; is this the right file?", n, maxLineBytes)}
		}
		rest = rest[min(n+1, len(rest)):]
	}
	s := boundScanner{data: data, line: 1}
	return s.scan()
}

type keyPath struct{ parts, bytes int }

// frame is one open array or inline table; owner is the path of the key
// whose value it is (the base of the keys inside an inline table).
type frame struct {
	inline bool
	owner  keyPath
}

type boundScanner struct {
	data    []byte
	i       int
	line    int
	header  keyPath // the current [table]
	value   keyPath // the key whose value is being read
	stack   []frame
	entries int
}

func (s *boundScanner) scan() *boundsError {
	expectKey := true // at the start of a statement
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '\n':
			s.line++
			s.i++
			if len(s.stack) == 0 {
				expectKey = true
			}
		case c == ' ' || c == '\t' || c == '\r':
			s.i++
		case c == '#':
			s.skipComment()
		case expectKey && c == '}' && s.inInline():
			s.stack = s.stack[:len(s.stack)-1]
			s.i++
			expectKey = false
		case expectKey && c == '[' && len(s.stack) == 0:
			line := s.line
			s.i++
			if s.i < len(s.data) && s.data[s.i] == '[' {
				s.i++
			}
			p := s.key(']')
			if err := s.checkPath(p, line); err != nil {
				return err
			}
			s.header = p
			if err := s.count(line, p.parts); err != nil {
				return err
			}
			s.skipToEOL()
		case expectKey:
			line := s.line
			base := s.header
			if s.inInline() {
				base = s.stack[len(s.stack)-1].owner
			}
			k := s.key('=')
			p := keyPath{base.parts + k.parts, base.bytes + k.bytes}
			if err := s.checkPath(p, line); err != nil {
				return err
			}
			if err := s.count(line, k.parts); err != nil {
				return err
			}
			s.value = p
			expectKey = false
			if s.i < len(s.data) && s.data[s.i] == '=' {
				s.i++
			}
		case c == '"' || c == '\'':
			s.skipString(c)
		case c == '[' || c == '{':
			s.stack = append(s.stack, frame{inline: c == '{', owner: s.value})
			if len(s.stack) > maxNesting {
				return &boundsError{s.line, fmt.Sprintf("arrays and inline tables nest more than %d deep: hagent's settings nest at most 2 deep (vrrp.track_interfaces); write them flat", maxNesting)}
			}
			s.i++
			expectKey = c == '{'
		case c == ']' || c == '}':
			if len(s.stack) > 0 {
				s.value = s.stack[len(s.stack)-1].owner // the value it closed belongs to that key
				s.stack = s.stack[:len(s.stack)-1]
			}
			s.i++
		case c == ',':
			if err := s.count(s.line, 1); err != nil {
				return err
			}
			s.i++
			expectKey = s.inInline()
		default:
			s.i++
		}
	}
	return nil
}

func (s *boundScanner) inInline() bool {
	return len(s.stack) > 0 && s.stack[len(s.stack)-1].inline
}

// count adds an entry of the given weight: the parts of a dotted key or
// header, each of which the parser makes a table of its own.
func (s *boundScanner) count(line, weight int) *boundsError {
	s.entries += weight
	if s.entries > maxEntries {
		return &boundsError{line, fmt.Sprintf("the file has more than %d entries (keys, section headers and array elements, a dotted name counting its parts): describe large fleets with pools ([[node]] pool = \"10.1.0.0/16\")", maxEntries)}
	}
	return nil
}

func (s *boundScanner) checkPath(p keyPath, line int) *boundsError {
	switch {
	case p.parts > maxPathParts:
		return &boundsError{line, fmt.Sprintf("a key path (section, inline tables and dotted key) has more than %d parts: hagent's longest have 3 (vrrp.track_interfaces.weight, group.accept_keys.key)", maxPathParts)}
	case p.bytes > maxPathBytes:
		return &boundsError{line, fmt.Sprintf("a key path (section, inline tables and dotted key) is longer than %d bytes: hagent's longest is 31 (vrrp.track_interfaces.interface); check the spelling", maxPathBytes)}
	}
	return nil
}

// key reads a bare, quoted or dotted key up to end ('=' after a key, ']'
// in a header), a newline or the end of the text, and returns its parts
// and the bytes of its names (quotes, dots and blanks not counted).
func (s *boundScanner) key(end byte) keyPath {
	p := keyPath{parts: 1}
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch c {
		case end, '\n':
			return p
		case '.':
			p.parts++
			s.i++
		case ' ', '\t', '\r':
			s.i++
		case '"', '\'':
			start := s.i
			s.skipString(c)
			p.bytes += max(0, s.i-start-2)
		default:
			p.bytes++
			s.i++
		}
	}
	return p
}

// skipString skips a basic ("…", """…""") or literal ('…', ”'…”') string
// starting at s.i, counting the newlines inside a multi-line one. An
// unterminated single-line string ends at the newline.
func (s *boundScanner) skipString(q byte) {
	multi := bytes.HasPrefix(s.data[s.i:], []byte{q, q, q})
	if multi {
		s.i += 3
	} else {
		s.i++
	}
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '\\' && q == '"':
			if s.i+1 < len(s.data) && s.data[s.i+1] == '\n' {
				s.line++
			}
			s.i += 2
		case c == '\n':
			if !multi {
				return
			}
			s.line++
			s.i++
		case c == q && !multi:
			s.i++
			return
		case c == q && bytes.HasPrefix(s.data[s.i:], []byte{q, q, q}):
			s.i += 3
			for s.i < len(s.data) && s.data[s.i] == q { // up to two quotes may end the content
				s.i++
			}
			return
		default:
			s.i++
		}
	}
}

func (s *boundScanner) skipComment() {
	for s.i < len(s.data) && s.data[s.i] != '\n' {
		s.i++
	}
}

func (s *boundScanner) skipToEOL() {
	for s.i < len(s.data) && s.data[s.i] != '\n' {
		if c := s.data[s.i]; c == '"' || c == '\'' {
			s.skipString(c)
			continue
		}
		s.i++
	}
}
