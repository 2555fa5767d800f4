package mip

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// tsharkValues reads the value strings Wireshark's dissector carries for
// field (tshark -G values): its copy of the IANA registries, an independent
// check of our numbers and names.
func tsharkValues(t *testing.T, field string) map[uint8]string {
	t.Helper()
	out, err := exec.Command(needTshark(t), "-G", "values").Output()
	if err != nil {
		t.Fatalf("tshark -G values: %v", err)
	}
	m := map[uint8]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 || f[0] != "V" || f[1] != field {
			continue
		}
		v, err := strconv.Atoi(f[2])
		if err != nil || v > 255 {
			t.Fatalf("tshark value line %q", line)
		}
		m[uint8(v)] = f[3]
	}
	if len(m) == 0 {
		t.Fatalf("tshark knows no values of %s", field)
	}
	return m
}

// TestTsharkMobileNetCodes checks every acknowledgement code against the
// dissector's table, which names the RFC's constants (MOBNET_*): the same
// values, the same meanings, and no code of RFC 5177 we lack.
func TestTsharkMobileNetCodes(t *testing.T) {
	ws := tsharkValues(t, "mip.ext.mne.code")
	ours := map[MobileNetCode]string{
		MobileNetSuccess:       "Success",
		MobileNetInvalidPrefix: "MOBNET_INVALID_PREFIX_LEN",
		MobileNetUnauthorized:  "MOBNET_UNAUTHORIZED",
		MobileNetFwdSetupFail:  "MOBNET_FWDING_SETUP_FAILED",
	}
	for c, name := range ours {
		if !strings.Contains(ws[uint8(c)], name) {
			t.Errorf("code %d (%s): Wireshark says %q, want %s", c, c, ws[uint8(c)], name)
		}
		if !strings.EqualFold(strings.SplitN(ws[uint8(c)], " (", 2)[0], c.String()) {
			t.Errorf("code %d: String %q, the RFC's wording %q", c, c.String(), ws[uint8(c)])
		}
	}
	for v, s := range ws {
		if _, ok := ours[MobileNetCode(v)]; !ok {
			t.Errorf("Wireshark knows acknowledgement code %d %q, mip does not", v, s)
		}
	}
	sub := tsharkValues(t, "mip.ext.mne.subtype")
	for v, want := range map[uint8]string{MobileNetSubRequest: "Mobile Network Request",
		MobileNetSubExplicitAck: "Explicit Mode Acknowledgement", MobileNetSubImplicitAck: "Implicit Mode Acknowledgement"} {
		if sub[v] != want {
			t.Errorf("sub-type %d: Wireshark says %q, want %q", v, sub[v], want)
		}
	}
}

// TestTsharkReplyCodes checks that every Registration Reply code mip
// defines is in the dissector's registry copy (the names differ in wording:
// 73 is "reserved" in RFC 5944, "VJ compression" in RFC 2002), and that the
// registry holds no code of RFC 5177's own: a router's networks are refused
// per prefix, in the acknowledgement, never by denying the registration.
func TestTsharkReplyCodes(t *testing.T) {
	ws := tsharkValues(t, "mip.code")
	for c := Code(0); ; c++ {
		if s := c.String(); !strings.HasPrefix(s, "code ") {
			if _, ok := ws[uint8(c)]; !ok {
				t.Errorf("code %d %q: not in Wireshark's registry", c, s)
			}
		}
		if c == 255 {
			break
		}
	}
	for v, s := range ws {
		l := strings.ToLower(s)
		if strings.Contains(l, "prefix") || strings.Contains(l, "mobile network") || strings.Contains(l, "mobile router") {
			t.Errorf("Wireshark knows reply code %d %q: a mobile-network denial mip does not use", v, s)
		}
	}
}
