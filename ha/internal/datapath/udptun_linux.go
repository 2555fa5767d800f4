package datapath

// Loading, feeding and attaching the UDP tunnel programs (udptun_bpf.go).
// kernel_udptun.go drives them from the Datapath: newUDPTun and the filter
// at Setup, put/del per UDP-tunnelled binding beside the /32 route
// appendRouteUDPTun builds, counters in Stats.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// kernelOptionUDPTun names what UDP tunnelling needs, for start-up errors.
const kernelOptionUDPTun = "CONFIG_BPF_SYSCALL, CONFIG_LWTUNNEL_BPF (Linux 5.3+ for bpf_lwt_push_encap), CONFIG_NET_SCH_INGRESS and CONFIG_NET_CLS_BPF"

// udpTunPrio and udpTunName name our ingress filter on the uplink, apart
// from the reverse check's on the tunnel device.
const (
	udpTunPrio      = 0x4d5
	udpTunHandle    = 1
	udpTunEncapName = "hagent_utenc"
	udpTunDecapName = "hagent_utdec"
)

// Endpoint is where a UDP-tunnelled mobile node's traffic goes: the NAT's
// public address and port its registration arrived from, and our address
// the tunnel data leaves from (the virtual address: after a failover the
// NAT still recognises the mapping).
type Endpoint struct {
	NAT   netip.AddrPort
	Local netip.Addr
}

// udpTun owns the endpoint map, the counters and both programs. Its
// buffers are fields of a heap object: bpf(2) attrs carry their addresses.
type udpTun struct {
	endpoints, counts int
	encap, decap      int
	ncpu              int
	attr              elemAttr
	key               [4]byte
	val               [utValueLen]byte
	cnt               []byte
}

// newUDPTun creates the maps (capacity endpoints) and loads both programs;
// mss > 0 adds the TCP MSS clamp, macLen being the uplink's link-layer
// header length (negative: unknown, see utStrip).
func newUDPTun(capacity int, mss uint16, macLen int32) (*udpTun, error) {
	if capacity <= 0 {
		capacity = 1
	}
	ncpu, err := possibleCPUs()
	if err != nil {
		return nil, err
	}
	u := &udpTun{endpoints: -1, counts: -1, encap: -1, decap: -1, ncpu: ncpu, cnt: heapBytes(8 * ncpu)}
	if u.endpoints, err = mapCreate(bpfMapTypeHash, 4, utValueLen, uint32(capacity), "hagent_uteps"); err != nil {
		return nil, udpTunErr("creating the endpoint map", err)
	}
	if u.counts, err = mapCreate(bpfMapTypePercpuArray, 4, 8, utSlots, "hagent_utcnt"); err != nil {
		u.close()
		return nil, udpTunErr("creating the counter map", err)
	}
	for _, p := range []struct {
		fd   *int
		typ  uint32
		prog []insn
		name string
	}{
		{&u.encap, bpfProgTypeLWTXmit, utEncapProgram(u.endpoints, u.counts, mss), udpTunEncapName},
		{&u.decap, bpfProgTypeSchedCls, utDecapProgram(u.endpoints, u.counts, mss, macLen), udpTunDecapName},
	} {
		code, err := assemble(p.prog)
		if err == nil {
			*p.fd, err = progLoad(p.typ, code, "MIT", p.name)
		}
		if err != nil {
			u.close()
			return nil, udpTunErr("loading "+p.name, err)
		}
	}
	return u, nil
}

func udpTunErr(what string, err error) error {
	switch {
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("UDP tunnelling: %s: the kernel has no bpf(2): enable %s", what, kernelOptionUDPTun)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("UDP tunnelling: %s: %w: run as root (CAP_BPF and CAP_NET_ADMIN)", what, err)
	}
	return fmt.Errorf("UDP tunnelling: %s: %w (needs %s)", what, err, kernelOptionUDPTun)
}

func (u *udpTun) close() {
	for _, fd := range []*int{&u.decap, &u.encap, &u.counts, &u.endpoints} {
		if *fd >= 0 {
			_ = unix.Close(*fd)
			*fd = -1
		}
	}
}

// endpointValue is the map value: every field in wire order, as the
// programs copy them into headers and compare them with packets.
func endpointValue(v *[utValueLen]byte, e Endpoint) {
	a, l := e.NAT.Addr().As4(), e.Local.As4()
	copy(v[0:4], a[:])
	copy(v[4:8], l[:])
	binary.BigEndian.PutUint16(v[8:], e.NAT.Port())
	v[10], v[11] = 0, 0
}

// put maps home → e (insert or replace: a new NAT mapping moves the
// tunnel). It allocates nothing.
func (u *udpTun) put(home netip.Addr, e Endpoint) error {
	if !home.Is4() || !e.NAT.Addr().Is4() || !e.Local.Is4() {
		return fmt.Errorf("UDP tunnel endpoint for %v: IPv4 only", home)
	}
	u.key = home.As4()
	endpointValue(&u.val, e)
	if err := u.attr.op(bpfMapUpdate, u.endpoints, u.key[:], u.val[:]); err != nil {
		if errors.Is(err, unix.E2BIG) {
			return fmt.Errorf("UDP tunnel endpoint map full: %w", err)
		}
		return fmt.Errorf("UDP tunnel endpoint map: %w", err)
	}
	return nil
}

// del removes home; absent is not an error.
func (u *udpTun) del(home netip.Addr) error {
	u.key = home.As4()
	if err := u.attr.op(bpfMapDelete, u.endpoints, u.key[:], nil); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("UDP tunnel endpoint map: %w", err)
	}
	return nil
}

// counters sums each verdict over the CPUs.
func (u *udpTun) counters() (c [utSlots]uint64, err error) {
	for i := range c {
		binary.NativeEndian.PutUint32(u.key[:], uint32(i))
		if err := u.attr.op(bpfMapLookup, u.counts, u.key[:], u.cnt); err != nil {
			return c, fmt.Errorf("UDP tunnel counters: %w", err)
		}
		for cpu := 0; cpu < u.ncpu; cpu++ {
			c[i] += binary.NativeEndian.Uint64(u.cnt[8*cpu:])
		}
	}
	return c, nil
}

// appendRouteUDPTun appends an RTM_NEWROUTE body: home/32 through oif,
// encapsulated by the LWT xmit program, with headroom for the 32 bytes it
// pushes (so the kernel reserves them up front instead of reallocating)
// and, when mtu > 0, that MTU (RTAX_MTU). The kernel forwards against the
// route's MTU less the headroom: what exceeds mtu-32 is fragmented, or
// with DF refused with ICMP "fragmentation needed" carrying mtu-32, before
// the program adds its 32 bytes.
func appendRouteUDPTun(b []byte, home netip.Addr, oif, metric uint32, proto uint8, prog int, mtu uint32) []byte {
	b = append(b, unix.AF_INET, 32, 0, 0, unix.RT_TABLE_MAIN, proto, unix.RT_SCOPE_LINK, unix.RTN_UNICAST)
	b = ne.AppendUint32(b, 0)
	b = attrIP4(b, unix.RTA_DST, home)
	b = attrU32(b, unix.RTA_OIF, oif)
	b = attrU32(b, unix.RTA_PRIORITY, metric)
	if mtu > 0 {
		var m int
		b, m = nest(b, unix.RTA_METRICS)
		b = attrU32(b, unix.RTAX_MTU, mtu)
		b = end(b, m)
	}
	b = attrU16(b, unix.RTA_ENCAP_TYPE, lwtunnelBPF)
	b, enc := nest(b, unix.RTA_ENCAP)
	b, x := nest(b, lwtBPFXmit)
	b = attrU32(b, lwtBPFProgFD, uint32(prog))
	b = attrString(b, lwtBPFProgName, udpTunEncapName)
	b = end(b, x)
	b = attrU32(b, lwtBPFHeadroom, utOverhead)
	return end(b, enc)
}

// appendFilterUDPTun appends an RTM_NEWTFILTER/DELTFILTER body for the
// decapsulating filter on ingress of the uplink ifindex (prog < 0: no
// options, for delete).
func appendFilterUDPTun(b []byte, ifindex uint32, prog int) []byte {
	info := uint32(udpTunPrio)<<16 | uint32(htons(ethPIP))
	b = appendTcmsg(b, int32(ifindex), udpTunHandle, tcHClsact&0xffff0000|tcHMinIngress, info)
	b = attrString(b, unix.TCA_KIND, "bpf")
	if prog < 0 {
		return b
	}
	b, o := nest(b, unix.TCA_OPTIONS)
	b = attrU32(b, tcaBPFFD, uint32(prog))
	b = attrString(b, tcaBPFName, udpTunDecapName)
	b = attrU32(b, tcaBPFFlags, tcaBPFFlagActDirec)
	return end(b, o)
}
