package advert

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// goldenHA is what hagent sends by default: one router address (the
// virtual address) with its prefix length, H and G, and a padding byte
// because 27 bytes are odd. Checksum computed independently (python) and
// accepted by tshark (TestTsharkDecodes).
const goldenHA = `
09 00 cd e3 01 02 00 09   c0 00 02 01 00 00 00 00
10 06 00 00 07 08 24 00   13 01 18   00`

func haAdvert() Advertisement {
	a := Advertisement{Code: CodeRouter, Lifetime: 9, NumRouters: 1, RegLifetime: 1800,
		Flags: FlagH | FlagG, PrefixLengths: true}
	a.Routers[0] = RouterAddr{Addr: netip.MustParseAddr("192.0.2.1")}
	a.Prefix[0] = 24
	return a
}

// A foreign-agent style advertisement, to cover care-of addresses, two
// routers, no prefix-lengths (even length: no padding) and negative
// preference (0x80000000: "never use as default router").
const goldenFA = `
09 10 00 00 02 02 01 2c   0a 00 00 01 00 00 00 05   0a 00 00 02 80 00 00 00
10 0e 01 00 ff ff 91 00   0a 00 00 01 0a 00 00 02`

func faAdvert() Advertisement {
	a := Advertisement{Code: CodeNotRouter, Lifetime: 300, NumRouters: 2, Sequence: 256,
		RegLifetime: InfiniteLifetime, Flags: FlagR | FlagF | FlagT, NumCareOf: 2}
	a.Routers[0] = RouterAddr{netip.MustParseAddr("10.0.0.1"), 5}
	a.Routers[1] = RouterAddr{netip.MustParseAddr("10.0.0.2"), -1 << 31}
	a.CareOf[0] = netip.MustParseAddr("10.0.0.1")
	a.CareOf[1] = netip.MustParseAddr("10.0.0.2")
	return a
}

func withChecksum(t *testing.T, s string) []byte {
	b := unhex(t, s)
	b[2], b[3] = 0, 0
	c := Checksum(b)
	b[2], b[3] = byte(c>>8), byte(c)
	return b
}

func TestAdvertisementGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    Advertisement
		want []byte
	}{
		{"home agent", haAdvert(), unhex(t, goldenHA)},
		{"foreign agent", faAdvert(), withChecksum(t, goldenFA)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte{0xde, 0xad}
			got, err := tc.a.AppendBinary(prefix)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[:2], prefix) || !bytes.Equal(got[2:], tc.want) {
				t.Fatalf("got\n% x\nwant\n% x", got[2:], tc.want)
			}
			if tc.a.Len() != len(tc.want) {
				t.Fatalf("Len %d, encoded %d", tc.a.Len(), len(tc.want))
			}
			var back Advertisement
			if err := back.UnmarshalBinary(got[2:]); err != nil {
				t.Fatal(err)
			}
			want := tc.a
			want.Padded = tc.a.PrefixLengths // 27 bytes + 1 padding
			if back != want {
				t.Fatalf("round trip\n got %+v\nwant %+v", back, want)
			}
		})
	}
}

func TestSolicitationGolden(t *testing.T) {
	got, _ := Solicitation{}.AppendBinary([]byte{1})
	if want := unhex(t, "01 0a 00 f5 ff 00 00 00 00"); !bytes.Equal(got, want) {
		t.Fatalf("got % x want % x", got, want)
	}
	var s Solicitation
	if err := s.UnmarshalBinary(got[1:]); err != nil {
		t.Fatal(err)
	}
}

func TestFlagsString(t *testing.T) {
	if s := (FlagH | FlagG | FlagM).String(); s != "H M G" {
		t.Fatal(s)
	}
	if s := Flags(0).String(); s != "-" {
		t.Fatal(s)
	}
}

func TestSequenceWrap(t *testing.T) {
	for in, want := range map[uint16]uint16{0: 1, 255: 256, 0xfffe: 0xffff, 0xffff: 256} {
		if got := NextSequence(in); got != want {
			t.Errorf("NextSequence(%#x) = %#x, want %#x", in, got, want)
		}
	}
}

func TestAdvertisementMalformed(t *testing.T) {
	good := unhex(t, goldenHA)
	mut := func(f func(b []byte) []byte) []byte {
		b := f(append([]byte(nil), good...))
		b[2], b[3] = 0, 0
		c := Checksum(b)
		b[2], b[3] = byte(c>>8), byte(c)
		return b
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"short", good[:7], ErrShort},
		{"solicitation", unhex(t, "0a 00 f5 ff 00 00 00 00"), ErrType},
		{"code 1", mut(func(b []byte) []byte { b[1] = 1; return b }), ErrCode},
		{"checksum", func() []byte { b := append([]byte(nil), good...); b[10] ^= 1; return b }(), ErrChecksum},
		{"truncated (checksum)", good[:20], ErrChecksum},
		{"entry size 1", mut(func(b []byte) []byte { b[5] = 1; return b }), ErrEntrySize},
		{"9 routers", mut(func(b []byte) []byte { b[4] = 9; return b }), ErrTooMany},
		{"routers past end", mut(func(b []byte) []byte { b[4] = 4; return b }), ErrShort},
		{"plain router advertisement", mut(func(b []byte) []byte { return b[:16] }), ErrNoMobility},
		{"ext past end", mut(func(b []byte) []byte { b[17] = 40; return b }), ErrExtension},
		{"mobility len 7", mut(func(b []byte) []byte { b[17] = 7; b[24] = 0x80; return b }), ErrMobilityLen},
		{"prefix count", mut(func(b []byte) []byte { b[25] = 2; b[27] = 24; return b }), ErrPrefixLen},
		{"prefix 33", mut(func(b []byte) []byte { b[26] = 33; return b }), ErrPrefixLen},
		{"unknown ext 24", mut(func(b []byte) []byte { b[24] = 24; return b }), ErrUnknownExt},
		{"no H nor F", mut(func(b []byte) []byte { b[22] = 0x04; return b }), ErrFlags},
		{"B without F", mut(func(b []byte) []byte { b[22] = 0x60; return b }), ErrFlags},
		{"duplicate mobility", mut(func(b []byte) []byte { return append(b[:27], 0x10, 6, 0, 0, 0, 0, 0x20, 0, 0) }), ErrDuplicate},
	} {
		var a Advertisement
		if err := a.UnmarshalBinary(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	// Unknown extensions from 128 up are skipped (§1.9).
	var a Advertisement
	b := mut(func(b []byte) []byte { return append(b[:27], 0x80, 1, 0xaa, 0) })
	if err := a.UnmarshalBinary(b); err != nil {
		t.Fatalf("extension 128: %v", err)
	}
}

func TestAppendRejects(t *testing.T) {
	for name, f := range map[string]func(a *Advertisement){
		"code 1":      func(a *Advertisement) { a.Code = 1 },
		"9 routers":   func(a *Advertisement) { a.NumRouters = 9 },
		"ipv6":        func(a *Advertisement) { a.Routers[0].Addr = netip.MustParseAddr("::1") },
		"no H nor F":  func(a *Advertisement) { a.Flags = FlagG },
		"R without F": func(a *Advertisement) { a.Flags |= FlagR },
		"prefix 33":   func(a *Advertisement) { a.Prefix[0] = 33 },
		"zero coa":    func(a *Advertisement) { a.NumCareOf = 1 },
	} {
		a := haAdvert()
		f(&a)
		if _, err := a.AppendBinary(nil); err == nil {
			t.Errorf("%s: AppendBinary accepted it", name)
		}
	}
}

func TestSolicitationMalformed(t *testing.T) {
	var s Solicitation
	for name, tc := range map[string]struct {
		b    string
		want error
	}{
		"short":    {"0a 00 f5 ff 00 00 00", ErrShort},
		"type":     {"09 00 f6 ff 00 00 00 00", ErrType},
		"code":     {"0a 01 f5 fe 00 00 00 00", ErrCode},
		"checksum": {"0a 00 00 00 00 00 00 00", ErrChecksum},
	} {
		if err := s.UnmarshalBinary(unhex(t, tc.b)); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
	// Trailing bytes are covered by the checksum and ignored.
	b, _ := Solicitation{}.AppendBinary(nil)
	b = append(b, 1, 2)
	b[2], b[3] = 0, 0
	c := Checksum(b)
	b[2], b[3] = byte(c>>8), byte(c)
	if err := s.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
}

func TestWireZeroAllocs(t *testing.T) {
	a := haAdvert()
	buf := make([]byte, 0, MaxLen)
	var back Advertisement
	var s Solicitation
	sol, _ := Solicitation{}.AppendBinary(nil)
	n := testing.AllocsPerRun(200, func() {
		b, _ := a.AppendBinary(buf[:0])
		_ = back.UnmarshalBinary(b)
		_ = s.UnmarshalBinary(sol)
		_ = back.UnmarshalBinary(b[:5]) // error path too
	})
	if n != 0 {
		t.Fatalf("%v allocations per advertisement", n)
	}
}

func BenchmarkAppendUnmarshal(b *testing.B) {
	a := haAdvert()
	buf := make([]byte, 0, MaxLen)
	var back Advertisement
	b.ReportAllocs()
	for b.Loop() {
		p, _ := a.AppendBinary(buf[:0])
		_ = back.UnmarshalBinary(p)
	}
}

func FuzzAdvertisement(f *testing.F) {
	f.Add(unhex(f, goldenHA))
	fa := faAdvert()
	b, _ := fa.AppendBinary(nil)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var a Advertisement
		if a.UnmarshalBinary(b) != nil {
			return
		}
		// Whatever parsed re-encodes, and parses back to the same value
		// (padding is re-derived, not copied).
		out, err := a.AppendBinary(nil)
		if err != nil {
			t.Fatalf("parsed %+v but cannot encode it: %v", a, err)
		}
		if len(out) != a.Len() {
			t.Fatalf("Len %d, encoded %d", a.Len(), len(out))
		}
		var back Advertisement
		if err := back.UnmarshalBinary(out); err != nil {
			t.Fatalf("re-encoded advertisement rejected: %v", err)
		}
		back.Padded, a.Padded = false, false
		if back != a {
			t.Fatalf("round trip\n got %+v\nwant %+v", back, a)
		}
	})
}

func FuzzSolicitation(f *testing.F) {
	b, _ := Solicitation{}.AppendBinary(nil)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Solicitation
		_ = s.UnmarshalBinary(b)
	})
}
