package datapath

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"slices"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestRouteDFGolden: with DF the encap nests LWTUNNEL_IP_FLAGS holding
// TUNNEL_DONT_FRAGMENT as the kernel reads it, a __be16 (01 00 on every
// host), after the TTL; without DF the body is the golden in nl_test.go.
func TestRouteDFGolden(t *testing.T) {
	if bigEndian {
		t.Skip("goldens are little-endian bytes; netlink is native-endian (round trips cover big-endian)")
	}
	want, _ := hex.DecodeString("" +
		"02200000fe4dfd01" + "00000000" + // rtmsg
		"08000100" + "0a010005" + // RTA_DST 10.1.0.5
		"08000400" + "05000000" + // RTA_OIF 5
		"08000600" + "00040000" + // RTA_PRIORITY 1024
		"06001500" + "02000000" + // RTA_ENCAP_TYPE LWTUNNEL_ENCAP_IP
		"24001680" + // RTA_ENCAP (nested, 36 bytes)
		"08000200c0000201" + // LWTUNNEL_IP_DST 192.0.2.1
		"080003000a000001" + // LWTUNNEL_IP_SRC 10.0.0.1
		"0500040040000000" + // LWTUNNEL_IP_TTL 64
		"0600060001000000") // LWTUNNEL_IP_FLAGS TUNNEL_DONT_FRAGMENT (be16 0x0100)
	r := testRoute
	r.DF = true
	prefix := []byte{0xaa, 0xbb}
	got := appendRouteNew(append([]byte(nil), prefix...), &r)
	if !bytes.Equal(got[:2], prefix) || !bytes.Equal(got[2:], want) {
		t.Fatalf("\n got %x\nwant %x", got[2:], want)
	}
}

func TestRouteDFRoundTrip(t *testing.T) {
	// testRoute's RTA_ENCAP header (28 bytes, nested type 22), in the
	// host's byte order as netlink writes it.
	encapHeader := ne.AppendUint16(ne.AppendUint16(nil, 0x1c), 0x8016)
	for _, df := range []bool{false, true} {
		r := testRoute
		r.DF = df
		p, err := parseRoute(appendRouteNew(nil, &r))
		if err != nil || p.DF != df {
			t.Fatalf("DF %v: parsed %+v, %v", df, p, err)
		}
	}
	// The kernel dumps every TUNNEL_* flag it holds (key, csum, …): only
	// TUNNEL_DONT_FRAGMENT means DF.
	b := appendRouteNew(nil, &testRoute)
	for _, tc := range []struct {
		flags uint16
		df    bool
	}{{0x0004, false}, {0x0100 | 0x0004, true}, {0x0001, false}} {
		enc := bytes.Index(b, encapHeader) // RTA_ENCAP
		m := append([]byte(nil), b...)
		m = attrBE16(m, lwtunnelIPFlags, tc.flags)
		ne.PutUint16(m[enc:], uint16(len(m)-enc))
		p, err := parseRoute(m)
		if err != nil || p.DF != tc.df {
			t.Errorf("flags %#04x: DF %v, want %v (%v)", tc.flags, p.DF, tc.df, err)
		}
	}
	short := attr(appendRouteNew(nil, &testRoute), lwtunnelIPFlags, []byte{1})
	enc := bytes.Index(short, encapHeader)
	ne.PutUint16(short[enc:], uint16(len(short)-enc))
	if _, err := parseRoute(short); err == nil {
		t.Error("a 1-byte LWTUNNEL_IP_FLAGS parsed")
	}
}

// TestApplyDF: Apply's and Reconcile's routes carry the configured DF,
// and Reconcile replaces a route whose DF differs (an agent upgraded to
// DF finds its old routes without it).
func TestApplyDF(t *testing.T) {
	for _, df := range []bool{false, true} {
		k, f := ready(t, Config{Local: netip.MustParseAddr("10.0.0.1"), TunnelDF: df})
		if errs := k.Apply([]Binding{b("10.1.0.1", "192.0.2.1")}, nil); errs != nil {
			t.Fatal(errs)
		}
		r, _ := parseRoute(f.reqs[0].Data)
		if r.DF != df {
			t.Errorf("TunnelDF %v: Apply's route DF %v", df, r.DF)
		}
		routes := [][]byte{attrU32(appendRouteNew(nil, &route{Dst: netip.MustParseAddr("10.1.0.1"), Oif: 5, Metric: 3000,
			Protocol: 77, EncDst: netip.MustParseAddr("192.0.2.1"), EncSrc: netip.MustParseAddr("10.0.0.1"), TTL: 64, DF: !df}),
			unix.RTA_TABLE, unix.RT_TABLE_MAIN)}
		f.answer = func(m netlink.Message) (unix.Errno, [][]byte) {
			if m.Header.Type == unix.RTM_GETROUTE {
				return 0, routes
			}
			return 0, nil
		}
		f.reqs = f.reqs[:0]
		if _, _, err := k.Reconcile(slices.Values([]Binding{b("10.1.0.1", "192.0.2.1")})); err != nil {
			t.Fatal(err)
		}
		replaced := false
		for _, m := range f.reqs {
			if m.Header.Type == unix.RTM_NEWROUTE {
				r, _ := parseRoute(m.Data)
				replaced = r.DF == df && r.Metric == 3000
			}
		}
		if !replaced {
			t.Errorf("TunnelDF %v: a route with DF %v was not replaced at its metric", df, !df)
		}
	}
}

// TestSetupTunnelDF: with DF on and a plain tunnel, Setup has forwarding
// honour learned path MTUs (fwdUsePMTU); with DF off, or no plain tunnel,
// the namespace's setting is left alone.
func TestSetupTunnelDF(t *testing.T) {
	for _, tc := range []struct {
		df   bool
		tun  uint32
		want string
	}{{true, 5, fwdUsePMTU + "=1"}, {false, 5, ""}, {true, 0, ""}} {
		k, _ := ready(t, Config{TunnelDF: tc.df})
		k.tun[IPIP] = tc.tun
		var got string
		k.sysctl = func(path, val string) error { got += path + "=" + val; return nil }
		k.setupTunnelDF()
		if got != tc.want {
			t.Errorf("TunnelDF %v, tunnel %d: wrote %q, want %q", tc.df, tc.tun, got, tc.want)
		}
	}
}
