package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem found in a configuration file. Parse and Load return
// every problem they find, joined with errors.Join and sorted by line, so an
// operator fixes a file in one pass instead of one error per attempt. Use
// Errors to get them back one by one.
type Error struct {
	File string // the name given to Parse, or the path given to Load
	Line int    // 1-based; 0 when the problem has no single line (a missing section)
	Key  string // dotted key such as "vrrp.priority" or "node[2].spi" (1-based index); may be empty
	Msg  string // what is wrong and what to do; never contains key material
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteByte(' ')
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors returns the individual *Error values inside an error returned by
// Parse or Load, in the order they are reported (by line). It returns nil for
// nil and a one-element list for an error of another kind wrapped as Msg.
func Errors(err error) []*Error {
	if err == nil {
		return nil
	}
	var out []*Error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, Errors(e)...)
		}
		return out
	}
	var ce *Error
	if errors.As(err, &ce) {
		return []*Error{ce}
	}
	return []*Error{{Msg: err.Error()}}
}

// maxReported bounds the problems reported for one file: a file of
// thousands of unknown keys is the wrong file, and its every line echoed
// would flood the serial console.
const maxReported = 50

// joinSorted orders the problems by line (stable, so problems on one line keep
// the order in which they were found) and joins the first maxReported.
func joinSorted(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *Error) int { return a.Line - b.Line })
	if len(errs) > maxReported {
		more := &Error{File: errs[0].File, Msg: fmt.Sprintf("and %d more problems (fix the ones above first; is this the right file?)", len(errs)-maxReported)}
		errs = append(errs[:maxReported:maxReported], more)
	}
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return errors.Join(list...)
}
