package datapath

import (
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Setup: the tunnel devices, reverse-path checks and proxy ARP the agent
// needs before the first binding.

func (k *kernel) Setup() error {
	if k.cfg.HomeIfname == "" {
		return errors.New("datapath: no home interface configured (agent.interface)")
	}
	h, err := k.getLink(k.cfg.HomeIfname)
	if err != nil {
		return fmt.Errorf("datapath: looking up home interface %s: %w", k.cfg.HomeIfname, err)
	}
	if h.Index == 0 {
		return fmt.Errorf("datapath: home interface %s does not exist (check agent.interface)", k.cfg.HomeIfname)
	}
	k.home = h.Index
	// Forwarding on the home interface: the kernel answers ARP for proxy
	// entries only on interfaces that forward (arp_process).
	if _, err := k.exec(unix.RTM_NEWLINK, netlink.Acknowledge, appendLinkConf(nil, h.Index, k.forwardConf())); err != nil {
		return fmt.Errorf("datapath: enabling forwarding on %s: %w", k.cfg.HomeIfname, err)
	}
	if err := k.proxyARP(true); err != nil {
		return err
	}
	idx, err := k.tunnel(k.cfg.TunnelName, IPIP)
	switch {
	case err != nil && k.cfg.UDPTunnel && errors.Is(err, errNoTunnelDriver):
		// A home agent for nodes behind NATs only (RFC 3519) needs no
		// IP-in-IP device: it tunnels in UDP, by eBPF. Supports(IPIP) is
		// false; the agent denies the others 139 instead of black-holing them.
		k.log.Warn("IP-in-IP tunnelling unavailable: only UDP-tunnelled nodes can be served; the others get reply code 139", "err", err)
	case err != nil:
		return err
	}
	k.tun[IPIP] = idx
	if k.cfg.GRETunnelName != "" {
		idx, err := k.tunnel(k.cfg.GRETunnelName, GRE)
		if err != nil {
			k.log.Warn("GRE tunnelling unavailable; nodes asking for it get reply code 139", "err", err)
		}
		k.tun[GRE] = idx
	}
	k.setupTunnelDF()
	if err := k.setupRev(); err != nil {
		return err
	}
	if err := k.setupUDP(); err != nil {
		return err
	}
	k.setupRedirects()
	return nil
}

// setupRev loads the reverse-tunnel check once and attaches it to every
// tunnel device (again after a re-Setup: the devices may be new). Start-up
// fails with the missing kernel option rather than run without the check
// the configuration asked for.
func (k *kernel) setupRev() error {
	if !k.cfg.ReverseCheck {
		return nil
	}
	if k.rev == nil {
		f, err := newRevFilter(k.cfg.Capacity)
		if err != nil {
			return fmt.Errorf("datapath: %w (needs %s)", err, kernelOptionBPF)
		}
		k.rev = f
	}
	k.revOn = [2]uint32{}
	return k.attachAllRev()
}

func (k *kernel) attachAllRev() error {
	if k.rev == nil {
		return nil
	}
	for e, idx := range k.tun {
		if idx == 0 || k.revOn[e] == idx {
			continue
		}
		name := k.cfg.TunnelName
		if Encap(e) == GRE {
			name = k.cfg.GRETunnelName
		}
		if err := k.attachRev(idx, name); err != nil {
			return err
		}
		k.revOn[e] = idx
	}
	return nil
}

// proxyARP turns the home interface's proxy_arp on (active, in
// ProxyByRoute mode) or off (Withdraw).
func (k *kernel) proxyARP(on bool) error {
	if !k.cfg.ProxyByRoute || !k.cfg.ProxyARP {
		return nil
	}
	v := uint32(0)
	if on {
		v = 1
	}
	if _, err := k.exec(unix.RTM_NEWLINK, netlink.Acknowledge, appendLinkConf(nil, k.home, [][2]uint32{{devconfProxyARP, v}})); err != nil {
		return fmt.Errorf("datapath: setting proxy_arp %d on %s: %w", v, k.cfg.HomeIfname, err)
	}
	return nil
}

// entries reports whether bindings get NTF_PROXY entries.
func (k *kernel) entries() bool { return k.cfg.ProxyARP && !k.cfg.ProxyByRoute }

// errNoTunnelDriver: the kernel cannot create the tunnel device at all.
var errNoTunnelDriver = errors.New("the kernel has no driver for this tunnel")

var kernelOption = [2]string{
	IPIP: "CONFIG_NET_IPIP (module ipip) and CONFIG_NET_IP_TUNNEL",
	GRE:  "CONFIG_NET_IPGRE (module ip_gre) and CONFIG_NET_IPGRE_DEMUX",
}

// tunnel finds or creates the external-mode device for e and sets it up:
// up, forwarding, rp_filter strict (RFC 3024: a decapsulated packet's inner
// source must route back through the tunnel, i.e. be a registered home
// address).
func (k *kernel) tunnel(name string, e Encap) (uint32, error) {
	l, err := k.getLink(name)
	if err != nil {
		return 0, fmt.Errorf("datapath: looking up tunnel device %s: %w", name, err)
	}
	if l.Index == 0 {
		_, err := k.exec(unix.RTM_NEWLINK, netlink.Acknowledge|netlink.Create|netlink.Excl, appendTunnelNew(nil, name, e))
		switch {
		case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT):
			return 0, fmt.Errorf("datapath: cannot create %s device %s: %w: enable %s, or load the module", e, name, errNoTunnelDriver, kernelOption[e])
		case errors.Is(err, unix.EEXIST):
			return 0, fmt.Errorf("datapath: cannot create %s device %s: another external-mode %s device exists in this namespace (only one is allowed); delete it or set datapath.tunnel_device to its name", e, name, e)
		case err != nil:
			return 0, fmt.Errorf("datapath: creating %s device %s: %w", e, name, err)
		}
		if l, err = k.getLink(name); err != nil || l.Index == 0 {
			return 0, fmt.Errorf("datapath: %s device %s vanished after creation: %v", e, name, err)
		}
		k.log.Info("tunnel device created", "dev", name, "encap", e.String())
	} else if !k.cfg.anyTunnel && (l.Kind != e.String() || !l.CollectMD) {
		return 0, fmt.Errorf("datapath: device %s exists but is not an %s device in external mode (kind %q, external %v): delete it, or set datapath.tunnel_device to a free name", name, e, l.Kind, l.CollectMD)
	}
	if _, err := k.exec(unix.RTM_NEWLINK, netlink.Acknowledge, appendLinkConf(nil, l.Index, k.forwardConf([2]uint32{devconfRPFilter, 1}))); err != nil {
		return 0, fmt.Errorf("datapath: setting %s up (forwarding, rp_filter): %w", name, err)
	}
	return l.Index, nil
}
