package config

import (
	"errors"
	"strings"
	"testing"
)

func TestEdgeInputs(t *testing.T) {
	// A byte-order mark, CRLF line ends and tabs are ordinary for files
	// edited on other systems; lines must still be right.
	crlf := strings.ReplaceAll(base, "\n", "\r\n") + "capacity\t=\t0\r\n"
	_, err := Parse("x.toml", []byte("\ufeff"+crlf))
	if err == nil || !strings.Contains(err.Error(), "x.toml:5: agent.capacity 0 out of range") {
		t.Errorf("CRLF/BOM: %v", err)
	}
	for _, in := range []string{"", "\x00", "[agent", "\xff\xfe"} {
		if _, err := Parse("x.toml", []byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestErrorsHelper(t *testing.T) {
	if Errors(nil) != nil {
		t.Error("Errors(nil) != nil")
	}
	e := Errors(errors.New("plain"))
	if len(e) != 1 || e[0].Msg != "plain" {
		t.Errorf("Errors(plain) = %v", e)
	}
	one := &Error{File: "f", Line: 3, Key: "agent.capacity", Msg: "0 out of range 1..4000000"}
	if got := one.Error(); got != "config: f:3: agent.capacity 0 out of range 1..4000000" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&Error{File: "f", Msg: "has no [agent] section"}).Error(); got != "config: f: has no [agent] section" {
		t.Errorf("Error() without line = %q", got)
	}
}
