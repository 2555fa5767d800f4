package config

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hagent/hagent/ha/internal/clip"
)

// Value helpers: each reports its own problem and returns a usable value.

func (d *decoder) required(key string, line int, hint string) {
	if d.mistyped[key] {
		return // present with the wrong type, reported as such
	}
	if hint == "" {
		d.errorf(line, key, "is required")
		return
	}
	d.errorf(line, key, "is required: %s", hint)
}

func (d *decoder) boolOr(f field[bool], def bool) bool {
	if f.Set {
		return f.V
	}
	return def
}

func (d *decoder) intIn(f field[int64], def, lo, hi int64) int64 {
	if !f.Set {
		return def
	}
	if f.V < lo || f.V > hi {
		d.errorf(f.Line, f.Key, "%d out of range %d..%d", f.V, lo, hi)
		return def
	}
	return f.V
}

func (d *decoder) durIn(f field[string], def, lo, hi time.Duration) time.Duration {
	if !f.Set {
		return def
	}
	v, err := time.ParseDuration(f.V)
	if err != nil {
		d.errorf(f.Line, f.Key, "%s is not a duration: write a number with a unit, e.g. \"500ms\", \"90s\", \"5m\", \"1h30m\"", clip.Quote(f.V))
		return def
	}
	if v < lo || v > hi {
		d.errorf(f.Line, f.Key, "%s out of range %s..%s", f.V, fmtDur(lo), fmtDur(hi))
		return def
	}
	return v
}

// fmtDur prints 5m rather than 5m0s.
func fmtDur(v time.Duration) string {
	s := v.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

func (d *decoder) ipv4(f field[string], required bool, hint string) netip.Addr {
	if !f.Set {
		if required {
			d.required(f.Key, f.Line, hint)
		}
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(f.V)
	if err != nil {
		d.errorf(f.Line, f.Key, "%s is not an IP address: write a dotted quad, e.g. \"192.0.2.1\"", clip.Quote(f.V))
		return netip.Addr{}
	}
	if !a.Is4() {
		d.errorf(f.Line, f.Key, "%s is not IPv4: hagent is an IPv4 Home Agent (RFC 5944); write a dotted quad", f.V)
		return netip.Addr{}
	}
	return a
}

func (d *decoder) unicast4(f field[string], required bool, hint string) netip.Addr {
	a := d.ipv4(f, required, hint)
	if a.IsValid() && (a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
		d.errorf(f.Line, f.Key, "%s is not a unicast address", a)
		return netip.Addr{}
	}
	return a
}

func (d *decoder) prefix4(f field[string], required bool, hint string) netip.Prefix {
	if !f.Set {
		if required {
			d.required(f.Key, f.Line, hint)
		}
		return netip.Prefix{}
	}
	p, err := netip.ParsePrefix(f.V)
	if err != nil {
		d.errorf(f.Line, f.Key, "%s is not a prefix: write address/length, e.g. \"192.0.2.0/24\"", clip.Quote(f.V))
		return netip.Prefix{}
	}
	if !p.Addr().Is4() {
		d.errorf(f.Line, f.Key, "%s is not IPv4: hagent is an IPv4 Home Agent (RFC 5944)", f.V)
		return netip.Prefix{}
	}
	if p.Bits() == 0 {
		d.errorf(f.Line, f.Key, "%s is the whole Internet: give the real prefix length", f.V)
		return netip.Prefix{}
	}
	if m := p.Masked(); m != p {
		d.errorf(f.Line, f.Key, "%s has host bits set: write %s", f.V, m)
		return netip.Prefix{}
	}
	return p
}

// onHomeLink checks that an address lies inside the home network and is not
// its network or broadcast address. It reports whether the address is fine
// (or could not be checked because the home network is itself invalid).
func (d *decoder) onHomeLink(f field[string], a netip.Addr, home netip.Prefix, why string) bool {
	if !a.IsValid() || !home.IsValid() {
		return a.IsValid()
	}
	if !home.Contains(a) {
		d.errorf(f.Line, f.Key, "%s is outside agent.home_network %s: %s", a, home, why)
		return false
	}
	if home.Bits() <= 30 {
		b := a.As4()
		hostBits := 32 - home.Bits()
		host := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) & (1<<hostBits - 1)
		switch host {
		case 0:
			d.errorf(f.Line, f.Key, "%s is the network address of %s, not a host address", a, home)
			return false
		case 1<<hostBits - 1:
			d.errorf(f.Line, f.Key, "%s is the broadcast address of %s, not a host address", a, home)
			return false
		}
	}
	return true
}

// notAgent reports (as an error) an address that is one of the agent's own;
// whose names what the address was given as ("a mobile node's").
func (d *decoder) notAgent(f field[string], a netip.Addr, ag *Agent, whose string) bool {
	switch {
	case ag.Address.IsValid() && a == ag.Address:
		d.errorf(f.Line, f.Key, "%s is agent.address: the Home Agent's own address cannot be %s", a, whose)
		return false
	case ag.VirtualAddress.IsValid() && a == ag.VirtualAddress:
		d.errorf(f.Line, f.Key, "%s is agent.virtual_address: the group's address cannot be %s", a, whose)
		return false
	}
	return true
}

func (d *decoder) ifname(f field[string], def, hint string) string {
	if !f.Set {
		if def == "" {
			d.required(f.Key, f.Line, hint)
		}
		return def
	}
	switch {
	case f.V == "" || len(f.V) > ifNameMax:
		d.errorf(f.Line, f.Key, "%s must be an interface name of 1..%d bytes", clip.Quote(f.V), ifNameMax)
	case f.V == "." || f.V == ".." || strings.ContainsAny(f.V, "/: \t\n"):
		d.errorf(f.Line, f.Key, "%s is not a valid interface name (no '/', ':' or spaces)", clip.Quote(f.V))
	default:
		return f.V
	}
	return def
}

func (d *decoder) spi(f field[int64]) uint32 {
	if !f.Set {
		d.required(f.Key, f.Line, "the security parameter index the node puts in its authentication extension, 256 or more")
		return 0
	}
	if f.V >= 0 && f.V < MinSPI {
		d.errorf(f.Line, f.Key, "%d is reserved: SPIs 0..255 are reserved (RFC 5944 §3.5.1); use 256..4294967295", f.V)
		return 0
	}
	return uint32(d.intIn(f, 0, MinSPI, 1<<32-1))
}

func (d *decoder) algorithm(f field[string]) string {
	if f.Set && f.V != DefaultAlgorithm {
		d.errorf(f.Line, f.Key, "%s is not supported: the only algorithm is \"hmac-md5\" (RFC 5944 §3.5.1)", clip.Quote(f.V))
	}
	return DefaultAlgorithm
}

// exampleKeys are the secrets written in rootfs/etc/hagent.toml. The
// firmware ships that file, so a router could run with keys anyone can read;
// a test keeps this list equal to the file's keys.
var exampleKeys = []string{
	"hex:00112233445566778899aabbccddeeff",
	"text:example-secret-sensor-7",
	"hex:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978",
	"hex:a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
	"hex:5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e",
	"hex:0badc0de0badc0de0badc0de0badc0de",
}

// secret decodes "hex:..." or "text:..." key material. The value is never
// echoed in messages: they end up on consoles and in logs.
func (d *decoder) secret(f field[string], required bool) []byte {
	if !f.Set {
		if required {
			d.required(f.Key, f.Line, `the shared secret, key = "hex:00112233..." or key = "text:..."`)
		}
		return nil
	}
	var k []byte
	switch {
	case strings.HasPrefix(f.V, "hex:"):
		h := f.V[len("hex:"):]
		b, err := hex.DecodeString(h)
		if err != nil {
			if len(h)%2 == 1 {
				d.errorf(f.Line, f.Key, "has an odd number of hex digits (%d): each byte is two digits", len(h))
			} else {
				d.errorf(f.Line, f.Key, "is not valid hex after \"hex:\" (digits 0-9, a-f only, no spaces or colons)")
			}
			return nil
		}
		k = b
	case strings.HasPrefix(f.V, "text:"):
		k = []byte(f.V[len("text:"):])
	default:
		d.errorf(f.Line, f.Key, `must start with "hex:" or "text:" (e.g. key = "hex:00112233445566778899aabbccddeeff"): a plain string is ambiguous`)
		return nil
	}
	if len(k) == 0 || len(k) > maxKeyBytes {
		d.errorf(f.Line, f.Key, "is %d bytes: use 1..%d (16..64 recommended)", len(k), maxKeyBytes)
		return nil
	}
	if slices.Contains(exampleKeys, f.V) {
		d.warn(f, "is an example key published with hagent's reference config: replace it with a secret of your own")
	}
	if len(k) < recommendedMinKeyBytes {
		d.warn(f, "is "+strconv.Itoa(len(k))+" bytes; 16 or more are recommended")
	}
	return k
}

// warn records advice; Parse only fills Config.Warnings when there is no error.
func (d *decoder) warn(f field[string], msg string) {
	d.warnf(f.Line, f.Key, "%s", msg)
}

// warnf records advice about key at line, formatted like an Error: the line
// is left out rather than printed as 0 when there is none.
func (d *decoder) warnf(line int, key, format string, args ...any) {
	w := (&Error{File: d.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}).Error()
	d.warnings = append(d.warnings, strings.TrimPrefix(w, "config: "))
}
