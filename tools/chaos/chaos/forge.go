package chaos

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// Forged group messages: what a holder of the group key can send. They are
// written from docs/hasync-spec.md (§3 header and ICV, §4.1 record, §4.2
// Binding Update), not with the agents' code, so the tool also checks that
// the spec is enough to speak the protocol.

// forgedUpdate is one Binding Update (type 1) carrying a live binding for
// home, from agent id sender in session sess, sealed with the group key.
func forgedUpdate(sender, sess, seq uint32, home, careOf netip.Addr, id uint64) []byte {
	const hdr, rec, icv = 20, 32, 16
	b := make([]byte, hdr+rec+icv)
	b[0], b[1] = 1, 1 // version 1, Binding Update
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[4] = groupKeyID
	binary.BigEndian.PutUint32(b[8:], sender)
	binary.BigEndian.PutUint32(b[12:], sess)
	binary.BigEndian.PutUint32(b[16:], seq)
	r := b[hdr:]
	binary.BigEndian.PutUint16(r[2:], 300)     // granted, s
	binary.BigEndian.PutUint32(r[4:], 300_000) // remaining, ms
	h4, c4, v4 := home.As4(), careOf.As4(), netip.MustParseAddr(vip).As4()
	copy(r[8:], h4[:])
	copy(r[12:], v4[:])
	copy(r[16:], c4[:])
	binary.BigEndian.PutUint64(r[20:], id)
	binary.BigEndian.PutUint32(r[28:], sender)
	m := hmac.New(sha256.New, []byte(groupSecret))
	m.Write(b[:len(b)-icv])
	copy(b[len(b)-icv:], m.Sum(nil)[:icv])
	return b
}

// sendGroup multicasts pkts to the group from local (an address of the
// calling goroutine's namespace) with TTL 255, as a member on the LAN
// would. Call it inside the sending host's namespace (inNetNS).
func sendGroup(local netip.Addr, pkts [][]byte) error {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: local.AsSlice()})
	if err != nil {
		return fmt.Errorf("chaos: forge socket: %w", err)
	}
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		if serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_MULTICAST_TTL, 255); serr != nil {
			return
		}
		serr = syscall.SetsockoptInet4Addr(int(fd), syscall.IPPROTO_IP, syscall.IP_MULTICAST_IF, local.As4())
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("chaos: forge socket options: %w", serr)
	}
	to := &net.UDPAddr{IP: net.ParseIP(groupAddr), Port: groupPort}
	for _, p := range pkts {
		if _, err := c.WriteToUDP(p, to); err != nil {
			return fmt.Errorf("chaos: forge send: %w", err)
		}
	}
	return nil
}
