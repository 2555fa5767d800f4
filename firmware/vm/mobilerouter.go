package vm

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// MobileRouter is a mobile router (RFC 5177) in host namespaces of a Lab:
// namespace NS on the LAN with the care-of address, and behind it, on a veth
// link, namespace HostNS holding addresses of its mobile networks. The build
// machines' kernel has no ipip driver, so the router's end of the IP-in-IP
// tunnel is a userspace gateway (IPIPGateway): what the Home Agent tunnels
// to the care-of address is written, decapsulated, to a TUN device and
// forwarded to the host; what the host sends is routed (by a policy rule on
// the LAN side's interface) into the TUN device and goes back to the Home
// Agent encapsulated, a reverse tunnel (RFC 3024). Registering is the
// caller's business (mnsim in NS).
type MobileRouter struct {
	NS, HostNS string
	GW         *IPIPGateway
}

// MobileRouterSpec says where the router and its networks are.
type MobileRouterSpec struct {
	Name   string     // namespace suffixes: Name and Name+"h"
	CareOf string     // the router's address on the LAN, with its length ("198.51.100.20/24")
	HA     netip.Addr // the Home Agent address the tunnel goes to (the virtual address)
	// LAN is the router's addresses on its mobile networks (the hosts'
	// gateway), Hosts the host's: with lengths, the first of LAN the
	// host's default route.
	LAN, Hosts []string
}

// AddMobileRouter builds the router and its host; Close on the returned
// value stops the gateway (the namespaces go with the Lab).
func (l *Lab) AddMobileRouter(ctx context.Context, s MobileRouterSpec) (*MobileRouter, error) {
	ha := s.HA.String()
	ns, err := l.AddHost(ctx, s.Name, []string{s.CareOf}, [][]string{{ha + "/32", "dev", "eth0"}})
	if err != nil {
		return nil, err
	}
	hostNS := l.Prefix + "-" + s.Name + "h"
	if err := l.addNetns(ctx, hostNS); err != nil {
		return nil, err
	}
	gwAddr, _, _ := strings.Cut(s.LAN[0], "/")
	cmds := [][]string{
		{"ip", "-n", hostNS, "link", "set", "lo", "up"},
		{"ip", "-n", ns, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", hostNS},
		{"ip", "-n", ns, "link", "set", "lan0", "up"},
		{"ip", "-n", hostNS, "link", "set", "eth0", "up"},
		// The host's packets arrive from the tunnel on a device with no
		// route back to their sources: no reverse-path filter.
		{"ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"},
	}
	for _, a := range s.LAN {
		cmds = append(cmds, []string{"ip", "-n", ns, "addr", "add", a, "dev", "lan0"})
	}
	for _, a := range s.Hosts {
		cmds = append(cmds, []string{"ip", "-n", hostNS, "addr", "add", a, "dev", "eth0"})
	}
	cmds = append(cmds, []string{"ip", "-n", hostNS, "route", "add", "default", "via", gwAddr})
	if err := runAll(ctx, cmds...); err != nil {
		return nil, err
	}
	gw, err := StartIPIPGateway(ns, "mrt0", s.HA)
	if err != nil {
		return nil, err
	}
	if err := runAll(ctx,
		// 20 bytes of outer header on a 1,500-byte LAN.
		[]string{"ip", "-n", ns, "link", "set", "mrt0", "mtu", "1480", "up"},
		[]string{"ip", "-n", ns, "rule", "add", "iif", "lan0", "lookup", "100"},
		[]string{"ip", "-n", ns, "route", "add", "default", "dev", "mrt0", "table", "100"},
	); err != nil {
		gw.Close()
		return nil, err
	}
	return &MobileRouter{NS: ns, HostNS: hostNS, GW: gw}, nil
}

// Close stops the gateway; nil-safe.
func (r *MobileRouter) Close() error {
	if r == nil {
		return nil
	}
	return r.GW.Close()
}

// IPIPGateway is a userspace IP-in-IP tunnel end (RFC 2003) in a network
// namespace: a raw socket of protocol 4 connected to the remote end (so it
// receives only the remote's tunnel packets, and the kernel writes the outer
// header of what it sends) and a TUN device. The kernel hands a raw socket
// a copy of every protocol-4 packet and, with no ipip driver, nothing else
// takes them (nor answers protocol unreachable, since a raw socket had it).
type IPIPGateway struct {
	raw, tun *os.File
	// In counts packets decapsulated into the TUN device, Out packets
	// encapsulated towards the remote end.
	In, Out atomic.Uint64
}

// StartIPIPGateway opens both ends inside namespace ns (the TUN device dev
// is created there, down and without address) and starts copying.
func StartIPIPGateway(ns, dev string, remote netip.Addr) (*IPIPGateway, error) {
	if !remote.Is4() {
		return nil, fmt.Errorf("vm: IP-in-IP gateway: remote %v is not IPv4", remote)
	}
	var g IPIPGateway
	err := inNetns(ns, func() error {
		s, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_IPIP)
		if err != nil {
			return fmt.Errorf("raw socket of protocol 4: %w", err)
		}
		if err := unix.Connect(s, &unix.SockaddrInet4{Addr: remote.As4()}); err != nil {
			unix.Close(s)
			return fmt.Errorf("connecting the raw socket to %v: %w", remote, err)
		}
		g.raw = os.NewFile(uintptr(s), "ipip:"+remote.String())
		t, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			g.raw.Close()
			return fmt.Errorf("opening /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(dev)
		if err == nil {
			ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
			err = unix.IoctlIfreq(t, unix.TUNSETIFF, ifr)
		}
		if err != nil {
			unix.Close(t)
			g.raw.Close()
			return fmt.Errorf("creating TUN device %s: %w", dev, err)
		}
		g.tun = os.NewFile(uintptr(t), "/dev/net/tun:"+dev)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("vm: IP-in-IP gateway in %s: %w", ns, err)
	}
	go g.copy(g.tun, g.raw, false, &g.Out)
	go g.copy(g.raw, g.tun, true, &g.In)
	return &g, nil
}

// copy moves IPv4 packets from src to dst until either is closed. outer:
// drop src's IPv4 header (a raw socket delivers the outer header).
func (g *IPIPGateway) copy(src, dst *os.File, outer bool, n *atomic.Uint64) {
	buf := make([]byte, 65536)
	for {
		m, err := src.Read(buf)
		if errors.Is(err, os.ErrClosed) {
			return
		}
		if err != nil {
			// An ICMP error for what the connected raw socket sent
			// (protocol unreachable while the remote end is not up yet)
			// is reported by the next read, once: not the end.
			continue
		}
		p := buf[:m]
		if m == 0 || buf[0]>>4 != 4 {
			continue // IPv4 only: the TUN device's own IPv6 solicitations stay out of the tunnel
		}
		if outer {
			if m < 20 || int(buf[0]&0xf)*4 > m {
				continue
			}
			p = p[int(buf[0]&0xf)*4:]
		}
		if _, err := dst.Write(p); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue // a packet the other end refused (too big, no route): dropped like a router would
		}
		n.Add(1)
	}
}

// Close closes both ends, which removes the TUN device.
func (g *IPIPGateway) Close() error {
	if g == nil {
		return nil
	}
	return errors.Join(g.raw.Close(), g.tun.Close())
}

// inNetns runs fn on a thread moved into namespace ns (/run/netns/ns):
// sockets and devices fn opens belong to ns, and work from any thread
// afterwards. The thread goes back to its namespace, or, if it cannot,
// ends with the goroutine (it stays locked).
func inNetns(ns string, fn func() error) error {
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		return err
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		err = fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
