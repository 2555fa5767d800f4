//go:build linux

package vipnet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// VMAC is a virtual MAC the active router answers with (HSRP's
// 0000.0c07.acXX, RFC 2281 §6.1): a macvlan device on the LAN interface
// with that MAC, which carries the virtual address while the router is
// active and is down otherwise, so that only the active router's NIC
// accepts frames to the MAC. The kernel then answers ARP for the virtual
// address with the virtual MAC.
//
// arp_ignore=1 on both devices makes the MAC the only one the LAN ever
// sees in answers for the address (each answers only for its own
// addresses: the parent would otherwise answer for the virtual address
// with its MAC, the macvlan for the router's own address with the virtual
// MAC); the parent's ARP requests must not name the virtual address as
// sender either, which the runner's shell sees to for every election
// interface (Sysctls.AnnounceOwnAddress). The parent's previous value is
// restored by Close.
type VMAC struct {
	Ifi    *net.Interface // the macvlan
	parent *net.Interface
	sys    Sysctls
}

// macvlanModeBridge is MACVLAN_MODE_BRIDGE. Not private mode: there the
// macvlan driver hands a multicast frame whose source is the macvlan's own
// MAC to the macvlan alone, so while two routers are active at once (a
// partition ending, a stalled router resuming) neither would hear the
// other's hellos, sent from the same virtual MAC, on the parent's socket,
// and both would stay active.
const macvlanModeBridge = 4

// MacvlanMsg builds the RTM_NEWLINK request that creates macvlan name on
// parent with mac, down. Exported for golden tests.
func MacvlanMsg(parent int, name string, mac net.HardwareAddr, seqNo uint32) []byte {
	ne := binary.NativeEndian
	b := make([]byte, 16+16, 128) // nlmsghdr + ifinfomsg (family 0, index 0, flags 0, change 0)
	ne.PutUint16(b[4:], unix.RTM_NEWLINK)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	ne.PutUint32(b[8:], seqNo)
	b = attr(b, unix.IFLA_IFNAME, append([]byte(name), 0))
	var link [4]byte
	ne.PutUint32(link[:], uint32(parent))
	b = attr(b, unix.IFLA_LINK, link[:])
	b = attr(b, unix.IFLA_ADDRESS, mac)
	var mode [4]byte
	ne.PutUint32(mode[:], macvlanModeBridge)
	data := attr(nil, unix.IFLA_MACVLAN_MODE, mode[:])
	info := attr(nil, unix.IFLA_INFO_KIND, []byte("macvlan"))
	info = attr(info, unix.IFLA_INFO_DATA|unix.NLA_F_NESTED, data)
	b = attr(b, unix.IFLA_LINKINFO|unix.NLA_F_NESTED, info)
	ne.PutUint32(b[0:], uint32(len(b)))
	return b
}

// LinkMsg builds RTM_NEWLINK setting (up) or clearing IFF_UP on ifindex, or
// RTM_DELLINK (del). Exported for golden tests.
func LinkMsg(ifindex int, up, del bool, seqNo uint32) []byte {
	ne := binary.NativeEndian
	b := make([]byte, 32)
	typ := uint16(unix.RTM_NEWLINK)
	if del {
		typ = unix.RTM_DELLINK
	}
	ne.PutUint32(b[0:], 32)
	ne.PutUint16(b[4:], typ)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	ne.PutUint32(b[8:], seqNo)
	ne.PutUint32(b[20:], uint32(ifindex)) // ifi_index
	if !del {
		if up {
			ne.PutUint32(b[24:], unix.IFF_UP) // ifi_flags
		}
		ne.PutUint32(b[28:], unix.IFF_UP) // ifi_change
	}
	return b
}

// attr appends one rtattr, padded to 4 bytes.
func attr(b []byte, typ uint16, data []byte) []byte {
	n := 4 + len(data)
	b = binary.NativeEndian.AppendUint16(b, uint16(n))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// OpenVMAC creates (or re-creates, after a crash) macvlan name on parent
// with mac, down, and sets the sysctls described at VMAC.
func OpenVMAC(parent *net.Interface, name string, mac net.HardwareAddr) (*VMAC, error) {
	if old, err := net.InterfaceByName(name); err == nil {
		_ = request(LinkMsg(old.Index, false, true, seq.Add(1))) // left behind by a predecessor
	}
	if err := request(MacvlanMsg(parent.Index, name, mac, seq.Add(1))); err != nil {
		return nil, fmt.Errorf("vipnet: creating macvlan %s on %s with the virtual MAC %s: %w (needs the macvlan module; or announce the interface's own MAC instead)", name, parent.Name, mac, err)
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("vipnet: macvlan %s: %w", name, err)
	}
	v := &VMAC{Ifi: ifi, parent: parent}
	for _, s := range []struct{ dev, key, val string }{
		{name, "arp_ignore", "1"},
		{name, "rp_filter", "0"},
		{parent.Name, "arp_ignore", "1"},
	} {
		if err := v.sys.Set(s.dev, s.key, s.val, s.dev == parent.Name); err != nil {
			v.Close()
			return nil, err
		}
	}
	return v, nil
}

// SetUp brings the macvlan up (the NIC starts accepting the virtual MAC) or
// down.
func (v *VMAC) SetUp(up bool) error {
	if err := request(LinkMsg(v.Ifi.Index, up, false, seq.Add(1))); err != nil {
		return fmt.Errorf("vipnet: setting %s up=%v: %w", v.Ifi.Name, up, err)
	}
	return nil
}

// Close deletes the macvlan and restores the parent's sysctls.
func (v *VMAC) Close() error {
	var errs []error
	if err := request(LinkMsg(v.Ifi.Index, false, true, seq.Add(1))); err != nil && !errors.Is(err, unix.ENODEV) {
		errs = append(errs, fmt.Errorf("vipnet: deleting %s: %w", v.Ifi.Name, err))
	}
	if err := v.sys.Restore(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
