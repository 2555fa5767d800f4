package sim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hagent/hagent/ha/mip"
)

// A mobile node behind a NAT (RFC 3519): it registers with a UDP Tunnel
// Request, then carries its traffic in tunnel data messages on the same UDP
// socket (so the NAT mapping its registration opened carries them too),
// sends keepalives when it has sent nothing for the interval the reply
// announced, re-registers before its lifetime ends, and, when told its
// mapping may have changed, re-binds to a new local port and re-registers
// from it, as a node whose NAT dropped the mapping must.

// DefaultKeepalive is the keepalive interval used when the UDP Tunnel Reply
// announces 0 (RFC 3519: the node's own default), RFC 3519's default.
const DefaultKeepalive = 110 * time.Second

// TunnelOptions configure RunTunnel.
type TunnelOptions struct {
	// Reg is the registration; Reg.UDPTunnel.Present must be set. Its
	// Local is the first socket's address (port 0: any); re-binds keep
	// the address and take a new port.
	Reg Options
	// Dev is the node's side of the tunnel, a TUN device: each Read gives
	// one IPv4 packet to encapsulate, each Write takes one decapsulated.
	// nil: no data, keepalives only.
	Dev io.ReadWriter
	// Rebind: each receive closes the socket, opens one on a new local
	// port and re-registers from it.
	Rebind <-chan struct{}
	// RebindEvery > 0 re-binds on this period as well.
	RebindEvery time.Duration
	// Keepalive > 0 overrides the interval the reply announces.
	Keepalive time.Duration
	// Event, when set, is called (from RunTunnel's goroutine) after each
	// accepted registration.
	Event func(TunnelEvent)
}

// TunnelEvent reports an accepted registration.
type TunnelEvent struct {
	Local     netip.AddrPort // the socket it was sent from
	Reply     mip.Reply
	Keepalive time.Duration // the interval in use
	Rebinds   uint64
}

// TunnelStats are RunTunnel's counters, safe to read while it runs.
type TunnelStats struct {
	Registrations  atomic.Uint64 // accepted registrations (renewals and re-binds included)
	Rebinds        atomic.Uint64
	Keepalives     atomic.Uint64 // keepalives sent
	KeepaliveEchos atomic.Uint64 // their echo replies received (not passed to Dev)
	DataIn         atomic.Uint64 // tunnel data messages decapsulated to Dev
	DataOut        atomic.Uint64 // packets from Dev sent as tunnel data
	Dropped        atomic.Uint64 // tunnel data not carrying IPv4 (next header other than 4), or short
	RenewTimeouts  atomic.Uint64 // renewals that got no reply (retried)
}

// ErrTunnelRefused: the home agent denied the registration, or accepted it
// without agreeing to tunnel in UDP.
var ErrTunnelRefused = errors.New("mnsim: UDP tunnelling refused")

// errRebind ends one socket's session.
var errRebind = errors.New("rebind")

// RunTunnel registers and runs the tunnel until ctx ends (nil then) or a
// registration fails.
func RunTunnel(ctx context.Context, o TunnelOptions, st *TunnelStats) error {
	if !o.Reg.UDPTunnel.Present {
		return errors.New("mnsim: the tunnel needs a UDP Tunnel Request (Reg.UDPTunnel)")
	}
	if err := o.Reg.defaults(); err != nil {
		return err
	}
	t := &tunnel{o: o, st: st, replies: make(chan []byte, 4), echoID: uint16(time.Now().UnixNano()) | 1}
	if o.Dev != nil {
		go t.fromDev()
	}
	local := o.Reg.Local
	for {
		var laddr *net.UDPAddr
		if local.IsValid() {
			laddr = net.UDPAddrFromAddrPort(local)
		}
		c, err := net.DialUDP("udp4", laddr, net.UDPAddrFromAddrPort(o.Reg.HA))
		if err != nil {
			return fmt.Errorf("mnsim: %w", err)
		}
		err = t.session(ctx, c)
		c.Close()
		if !errors.Is(err, errRebind) {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		st.Rebinds.Add(1)
		local = netip.AddrPortFrom(local.Addr(), 0) // a new port: a new NAT mapping
	}
}

type tunnel struct {
	o        TunnelOptions
	st       *TunnelStats
	conn     atomic.Pointer[net.UDPConn] // the current socket, for fromDev
	lastSent atomic.Int64                // unix nanoseconds of the last datagram sent
	replies  chan []byte
	echoID   uint16     // identifier of our keepalives' echo requests, set before any goroutine
	echoSeq  uint16     // owned by session's goroutine
	mu       sync.Mutex // serialises writes of fromDev and keepalives
}

// session runs one socket: registration, then data, keepalives and
// renewals until a re-bind, ctx's end or a failed registration.
func (t *tunnel) session(ctx context.Context, c *net.UDPConn) error {
	t.conn.Store(c)
	done := make(chan struct{})
	defer func() {
		c.Close() // ends fromNet
		<-done
	}()
	go t.fromNet(c, done)

	rep, err := t.register(ctx, c)
	if err != nil {
		return err
	}
	keep := t.o.Keepalive
	if keep <= 0 {
		keep = time.Duration(rep.UDPTunnel.Keepalive) * time.Second
	}
	if keep <= 0 {
		keep = DefaultKeepalive
	}
	if t.o.Event != nil {
		t.o.Event(TunnelEvent{Local: c.LocalAddr().(*net.UDPAddr).AddrPort(), Reply: rep, Keepalive: keep, Rebinds: t.st.Rebinds.Load()})
	}
	renew := time.NewTimer(renewAfter(rep.Lifetime))
	defer renew.Stop()
	var rebind <-chan time.Time
	if t.o.RebindEvery > 0 {
		tk := time.NewTimer(t.o.RebindEvery)
		defer tk.Stop()
		rebind = tk.C
	}
	// Check twice per interval: a keepalive leaves at most half an
	// interval late, well inside the NAT's idle timeout it guards.
	tick := time.NewTicker(keep / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.o.Rebind:
			return errRebind
		case <-rebind:
			return errRebind
		case <-renew.C:
			r, err := t.register(ctx, c)
			switch {
			case err == nil:
				rep = r
				renew.Reset(renewAfter(rep.Lifetime))
			case errors.Is(err, ErrTimeout):
				// The home agent may be failing over: the binding
				// outlives this renewal by half a lifetime, so keep
				// trying rather than give the node up.
				t.st.RenewTimeouts.Add(1)
				renew.Reset(t.o.Reg.Timeout)
			default:
				return err
			}
		case now := <-tick.C:
			if now.Sub(time.Unix(0, t.lastSent.Load())) >= keep {
				t.keepalive(c)
			}
		}
	}
}

// renewAfter is when to re-register: at half the granted lifetime, as
// mobile nodes usually do, at least a second.
func renewAfter(lifetime uint16) time.Duration {
	return max(time.Duration(lifetime)*time.Second/2, time.Second)
}

// register sends the request on c and waits for its reply, which fromNet
// passes on; retransmits after each timeout up to Reg.Retries times.
func (t *tunnel) register(ctx context.Context, c *net.UDPConn) (mip.Reply, error) {
	o := &t.o.Reg
	h := mip.NewHMACMD5(o.Key)
	id := o.ID
	if id == 0 {
		id = mip.Timestamp(o.Now())
	}
	req := mip.Request{
		Flags: o.Flags, Lifetime: o.Lifetime, HomeAddr: o.Home, HomeAgent: o.HomeAgent,
		CareOf: o.CareOf, ID: id, NAI: o.NAI, UDPTunnel: o.UDPTunnel, MobileNet: o.MobileNet,
	}
	pkt, err := req.AppendBinary(make([]byte, 0, 512))
	if err != nil {
		return mip.Reply{}, fmt.Errorf("mnsim: building the request: %w", err)
	}
	pkt = mip.AppendMHAuth(pkt, 0, o.SPI, h)
	var scratch [64]byte
	for attempt := 0; attempt <= o.Retries; attempt++ {
		if err := t.send(c, pkt); err != nil {
			return mip.Reply{}, fmt.Errorf("mnsim: sending to %v: %w", o.HA, err)
		}
		timeout := time.NewTimer(o.Timeout)
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				timeout.Stop()
				return mip.Reply{}, ctx.Err()
			case <-timeout.C:
				waiting = false
			case b := <-t.replies:
				var rep mip.Reply
				if rep.UnmarshalBinary(b) != nil || !matches(&rep, &req) {
					continue
				}
				timeout.Stop()
				if !o.NoVerify && !mip.Verify(b, rep.MHAuth, h, &scratch) && (rep.MHAuth.Present || rep.Code.Accepted()) {
					return rep, fmt.Errorf("%w (code %d %v)", ErrReplyAuth, rep.Code, rep.Code)
				}
				switch {
				case !rep.Code.Accepted():
					return rep, fmt.Errorf("%w: registration denied, %d %v", ErrTunnelRefused, rep.Code, rep.Code)
				case !rep.UDPTunnel.Present:
					return rep, fmt.Errorf("%w: the reply has no UDP Tunnel Reply (the home agent tunnels without UDP, which no NAT lets through)", ErrTunnelRefused)
				case rep.UDPTunnel.Code != mip.TunnelWillDo:
					return rep, fmt.Errorf("%w: UDP Tunnel Reply code %d %v", ErrTunnelRefused, rep.UDPTunnel.Code, rep.UDPTunnel.Code)
				}
				t.st.Registrations.Add(1)
				return rep, nil
			}
		}
	}
	return mip.Reply{}, ErrTimeout
}

func (t *tunnel) send(c *net.UDPConn, b []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, err := c.Write(b)
	if err == nil {
		t.lastSent.Store(time.Now().UnixNano())
	}
	return err
}

// fromNet reads c until it is closed: tunnel data to Dev, registration
// replies to register.
func (t *tunnel) fromNet(c *net.UDPConn, done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, 65536)
	var h mip.TunnelHeader
	for {
		n, err := c.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ICMP errors surface here; the registration's timeout handles them
		}
		b := buf[:n]
		switch {
		case n > 0 && b[0] == mip.TypeReply:
			select {
			case t.replies <- append([]byte(nil), b...):
			default: // a stale reply nobody waits for
			}
		case h.UnmarshalBinary(b) == nil:
			inner := b[mip.TunnelHeaderLen:]
			switch {
			case h.NextHeader != mip.NextIPv4 || len(inner) < 20 || inner[0]>>4 != 4:
				t.st.Dropped.Add(1)
			case t.isKeepaliveEcho(inner):
				t.st.KeepaliveEchos.Add(1)
			case t.o.Dev != nil:
				if _, err := t.o.Dev.Write(inner); err == nil {
					t.st.DataIn.Add(1)
				}
			}
		}
	}
}

// fromDev encapsulates what the node sends, on the current socket.
func (t *tunnel) fromDev() {
	buf := make([]byte, 65536)
	hdr, _ := mip.TunnelHeader{NextHeader: mip.NextIPv4}.AppendBinary(buf[:0])
	for {
		n, err := t.o.Dev.Read(buf[len(hdr):])
		if err != nil {
			return // the device was closed
		}
		c := t.conn.Load()
		if c == nil || n < 20 {
			continue
		}
		if t.send(c, buf[:len(hdr)+n]) == nil {
			t.st.DataOut.Add(1)
		}
	}
}

// keepalive sends an ICMP Echo Request from the home address to the home
// agent inside a tunnel data message: it refreshes the NAT mapping, and the
// home agent's echo reply comes back through it (RFC 3519 §4.9).
func (t *tunnel) keepalive(c *net.UDPConn) {
	t.echoSeq++
	b, _ := mip.TunnelHeader{NextHeader: mip.NextIPv4}.AppendBinary(make([]byte, 0, 64))
	b = appendEcho(b, t.o.Reg.Home, t.o.Reg.HomeAgent, t.echoID, t.echoSeq)
	if t.send(c, b) == nil {
		t.st.Keepalives.Add(1)
	}
}

// isKeepaliveEcho reports whether an inner packet is the echo reply to one
// of our keepalives: ICMP type 0 from the home agent with our identifier.
func (t *tunnel) isKeepaliveEcho(p []byte) bool {
	ihl := int(p[0]&0x0f) * 4
	if p[9] != 1 || len(p) < ihl+8 || p[ihl] != 0 {
		return false
	}
	src := netip.AddrFrom4([4]byte(p[12:16]))
	return src == t.o.Reg.HomeAgent && binary.BigEndian.Uint16(p[ihl+4:]) == t.echoID
}

// appendEcho appends an IPv4 ICMP Echo Request from src to dst.
func appendEcho(b []byte, src, dst netip.Addr, id, seq uint16) []byte {
	const total = 20 + 8
	s, d := src.As4(), dst.As4()
	ip := []byte{0x45, 0, 0, total, 0, 0, 0, 0, 64, 1, 0, 0,
		s[0], s[1], s[2], s[3], d[0], d[1], d[2], d[3]}
	binary.BigEndian.PutUint16(ip[10:], checksum(ip))
	icmp := []byte{8, 0, 0, 0, byte(id >> 8), byte(id), byte(seq >> 8), byte(seq)}
	binary.BigEndian.PutUint16(icmp[2:], checksum(icmp))
	return append(append(b, ip...), icmp...)
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return ^uint16(s)
}
