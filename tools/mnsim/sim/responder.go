package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hagent/hagent/ha/mip"
)

// ResponderConfig configures a stand-in home agent: it authenticates each
// request with one key (a pool of nodes sharing a security association) and
// answers it. It keeps no bindings; it is a peer for tests and a fast target
// for measuring the load generator, not a home agent.
type ResponderConfig struct {
	Addr    netip.AddrPort // listen address; port 0 picks one
	SPI     uint32
	Key     []byte
	Sockets int // SO_REUSEPORT sockets, one goroutine each; 0: 1
	// Tolerance, when > 0, checks timestamp Identifications against Now
	// and answers 133 with the responder's clock (RFC 5944 §5.7.1).
	Tolerance time.Duration
	Now       func() time.Time
	// Decide, when set, picks the code and lifetime for an authenticated,
	// timely request (default: accept with the requested lifetime). It is
	// called concurrently from every socket's goroutine.
	Decide func(req *mip.Request) (mip.Code, uint16)
	// ReplyKey, when set, signs replies with this key instead of Key (to
	// test a mobile node's reply verification); NoReplyAuth omits the
	// MN-HA extension from replies.
	ReplyKey    []byte
	NoReplyAuth bool
	NoGSO       bool // reply with sendmmsg only, never UDP GSO
	// UDPTunnelKeepalive, when > 0, answers an accepted request that
	// carries a UDP Tunnel Request (RFC 3519) with a UDP Tunnel Reply:
	// will do, this keepalive interval in seconds, F echoed from the
	// request.
	UDPTunnelKeepalive uint16
	// MobileNetworks, when set, makes the responder a home agent of
	// mobile routers (RFC 5177) that may claim these prefixes: see
	// MobileNetAcks.
	MobileNetworks []netip.Prefix
}

// Responder is a running stand-in home agent.
type Responder struct {
	cfg   ResponderConfig
	conns []*net.UDPConn
	wg    sync.WaitGroup
	// Counters, safe to read while running.
	Requests, Replies, AuthFailures, Malformed atomic.Uint64
}

// StartResponder listens and answers until ctx ends or Close is called.
func StartResponder(ctx context.Context, cfg ResponderConfig) (*Responder, error) {
	if cfg.Sockets <= 0 || !haveReusePort {
		cfg.Sockets = 1
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Responder{cfg: cfg}
	lc := net.ListenConfig{}
	if cfg.Sockets > 1 {
		lc.Control = reusePort
	}
	addr := cfg.Addr
	for i := 0; i < cfg.Sockets; i++ {
		pc, err := lc.ListenPacket(ctx, "udp4", addr.String())
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("mnsim responder: %w", err)
		}
		c := pc.(*net.UDPConn)
		// Bursts of a whole window arrive at once; the default buffer
		// (≈ 280 small datagrams) would drop them.
		_ = c.SetReadBuffer(4 << 20)
		_ = c.SetWriteBuffer(4 << 20)
		r.conns = append(r.conns, c)
		addr = c.LocalAddr().(*net.UDPAddr).AddrPort() // the others join the port the first got
	}
	for _, c := range r.conns {
		b, err := newBatchConn(c, batchSize)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.wg.Add(1)
		go r.serve(b)
	}
	context.AfterFunc(ctx, r.Close)
	return r, nil
}

// Addr is the address the responder listens on.
func (r *Responder) Addr() netip.AddrPort {
	a := r.conns[0].LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// Close stops the responder and waits for its goroutines.
func (r *Responder) Close() {
	for _, c := range r.conns {
		c.Close()
	}
	r.wg.Wait()
}

const batchSize = 64

func (r *Responder) serve(b *batchConn) {
	defer r.wg.Done()
	in := make([]message, batchSize)
	out := make([]message, batchSize)
	for i := range in {
		in[i].buf = make([]byte, 2048)
		out[i].buf = make([]byte, 0, 512)
	}
	h := mip.NewHMACMD5(r.cfg.Key)
	hr := h
	if r.cfg.ReplyKey != nil {
		hr = mip.NewHMACMD5(r.cfg.ReplyKey)
	}
	var scratch [64]byte
	var req mip.Request
	var g *gso
	if !r.cfg.NoGSO {
		g = newGSO()
	}
	gsoBuf := make([]byte, 0, batchSize*512)
	for {
		n, err := b.readBatch(in)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP errors reported on the socket
		}
		k := 0
		for i := 0; i < n; i++ {
			pkt := in[i].buf[:in[i].n]
			r.Requests.Add(1)
			if req.UnmarshalBinary(pkt) != nil {
				r.Malformed.Add(1)
				continue
			}
			rep := mip.Reply{HomeAddr: req.HomeAddr, HomeAgent: req.HomeAgent, ID: req.ID, NAI: req.NAI}
			sign := !r.cfg.NoReplyAuth
			switch {
			case !req.MHAuth.Present || req.MHAuth.SPI != r.cfg.SPI || !mip.Verify(pkt, req.MHAuth, h, &scratch):
				r.AuthFailures.Add(1)
				rep.Code, sign = mip.CodeMNAuthFailed, false
			case r.cfg.Tolerance > 0 && !timely(req.ID, r.cfg.Now(), r.cfg.Tolerance):
				rep.Code, rep.ID = mip.CodeIDMismatch, mip.MismatchID(req.ID, r.cfg.Now())
			case r.cfg.Decide != nil:
				rep.Code, rep.Lifetime = r.cfg.Decide(&req)
			default:
				rep.Code, rep.Lifetime = mip.CodeAccepted, req.Lifetime
			}
			if r.cfg.UDPTunnelKeepalive > 0 && req.UDPTunnel.Present && rep.Code.Accepted() {
				rep.UDPTunnel = mip.UDPTunnelReply{Present: true, Code: mip.TunnelWillDo, Keepalive: r.cfg.UDPTunnelKeepalive}
				if req.UDPTunnel.Flags&mip.UDPTunnelForce != 0 {
					rep.UDPTunnel.Flags = mip.UDPTunnelReplyForced
				}
			}
			if r.cfg.MobileNetworks != nil && rep.Code.Accepted() {
				rep.MobileNet = MobileNetAcks(&req.MobileNet, r.cfg.MobileNetworks)
			}
			o, err := rep.AppendBinary(out[k].buf[:0])
			if err != nil {
				continue
			}
			if sign {
				o = mip.AppendMHAuth(o, 0, r.cfg.SPI, hr)
			}
			out[k].buf, out[k].addr = o, in[i].addr
			k++
		}
		r.Replies.Add(uint64(sendRuns(b, g, out[:k], gsoBuf)))
	}
}

// sendRuns sends replies, each run of equal-sized replies to one address as
// one GSO train, the rest with sendmmsg; it returns how many were sent.
func sendRuns(b *batchConn, g *gso, out []message, buf []byte) int {
	sent := 0
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && j-i < gsoMaxSegs && out[j].addr == out[i].addr && len(out[j].buf) == len(out[i].buf) {
			j++
		}
		if g != nil && j-i > 1 {
			buf = buf[:0]
			for _, m := range out[i:j] {
				buf = append(buf, m.buf...)
			}
			if ok, err := g.write(b.c, buf, len(out[i].buf), out[i].addr); ok {
				if err == nil {
					sent += j - i
				}
				i = j
				continue
			}
		}
		n, _ := b.writeBatch(out[i:j], true)
		sent += n
		i = j
	}
	return sent
}

// timely reports whether a timestamp Identification is within tol of now.
func timely(id uint64, now time.Time, tol time.Duration) bool {
	d := int64(id>>32) - int64(mip.Timestamp(now)>>32)
	t := int64(tol / time.Second)
	return d >= -t && d <= t
}
