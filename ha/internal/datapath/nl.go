package datapath

// Hand-written rtnetlink message bodies (everything after the nlmsghdr,
// which mdlayher/netlink writes). Netlink is native-endian, so these use
// binary.NativeEndian; the goldens in nl_test.go are little-endian and are
// skipped explicitly on big-endian hosts, where the round trips still run.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

var ne = binary.NativeEndian

// Kernel UAPI numbers x/sys/unix does not carry.
const (
	lwtunnelIPID    = 1 // be64 tunnel key
	lwtunnelIPDst   = 2
	lwtunnelIPSrc   = 3
	lwtunnelIPTTL   = 4
	lwtunnelIPTOS   = 5
	lwtunnelIPFlags = 6 // be16 TUNNEL_* flags
	// tunnelDontFragment is TUNNEL_DONT_FRAGMENT (linux/if_tunnel.h,
	// __cpu_to_be16(0x0100)): the first byte of LWTUNNEL_IP_FLAGS, which
	// is big-endian whatever the host.
	tunnelDontFragment = 0x0100
	iflaIPTunCollectMD = 19 // IFLA_IPTUN_COLLECT_METADATA (linux/if_tunnel.h)
	iflaGRECollectMD   = 18 // IFLA_GRE_COLLECT_METADATA
	ndaProtocol        = 12 // NDA_PROTOCOL (Linux ≥ 5.8)
	devconfForwarding  = 1  // IPV4_DEVCONF_FORWARDING (linux/ip.h)
	devconfProxyARP    = 3  // IPV4_DEVCONF_PROXY_ARP
	devconfRPFilter    = 8  // IPV4_DEVCONF_RP_FILTER
	nlaFNested         = 0x8000
	nlaTypeMask        = 0x3fff
	rtmsgLen           = 12
	ndmsgLen           = 12
	ifinfomsgLen       = 16
	ifaddrmsgLen       = 8
)

// ---- attribute writing ----

func attr(b []byte, typ uint16, v []byte) []byte {
	n := 4 + len(v)
	b = ne.AppendUint16(b, uint16(n))
	b = ne.AppendUint16(b, typ)
	b = append(b, v...)
	return pad(b, n)
}

func pad(b []byte, n int) []byte {
	for ; n%4 != 0; n++ {
		b = append(b, 0)
	}
	return b
}

func attrU8(b []byte, typ uint16, v uint8) []byte {
	b = ne.AppendUint16(b, 5)
	b = ne.AppendUint16(b, typ)
	return append(b, v, 0, 0, 0)
}

func attrU16(b []byte, typ uint16, v uint16) []byte {
	b = ne.AppendUint16(b, 6)
	b = ne.AppendUint16(b, typ)
	b = ne.AppendUint16(b, v)
	return append(b, 0, 0)
}

// attrBE16 is attrU16 for the few attributes the kernel reads as __be16.
func attrBE16(b []byte, typ uint16, v uint16) []byte {
	b = ne.AppendUint16(b, 6)
	b = ne.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, v)
	return append(b, 0, 0)
}

func attrU32(b []byte, typ uint16, v uint32) []byte {
	b = ne.AppendUint16(b, 8)
	b = ne.AppendUint16(b, typ)
	return ne.AppendUint32(b, v)
}

func attrIP4(b []byte, typ uint16, a netip.Addr) []byte {
	v := a.As4()
	b = ne.AppendUint16(b, 8)
	b = ne.AppendUint16(b, typ)
	return append(b, v[:]...)
}

func attrString(b []byte, typ uint16, s string) []byte {
	n := 4 + len(s) + 1
	b = ne.AppendUint16(b, uint16(n))
	b = ne.AppendUint16(b, typ)
	b = append(b, s...)
	b = append(b, 0)
	return pad(b, n)
}

// nest opens a nested attribute; end closes it.
func nest(b []byte, typ uint16) ([]byte, int) {
	at := len(b)
	b = ne.AppendUint16(b, 0)
	b = ne.AppendUint16(b, typ|nlaFNested)
	return b, at
}

func end(b []byte, at int) []byte {
	ne.PutUint16(b[at:], uint16(len(b)-at))
	return b
}

// ---- message bodies ----

// route is one of our /32 encap routes, as sent or as dumped.
type route struct {
	Dst      netip.Addr
	Oif      uint32
	Metric   uint32
	Protocol uint8
	Table    uint32
	// encapsulation (EncapType 0: none)
	EncapType uint16
	EncDst    netip.Addr
	EncSrc    netip.Addr
	TTL       uint8
	// DF sets the outer header's Don't Fragment bit of every packet the
	// route encapsulates (LWTUNNEL_IP_FLAGS TUNNEL_DONT_FRAGMENT): the
	// kernel takes it per route, never from the inner header.
	DF bool
}

// appendRouteNew appends an rtmsg for RTM_NEWROUTE: a unicast /32 in the
// main table, scope link, through r.Oif, with an IP lwtunnel encap.
func appendRouteNew(b []byte, r *route) []byte {
	b = append(b, unix.AF_INET, 32, 0, 0, unix.RT_TABLE_MAIN, r.Protocol, unix.RT_SCOPE_LINK, unix.RTN_UNICAST)
	b = ne.AppendUint32(b, 0) // rtm_flags
	b = attrIP4(b, unix.RTA_DST, r.Dst)
	b = attrU32(b, unix.RTA_OIF, r.Oif)
	b = attrU32(b, unix.RTA_PRIORITY, r.Metric)
	b = attrU16(b, unix.RTA_ENCAP_TYPE, unix.LWTUNNEL_ENCAP_IP)
	b, at := nest(b, unix.RTA_ENCAP)
	b = attrIP4(b, lwtunnelIPDst, r.EncDst)
	if r.EncSrc.Is4() {
		b = attrIP4(b, lwtunnelIPSrc, r.EncSrc)
	}
	b = attrU8(b, lwtunnelIPTTL, r.TTL)
	if r.DF {
		b = attrBE16(b, lwtunnelIPFlags, tunnelDontFragment)
	}
	return end(b, at)
}

// appendRouteDel appends an rtmsg for RTM_DELROUTE of our /32 to dst. A
// metric of 0 matches any (the kernel then deletes the first match); scope
// NOWHERE means "any scope" to fib_table_delete.
func appendRouteDel(b []byte, dst netip.Addr, metric uint32, proto uint8) []byte {
	b = append(b, unix.AF_INET, 32, 0, 0, unix.RT_TABLE_MAIN, proto, unix.RT_SCOPE_NOWHERE, unix.RTN_UNICAST)
	b = ne.AppendUint32(b, 0)
	b = attrIP4(b, unix.RTA_DST, dst)
	if metric != 0 {
		b = attrU32(b, unix.RTA_PRIORITY, metric)
	}
	return b
}

// appendRouteDump appends the rtmsg of an RTM_GETROUTE dump request. With
// NETLINK_GET_STRICT_CHK the kernel filters on table and protocol itself;
// without it those fields are ignored and parseRoute's caller filters.
func appendRouteDump(b []byte, proto uint8) []byte {
	b = append(b, unix.AF_INET, 0, 0, 0, unix.RT_TABLE_MAIN, proto, 0, 0)
	return ne.AppendUint32(b, 0)
}

// parseRoute decodes an RTM_NEWROUTE body (a dump entry).
func parseRoute(b []byte) (route, error) {
	var r route
	if len(b) < rtmsgLen {
		return r, fmt.Errorf("rtmsg: %d bytes, want ≥ %d", len(b), rtmsgLen)
	}
	if b[0] != unix.AF_INET {
		return r, errNotIPv4
	}
	dstLen := b[1]
	var enc []byte
	r.Table = uint32(b[4])
	r.Protocol = b[5]
	err := walk(b[rtmsgLen:], func(typ uint16, v []byte) error {
		switch typ {
		case unix.RTA_DST:
			if len(v) != 4 {
				return fmt.Errorf("RTA_DST: %d bytes", len(v))
			}
			r.Dst = netip.AddrFrom4([4]byte(v))
		case unix.RTA_OIF:
			x, err := u32(v, "RTA_OIF")
			r.Oif = x
			return err
		case unix.RTA_PRIORITY:
			x, err := u32(v, "RTA_PRIORITY")
			r.Metric = x
			return err
		case unix.RTA_TABLE:
			x, err := u32(v, "RTA_TABLE")
			r.Table = x
			return err
		case unix.RTA_ENCAP_TYPE:
			if len(v) < 2 {
				return fmt.Errorf("RTA_ENCAP_TYPE: %d bytes", len(v))
			}
			r.EncapType = ne.Uint16(v)
		case unix.RTA_ENCAP:
			enc = v // the kernel puts RTA_ENCAP_TYPE after it: parsed below
		}
		return nil
	})
	// Read as an IP encap unless the type says otherwise: an "encap bpf"
	// route (the UDP tunnel) nests LWT_BPF_* attributes whose numbers
	// overlap LWTUNNEL_IP_*.
	if err == nil && enc != nil && r.EncapType != lwtunnelBPF {
		err = walk(enc, func(typ uint16, v []byte) error {
			switch typ {
			case lwtunnelIPDst, lwtunnelIPSrc:
				if len(v) != 4 {
					return fmt.Errorf("LWTUNNEL_IP address: %d bytes", len(v))
				}
				a := netip.AddrFrom4([4]byte(v))
				if typ == lwtunnelIPDst {
					r.EncDst = a
				} else if !a.IsUnspecified() {
					r.EncSrc = a
				}
			case lwtunnelIPTTL:
				if len(v) < 1 {
					return errors.New("LWTUNNEL_IP_TTL: empty")
				}
				r.TTL = v[0]
			case lwtunnelIPFlags:
				if len(v) < 2 {
					return fmt.Errorf("LWTUNNEL_IP_FLAGS: %d bytes", len(v))
				}
				// The kernel dumps every TUNNEL_* flag it holds: only
				// DF is ours to compare.
				r.DF = binary.BigEndian.Uint16(v)&tunnelDontFragment != 0
			}
			return nil
		})
	}
	if err != nil {
		return r, err
	}
	if dstLen != 32 || !r.Dst.IsValid() {
		r.Dst = netip.Addr{} // not a host route: never ours
	}
	return r, nil
}

var errNotIPv4 = errors.New("not AF_INET")

// neigh is a proxy neighbour entry.
type neigh struct {
	Ifindex  uint32
	Dst      netip.Addr
	Flags    uint8
	Protocol uint8
}

// appendNeigh appends an ndmsg for RTM_NEWNEIGH/RTM_DELNEIGH of a proxy
// entry (NTF_PROXY), tagged with our protocol (NDA_PROTOCOL) so that a
// dump tells ours from an operator's.
func appendNeigh(b []byte, ifindex uint32, dst netip.Addr, proto uint8) []byte {
	b = append(b, unix.AF_INET, 0, 0, 0)
	b = ne.AppendUint32(b, ifindex)
	b = ne.AppendUint16(b, unix.NUD_PERMANENT)
	b = append(b, unix.NTF_PROXY, 0)
	b = attrIP4(b, unix.NDA_DST, dst)
	if proto != 0 {
		b = attrU8(b, ndaProtocol, proto)
	}
	return b
}

// appendNeighDump asks for the proxy table: the kernel dumps pneigh entries
// when ndm_flags is exactly NTF_PROXY.
func appendNeighDump(b []byte) []byte {
	b = append(b, unix.AF_INET, 0, 0, 0)
	b = ne.AppendUint32(b, 0)
	b = ne.AppendUint16(b, 0)
	return append(b, unix.NTF_PROXY, 0)
}

func parseNeigh(b []byte) (neigh, error) {
	var n neigh
	if len(b) < ndmsgLen {
		return n, fmt.Errorf("ndmsg: %d bytes, want ≥ %d", len(b), ndmsgLen)
	}
	if b[0] != unix.AF_INET {
		return n, errNotIPv4
	}
	n.Ifindex = ne.Uint32(b[4:])
	n.Flags = b[10]
	err := walk(b[ndmsgLen:], func(typ uint16, v []byte) error {
		switch typ {
		case unix.NDA_DST:
			if len(v) != 4 {
				return fmt.Errorf("NDA_DST: %d bytes", len(v))
			}
			n.Dst = netip.AddrFrom4([4]byte(v))
		case ndaProtocol:
			if len(v) < 1 {
				return errors.New("NDA_PROTOCOL: empty")
			}
			n.Protocol = v[0]
		}
		return nil
	})
	return n, err
}

// appendAddr appends an ifaddrmsg for RTM_NEWADDR/DELADDR of p on ifindex.
func appendAddr(b []byte, ifindex uint32, p netip.Prefix) []byte {
	b = append(b, unix.AF_INET, byte(p.Bits()), 0, unix.RT_SCOPE_UNIVERSE)
	b = ne.AppendUint32(b, ifindex)
	b = attrIP4(b, unix.IFA_LOCAL, p.Addr())
	return attrIP4(b, unix.IFA_ADDRESS, p.Addr())
}

// link is what we read of an RTM_NEWLINK.
type link struct {
	Index     uint32
	Flags     uint32
	Name      string
	Kind      string
	CollectMD bool
	MTU       uint32
	Type      uint16 // ARPHRD_*
}

// appendLinkGet appends an ifinfomsg asking for one device by name.
func appendLinkGet(b []byte, name string) []byte {
	b = appendIfinfo(b, 0, 0, 0)
	return attrString(b, unix.IFLA_IFNAME, name)
}

func appendIfinfo(b []byte, index, flags, change uint32) []byte {
	b = append(b, unix.AF_UNSPEC, 0, 0, 0)
	b = ne.AppendUint32(b, index)
	b = ne.AppendUint32(b, flags)
	return ne.AppendUint32(b, change)
}

// appendTunnelNew appends an ifinfomsg creating an external-mode (collect
// metadata) tunnel device of kind "ipip" or "gre", up.
func appendTunnelNew(b []byte, name string, e Encap) []byte {
	b = appendIfinfo(b, 0, unix.IFF_UP, unix.IFF_UP)
	b = attrString(b, unix.IFLA_IFNAME, name)
	b, li := nest(b, unix.IFLA_LINKINFO)
	kind, md := "ipip", uint16(iflaIPTunCollectMD)
	if e == GRE {
		kind, md = "gre", iflaGRECollectMD
	}
	b = attrString(b, unix.IFLA_INFO_KIND, kind)
	b, data := nest(b, unix.IFLA_INFO_DATA)
	b = attr(b, md, nil) // a flag: present means on
	b = end(b, data)
	return end(b, li)
}

// appendLinkConf appends an ifinfomsg setting a device up and some of its
// IPv4 devconf values (IFLA_AF_SPEC/AF_INET/IFLA_INET_CONF), as the
// /proc/sys/net/ipv4/conf/<dev>/* files would.
func appendLinkConf(b []byte, index uint32, conf [][2]uint32) []byte {
	b = appendIfinfo(b, index, unix.IFF_UP, unix.IFF_UP)
	if len(conf) == 0 {
		return b
	}
	b, spec := nest(b, unix.IFLA_AF_SPEC)
	b, inet := nest(b, unix.AF_INET)
	b, c := nest(b, unix.IFLA_INET_CONF)
	for _, kv := range conf {
		b = attrU32(b, uint16(kv[0]), kv[1])
	}
	b = end(b, c)
	b = end(b, inet)
	return end(b, spec)
}

func parseLink(b []byte) (link, error) {
	var l link
	if len(b) < ifinfomsgLen {
		return l, fmt.Errorf("ifinfomsg: %d bytes, want ≥ %d", len(b), ifinfomsgLen)
	}
	l.Type = ne.Uint16(b[2:])
	l.Index = ne.Uint32(b[4:])
	l.Flags = ne.Uint32(b[8:])
	err := walk(b[ifinfomsgLen:], func(typ uint16, v []byte) error {
		switch typ {
		case unix.IFLA_IFNAME:
			l.Name = cstring(v)
		case unix.IFLA_MTU:
			x, err := u32(v, "IFLA_MTU")
			l.MTU = x
			return err
		case unix.IFLA_LINKINFO:
			return walk(v, func(typ uint16, v []byte) error {
				switch typ {
				case unix.IFLA_INFO_KIND:
					l.Kind = cstring(v)
				case unix.IFLA_INFO_DATA:
					return walk(v, func(typ uint16, v []byte) error {
						// ipip and gre number their collect_md flag differently
						if (l.Kind == "ipip" && typ == iflaIPTunCollectMD) || (l.Kind == "gre" && typ == iflaGRECollectMD) {
							l.CollectMD = true
						}
						return nil
					})
				}
				return nil
			})
		}
		return nil
	})
	return l, err
}

// ---- attribute reading ----

// walk calls fn for each attribute in b (type with the nested/byte-order
// bits masked off). Malformed lengths are errors, never panics.
func walk(b []byte, fn func(typ uint16, v []byte) error) error {
	for len(b) > 0 {
		if len(b) < 4 {
			return fmt.Errorf("attribute header: %d bytes left", len(b))
		}
		n := int(ne.Uint16(b))
		if n < 4 || n > len(b) {
			return fmt.Errorf("attribute length %d with %d bytes left", n, len(b))
		}
		if err := fn(ne.Uint16(b[2:])&nlaTypeMask, b[4:n]); err != nil {
			return err
		}
		n = (n + 3) &^ 3
		if n > len(b) {
			n = len(b)
		}
		b = b[n:]
	}
	return nil
}

func u32(v []byte, what string) (uint32, error) {
	if len(v) != 4 {
		return 0, fmt.Errorf("%s: %d bytes, want 4", what, len(v))
	}
	return ne.Uint32(v), nil
}

func cstring(v []byte) string {
	for i, c := range v {
		if c == 0 {
			return string(v[:i])
		}
	}
	return string(v)
}
