package attack

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Options are one run's parameters.
type Options struct {
	Target    netip.Addr // the agent (unicast; see CheckTarget)
	Port      uint16     // registration port, default 434
	GroupPort uint16     // group protocol port, default 4343
	Modes     Modes
	Duration  time.Duration
	Rate      int // datagrams per second over all modes (round robin)
	Seed      uint64
	Iface     string // VRRP: interface to multicast on; default: the one on target's subnet
	Gen       Config
}

// ModeReport is what one mode sent.
type ModeReport struct {
	Sent       uint64            `json:"sent"`
	Bytes      uint64            `json:"bytes"`
	SendErrors uint64            `json:"send_errors"`
	Kinds      map[string]uint64 `json:"kinds"`
	// Replies received (registration modes): total and per reply code.
	Replies    uint64            `json:"replies,omitempty"`
	ReplyCodes map[string]uint64 `json:"reply_codes,omitempty"`
}

// Report is a run's account of what it sent, per mode.
type Report struct {
	Target   string                 `json:"target"`
	Seed     uint64                 `json:"seed"`
	Rate     int                    `json:"rate"`
	Elapsed  string                 `json:"elapsed"`
	NetNS    string                 `json:"netns"`
	Modes    map[string]*ModeReport `json:"modes"`
	TotalOut uint64                 `json:"total_sent"`
}

// replyCounter reads replies on a registration socket until closed.
type replyCounter struct {
	codes [256]atomic.Uint64
	total atomic.Uint64
}

func (rc *replyCounter) run(c *net.UDPConn, wg *sync.WaitGroup) {
	defer wg.Done()
	buf := make([]byte, 4096)
	for {
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ECONNREFUSED and the like: keep reading
		}
		rc.total.Add(1)
		if n >= 2 {
			rc.codes[buf[1]].Add(1)
		}
	}
}

func (rc *replyCounter) report(m *ModeReport) {
	m.Replies = rc.total.Load()
	m.ReplyCodes = map[string]uint64{}
	for i := range rc.codes {
		if v := rc.codes[i].Load(); v != 0 {
			m.ReplyCodes[strconv.Itoa(i)] = v
		}
	}
}

func setTTL(c *net.UDPConn, ttl int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, ttl) }); err != nil {
		return err
	}
	return serr
}

// ifaceFor returns the interface and its IPv4 address on target's subnet.
func ifaceFor(name string, target netip.Addr) (*net.Interface, netip.Addr, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, netip.Addr{}, err
	}
	for i := range ifs {
		ifi := &ifs[i]
		if (name != "" && ifi.Name != name) || ifi.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifi.Addrs()
		for _, a := range addrs {
			p, err := netip.ParsePrefix(a.String())
			if err != nil || !p.Addr().Is4() {
				continue
			}
			if name != "" || p.Masked().Contains(target) {
				return ifi, p.Addr(), nil
			}
		}
	}
	if name != "" {
		return nil, netip.Addr{}, fmt.Errorf("hostile: vrrp: interface %q not found or without IPv4 address in this namespace (`ip -4 addr`)", name)
	}
	return nil, netip.Addr{}, fmt.Errorf("hostile: vrrp: no interface on the subnet of %v in this namespace: pass -iface", target)
}

// vrrpSender multicasts VRRP payloads with our own IP header (IP_HDRINCL),
// so that the TTL is any value.
type vrrpSender struct {
	fd       int
	src, dst netip.Addr
	pkt      []byte
}

func newVRRPSender(iface string, target netip.Addr) (*vrrpSender, error) {
	ifi, src, err := ifaceFor(iface, target)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, vrrpProto)
	if err != nil {
		return nil, fmt.Errorf("hostile: vrrp: raw socket for protocol 112: %w (needs root / CAP_NET_RAW)", err)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_HDRINCL, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("hostile: vrrp: IP_HDRINCL: %w", err)
	}
	if err := unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Address: src.As4(), Ifindex: int32(ifi.Index)}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("hostile: vrrp: IP_MULTICAST_IF %s: %w", ifi.Name, err)
	}
	return &vrrpSender{fd: fd, src: src, dst: netip.AddrFrom4([4]byte{224, 0, 0, 18})}, nil
}

func (v *vrrpSender) send(payload []byte, ttl uint8) error {
	p := v.pkt[:0]
	p = append(p, 0x45, 0xc0)
	p = binary.BigEndian.AppendUint16(p, uint16(20+len(payload)))
	p = append(p, 0, 0, 0, 0, ttl, vrrpProto, 0, 0)
	s, d := v.src.As4(), v.dst.As4()
	p = append(p, s[:]...)
	p = append(p, d[:]...)
	p = append(p, payload...)
	v.pkt = p
	return unix.Sendto(v.fd, p, 0, &unix.SockaddrInet4{Addr: d})
}

// Run sends hostile traffic as opts say and reports what went out. It
// refuses (before opening any socket) a target that CheckTarget refuses.
func Run(ctx context.Context, opts Options) (*Report, error) {
	inNS, why := NamespaceCheck()
	if err := CheckTarget(opts.Target, opts.Modes, inNS, why); err != nil {
		return nil, err
	}
	if opts.Rate <= 0 || opts.Duration <= 0 {
		return nil, fmt.Errorf("hostile: -rate %d and -duration %v must both be positive: the tool only sends at a bounded rate for a bounded time", opts.Rate, opts.Duration)
	}
	if opts.Port == 0 {
		opts.Port = 434
	}
	if opts.GroupPort == 0 {
		opts.GroupPort = 4343
	}
	if !opts.Gen.HomeAgent.IsValid() {
		opts.Gen.HomeAgent = opts.Target
	}
	if !opts.Gen.VIP.IsValid() {
		opts.Gen.VIP = opts.Target
	}
	gen := NewGen(opts.Gen, opts.Seed)
	rep := &Report{Target: opts.Target.String(), Seed: opts.Seed, Rate: opts.Rate, NetNS: why, Modes: map[string]*ModeReport{}}
	for _, m := range opts.Modes.List() {
		rep.Modes[m.String()] = &ModeReport{Kinds: map[string]uint64{}}
	}

	var wg sync.WaitGroup
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
		wg.Wait()
	}()
	udp := func(ttl int) (*net.UDPConn, error) {
		c, err := net.ListenUDP("udp4", nil)
		if err != nil {
			return nil, fmt.Errorf("hostile: UDP socket: %w", err)
		}
		closers = append(closers, func() { c.Close() })
		if ttl > 0 {
			if err := setTTL(c, ttl); err != nil {
				return nil, fmt.Errorf("hostile: IP_TTL %d: %w", ttl, err)
			}
		}
		return c, nil
	}
	regAddr := netip.AddrPortFrom(opts.Target, opts.Port)
	grpAddr := netip.AddrPortFrom(opts.Target, opts.GroupPort)
	var mipConn, floodConn, grpConn, grpTTL1 *net.UDPConn
	var mipRC, floodRC replyCounter
	var vs *vrrpSender
	var err error
	if opts.Modes.Has(ModeUDP434) {
		if mipConn, err = udp(0); err != nil {
			return nil, err
		}
		wg.Add(1)
		go mipRC.run(mipConn, &wg)
	}
	if opts.Modes.Has(ModeFlood) {
		if floodConn, err = udp(0); err != nil {
			return nil, err
		}
		wg.Add(1)
		go floodRC.run(floodConn, &wg)
	}
	if opts.Modes.Has(ModeGroup) {
		if grpConn, err = udp(255); err != nil {
			return nil, err
		}
		if grpTTL1, err = udp(1); err != nil {
			return nil, err
		}
	}
	if opts.Modes.Has(ModeVRRP) {
		if vs, err = newVRRPSender(opts.Iface, opts.Target); err != nil {
			return nil, err
		}
		closers = append(closers, func() { unix.Close(vs.fd) })
	}

	buf := make([]byte, 0, 4096)
	modes := opts.Modes.List()
	send := func(m Mode) {
		mr := rep.Modes[m.String()]
		var kind string
		var err error
		switch m {
		case ModeUDP434:
			buf, kind = gen.MIP(buf[:0])
			_, err = mipConn.WriteToUDPAddrPort(buf, regAddr)
		case ModeFlood:
			buf, kind = gen.Flood(buf[:0])
			_, err = floodConn.WriteToUDPAddrPort(buf, regAddr)
		case ModeGroup:
			var ttl1 bool
			buf, kind, ttl1 = gen.Group(buf[:0])
			c := grpConn
			if ttl1 {
				c = grpTTL1
			}
			_, err = c.WriteToUDPAddrPort(buf, grpAddr)
		case ModeVRRP:
			var ttl uint8
			buf, ttl, kind = gen.VRRP(buf[:0], vs.src, vs.dst)
			err = vs.send(buf, ttl)
		}
		if err != nil {
			mr.SendErrors++
			return
		}
		mr.Sent++
		mr.Bytes += uint64(len(buf))
		mr.Kinds[kind]++
		rep.TotalOut++
	}

	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var n uint64
	for {
		el := time.Since(start)
		if el >= opts.Duration || ctx.Err() != nil {
			break
		}
		for due := uint64(el.Seconds() * float64(opts.Rate)); n < due; n++ {
			send(modes[n%uint64(len(modes))])
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	rep.Elapsed = time.Since(start).Round(time.Millisecond).String()
	// Late replies still count.
	select {
	case <-time.After(500 * time.Millisecond):
	case <-ctx.Done():
	}
	if mr := rep.Modes[ModeUDP434.String()]; mr != nil {
		mipRC.report(mr)
	}
	if mr := rep.Modes[ModeFlood.String()]; mr != nil {
		floodRC.report(mr)
	}
	return rep, nil
}
