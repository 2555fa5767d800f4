package attack

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/hagent/hagent/ha/mip"
)

func TestCheckTarget(t *testing.T) {
	all := Modes(ModeUDP434 | ModeGroup | ModeVRRP | ModeFlood)
	reg := Modes(ModeUDP434 | ModeFlood)
	for _, c := range []struct {
		target string
		modes  Modes
		inNS   bool
		ok     bool
	}{
		{"127.0.0.1", reg, false, true},
		{"127.3.4.5", reg, false, true},
		{"127.0.0.1", all, false, false}, // vrrp multicasts on a real link
		{"10.77.0.1", reg, false, false},
		{"192.0.2.1", reg, false, false},
		{"10.77.0.1", all, true, true},
		{"224.0.0.18", reg, true, false},
		{"255.255.255.255", reg, true, false},
		{"0.0.0.0", reg, true, false},
		{"::1", reg, true, false},
	} {
		err := CheckTarget(netip.MustParseAddr(c.target), c.modes, c.inNS, "test")
		if (err == nil) != c.ok {
			t.Errorf("CheckTarget(%s, %b, inNS=%v) = %v; want ok=%v", c.target, c.modes, c.inNS, err, c.ok)
		}
	}
}

func TestNamespaceCheckHost(t *testing.T) {
	// The test process runs where go test was started: normally the host.
	in, why := NamespaceCheck()
	t.Logf("in lab namespace: %v (%s)", in, why)
	if why == "" {
		t.Fatal("no explanation")
	}
}

func TestParseModes(t *testing.T) {
	if m, err := ParseModes("udp434,vrrp"); err != nil || !m.Has(ModeUDP434) || !m.Has(ModeVRRP) || m.Has(ModeFlood) {
		t.Fatalf("%b %v", m, err)
	}
	for _, bad := range []string{"", "udp", "udp434,x"} {
		if _, err := ParseModes(bad); err == nil {
			t.Errorf("ParseModes(%q) accepted", bad)
		}
	}
}

func testGen(seed uint64) *Gen {
	return NewGen(Config{HomeAgent: netip.MustParseAddr("10.77.0.1"), PoolBase: netip.MustParseAddr("10.77.16.1"), PoolN: 100,
		PoolSPI: 400, PoolKey: []byte("pool-key"), GroupKey: []byte("group-secret-0123456789"), GroupKeyID: 1,
		VRID: 51, VIP: netip.MustParseAddr("10.77.0.254")}, seed)
}

func TestDeterministic(t *testing.T) {
	a, b := testGen(7), testGen(7)
	for range 200 {
		x, k1 := a.MIP(nil)
		y, k2 := b.MIP(nil)
		if k1 != k2 || len(x) != len(y) {
			t.Fatalf("same seed, different output: %s/%s", k1, k2)
		}
		// Identifications are timestamps: only the rest must match.
		if len(x) >= 24 && !bytes.Equal(x[:16], y[:16]) {
			t.Fatalf("%s differs", k1)
		}
	}
}

// Each registration kind is the defect it names, as ha/mip sees it.
func TestMIPKinds(t *testing.T) {
	g := testGen(1)
	seen := map[string]int{}
	for range 5000 {
		b, kind := g.MIP(nil)
		seen[kind]++
		var r mip.Request
		err := r.UnmarshalBinary(b)
		switch kind {
		case "truncate":
			if err == nil {
				t.Fatalf("%s parsed: %x", kind, b)
			}
		case "overrun":
			if err != mip.ErrTruncated {
				t.Fatalf("%s: %v", kind, err)
			}
		case "unknown-critical":
			if err != mip.ErrUnknownExtension {
				t.Fatalf("%s: %v %x", kind, err, b)
			}
		case "dup-auth", "nai-after-auth", "short-auth":
			if err != mip.ErrBadExtension {
				t.Fatalf("%s: %v", kind, err)
			}
		case "reply-type":
			if err != mip.ErrType {
				t.Fatalf("%s: %v", kind, err)
			}
		case "unknown-skippable":
			if err != nil || r.IgnoredExt != 1 || !r.MHAuth.Present {
				t.Fatalf("%s: %v %+v", kind, err, r)
			}
		case "nai-no-auth":
			if err != nil || r.NAI == nil || r.MHAuth.Present {
				t.Fatalf("%s: %v %+v", kind, err, r)
			}
		case "huge-lifetime":
			if err != nil || r.Lifetime != 0xffff {
				t.Fatalf("%s: %v %+v", kind, err, r)
			}
		case "oversize":
			if len(b) <= 2048 {
				t.Fatalf("%s: only %d bytes", kind, len(b))
			}
		}
	}
	for _, k := range MIPKinds {
		if seen[k] == 0 {
			t.Errorf("kind %s never generated", k)
		}
	}
}

func TestFloodKinds(t *testing.T) {
	g := testGen(2)
	h := mip.NewHMACMD5([]byte("pool-key"))
	var scratch [64]byte
	homes := map[netip.Addr]bool{}
	for range 300 {
		b, kind := g.Flood(nil)
		var r mip.Request
		if err := r.UnmarshalBinary(b); err != nil || !r.MHAuth.Present {
			t.Fatalf("%s: not well formed: %v", kind, err)
		}
		good := r.MHAuth.SPI == 400 && mip.Verify(b, r.MHAuth, h, &scratch)
		if good != (kind == "pool-good") {
			t.Fatalf("%s: authenticates with the pool key: %v", kind, good)
		}
		if kind == "pool-good" {
			if homes[r.HomeAddr] {
				t.Fatalf("home %v twice before the pool wrapped", r.HomeAddr)
			}
			homes[r.HomeAddr] = true
		}
	}
}

func TestVRRPChecksum(t *testing.T) {
	// RFC 5798 §5.2.8: recomputing over a checksummed message gives 0.
	g := testGen(3)
	src, dst := netip.MustParseAddr("10.77.0.9"), netip.MustParseAddr("224.0.0.18")
	for range 500 {
		b, ttl, kind := g.VRRP(nil, src, dst)
		ok := vrrpChecksum(src, dst, b) == 0
		switch kind {
		case "bad-checksum", "random":
			if ok && len(b) >= 8 {
				t.Fatalf("%s: checksum is right: %x", kind, b)
			}
		case "truncated":
		default:
			if !ok {
				t.Fatalf("%s: checksum wrong: %x", kind, b)
			}
		}
		if (ttl != 255) != (kind == "ttl") {
			t.Fatalf("%s: ttl %d", kind, ttl)
		}
	}
}
