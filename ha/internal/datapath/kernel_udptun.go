package datapath

// The UDP tunnel (RFC 3519) in the kernel Datapath: the programs of
// udptun_bpf.go, loaded and attached at Setup, and per UDP-tunnelled
// binding a /32 route through the encapsulating LWT program plus an entry
// home → NAT endpoint in its map, kept by the same batch, reconcile and
// withdraw paths as the IP-in-IP and GRE routes.

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// udpState is the kernel's UDP tunnel, nil unless Config.UDPTunnel.
type udpState struct {
	tun      *udpTun
	uplink   uint32 // ifindex of Config.UplinkIfname
	name     string
	attached uint32 // ifindex our decapsulating filter is on, 0: none
	mtu      uint32 // RTAX_MTU of the routes: the tunnel MTU + utOverhead
	// routed holds the homes whose UDP route Apply or Reconcile installed:
	// a re-registration from a new NAT mapping then only updates the map
	// (the route is the same: device, metric, program).
	routed map[[4]byte]struct{}
	rd     revReader // listing the map's keys (Reconcile, Withdraw)
	want   []uint32  // a reconcile's UDP homes (be32), sorted at the end
}

// setupUDP loads the programs once, finds the uplink and attaches the
// decapsulating filter to its ingress (again after a re-Setup: the device
// may be new). Start-up fails naming the missing kernel option rather
// than run without the tunnelling the configuration asked for.
func (k *kernel) setupUDP() error {
	if !k.cfg.UDPTunnel {
		return nil
	}
	name := k.cfg.UplinkIfname
	if name == "" {
		name = k.cfg.HomeIfname
	}
	l, err := k.getLink(name)
	if err != nil {
		return fmt.Errorf("datapath: looking up the UDP tunnel uplink %s: %w", name, err)
	}
	if l.Index == 0 {
		return fmt.Errorf("datapath: the UDP tunnel uplink %s does not exist (check nat.uplink_interface)", name)
	}
	tmtu := k.cfg.TunnelMTU
	if tmtu == 0 {
		tmtu = l.MTU - utOverhead
	}
	if k.udp == nil {
		var mss uint16
		macLen, known := macHeaderLen(l.Type)
		if k.cfg.TCPMSSClamp {
			if !known {
				return fmt.Errorf("datapath: TCP MSS clamp on the UDP tunnel: uplink %s has link type %d, whose header length is unknown: set datapath.tcp_mss_clamp = false", name, l.Type)
			}
			mss = uint16(tmtu - 40)
		}
		if !known {
			macLen = -1 // the decapsulation's partial-checksum fix needs it (utStrip)
		}
		t, err := newUDPTun(k.cfg.Capacity, mss, macLen)
		if err != nil {
			return fmt.Errorf("datapath: %w", err)
		}
		k.udp = &udpState{tun: t, routed: make(map[[4]byte]struct{})}
	}
	u := k.udp
	u.uplink, u.name = l.Index, name
	// Decapsulated packets arrive on the uplink and are forwarded from
	// there: the kernel routes them only if the uplink forwards (like the
	// home interface and the tunnel devices, whatever ip_forward says).
	if _, err := k.exec(unix.RTM_NEWLINK, netlink.Acknowledge, appendLinkConf(nil, l.Index, k.forwardConf())); err != nil {
		return fmt.Errorf("datapath: enabling forwarding on the UDP tunnel uplink %s: %w", name, err)
	}
	// The kernel takes the LWT headroom (utOverhead) off a route's MTU
	// when it forwards (ip_dst_mtu_maybe_forward): RTAX_MTU is the tunnel
	// MTU plus the headroom. Measured: RTAX_MTU 1468 on a 1500 uplink
	// answered a DF packet with "mtu = 1436".
	u.mtu = tmtu + utOverhead
	if u.attached != 0 && u.attached != l.Index {
		_ = k.detachUDP(u.attached) // the old device may be gone already
	}
	u.attached = 0
	_, err = k.exec(unix.RTM_NEWQDISC, netlink.Acknowledge|netlink.Create|netlink.Excl, appendQdiscClsact(nil, l.Index))
	switch {
	case errors.Is(err, unix.EEXIST):
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("datapath: UDP tunnel on %s: the kernel has no clsact qdisc: enable CONFIG_NET_SCH_INGRESS (module sch_ingress), or set datapath.udp_tunnel = false: %w", name, err)
	case err != nil:
		return fmt.Errorf("datapath: UDP tunnel: adding the clsact qdisc to %s: %w", name, err)
	}
	_, err = k.exec(unix.RTM_NEWTFILTER, netlink.Acknowledge|netlink.Create|netlink.Replace, appendFilterUDPTun(nil, l.Index, u.tun.decap))
	switch {
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP):
		return fmt.Errorf("datapath: UDP tunnel on %s: the kernel has no bpf classifier: enable CONFIG_NET_CLS_BPF (module cls_bpf), or set datapath.udp_tunnel = false: %w", name, err)
	case err != nil:
		return fmt.Errorf("datapath: UDP tunnel: attaching the decapsulating filter to %s: %w", name, err)
	}
	u.attached = l.Index
	return nil
}

// detachUDP removes our decapsulating filter (absent: fine); the clsact
// qdisc stays, it may carry other filters.
func (k *kernel) detachUDP(ifindex uint32) error {
	_, err := k.exec(unix.RTM_DELTFILTER, netlink.Acknowledge, appendFilterUDPTun(nil, ifindex, -1))
	if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("datapath: removing the UDP tunnel filter: %w", err)
	}
	return nil
}

// closeUDP detaches the filter (without it tunnel data reaches the
// agent's socket, which refuses it, instead of a program whose map no one
// keeps) and releases the programs and maps.
func (k *kernel) closeUDP() error {
	if k.udp == nil {
		return nil
	}
	var err error
	if k.udp.attached != 0 {
		err = k.detachUDP(k.udp.attached)
		k.udp.attached = 0
	}
	k.udp.tun.close()
	k.udp = nil
	return err
}

// udpRouted reports whether home's UDP route is in (Apply then only moves
// the endpoint).
func (k *kernel) udpRouted(h [4]byte) bool {
	if k.udp == nil {
		return false
	}
	_, ok := k.udp.routed[h]
	return ok
}

// endpointOf is b's NAT endpoint, checked: IPv4 NAT address, a port, and
// a local address (Src, else Config.Local) the tunnel data can leave from.
func (k *kernel) endpointOf(b *Binding) (Endpoint, error) {
	local := b.Src
	if !local.IsValid() {
		local = k.cfg.Local
	}
	switch {
	case !b.NAT.Addr().Is4() || b.NAT.Port() == 0:
		return Endpoint{}, fmt.Errorf("datapath: binding %v: UDP tunnel: NAT endpoint %v is not an IPv4 address and port", b.Home, b.NAT)
	case !local.Is4() || local.IsUnspecified():
		return Endpoint{}, fmt.Errorf("datapath: binding %v: UDP tunnel: no local address to send from: set the binding's Src or datapath.local (the virtual address)", b.Home)
	}
	return Endpoint{NAT: b.NAT, Local: local}, nil
}

// appendUDPRoute is the request body of home's UDP-tunnelled route.
func (k *kernel) appendUDPRoute(b []byte, home netip.Addr, metric uint32) []byte {
	return appendRouteUDPTun(b, home, k.udp.uplink, metric, k.cfg.Protocol, k.udp.tun.encap, k.udp.mtu)
}

// followUDP makes the endpoint map follow an Apply: a UDP binding whose
// route is in (or was already) gets its endpoint, which moves it when the
// NAT mapping changed; a binding that left UDP tunnelling, or went, loses
// it. A failed put fails the binding, so that settle undoes a new route.
func (k *kernel) followUDP(adds []Binding, dels []netip.Addr, errs *batchErrs) {
	u := k.udp
	for i := range adds {
		if errs.failed(i) {
			continue
		}
		b := &adds[i]
		h := b.Home.As4()
		if b.Encap != UDP {
			if _, ok := u.routed[h]; ok {
				delete(u.routed, h)
				if err := u.tun.del(b.Home); err != nil {
					k.stats.Errors++
					errs.fail(i, fmt.Errorf("datapath: binding %v: %w", b.Home, err))
				}
			}
			continue
		}
		ep, _ := k.endpointOf(b) // checked by plan
		if err := u.tun.put(b.Home, ep); err != nil {
			k.stats.Errors++
			errs.fail(i, fmt.Errorf("datapath: binding %v → %v: %w", b.Home, b.NAT, err))
			continue
		}
		u.routed[h] = struct{}{}
	}
	for j, h := range dels {
		if !h.Is4() {
			continue
		}
		delete(u.routed, h.As4())
		if err := u.tun.del(h); err != nil {
			k.stats.Errors++
			errs.fail(len(adds)+j, fmt.Errorf("datapath: remove %v: %w", h, err))
		}
	}
}

// udpWanted is convergeSome's part for the UDP tunnel: the endpoint of a
// wanted UDP binding is (re)written (one bpf(2) call; the map holds no
// more than what the route needs), and the home noted so that
// convergeFinish can drop endpoints no binding wants.
func (k *kernel) udpWanted(s *Scan, b *Binding) {
	if k.udp == nil {
		return
	}
	h := b.Home.As4()
	if b.Encap != UDP {
		delete(k.udp.routed, h)
		return
	}
	k.udp.want = append(k.udp.want, be32(h))
	ep, err := k.endpointOf(b)
	if err == nil {
		err = k.udp.tun.put(b.Home, ep)
	}
	if err != nil {
		s.bad = append(s.bad, err)
		return
	}
	k.udp.routed[h] = struct{}{}
}

// udpFinish removes the endpoints of homes no wanted UDP binding has
// (spares those Apply changed during a periodic scan) and re-attaches the
// filter if it went.
func (k *kernel) udpFinish(s *Scan) {
	u := k.udp
	if u == nil {
		return
	}
	defer func() { u.want = u.want[:0] }()
	if u.attached == 0 {
		if err := k.setupUDP(); err != nil {
			s.bad = append(s.bad, err)
		}
	}
	keys, err := u.rd.list(u.tun.endpoints)
	if err != nil {
		s.bad = append(s.bad, fmt.Errorf("UDP tunnel endpoint map: %w", err))
		return
	}
	slices.Sort(u.want)
	for _, h := range keys {
		if _, ok := slices.BinarySearch(u.want, be32(h)); ok || k.skip(s, h) {
			continue
		}
		delete(u.routed, h)
		if err := u.tun.del(netip.AddrFrom4(h)); err != nil {
			s.bad = append(s.bad, err)
			continue
		}
		s.removed++
	}
	u.rd.trim()
}

// udpForget drops a route from routed (Reconcile removed or failed it).
func (k *kernel) udpForget(h [4]byte) {
	if k.udp != nil {
		delete(k.udp.routed, h)
	}
}

// withdrawUDP empties the endpoint map (the routes went with the others).
// The filter stays: it drops tunnel data for homes it has no endpoint of
// (counted as unknown), as the standby's agent would refuse it.
func (k *kernel) withdrawUDP() error {
	u := k.udp
	if u == nil {
		return nil
	}
	clear(u.routed)
	keys, err := u.rd.list(u.tun.endpoints)
	if err != nil {
		return fmt.Errorf("UDP tunnel endpoint map: %w", err)
	}
	for _, h := range keys {
		if err := u.tun.del(netip.AddrFrom4(h)); err != nil {
			return err
		}
	}
	u.rd.trim()
	return nil
}

// udpStats fills the UDP tunnel counters into s.
func (k *kernel) udpStats(s *Stats) {
	if k.udp == nil {
		return
	}
	c, _ := k.udp.tun.counters() // our map: fails only when the kernel is out of memory
	s.UDPEncapsulated, s.UDPNoEndpoint, s.UDPEncapFailed = c[utEncapSent], c[utEncapNoBinding], c[utEncapFailed]
	s.UDPDecapsulated, s.UDPKeepalives = c[utDecapPassed], c[utDecapKeepalive]
	s.UDPWrongAddr, s.UDPWrongPort, s.UDPUnknownHome = c[utDecapWrongAddr], c[utDecapWrongPort], c[utDecapUnknown]
	s.UDPNextHeader, s.UDPDecapFailed = c[utDecapNextHdr], c[utDecapFailed]
	s.UDPMSSClamped = c[utMSSClamped]
}
