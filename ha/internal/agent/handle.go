package agent

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/hasync"
	"github.com/hagent/hagent/ha/mip"
)

// The registration decision, in the order a request meets it: Handle
// admits the datagram, parses and authenticates it; decide resolves the
// home address and checks replay and the services asked for; register or
// deregister writes the binding. Every phase fills the caller's verdict
// (c.v points to it); nothing is encoded or signed here: the reply is
// sealed once, when it is sent (Core.Seal, verdict.go). The phases
// are few on purpose: each call on this path costs measurably (the
// in-process benchmark is about 500 ns, four MD5 blocks of it).

// Handle processes one datagram received on the registration port.
//
// now is monotonic nanoseconds (binding lifetimes), wall is the time of day
// (timestamp replay protection only: routers boot at 1970, and RFC 5944's
// 133 reply is exactly how a node resynchronises to our clock). dst is the
// address the datagram was sent to. The verdict says what to answer; one
// without Answer means "silently discard" and the reason has been counted.
// Its From is the source address the reply must leave with (RFC 5944
// §3.8.3.1: the address the request was sent to, unless that was a
// broadcast). It is written into *v (the caller's: a copy per request
// costs on this path). Its NAI aliases pkt: a verdict kept beyond pkt's
// life must be kept with Keep.
func (c *Core) Handle(now int64, wall time.Time, src netip.AddrPort, dst netip.Addr, pkt []byte, v *Verdict) (ch Change) {
	c.Stats.Requests++
	v.Answer = false
	c.v = v
	c.suspended = false
	switch { // admit
	case len(pkt) < fixedLen:
		c.Stats.Drops[DropTruncated]++
		return ch
	case pkt[0] != mip.TypeRequest:
		c.Stats.Drops[DropNotRequest]++
		return ch
	case !c.serving:
		c.Stats.Drops[DropNotActive]++
		return ch
	case src.Port() == 0 || !src.Addr().Is4() || src.Addr().IsMulticast() || src.Addr().IsUnspecified():
		c.Stats.Drops[DropBadSource]++
		return ch
	}
	from := dst
	if !dst.Is4() || !c.ownAddr(binding.AddrU32(dst)) {
		// Broadcast or an address we do not own: answer from our unicast
		// address, which is also what a 136 reply must carry.
		from = c.cfg.Agent.Address
	}

	// Parse.
	req, rep := &c.req, c.v
	err := req.UnmarshalBinary(pkt)
	*rep = Verdict{}
	if err != nil {
		if err == mip.ErrUnknownExtension {
			c.Stats.Drops[DropUnknownExt]++
			return ch
		}
		// The fixed part is intact (length checked above) but an extension
		// is not: RFC 5944 code 134. Nothing authenticated, so no MN-HA
		// extension on the reply; fields come from the raw fixed part
		// because a failed parse leaves req partly filled.
		rep.Code = mip.CodePoorlyFormed
		rep.HomeAddr = netip.AddrFrom4([4]byte(pkt[4:8]))
		rep.HomeAgent = netip.AddrFrom4([4]byte(pkt[8:12]))
		rep.ID = binary.BigEndian.Uint64(pkt[16:24])
		c.verdict(-1, from)
		return ch
	}
	rep.HomeAddr = req.HomeAddr
	rep.HomeAgent = req.HomeAgent
	rep.ID = req.ID
	rep.NAI = req.NAI

	// Authenticate (RFC 5944 §3.8.2.1: before anything else looks at the
	// request).
	home := binding.AddrU32(req.HomeAddr)
	ni := c.lookup(req.NAI, home)
	if ni < 0 {
		// No security association: we cannot authenticate the reply either.
		c.viol.record(wall, src, home, req.MHAuth.SPI, req.NAI, violNoSA)
		rep.Code = mip.CodeAdminProhibited
		c.verdict(-1, from)
		return ch
	}
	if v := authFailure(req, &c.nodes[ni], pkt, &c.scratch); v != numViolReasons {
		c.viol.record(wall, src, home, req.MHAuth.SPI, req.NAI, v)
		rep.Code = mip.CodeMNAuthFailed
		c.verdict(-1, from)
		return ch
	}
	if f, ok := c.fas[binding.AddrU32(src.Addr())]; ok {
		if !req.FHAuth.Present || req.FHAuth.SPI != f.spi || !mip.Verify(pkt, req.FHAuth, f.mac, &c.scratch) {
			c.viol.record(wall, src, home, req.FHAuth.SPI, req.NAI, violFAAuth)
			rep.Code = mip.CodeFAAuthFailed
			c.verdict(ni, from)
			return ch
		}
	}

	// Decide and write, then seal.
	c.rq.now, c.rq.ts = now, mip.Timestamp(wall)
	c.rq.srcAddr, c.rq.srcPort = binding.AddrU32(src.Addr()), src.Port()
	c.decide(ni, home, &ch)
	if c.suspended {
		c.Stats.Requests-- // it is handled again, and counted then
		return Change{}
	}
	c.verdict(ni, from)
	return ch
}

// decide judges an authenticated request of node ni for home (as the
// request gave it): the home address, replay, the services asked for; when
// it is accepted, it writes the binding. It fills
// c.v and *ch (the change, written through a pointer: copies of it cost
// on this path). The request's time, source and NAI are in c.rq.
func (c *Core) decide(ni int32, home uint32, ch *Change) {
	req, rep, n := &c.req, c.v, &c.nodes[ni]
	// Resolve the home address: a NAI node with 0.0.0.0 asks us to assign one.
	if n.home != 0 {
		if home == 0 {
			home = n.home
		} else if home != n.home {
			rep.Code = mip.CodeAdminProhibited
			return
		}
	} else if n.hi != 0 {
		if home == 0 {
			home = c.poolAssign(n)
			if home == 0 {
				rep.Code = mip.CodeInsufficientResources
				return
			}
		} else if home < n.lo || home > n.hi {
			rep.Code = mip.CodeAdminProhibited
			return
		}
	}
	if home == c.netLo || home == c.netHi {
		// The home network's own network and broadcast addresses are
		// nobody's home address, whatever a pool's bounds say.
		rep.Code = mip.CodeAdminProhibited
		return
	}
	rep.HomeAddr = binding.U32Addr(home)
	if c.stage && c.conflicts(ni, home) { // (a pool's first free address too: it is a home)
		c.suspended = true // decided again once the staged writes are made
		return
	}
	cur := c.table.GetKey(home, n.fleet)
	if n.fleet != 0 && c.fleetClash(n, cur) { // (129)
		return
	}

	// Replay protection (RFC 5944 §5.7).
	if n.nonceM {
		if uint32(req.ID>>32) != n.nonce {
			n.nonce = randUint32()
			rep.ID = uint64(n.nonce)<<32 | req.ID&0xffffffff
			rep.Code = mip.CodeIDMismatch
			return
		}
	} else {
		last := uint64(0)
		if n.single {
			last = n.lastID
		}
		if cur != nil && cur.ID > last {
			last = cur.ID
		}
		if cur != nil && !cur.Tombstone() && req.ID == cur.ID && binding.AddrU32(req.CareOf) == cur.CareOf && req.Lifetime != 0 && c.natSameSource(cur) {
			c.answerDup(n, home, cur, ch)
			return
		}
		// Seconds compared modulo 2^32 so that the NTP era rollover in
		// 2036 does not look like a 136-year skew.
		d := int64(int32(uint32(req.ID>>32) - uint32(c.rq.ts>>32)))
		if d < -c.tolerance || d > c.tolerance || req.ID <= last {
			rep.ID = c.mismatchID()
			rep.Code = mip.CodeIDMismatch
			return
		}
	}

	// The services asked of this agent: to be its home agent, to
	// reverse-tunnel, an encapsulation.
	if !c.ownAddr(binding.AddrU32(req.HomeAgent)) {
		rep.Code = mip.CodeUnknownHA
		rep.HomeAgent = c.cfg.Agent.Address
		return
	}
	if req.Flags&mip.FlagT != 0 && !(c.revTun && n.revTun) {
		rep.Code = mip.CodeReverseTunnelUnavailable
		return
	}
	// Minimal encapsulation (M, RFC 2004) is never offered: the datapath
	// tunnels only IP-in-IP and GRE, so accepting it would black-hole the
	// node's traffic.
	if (req.Flags&mip.FlagG != 0 && !c.gre) || req.Flags&mip.FlagM != 0 {
		rep.Code = mip.CodeEncapUnavailable
		return
	}

	code := mip.CodeAccepted
	if req.Flags&mip.FlagS != 0 && !c.simul {
		code = mip.CodeAcceptedNoSimultaneous
	}
	if req.Lifetime == 0 || binding.AddrU32(req.CareOf) == home {
		c.deregister(ni, home, code, ch)
	} else {
		c.register(ni, home, cur, code, ch)
	}
}

// deregister writes a de-registration (or, staged, asks for it: stage.go).
// It keeps a tombstone: it orders this write against late updates in the
// group and remembers the Identification. The write is made here rather
// than through Core.commit on purpose: a call more on the registration
// path costs measurably; commit makes the same write for a staged intent.
func (c *Core) deregister(ni int32, home uint32, code mip.Code, ch *Change) {
	req, rep, now := &c.req, c.v, c.rq.now
	if c.stage {
		c.stash(&intent{kind: Deregistered, ni: ni, code: code, ent: binding.Entry{Home: home, Key: c.nodes[ni].fleet, ID: req.ID, Origin: c.id, Node: ni}}, ch)
		return
	}
	n := &c.nodes[ni]
	var e *binding.Entry
	if c.group != nil {
		var err error
		if c.acts, err = c.group.DeregisterNAI(now, home, n.nai, req.ID, c.acts); err != nil {
			refuseWrite(rep, err, c.rq.ts, req.ID)
			return
		}
		e = c.table.GetKey(home, n.fleet)
	} else {
		e = c.table.TombstoneNAI(home, n.fleet, n.nai, req.ID, c.id, now+c.tombLife)
	}
	if n.single {
		n.lastID = req.ID
	}
	c.noteSource(e, c.rq.srcAddr, c.rq.srcPort, req.NAI)
	*ch = Change{Kind: Deregistered}
	if e != nil {
		ch.Entry = *e
	} else {
		ch.Entry = binding.Entry{Home: home, Key: n.fleet, ID: req.ID, Origin: c.id, Node: ni}
	}
	c.Stats.Deregistrations++
	rep.Code = code
	rep.Lifetime = 0
}

// answerDup answers a retransmission of a request already accepted (our
// reply was lost): answering again changes nothing, so it is no replay. The
// reply is the first one's, extensions included.
func (c *Core) answerDup(n *node, home uint32, cur *binding.Entry, ch *Change) {
	c.Stats.Duplicates++
	c.v.Code = mip.CodeAccepted
	c.v.Lifetime = uint16(cur.Remaining(c.rq.now) / time.Second)
	c.natDupReply(cur)
	*ch = Change{Entry: *cur, Dup: true}
	c.dupNets(n, home, cur)
}

// register writes a registration or renewal (or, staged, asks for it), its
// lifetime capped by the agent's and the node's maxima, once the tunnel it
// needs is agreed (a UDP Tunnel Request may deny it: 129, 142). As
// deregister, it writes here, and commit makes the same write for a staged
// intent.
func (c *Core) register(ni int32, home uint32, cur *binding.Entry, code mip.Code, ch *Change) {
	req, rep, now := &c.req, c.v, c.rq.now
	n := &c.nodes[ni]
	if !c.natDecide(n) || c.noIPIP() { // the tunnel: RFC 3519 UDP or the kernel's (nat.go)
		return
	}
	careOf := binding.AddrU32(req.CareOf)
	lt := req.Lifetime
	if lt > c.maxLt {
		lt = c.maxLt
	}
	if n.maxLt != 0 && lt > n.maxLt {
		lt = n.maxLt
	}
	ent := binding.Entry{
		Home:       home,
		Key:        n.fleet,
		CareOf:     careOf,
		HomeAgent:  binding.AddrU32(req.HomeAgent),
		Origin:     c.id,
		ID:         req.ID,
		Node:       ni,
		Granted:    lt,
		Flags:      req.Flags,
		Registered: now,
		Expires:    now + int64(lt)*int64(time.Second),
	}
	c.natEntry(&ent)
	c.mobileNets(n, home, &ent)
	kind := Registered
	moved := true
	if cur != nil && !cur.Tombstone() {
		kind = Renewed
		moved = cur.CareOf != careOf || cur.Flags != req.Flags || natMoved(cur, &ent) || !sameNets(cur, &ent)
	}
	if c.stage {
		c.stash(&intent{kind: kind, moved: moved, ni: ni, code: code, lt: lt, ent: ent}, ch)
		return
	}
	var e *binding.Entry
	var err error
	if c.group != nil {
		if c.acts, err = c.group.RegisterNAI(now, ent, n.nai, c.acts); err == nil {
			e = c.table.GetKey(home, n.fleet)
		}
	} else {
		e, err = c.table.PutNAI(ent, n.nai)
	}
	if err != nil || e == nil {
		refuseWrite(rep, err, c.rq.ts, req.ID)
		return
	}
	c.written(n, e, kind, moved, code, lt, req.ID, &c.rq, req.NAI, rep, ch)
}

// written completes a registration or renewal the table now holds as e:
// the node's replay state, the source the console shows, the verdict, the
// counters, the change and the pool's claims. The inline write (register)
// and the staged one (commit) both end here, so that they cannot drift
// apart.
func (c *Core) written(n *node, e *binding.Entry, kind ChangeKind, moved bool, code mip.Code, lt uint16, id uint64, rq *reqCtx, nai []byte, v *Verdict, ch *Change) {
	if n.single {
		n.lastID = id
	}
	c.noteSource(e, rq.srcAddr, rq.srcPort, nai)
	v.Code, v.Lifetime = code, lt
	if kind == Registered {
		c.Stats.Registrations++
	} else {
		c.Stats.Renewals++
	}
	*ch = Change{Kind: kind, Entry: *e, Moved: moved}
	c.noteClaims(e)
}

// refuseWrite answers a write the table or the group refused: the one place
// where a write's error becomes a reply code. The group holding a newer
// write of the node (another member accepted a newer request) is, as far as
// the node can tell, a replay: 133, with our time (ts) in the
// Identification so that it resynchronises. Anything else is the table
// without room (nothing is evicted to make it): 130. id is the request's
// Identification.
func refuseWrite(v *Verdict, err error, ts, id uint64) {
	if errors.Is(err, hasync.ErrStale) {
		v.ID = mismatchAt(ts, id)
		v.Deny(mip.CodeIDMismatch)
		return
	}
	v.Deny(mip.CodeInsufficientResources)
}

// mismatchID is the Identification of a 133 reply (mip.MismatchID): our
// time of day in the upper half, so that the node resynchronises, the
// request's lower half kept.
func (c *Core) mismatchID() uint64 { return mismatchAt(c.rq.ts, c.req.ID) }

func mismatchAt(ts, id uint64) uint64 { return ts&^0xffffffff | id&0xffffffff }
