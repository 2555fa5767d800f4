package datapath

// Unit tests of every request the datapath sends, through
// github.com/mdlayher/netlink/nltest with a fake kernel that answers the way
// rtnetlink does: one datagram per reply, errors carrying the request's
// sequence number, an ack only where NLM_F_ACK was asked, dumps multipart.

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nltest"
	"golang.org/x/sys/unix"
)

// handled: the answer func queued the reply itself.
const handled = unix.Errno(0xffff)

type fakeKernel struct {
	reqs  []netlink.Message
	queue [][]netlink.Message
	// answer decides a request's fate: an errno, or dump entries.
	answer func(m netlink.Message) (errno unix.Errno, dump [][]byte)
	// mute drops every reply (a broken socket).
	mute bool
}

func (f *fakeKernel) fn(req []netlink.Message) ([]netlink.Message, error) {
	if req == nil { // Receive with nothing buffered: the next datagram
		if len(f.queue) == 0 {
			return nil, errors.New("fake kernel: no reply pending (the test would block)")
		}
		d := f.queue[0]
		f.queue = f.queue[1:]
		return d, nil
	}
	for _, m := range req {
		m.Data = append([]byte(nil), m.Data...)
		f.reqs = append(f.reqs, m)
		if f.mute {
			continue
		}
		var errno unix.Errno
		var dump [][]byte
		if f.answer != nil {
			errno, dump = f.answer(m)
		}
		h := netlink.Header{Sequence: m.Header.Sequence, PID: m.Header.PID}
		switch {
		case errno == handled:
		case m.Header.Flags&netlink.Dump == netlink.Dump && errno == 0:
			var d []netlink.Message
			for _, body := range dump {
				d = append(d, netlink.Message{Header: netlink.Header{Type: dumpType(m.Header.Type), Flags: netlink.Multi, Sequence: h.Sequence, PID: h.PID}, Data: body})
			}
			d = append(d, netlink.Message{Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi, Sequence: h.Sequence, PID: h.PID}, Data: make([]byte, 4)})
			f.queue = append(f.queue, d)
		case errno != 0 || m.Header.Flags&netlink.Acknowledge != 0:
			h.Type = netlink.Error
			data := ne.AppendUint32(nil, uint32(-int32(errno)))
			hb, _ := m.MarshalBinary()
			data = append(data, hb[:16]...)
			f.queue = append(f.queue, []netlink.Message{{Header: h, Data: data}})
		}
	}
	if len(f.queue) == 0 {
		return nil, nil
	}
	d := f.queue[0]
	f.queue = f.queue[1:]
	return d, nil
}

// dumpType maps a GET dump to the NEW type its entries carry.
func dumpType(t netlink.HeaderType) netlink.HeaderType {
	switch t {
	case unix.RTM_GETROUTE:
		return unix.RTM_NEWROUTE
	case unix.RTM_GETNEIGH:
		return unix.RTM_NEWNEIGH
	case unix.RTM_GETLINK:
		return unix.RTM_NEWLINK
	}
	return t
}

func newFake(t *testing.T, cfg Config) (*kernel, *fakeKernel) {
	f := &fakeKernel{}
	c := nltest.Dial(f.fn)
	k := newKernel(cfg, c)
	t.Cleanup(func() { k.Close() })
	return k, f
}

// ready is a fake that skips Setup: home ifindex 2, ipip device 5.
func ready(t *testing.T, cfg Config) (*kernel, *fakeKernel) {
	if cfg.HomeIfname == "" {
		cfg.HomeIfname = "eth0"
	}
	k, f := newFake(t, cfg)
	k.home, k.tun[IPIP] = 2, 5
	return k, f
}

func b(home, careOf string) Binding {
	return Binding{Home: netip.MustParseAddr(home), CareOf: netip.MustParseAddr(careOf)}
}

func TestApplyRequests(t *testing.T) {
	k, f := ready(t, Config{ProxyARP: true, Local: netip.MustParseAddr("10.0.0.1")})
	adds := []Binding{b("10.1.0.1", "192.0.2.1"), b("10.1.0.2", "192.0.2.2")}
	if errs := k.Apply(adds, []netip.Addr{netip.MustParseAddr("10.1.0.9")}); errs != nil {
		t.Fatal(errs)
	}
	want := []struct {
		typ   netlink.HeaderType
		flags netlink.HeaderFlags
	}{
		{unix.RTM_NEWROUTE, netlink.Request | netlink.Create | netlink.Replace},
		{unix.RTM_NEWNEIGH, netlink.Request | netlink.Create | netlink.Replace},
		{unix.RTM_NEWROUTE, netlink.Request | netlink.Create | netlink.Replace},
		{unix.RTM_NEWNEIGH, netlink.Request | netlink.Create | netlink.Replace},
		{unix.RTM_DELROUTE, netlink.Request},
		{unix.RTM_DELNEIGH, netlink.Request | netlink.Acknowledge}, // the window's barrier
	}
	if len(f.reqs) != len(want) {
		t.Fatalf("%d requests, want %d", len(f.reqs), len(want))
	}
	for i, w := range want {
		if m := f.reqs[i]; m.Header.Type != w.typ || m.Header.Flags != w.flags {
			t.Errorf("request %d: type %d flags %s, want %d %s", i, m.Header.Type, m.Header.Flags, w.typ, w.flags)
		}
		if i > 0 && f.reqs[i].Header.Sequence != f.reqs[i-1].Header.Sequence+1 {
			t.Errorf("request %d: sequence not contiguous", i)
		}
	}
	r0, _ := parseRoute(f.reqs[0].Data)
	r1, _ := parseRoute(f.reqs[2].Data)
	if r0.Oif != 5 || r0.EncDst != adds[0].CareOf || r0.EncSrc != k.cfg.Local || r0.TTL != 64 || r0.Protocol != 77 {
		t.Errorf("route 0: %+v", r0)
	}
	if r0.Metric == r1.Metric {
		t.Errorf("two homes share metric %d: the kernel's fib_info hash would chain them", r0.Metric)
	}
	n, _ := parseNeigh(f.reqs[1].Data)
	if n.Ifindex != 2 || n.Dst != adds[0].Home || n.Protocol != 77 {
		t.Errorf("proxy: %+v", n)
	}
	// A replace (new care-of) repeats the home's metric.
	f.reqs = nil
	moved := adds[1]
	moved.CareOf = netip.MustParseAddr("198.51.100.1")
	moved.Src = netip.MustParseAddr("10.0.0.2")
	if errs := k.Apply([]Binding{moved}, nil); errs != nil {
		t.Fatal(errs)
	}
	if r, _ := parseRoute(f.reqs[0].Data); r.Metric != r1.Metric || r.EncSrc != moved.Src {
		t.Errorf("replace: metric %d (want %d), src %v", r.Metric, r1.Metric, r.EncSrc)
	}
	if k.Stats().Routes != 2 {
		t.Errorf("routes held %d", k.Stats().Routes)
	}
}

func TestApplyErrorsMapped(t *testing.T) {
	k, f := ready(t, Config{ProxyARP: true})
	f.answer = func(m netlink.Message) (unix.Errno, [][]byte) {
		switch m.Header.Type {
		case unix.RTM_NEWROUTE:
			if r, _ := parseRoute(m.Data); r.Dst == netip.MustParseAddr("10.1.0.2") {
				return unix.ENETUNREACH, nil
			}
		case unix.RTM_DELROUTE:
			return unix.ESRCH, nil // absent: fine
		case unix.RTM_DELNEIGH:
			if n, _ := parseNeigh(m.Data); n.Dst == netip.MustParseAddr("10.1.0.8") {
				return unix.EPERM, nil
			}
			return unix.ENOENT, nil
		}
		return 0, nil
	}
	adds := []Binding{b("10.1.0.1", "192.0.2.1"), b("10.1.0.2", "192.0.2.2"), b("10.1.0.3", "192.0.2.3"),
		{Home: netip.MustParseAddr("10.1.0.4"), CareOf: netip.MustParseAddr("192.0.2.4"), Encap: GRE}}
	dels := []netip.Addr{netip.MustParseAddr("10.1.0.9"), netip.MustParseAddr("10.1.0.8")}
	errs := k.Apply(adds, dels)
	if len(errs) != 6 {
		t.Fatalf("errs %v", errs)
	}
	for i, e := range errs {
		bad := i == 1 || i == 3 || i == 5
		if (e != nil) != bad {
			t.Errorf("errs[%d] = %v", i, e)
		}
	}
	if !errors.Is(errs[1], unix.ENETUNREACH) || !strings.Contains(errs[1].Error(), "10.1.0.2 via care-of 192.0.2.2") {
		t.Errorf("route error: %v", errs[1])
	}
	if !errors.Is(errs[3], ErrUnsupported) {
		t.Errorf("GRE without a device: %v", errs[3])
	}
	if !errors.Is(errs[5], unix.EPERM) || !strings.Contains(errs[5].Error(), "proxy ARP entry for 10.1.0.8") {
		t.Errorf("delete error: %v", errs[5])
	}
	// The failed new binding's half (its proxy entry) was undone, and its
	// metric released; the good ones hold theirs.
	last := f.reqs[len(f.reqs)-2:]
	if last[0].Header.Type != unix.RTM_DELROUTE || last[1].Header.Type != unix.RTM_DELNEIGH {
		t.Errorf("no undo of the failed binding: %v %v", last[0].Header.Type, last[1].Header.Type)
	}
	if n, _ := parseNeigh(last[1].Data); n.Dst != netip.MustParseAddr("10.1.0.2") {
		t.Errorf("undo for %v", n.Dst)
	}
	if _, ok := k.metrics[[4]byte{10, 1, 0, 2}]; ok || len(k.metrics) != 2 {
		t.Errorf("metrics %v", k.metrics)
	}
	if k.Stats().Errors == 0 {
		t.Error("error counter did not move")
	}
}

func TestApplyWindows(t *testing.T) {
	k, f := ready(t, Config{ProxyARP: true})
	var adds []Binding
	for i := range 300 {
		adds = append(adds, bindingN(i))
	}
	if errs := k.Apply(adds, nil); errs != nil {
		t.Fatal(firstErr(errs))
	}
	acks := 0
	for i, m := range f.reqs {
		if m.Header.Flags&netlink.Acknowledge != 0 {
			acks++
			if (i+1)%window != 0 && i != len(f.reqs)-1 {
				t.Errorf("ack asked on request %d, not a window's last", i)
			}
		}
	}
	if len(f.reqs) != 600 || acks != 5 || k.Stats().Batches != 5 {
		t.Errorf("%d requests, %d acks asked, %d batches; want 600, 5, 5", len(f.reqs), acks, k.Stats().Batches)
	}
	seen := map[uint32]bool{}
	for m := range k.metrics {
		if seen[k.metrics[m]] {
			t.Fatalf("metric %d twice", k.metrics[m])
		}
		seen[k.metrics[m]] = true
	}
}

func TestApplyNoAck(t *testing.T) {
	k, f := ready(t, Config{})
	f.mute = true
	errs := k.Apply([]Binding{b("10.1.0.1", "192.0.2.1"), b("10.1.0.2", "192.0.2.2")}, nil)
	if len(errs) != 2 || errs[0] == nil || errs[1] == nil || !strings.Contains(errs[0].Error(), "no acknowledgement") {
		t.Fatalf("errs %v", errs)
	}
	if len(k.metrics) != 0 {
		t.Errorf("metrics kept for unacknowledged bindings: %v", k.metrics)
	}
}

func TestApplyBeforeSetup(t *testing.T) {
	k, _ := newFake(t, Config{})
	if errs := k.Apply([]Binding{b("10.1.0.1", "192.0.2.1")}, nil); len(errs) != 1 || !strings.Contains(errs[0].Error(), "Setup") {
		t.Fatalf("errs %v", errs)
	}
}

func linkBody(index uint32, name, kind string, md bool) []byte {
	b := appendIfinfo(nil, index, unix.IFF_UP, 0)
	b = attrString(b, unix.IFLA_IFNAME, name)
	if kind != "" {
		b, li := nest(b, unix.IFLA_LINKINFO)
		b = attrString(b, unix.IFLA_INFO_KIND, kind)
		if md {
			b, d := nest(b, unix.IFLA_INFO_DATA)
			b = attr(b, iflaIPTunCollectMD, nil)
			b = end(b, d)
			return end(b, li)
		}
		return end(b, li)
	}
	return b
}

// linkKernel answers RTM_GETLINK from a table of devices, and refuses to
// create a device when create is an errno.
func linkKernel(f *fakeKernel, devs map[string][]byte, create unix.Errno) {
	f.answer = func(m netlink.Message) (unix.Errno, [][]byte) {
		switch m.Header.Type {
		case unix.RTM_GETLINK:
			l, _ := parseLink(m.Data)
			if d, ok := devs[l.Name]; ok {
				return 0, [][]byte{d}
			}
			return unix.ENODEV, nil
		case unix.RTM_NEWLINK:
			l, _ := parseLink(m.Data)
			if l.Index == 0 { // create
				if create != 0 {
					return create, nil
				}
				devs[l.Name] = linkBody(5, l.Name, l.Kind, l.CollectMD)
			}
		}
		return 0, nil
	}
}

// getLink replies are not dumps in the kernel; the fake sends them as a
// one-entry "dump" (multipart), which Execute reads the same way.
func TestSetup(t *testing.T) {
	k, f := newFake(t, Config{HomeIfname: "eth0", ProxyARP: true, ProxyByRoute: true})
	devs := map[string][]byte{"eth0": linkBody(2, "eth0", "", false)}
	linkKernel(f, devs, 0)
	withDump(f)
	if err := k.Setup(); err != nil {
		t.Fatal(err)
	}
	if k.home != 2 || k.tun[IPIP] != 5 || !k.Supports(IPIP) || k.Supports(GRE) {
		t.Fatalf("home %d tun %v", k.home, k.tun)
	}
	var kinds []string
	for _, m := range f.reqs {
		switch m.Header.Type {
		case unix.RTM_GETLINK:
			l, _ := parseLink(m.Data)
			kinds = append(kinds, "get "+l.Name)
		case unix.RTM_NEWLINK:
			l, _ := parseLink(m.Data)
			if l.Index == 0 {
				kinds = append(kinds, "create "+l.Name+" "+l.Kind)
				if m.Header.Flags&(netlink.Create|netlink.Excl) != netlink.Create|netlink.Excl {
					t.Errorf("create without CREATE|EXCL: %s", m.Header.Flags)
				}
			} else {
				kinds = append(kinds, "conf "+string(rune('0'+l.Index)))
			}
		}
	}
	want := "get eth0,conf 2,conf 2,get mip0,create mip0 ipip,get mip0,conf 5"
	if got := strings.Join(kinds, ","); got != want {
		t.Errorf("requests\n got %s\nwant %s", got, want)
	}
}

// withDump makes RTM_GETLINK (sent without NLM_F_DUMP) come back as the
// kernel sends it: a single RTM_NEWLINK.
func withDump(f *fakeKernel) {
	inner := f.answer
	f.answer = func(m netlink.Message) (unix.Errno, [][]byte) {
		e, d := inner(m)
		if m.Header.Type == unix.RTM_GETLINK && e == 0 {
			f.queue = append(f.queue, []netlink.Message{{Header: netlink.Header{Type: unix.RTM_NEWLINK, Sequence: m.Header.Sequence, PID: m.Header.PID}, Data: d[0]}})
			return handled, nil
		}
		return e, d
	}
}

func TestSetupErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		devs   map[string][]byte
		create unix.Errno
		want   string
	}{
		{"no home", map[string][]byte{}, 0, "home interface eth0 does not exist"},
		{"no ipip", map[string][]byte{"eth0": linkBody(2, "eth0", "", false)}, unix.EOPNOTSUPP, "CONFIG_NET_IPIP"},
		{"second collect_md", map[string][]byte{"eth0": linkBody(2, "eth0", "", false)}, unix.EEXIST, "only one is allowed"},
		{"wrong kind", map[string][]byte{"eth0": linkBody(2, "eth0", "", false), "mip0": linkBody(5, "mip0", "veth", false)}, 0, `not an ipip device in external mode (kind "veth"`},
		{"not external", map[string][]byte{"eth0": linkBody(2, "eth0", "", false), "mip0": linkBody(5, "mip0", "ipip", false)}, 0, "external false"},
	} {
		t.Run(c.name, func(t *testing.T) {
			k, f := newFake(t, Config{HomeIfname: "eth0"})
			linkKernel(f, c.devs, c.create)
			withDump(f)
			if err := k.Setup(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
		})
	}
	// GRE missing is not fatal: Supports(GRE) says so.
	k, f := newFake(t, Config{HomeIfname: "eth0", GRETunnelName: "mip0g"})
	devs := map[string][]byte{"eth0": linkBody(2, "eth0", "", false), "mip0": linkBody(5, "mip0", "ipip", true)}
	linkKernel(f, devs, unix.EOPNOTSUPP)
	withDump(f)
	if err := k.Setup(); err != nil || !k.Supports(IPIP) || k.Supports(GRE) {
		t.Fatalf("err %v, tun %v", err, k.tun)
	}
}

func TestVIP(t *testing.T) {
	k, f := ready(t, Config{})
	vip := netip.MustParsePrefix("10.0.0.100/24")
	f.answer = func(m netlink.Message) (unix.Errno, [][]byte) {
		if m.Header.Type == unix.RTM_NEWADDR {
			return unix.EEXIST, nil
		}
		return unix.EADDRNOTAVAIL, nil
	}
	if err := k.AddVIP(vip); err != nil {
		t.Fatal(err)
	}
	if err := k.DelVIP(vip); err != nil {
		t.Fatal(err)
	}
	if f.reqs[0].Header.Flags != netlink.Request|netlink.Acknowledge|netlink.Create|netlink.Replace {
		t.Errorf("add flags %s", f.reqs[0].Header.Flags)
	}
	f.answer = func(netlink.Message) (unix.Errno, [][]byte) { return unix.EPERM, nil }
	if err := k.AddVIP(vip); !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "10.0.0.100/24 to eth0") {
		t.Fatalf("err %v", err)
	}
}

func TestReconcile(t *testing.T) {
	k, f := ready(t, Config{ProxyARP: true, Local: netip.MustParseAddr("10.0.0.1")})
	keep := b("10.1.0.1", "192.0.2.1")
	moved := b("10.1.0.2", "192.0.2.22")
	missing := b("10.1.0.3", "192.0.2.3")
	rt := func(home, careOf string, metric uint32, proto uint8) []byte {
		return attrU32(appendRouteNew(nil, &route{Dst: netip.MustParseAddr(home), Oif: 5, Metric: metric, Protocol: proto,
			EncDst: netip.MustParseAddr(careOf), EncSrc: netip.MustParseAddr("10.0.0.1"), TTL: 64}), unix.RTA_TABLE, unix.RT_TABLE_MAIN)
	}
	routes := [][]byte{
		rt("10.1.0.1", "192.0.2.1", 3000, 77),  // as wanted: kept, metric adopted
		rt("10.1.0.2", "192.0.2.2", 3001, 77),  // care-of changed: replaced with metric 3001
		rt("10.1.0.2", "192.0.2.2", 3009, 77),  // duplicate: removed
		rt("10.1.0.7", "192.0.2.7", 3002, 77),  // stale: removed
		rt("10.1.0.8", "192.0.2.8", 3003, 186), // another daemon's: untouched
	}
	proxies := [][]byte{
		appendNeigh(nil, 2, netip.MustParseAddr("10.1.0.1"), 77),
		appendNeigh(nil, 2, netip.MustParseAddr("10.1.0.7"), 77), // stale
		appendNeigh(nil, 2, netip.MustParseAddr("10.1.0.5"), 0),  // operator's
		appendNeigh(nil, 3, netip.MustParseAddr("10.1.0.6"), 77), // other interface
	}
	f.answer = func(m netlink.Message) (unix.Errno, [][]byte) {
		switch m.Header.Type {
		case unix.RTM_GETROUTE:
			return 0, routes
		case unix.RTM_GETNEIGH:
			return 0, proxies
		}
		return 0, nil
	}
	added, removed, err := k.Reconcile(slices.Values([]Binding{keep, moved, missing}))
	if err != nil {
		t.Fatal(err)
	}
	if added != 4 || removed != 3 { // replace 2, add 3 + proxies 2 and 3; del dup, stale route, stale proxy
		t.Errorf("added %d removed %d, want 4 and 3", added, removed)
	}
	var got []string
	for _, m := range f.reqs[2:] {
		switch m.Header.Type {
		case unix.RTM_NEWROUTE:
			r, _ := parseRoute(m.Data)
			got = append(got, "route "+r.Dst.String()+" "+r.EncDst.String()+" m"+itoa(r.Metric))
		case unix.RTM_DELROUTE:
			r, _ := parseRoute(m.Data)
			got = append(got, "del "+r.Dst.String()+" m"+itoa(r.Metric))
		case unix.RTM_NEWNEIGH:
			n, _ := parseNeigh(m.Data)
			got = append(got, "proxy "+n.Dst.String())
		case unix.RTM_DELNEIGH:
			n, _ := parseNeigh(m.Data)
			got = append(got, "unproxy "+n.Dst.String())
		}
	}
	want := map[string]bool{"route 10.1.0.2 192.0.2.22 m3001": true, "del 10.1.0.2 m3009": true, "del 10.1.0.7 m3002": true,
		"proxy 10.1.0.2": true, "proxy 10.1.0.3": true, "unproxy 10.1.0.7": true}
	for _, g := range got {
		if strings.HasPrefix(g, "route 10.1.0.3 192.0.2.3 m") {
			continue
		}
		if !want[g] {
			t.Errorf("unexpected request %q", g)
		}
		delete(want, g)
	}
	if len(want) != 0 {
		t.Errorf("missing requests %v (got %v)", want, got)
	}
	if m := k.metrics[[4]byte{10, 1, 0, 1}]; m != 3000 {
		t.Errorf("adopted metric %d, want 3000", m)
	}
	if m := k.metrics[[4]byte{10, 1, 0, 3}]; m == 3000 || m == 3001 {
		t.Errorf("new metric %d collides with adopted ones", m)
	}
}

func TestWithdraw(t *testing.T) {
	k, f := ready(t, Config{ProxyARP: true})
	if errs := k.Apply([]Binding{b("10.1.0.1", "192.0.2.1")}, nil); errs != nil {
		t.Fatal(errs)
	}
	if err := k.AddVIP(netip.MustParsePrefix("10.0.0.100/24")); err != nil {
		t.Fatal(err)
	}
	f.reqs = nil
	f.answer = func(m netlink.Message) (unix.Errno, [][]byte) {
		switch m.Header.Type {
		case unix.RTM_GETROUTE:
			return 0, [][]byte{appendRouteNew(nil, &route{Dst: netip.MustParseAddr("10.1.0.1"), Oif: 5, Metric: 1024, Protocol: 77, EncDst: netip.MustParseAddr("192.0.2.1")})}
		case unix.RTM_GETNEIGH:
			return 0, [][]byte{appendNeigh(nil, 2, netip.MustParseAddr("10.1.0.1"), 77)}
		}
		return 0, nil
	}
	if err := k.Withdraw(); err != nil {
		t.Fatal(err)
	}
	var types []netlink.HeaderType
	for _, m := range f.reqs {
		types = append(types, m.Header.Type)
	}
	// The second route dump is the mobile network routes' (prefixes.go):
	// the fake answers it with the same /32 of metric 1024, which is not in
	// the prefix range, so nothing more is deleted.
	want := []netlink.HeaderType{unix.RTM_GETROUTE, unix.RTM_GETNEIGH, unix.RTM_DELROUTE, unix.RTM_DELNEIGH,
		unix.RTM_GETROUTE, unix.RTM_DELADDR}
	if len(types) != len(want) {
		t.Fatalf("requests %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("requests %v, want %v", types, want)
		}
	}
	if len(k.metrics) != 0 || len(k.vips) != 0 {
		t.Errorf("state after withdraw: %v %v", k.metrics, k.vips)
	}
}

func TestDumpInterruptedRetried(t *testing.T) {
	k, f := ready(t, Config{})
	n := 0
	f.answer = func(m netlink.Message) (unix.Errno, [][]byte) {
		if m.Header.Type == unix.RTM_GETROUTE {
			n++
			flags := netlink.Multi
			if n == 1 {
				flags |= netlink.DumpInterrupted
			}
			f.queue = append(f.queue, []netlink.Message{
				{Header: netlink.Header{Type: unix.RTM_NEWROUTE, Flags: flags, Sequence: m.Header.Sequence, PID: m.Header.PID}, Data: appendRouteNew(nil, &testRoute)},
				{Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi, Sequence: m.Header.Sequence, PID: m.Header.PID}, Data: make([]byte, 4)},
			})
			return handled, nil
		}
		return 0, nil
	}
	err := k.scan()
	if err != nil || n != 2 || len(k.kr) != 1 {
		t.Fatalf("routes %v err %v dumps %d", k.kr, err, n)
	}
}

func itoa(v uint32) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}
