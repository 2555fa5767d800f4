package datapath

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// bigEndian: netlink is native-endian; the goldens below are the bytes a
// little-endian host sends. On big-endian (mips under qemu-user) they are
// skipped explicitly and the round trips, which hold on both, still run.
var bigEndian = ne.Uint16([]byte{0, 1}) == 1

var testRoute = route{Dst: netip.MustParseAddr("10.1.0.5"), Oif: 5, Metric: 1024, Protocol: 77,
	EncDst: netip.MustParseAddr("192.0.2.1"), EncSrc: netip.MustParseAddr("10.0.0.1"), TTL: 64}

// Annotated little-endian goldens for every body the datapath sends.
var goldens = []struct {
	name, hex string
	build     func(b []byte) []byte
}{
	{"RTM_NEWROUTE /32 encap ip", "" +
		"02200000fe4dfd01" + "00000000" + // rtmsg: inet /32 main proto 77 scope link unicast, flags
		"08000100" + "0a010005" + // RTA_DST 10.1.0.5
		"08000400" + "05000000" + // RTA_OIF 5
		"08000600" + "00040000" + // RTA_PRIORITY 1024
		"06001500" + "02000000" + // RTA_ENCAP_TYPE LWTUNNEL_ENCAP_IP
		"1c001680" + // RTA_ENCAP (nested)
		"08000200c0000201" + // LWTUNNEL_IP_DST 192.0.2.1
		"080003000a000001" + // LWTUNNEL_IP_SRC 10.0.0.1
		"0500040040000000", // LWTUNNEL_IP_TTL 64
		func(b []byte) []byte { return appendRouteNew(b, &testRoute) }},
	{"RTM_DELROUTE", "02200000fe4dff0100000000" + "080001000a010005" + "0800060000040000",
		func(b []byte) []byte { return appendRouteDel(b, testRoute.Dst, 1024, 77) }},
	{"RTM_DELROUTE any metric", "02200000fe4dff0100000000" + "080001000a010005",
		func(b []byte) []byte { return appendRouteDel(b, testRoute.Dst, 0, 77) }},
	{"RTM_GETROUTE dump", "02000000fe4d000000000000",
		func(b []byte) []byte { return appendRouteDump(b, 77) }},
	{"RTM_NEWNEIGH proxy", "" +
		"02000000" + "02000000" + "8000" + "0800" + // ndmsg: inet, ifindex 2, NUD_PERMANENT, NTF_PROXY
		"080001000a010005" + // NDA_DST
		"05000c004d000000", // NDA_PROTOCOL 77
		func(b []byte) []byte { return appendNeigh(b, 2, testRoute.Dst, 77) }},
	{"RTM_GETNEIGH proxy dump", "020000000000000000000800",
		func(b []byte) []byte { return appendNeighDump(b) }},
	{"RTM_NEWADDR", "0218000002000000" + "080002000a000064" + "080001000a000064",
		func(b []byte) []byte { return appendAddr(b, 2, netip.MustParsePrefix("10.0.0.100/24")) }},
	{"RTM_GETLINK by name", "00000000000000000000000000000000" + "090003006d69703000000000",
		func(b []byte) []byte { return appendLinkGet(b, "mip0") }},
	{"RTM_NEWLINK ipip external", "" +
		"00000000000000000100000001000000" + // ifinfomsg: IFF_UP in flags and change
		"090003006d69703000000000" + // IFLA_IFNAME mip0
		"18001280" + "0900010069706970" + "00000000" + // IFLA_LINKINFO { KIND ipip
		"08000280" + "04001300", // INFO_DATA { IFLA_IPTUN_COLLECT_METADATA } }
		func(b []byte) []byte { return appendTunnelNew(b, "mip0", IPIP) }},
	{"RTM_NEWLINK gre external", "" +
		"000000000000000001000000010000000a0003006d69703067000000" +
		"14001280" + "0800010067726500" + "08000280" + "04001200",
		func(b []byte) []byte { return appendTunnelNew(b, "mip0g", GRE) }},
	{"RTM_NEWLINK up + devconf", "" +
		"00000000050000000100000001000000" +
		"1c001a80" + "18000280" + "14000180" + // IFLA_AF_SPEC { AF_INET { IFLA_INET_CONF {
		"0800010001000000" + "0800080001000000", // FORWARDING 1, RP_FILTER 1 }}}
		func(b []byte) []byte {
			return appendLinkConf(b, 5, [][2]uint32{{devconfForwarding, 1}, {devconfRPFilter, 1}})
		}},
}

func TestGoldens(t *testing.T) {
	if bigEndian {
		t.Skip("goldens are little-endian bytes; netlink is native-endian (round trips cover big-endian)")
	}
	prefix := []byte{0xaa, 0xbb}
	for _, g := range goldens {
		want, err := hex.DecodeString(g.hex)
		if err != nil {
			t.Fatalf("%s: %v", g.name, err)
		}
		got := g.build(append([]byte(nil), prefix...))
		if !bytes.Equal(got[:2], prefix) || !bytes.Equal(got[2:], want) {
			t.Errorf("%s:\n got %x\nwant %x", g.name, got[2:], want)
		}
		if len(want)%4 != 0 {
			t.Errorf("%s: %d bytes, not 4-aligned", g.name, len(want))
		}
	}
}

func TestRouteRoundTrip(t *testing.T) {
	b := appendRouteNew(nil, &testRoute)
	r, err := parseRoute(b)
	if err != nil {
		t.Fatal(err)
	}
	want := testRoute
	want.Table = unix.RT_TABLE_MAIN
	want.EncapType = unix.LWTUNNEL_ENCAP_IP
	if r != want {
		t.Fatalf("got %+v\nwant %+v", r, want)
	}
	// The kernel reports an unset encap source as 0.0.0.0: that is "none".
	nosrc := testRoute
	nosrc.EncSrc = netip.Addr{}
	r, _ = parseRoute(appendRouteNew(nil, &nosrc))
	if r.EncSrc.IsValid() {
		t.Fatalf("EncSrc %v, want none", r.EncSrc)
	}
	// A non-/32 is never ours.
	b[1] = 24
	if r, err := parseRoute(b); err != nil || r.Dst.IsValid() {
		t.Fatalf("/24 parsed as %v, %v", r.Dst, err)
	}
	// RTA_TABLE (the kernel always adds it) overrides rtm_table.
	b = attrU32(appendRouteNew(nil, &testRoute), unix.RTA_TABLE, 1000)
	if r, _ := parseRoute(b); r.Table != 1000 {
		t.Fatalf("table %d", r.Table)
	}
}

func TestNeighLinkRoundTrip(t *testing.T) {
	n, err := parseNeigh(appendNeigh(nil, 7, testRoute.Dst, 77))
	if err != nil || n != (neigh{Ifindex: 7, Dst: testRoute.Dst, Flags: unix.NTF_PROXY, Protocol: 77}) {
		t.Fatalf("%+v %v", n, err)
	}
	for _, e := range []Encap{IPIP, GRE} {
		l, err := parseLink(appendTunnelNew(nil, "mip0", e))
		if err != nil || l.Name != "mip0" || l.Kind != e.String() || !l.CollectMD || l.Flags != unix.IFF_UP {
			t.Fatalf("%v: %+v %v", e, l, err)
		}
	}
}

func TestParseMalformed(t *testing.T) {
	for _, b := range [][]byte{
		nil, {2}, make([]byte, 11),
		append(appendRouteDump(nil, 77), 9, 0),                         // short attribute header
		append(appendRouteDump(nil, 77), 0xff, 0, 1, 0),                // length beyond the end
		append(appendRouteDump(nil, 77), 2, 0, 1, 0),                   // length < 4
		append(appendRouteDump(nil, 77), 6, 0, 1, 0, 1, 2),             // RTA_DST of 2 bytes
		append(appendRouteDump(nil, 77), 6, 0, 4, 0, 1, 2),             // RTA_OIF of 2 bytes
		append(appendRouteDump(nil, 77), 8, 0, 0x16, 0x80, 5, 0, 2, 0), // encap dst 1 byte
	} {
		if _, err := parseRoute(b); err == nil {
			t.Errorf("parseRoute(%x): no error", b)
		}
	}
	if _, err := parseNeigh(make([]byte, 5)); err == nil {
		t.Error("short ndmsg accepted")
	}
	if _, err := parseLink(make([]byte, 15)); err == nil {
		t.Error("short ifinfomsg accepted")
	}
}

// FuzzParse feeds every parser the same input: they must return, not panic.
func FuzzParse(f *testing.F) {
	for _, g := range goldens {
		f.Add(g.build(nil))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := parseRoute(b); err == nil && r.Dst.IsValid() && !r.Dst.Is4() {
			t.Fatalf("non-IPv4 dst %v", r.Dst)
		}
		_, _ = parseNeigh(b)
		_, _ = parseLink(b)
	})
}
