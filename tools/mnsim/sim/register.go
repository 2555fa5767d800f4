// Package sim is a Mobile IPv4 mobile-node simulator (RFC 5944): one
// registration exchange (Exchange, Register), a load generator (Load) and a
// fast in-process home-agent stand-in for tests and benchmarks (Responder).
// The wire format is package mip's; nothing here re-implements it.
package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/hagent/hagent/ha/mip"
)

// message is one datagram of a batch.
type message struct {
	buf  []byte
	n    int
	addr netip.AddrPort
}

// Options describe one registration exchange.
type Options struct {
	HA        netip.AddrPort // where to send; port 0 means 434
	Local     netip.AddrPort // source address and port; zero: any
	Home      netip.Addr     // home address (0.0.0.0 with an NAI asks the HA to assign one)
	HomeAgent netip.Addr     // Home Agent field; zero: HA's address
	CareOf    netip.Addr     // care-of address; zero: the home address (a de-registration from home)
	SPI       uint32
	Key       []byte
	NAI       []byte // RFC 2794 NAI extension when not nil
	// UDPTunnel, when Present, adds an RFC 3519 UDP Tunnel Request
	// extension (before the MN-HA authenticator, which covers it).
	UDPTunnel mip.UDPTunnelRequest
	// MobileNet holds the prefixes of an RFC 5177 mobile router in
	// explicit mode: one Mobile Network Request extension each, before
	// the MN-HA authenticator. Empty: none (a plain node, or a router in
	// implicit mode); the reply's acknowledgements are in Reply.MobileNet
	// either way.
	MobileNet mip.MobileNetRequest
	Lifetime  uint16 // 0 de-registers
	Flags     uint8
	ID        uint64        // Identification; 0: NTP timestamp of Now()
	Timeout   time.Duration // per attempt; 0: 1s
	Retries   int           // retransmissions of the same request after a timeout
	// Resync: after an authenticated 133 (identification mismatch) reply,
	// take the HA's clock from the reply's high 32 bits and retry once
	// (RFC 5944 §5.7.1 / §5.7.2: works for timestamps and nonces).
	Resync bool
	// NoVerify accepts replies whose MN-HA authenticator is missing or wrong.
	NoVerify bool
	Now      func() time.Time // wall clock; nil: time.Now
}

// Result is what one exchange produced.
type Result struct {
	Request       mip.Request // the last request sent (NAI aliases Options.NAI)
	Reply         mip.Reply   // NAI is a copy
	RTT           time.Duration
	Attempts      int  // datagrams sent
	Resynced      bool // a 133 was answered by a retry with the HA's clock
	Authenticated bool // the reply carried a valid MN-HA authenticator
}

// Errors of an exchange.
var (
	ErrTimeout = errors.New("mnsim: no reply (timeout)")
	// ErrReplyAuth: the reply's MN-HA authenticator is wrong, or missing on
	// an accepting reply (a denial without one is reported, unauthenticated).
	ErrReplyAuth = errors.New("mnsim: reply failed MN-HA authentication")
)

func (o *Options) defaults() error {
	if o.HA.Port() == 0 {
		o.HA = netip.AddrPortFrom(o.HA.Addr(), mip.Port)
	}
	if !o.HA.Addr().Unmap().Is4() {
		return fmt.Errorf("mnsim: home agent address %v is not IPv4", o.HA.Addr())
	}
	o.HA = netip.AddrPortFrom(o.HA.Addr().Unmap(), o.HA.Port())
	if !o.HomeAgent.IsValid() {
		o.HomeAgent = o.HA.Addr()
	}
	if !o.Home.IsValid() {
		return errors.New("mnsim: home address missing")
	}
	if !o.CareOf.IsValid() {
		o.CareOf = o.Home
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if len(o.Key) == 0 {
		return errors.New("mnsim: key missing (the MN-HA security association's secret)")
	}
	return nil
}

// Register performs one registration exchange and returns the reply; see
// Exchange.
func Register(ctx context.Context, o Options) (mip.Reply, error) {
	r, err := Exchange(ctx, o)
	return r.Reply, err
}

// Exchange sends one Registration Request authenticated with the MN-HA key,
// waits for the matching reply (same home address and Identification, or
// the same low 32 bits for a 133), verifies its authenticator and returns it.
// Replies that do not match or do not parse are ignored, as a mobile node
// would. A denial is not an error: look at Result.Reply.Code.
func Exchange(ctx context.Context, o Options) (Result, error) {
	var res Result
	if err := o.defaults(); err != nil {
		return res, err
	}
	var laddr *net.UDPAddr
	if o.Local.IsValid() {
		laddr = net.UDPAddrFromAddrPort(o.Local)
	}
	c, err := net.DialUDP("udp4", laddr, net.UDPAddrFromAddrPort(o.HA))
	if err != nil {
		return res, fmt.Errorf("mnsim: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	h := mip.NewHMACMD5(o.Key)
	id := o.ID
	if id == 0 {
		id = mip.Timestamp(o.Now())
	}
	req := mip.Request{
		Flags: o.Flags, Lifetime: o.Lifetime, HomeAddr: o.Home, HomeAgent: o.HomeAgent,
		CareOf: o.CareOf, ID: id, NAI: o.NAI, UDPTunnel: o.UDPTunnel, MobileNet: o.MobileNet,
	}
	out := make([]byte, 0, 512)
	in := make([]byte, 2048)
	var scratch [64]byte
	resynced := false
	for {
		res.Request = req
		pkt, err := req.AppendBinary(out[:0])
		if err != nil {
			return res, fmt.Errorf("mnsim: building the request: %w", err)
		}
		pkt = mip.AppendMHAuth(pkt, 0, o.SPI, h)
		var rep mip.Reply
		var n int
		var sent time.Time
		for attempt := 0; ; attempt++ {
			sent = time.Now()
			if _, err := c.Write(pkt); err != nil {
				return res, fmt.Errorf("mnsim: sending to %v: %w", o.HA, err)
			}
			res.Attempts++
			n, err = await(ctx, c, in, &rep, &req, sent.Add(o.Timeout))
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return res, ctx.Err()
			}
			if !errors.Is(err, ErrTimeout) || attempt >= o.Retries {
				return res, err
			}
		}
		got := time.Now()
		res.RTT = got.Sub(sent)
		res.Authenticated = mip.Verify(in[:n], rep.MHAuth, h, &scratch)
		rep.NAI = append([]byte(nil), rep.NAI...)
		if rep.NAI != nil && len(rep.NAI) == 0 {
			rep.NAI = nil
		}
		rep.MHAuth.Authenticator = append([]byte(nil), rep.MHAuth.Authenticator...)
		rep.MFAuth, rep.FHAuth = mip.AuthExt{}, mip.AuthExt{}
		res.Reply = rep
		if !res.Authenticated && !o.NoVerify && (rep.MHAuth.Present || rep.Code.Accepted()) {
			return res, fmt.Errorf("%w (code %d %v, authenticator %s)", ErrReplyAuth, rep.Code, rep.Code, authState(rep.MHAuth))
		}
		if rep.Code == mip.CodeIDMismatch && o.Resync && !resynced && (res.Authenticated || o.NoVerify) {
			// §5.7.1: only an authenticated reply may set our clock.
			resynced = true
			res.Resynced = true
			req.ID = mip.ResyncID(rep.ID, time.Since(got), o.Now())
			continue
		}
		return res, nil
	}
}

func authState(a mip.AuthExt) string {
	if !a.Present {
		return "missing"
	}
	return "wrong"
}

// await reads until a reply matching req arrives or the deadline passes.
func await(ctx context.Context, c *net.UDPConn, in []byte, rep *mip.Reply, req *mip.Request, deadline time.Time) (int, error) {
	if err := c.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	// After setting our deadline: a cancellation from now on moves it into
	// the past (the AfterFunc in Exchange); one before, we see here.
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	for {
		n, err := c.Read(in)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return 0, ErrTimeout
			}
			// ICMP port unreachable surfaces as ECONNREFUSED on a
			// connected socket: nobody listens there.
			return 0, fmt.Errorf("mnsim: %w", err)
		}
		if rep.UnmarshalBinary(in[:n]) != nil || !matches(rep, req) {
			continue
		}
		return n, nil
	}
}

// matches reports whether rep answers req: RFC 5944 §3.6.2.1 / §5.7.
func matches(rep *mip.Reply, req *mip.Request) bool {
	if req.HomeAddr != rep.HomeAddr && !req.HomeAddr.IsUnspecified() {
		return false
	}
	if rep.Code == mip.CodeIDMismatch {
		return uint32(rep.ID) == uint32(req.ID)
	}
	return rep.ID == req.ID
}
