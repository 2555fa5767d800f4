package config

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file is step one: the TOML document (already parsed by
// BurntSushi/toml into maps) becomes raw structs holding values as written,
// each with its key and line. Unknown keys and wrong TOML types are reported
// here; meaning and ranges are checked in validate.go.
//
// We walk the generic map instead of letting toml.Decode fill structs by
// reflection because the reflective decoder stops at the first type error and
// matches keys case-insensitively; we want every error and exact keys.

// field is one raw value. Key and Line are set even when the key is absent
// (then Line is the line of the enclosing table header), so that "is
// required" errors point somewhere useful.
type field[T any] struct {
	V    T
	Set  bool
	Key  string
	Line int
}

// decoder collects the problems of one file.
type decoder struct {
	file string
	pos  positions
	errs []*Error

	warnings []string

	// seen collects every key the loader knows (indexes removed), table
	// by table: it places a key written outside its section, and the
	// documentation test compares it with docs/config.md.
	seen   map[string]bool
	tables []*table // every table read, for reportUnknown

	// mistyped holds the keys present with a wrong type: their error is
	// reported, so "is required" must not follow for the same key.
	mistyped map[string]bool
}

func (d *decoder) errorf(line int, key, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// table is one TOML table being read; every get marks its key as known.
type table struct {
	d      *decoder
	path   string
	line   int
	m      map[string]any
	known  []string
	arrays []string // the known keys read as arrays of tables, written [[k]]
}

func (d *decoder) root(m map[string]any) *table {
	return &table{d: d, m: m, line: 0}
}

func (t *table) keyPath(k string) string { return joinPath(t.path, k) }

// get returns the value of k and notes that k is a known key.
func (t *table) get(k string) (any, bool) {
	t.known = append(t.known, k)
	if t.m == nil {
		return nil, false
	}
	v, ok := t.m[k]
	return v, ok
}

func fieldOf[T any](t *table, k string) field[T] {
	f := field[T]{Key: t.keyPath(k), Line: t.line}
	if _, ok := t.m[k]; ok {
		f.Line = t.d.pos.line(f.Key)
		if f.Line == 0 {
			f.Line = t.line
		}
	}
	return f
}

// secretKeys never have their values echoed in messages.
var secretKeys = []string{"key", "auth"}

func (t *table) wrongType(f fieldInfo, want string, v any) {
	if t.d.mistyped == nil {
		t.d.mistyped = map[string]bool{}
	}
	t.d.mistyped[f.key] = true
	if slices.Contains(secretKeys, f.name) {
		t.d.errorf(f.line, f.key, "must be %s, got %s", want, tomlType(v))
		return
	}
	got := tomlType(v)
	if sv := short(v); sv != "" {
		got += " " + sv
	}
	t.d.errorf(f.line, f.key, "must be %s, got %s", want, got)
}

type fieldInfo struct {
	name, key string
	line      int
}

func (t *table) info(k string, line int) fieldInfo {
	return fieldInfo{name: k, key: t.keyPath(k), line: line}
}

// scalar reads key k as a T, or reports a wrong type naming want.
func scalar[T any](t *table, k, want string) field[T] {
	f := fieldOf[T](t, k)
	v, ok := t.get(k)
	if !ok {
		return f
	}
	x, ok := v.(T)
	if !ok {
		t.wrongType(t.info(k, f.Line), want, v)
		return f
	}
	f.V, f.Set = x, true
	return f
}

func (t *table) str(k string) field[string] { return scalar[string](t, k, "a string") }

// duration reads a duration written as a string ("5m"); the integer form is
// rejected with a hint because its unit would be a guess.
func (t *table) duration(k string) field[string] {
	f := fieldOf[string](t, k)
	v, ok := t.get(k)
	if !ok {
		return f
	}
	s, ok := v.(string)
	if !ok {
		if n, isInt := v.(int64); isInt {
			t.d.errorf(f.Line, f.Key, "must be a duration string with a unit, e.g. \"%ds\" or \"%dms\", got integer %d", n, n, n)
		} else {
			t.wrongType(t.info(k, f.Line), `a duration string like "5m" or "100ms"`, v)
		}
		return f
	}
	f.V, f.Set = s, true
	return f
}

func (t *table) integer(k string) field[int64] { return scalar[int64](t, k, "an integer") }

// seconds reads an integer count of seconds; the hint heads off "10m", which
// a reader of the duration keys would expect to work here too.
func (t *table) seconds(k string, eg int) field[int64] {
	return scalar[int64](t, k, fmt.Sprintf("an integer (seconds, e.g. %d)", eg))
}

func (t *table) boolean(k string) field[bool] { return scalar[bool](t, k, "true or false") }

func (t *table) strings(k string) field[[]string] {
	f := fieldOf[[]string](t, k)
	v, ok := t.get(k)
	if !ok {
		return f
	}
	arr, ok := v.([]any)
	if !ok {
		t.wrongType(t.info(k, f.Line), "an array of strings", v)
		return f
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, ok := e.(string)
		if !ok {
			t.wrongType(fieldInfo{name: k, key: fmt.Sprintf("%s[%d]", f.Key, i+1), line: f.Line}, "a string", e)
			return f
		}
		out = append(out, s)
	}
	f.V, f.Set = out, true
	return f
}

// sub returns the table under k, or an empty table (m == nil) when k is
// absent or not a table; the latter is reported.
func (t *table) sub(k string) *table {
	path := t.keyPath(k)
	line := t.d.pos.line(path)
	if line == 0 {
		// Written as [[k]] by mistake: the scanner recorded "k[1]".
		line = t.d.pos.line(path + "[1]")
	}
	s := &table{d: t.d, path: path, line: line}
	v, ok := t.get(k)
	if !ok {
		s.line = 0
		return s
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.wrongType(t.info(k, s.line), "a table (["+path+"])", v)
		return s
	}
	s.m = m
	return s
}

// present reports whether the table was written in the file.
func (t *table) present() bool { return t.m != nil }

// tables returns the elements of the array of tables under k, written either
// as [[k]] sections or as an array of inline tables.
func (t *table) tables(k string) []*table {
	path := t.keyPath(k)
	t.arrays = append(t.arrays, k)
	v, ok := t.get(k)
	if !ok {
		return nil
	}
	var maps []map[string]any
	switch a := v.(type) {
	case []map[string]any:
		maps = a
	case []any:
		for i, e := range a {
			m, ok := e.(map[string]any)
			if !ok {
				elem := fmt.Sprintf("%s[%d]", path, i+1)
				t.wrongType(fieldInfo{key: elem, line: t.d.pos.line(elem)}, "a table", e)
				continue
			}
			maps = append(maps, m)
		}
	default:
		t.wrongType(t.info(k, t.d.pos.line(path)), "an array of tables ([["+path+"]])", v)
		return nil
	}
	out := make([]*table, len(maps))
	for i, m := range maps {
		p := fmt.Sprintf("%s[%d]", path, i+1)
		out[i] = &table{d: t.d, path: p, line: t.d.pos.line(p), m: m}
	}
	return out
}

// done marks the end of reading a table: its known keys are recorded, and
// its unknown keys are reported by reportUnknown once every table is known
// (so that a key written under the wrong header can be placed).
func (t *table) done() {
	if t.d.seen == nil {
		t.d.seen = map[string]bool{}
	}
	base := stripIndexes(t.path)
	for _, k := range t.known {
		t.d.seen[joinPath(base, k)] = true
	}
	t.d.tables = append(t.d.tables, t)
}

// reportUnknown reports the keys that no get asked for, with a hint: the
// section the key belongs in, or a known key close to it.
func (d *decoder) reportUnknown() {
	for _, t := range d.tables {
		var unknown []string
		for k := range t.m {
			if !slices.Contains(t.known, k) {
				unknown = append(unknown, k)
			}
		}
		slices.Sort(unknown)
		for _, k := range unknown {
			if t.path == "" {
				d.unknownTopLevel(t, k)
				continue
			}
			key := t.keyPath(k)
			where := "in [" + t.path + "]"
			switch {
			case t.path == "":
				where = "at the top level"
			case strings.HasSuffix(t.path, "]"):
				where = "in [[" + stripIndexes(t.path) + "]]"
			}
			msg := "unknown key " + where
			if sec := d.sectionOf(t.path, k); sec != "" {
				msg += "; it belongs in [" + sec + "]: move it below that header"
			} else if s := suggest(k, t.known); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			} else {
				msg += "; known keys: " + strings.Join(t.known, ", ")
			}
			d.errorf(d.pos.line(key), key, "%s", msg)
		}
	}
}

// unknownTopLevel reports an unknown name outside every section: a section
// ([bogus], [[bogus]]) or a key written above the first header.
func (d *decoder) unknownTopLevel(root *table, k string) {
	line := d.pos.line(k)
	if line == 0 {
		line = d.pos.line(k + "[1]") // [[k]]: the scanner indexes it
	}
	label := func(name string, array bool) string {
		if array {
			return "[[" + name + "]]"
		}
		return "[" + name + "]"
	}
	var sections []string
	for _, s := range root.known {
		sections = append(sections, label(s, slices.Contains(root.arrays, s)))
	}
	known := strings.Join(sections, ", ")
	hint := "; known sections: " + known
	if s := suggest(k, root.known); s != "" {
		hint = "; did you mean " + label(s, slices.Contains(root.arrays, s)) + "?"
	}
	switch root.m[k].(type) {
	case map[string]any:
		d.errorf(line, "", "unknown section [%s]%s", k, hint)
	case []map[string]any:
		d.errorf(line, "", "unknown section [[%s]]%s", k, hint)
	default:
		hint = "; keys go below a section header (" + known + ")"
		if sec := d.sectionOf("", k); sec != "" {
			hint = "; it belongs in [" + sec + "]: move it below that header"
		}
		d.errorf(line, "", "unknown key %s at the top level%s", k, hint)
	}
}

// suggest returns the known key nearest to k (case-insensitive equal, or
// within edit distance 2), or "".
func suggest(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if strings.EqualFold(c, k) {
			return c
		}
		if d := editDistance(strings.ToLower(k), c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case int64:
		return "integer"
	case float64:
		return "float"
	case bool:
		return "boolean"
	case time.Time:
		return "datetime"
	case map[string]any:
		return "table"
	case []map[string]any:
		return "array of tables"
	case []any:
		return "array"
	}
	return fmt.Sprintf("%T", v)
}

// short renders a scalar for a message, bounded in length.
func short(v any) string {
	var s string
	switch x := v.(type) {
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		s = strconv.Quote(x)
	case int64, float64, bool:
		s = fmt.Sprint(x)
	case time.Time:
		s = x.Format(time.RFC3339)
	default:
		return ""
	}
	return s
}

// stripIndexes turns "node[2].spi" into "node.spi".
func stripIndexes(path string) string {
	var b strings.Builder
	skip := false
	for _, r := range path {
		switch {
		case r == '[':
			skip = true
		case r == ']':
			skip = false
		case !skip:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// sectionOf names the section that knows key k when k was written in
// another table (typically above the first header, or under the wrong one).
func (d *decoder) sectionOf(table, k string) string {
	var found []string
	for p := range d.seen {
		if sec, ok := strings.CutSuffix(p, "."+k); ok && sec != stripIndexes(table) && !strings.Contains(sec, ".") {
			found = append(found, sec)
		}
	}
	if len(found) != 1 {
		return "" // unknown everywhere, or ambiguous (enabled, key, ...)
	}
	return found[0]
}
