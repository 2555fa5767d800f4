// Package attack generates and sends hostile input to a Home Agent: mutated
// and random registration datagrams (UDP 434), mutated group-protocol
// messages (hasync, docs/hasync-spec.md), malformed VRRP advertisements (IP
// protocol 112) and floods of well-formed registrations. It is the engine of
// tools/hostile; tests import it to check that every kind it sends is the
// defect it claims to be.
//
// Every generated packet is deliberately invalid for its receiver, except the
// flood's correctly authenticated pool registrations and one correctly
// authenticated group message that is then replayed: those exist to fill the
// table and to exercise the replay window.
//
// Safety: see CheckTarget. Nothing is sent unless the target is loopback or
// the process runs in a network namespace other than the host's.
package attack

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/hagent/hagent/ha/mip"
)

// Mode is one kind of hostile traffic.
type Mode uint8

const (
	ModeUDP434 Mode = 1 << iota // mutated and random registration datagrams
	ModeGroup                   // mutated group-protocol messages
	ModeVRRP                    // malformed VRRP adverts (raw socket, 224.0.0.18)
	ModeFlood                   // well-formed registrations for unknown nodes and distinct home addresses
)

// Modes is a set of modes.
type Modes uint8

// Has reports whether m is in s.
func (s Modes) Has(m Mode) bool { return s&Modes(m) != 0 }

// List returns the modes of s in a fixed order.
func (s Modes) List() []Mode {
	var l []Mode
	for _, m := range []Mode{ModeUDP434, ModeGroup, ModeVRRP, ModeFlood} {
		if s.Has(m) {
			l = append(l, m)
		}
	}
	return l
}

func (m Mode) String() string {
	switch m {
	case ModeUDP434:
		return "udp434"
	case ModeGroup:
		return "group"
	case ModeVRRP:
		return "vrrp"
	case ModeFlood:
		return "flood"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseModes parses "udp434,group,vrrp,flood" (or "all").
func ParseModes(s string) (Modes, error) {
	var ms Modes
	for _, f := range strings.Split(s, ",") {
		switch strings.TrimSpace(f) {
		case "udp434":
			ms |= Modes(ModeUDP434)
		case "group":
			ms |= Modes(ModeGroup)
		case "vrrp":
			ms |= Modes(ModeVRRP)
		case "flood":
			ms |= Modes(ModeFlood)
		case "all":
			ms |= Modes(ModeUDP434 | ModeGroup | ModeVRRP | ModeFlood)
		case "":
		default:
			return 0, fmt.Errorf("hostile: -modes: unknown mode %q: use a comma-separated list of udp434, group, vrrp, flood (or all)", f)
		}
	}
	if ms == 0 {
		return 0, fmt.Errorf("hostile: -modes %q selects nothing: use udp434, group, vrrp and/or flood", s)
	}
	return ms, nil
}

// Registration seeds: the golden requests of ha/mip's tests (and FuzzRequest's
// seed corpus), copied because Go does not export test files. Key
// "hagent-test-key!", SPI 256.
const (
	GoldenRequestHex = "010a07080a010005c0000201c6336407e5a7a441b2f38920" +
		"830f6d6e31406578616d706c652e6e6574" +
		"2014" + "00000100" + "a023357f42e8a7e642e7d2cc3f2cd031"
	GoldenRequestNoNAIHex = "010a07080a010005c0000201c6336407e5a7a441b2f38920" +
		"2014" + "00000100" + "50cb3e826bd2bb0553bef9c6e98f7543"
)

// Group protocol constants (docs/hasync-spec.md §3; ha/internal/hasync is
// internal to ha/, so the layout is written here from the spec and the
// integration test checks it against the real codec).
const (
	GroupHeaderLen   = 20
	GroupICVLen      = 16
	GroupMaxDatagram = 1472
	groupVersion     = 2
)

// Config is what the generators need to know about the target. Zero values
// leave out the kinds that need them (no group key: no replay of a valid
// message; no pool key: no correctly authenticated flood).
type Config struct {
	HomeAgent netip.Addr // the agent's address (request's home agent field)
	CareOf    netip.Addr // care-of address put in requests; default: 198.51.100.99

	// Flood: a pool configured on the agent (SPI and key), its first address
	// and size; UnknownBase..+N are home addresses no node owns.
	PoolBase    netip.Addr
	PoolN       int
	PoolSPI     uint32
	PoolKey     []byte
	UnknownBase netip.Addr

	// Group: the group's key and key id (optional), the sender id used for
	// correctly keyed messages (never the agent's own: those are ignored
	// without a count).
	GroupKey    []byte
	GroupKeyID  uint8
	GroupSender uint32

	// VRRP: the configured VRID and virtual address, so that each advert
	// carries exactly the one defect its kind names.
	VRID uint8
	VIP  netip.Addr

	// Seeds are extra registration datagrams (e.g. a fuzz corpus) mutated
	// along with the goldens.
	Seeds [][]byte
}

// Gen generates hostile packets deterministically from a seed.
type Gen struct {
	cfg   Config
	rng   *rand.Rand
	seeds [][]byte
	md5   hash.Hash

	floodI   int    // next pool address of the good flood
	unknownI int    // next unknown home address
	idBase   uint64 // identification of the flood: a timestamp, +1 per request

	replay    []byte // the one valid group message, replayed
	groupSeq  uint32
	groupSess uint32
}

// NewGen returns a generator for cfg seeded with seed.
func NewGen(cfg Config, seed uint64) *Gen {
	if !cfg.CareOf.IsValid() {
		cfg.CareOf = netip.AddrFrom4([4]byte{198, 51, 100, 99})
	}
	if !cfg.UnknownBase.IsValid() {
		cfg.UnknownBase = netip.AddrFrom4([4]byte{203, 0, 113, 0})
	}
	if cfg.GroupSender == 0 {
		cfg.GroupSender = 0x0badc0de
	}
	g := &Gen{cfg: cfg, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), md5: hmac.New(md5.New, []byte("hostile-wrong-key"))}
	for _, h := range []string{GoldenRequestHex, GoldenRequestNoNAIHex} {
		b, _ := hex.DecodeString(h)
		g.seeds = append(g.seeds, b)
	}
	g.seeds = append(g.seeds, cfg.Seeds...)
	g.idBase = mip.Timestamp(time.Now())
	g.groupSess = g.rng.Uint32() | 1
	if cfg.GroupKey != nil {
		// The message replayed: an Update Ack (harmless to the table) from
		// GroupSender, sealed with the right key. Its session is never
		// proven (nobody answers the receiver's challenge): every copy is
		// counted as a message of an unproven session.
		g.replay = g.sealGroup(nil, 2, g.ackBody(nil), cfg.GroupKey, cfg.GroupKeyID)
	}
	return g
}

func (g *Gen) addr(base netip.Addr, i int) netip.Addr {
	v := base.As4()
	n := binary.BigEndian.Uint32(v[:]) + uint32(i)
	binary.BigEndian.PutUint32(v[:], n)
	return netip.AddrFrom4(v)
}

// request appends a well-formed Registration Request for home, MN-HA
// authenticated with key under spi (key nil: no authentication extension).
func (g *Gen) request(b []byte, home netip.Addr, lifetime uint16, spi uint32, key []byte, nai []byte) []byte {
	// Timestamp identifications (RFC 5944 §5.7) from the clock, strictly
	// increasing: a flood that drifted out of the agent's replay tolerance
	// would only test the 133 path.
	g.idBase = max(g.idBase+1, mip.Timestamp(time.Now()))
	r := mip.Request{Flags: mip.FlagT, Lifetime: lifetime, HomeAddr: home, HomeAgent: g.cfg.HomeAgent,
		CareOf: g.cfg.CareOf, ID: g.idBase, NAI: nai}
	if !r.HomeAgent.IsValid() {
		r.HomeAgent = netip.AddrFrom4([4]byte{192, 0, 2, 1})
	}
	start := len(b)
	b, _ = r.AppendBinary(b)
	if key != nil {
		b = mip.AppendMHAuth(b, start, spi, hmac.New(md5.New, key))
	}
	return b
}

func (g *Gen) randBytes(b []byte, n int) []byte {
	for range n {
		b = append(b, byte(g.rng.Uint32()))
	}
	return b
}

// MIP kinds, each a registration datagram with one named defect.
var MIPKinds = []string{"bitflip", "truncate", "overrun", "unknown-critical", "unknown-skippable",
	"dup-auth", "nai-no-auth", "nai-after-auth", "short-auth", "huge-lifetime", "random", "reply-type", "oversize"}

// MIP appends one hostile registration datagram and names its kind.
func (g *Gen) MIP(b []byte) ([]byte, string) {
	kind := MIPKinds[g.rng.IntN(len(MIPKinds))]
	seed := g.seeds[g.rng.IntN(len(g.seeds))]
	home := g.addr(g.cfg.UnknownBase, g.rng.IntN(1<<16))
	wrong := []byte("hostile-wrong-key")
	spi := 256 + g.rng.Uint32N(1<<20)
	switch kind {
	case "bitflip":
		start := len(b)
		b = append(b, seed...)
		for range 1 + g.rng.IntN(8) {
			i := start + g.rng.IntN(len(seed))
			b[i] ^= 1 << g.rng.IntN(8)
		}
	case "truncate":
		// Cut inside the fixed part or an extension (a cut on an extension
		// boundary would be a valid, merely unauthenticated request).
		n := g.rng.IntN(len(seed))
		var r mip.Request
		for n > 0 && r.UnmarshalBinary(seed[:n]) == nil {
			n--
		}
		b = append(b, seed[:n]...)
	case "overrun":
		// A last extension whose length runs past the datagram.
		b = g.request(b, home, 600, 0, nil, nil)
		b = append(b, mip.ExtMHAuth, byte(20+g.rng.IntN(200)), 0, 0, 1, 0)
	case "unknown-critical":
		t := byte(g.rng.IntN(128))
		for t >= mip.ExtMHAuth && t <= mip.ExtFHAuth {
			t = byte(g.rng.IntN(128))
		}
		start := len(b)
		b = g.request(b, home, 600, 0, nil, nil)
		n := g.rng.IntN(16)
		b = append(b, t, byte(n))
		b = g.randBytes(b, n)
		b = mip.AppendMHAuth(b, start, spi, hmac.New(md5.New, wrong))
	case "unknown-skippable":
		t := byte(128 + g.rng.IntN(128))
		if t == mip.ExtNAI || t == mip.ExtUDPTunnelRequest { // both recognised, with a fixed shape
			t++
		}
		start := len(b)
		b = g.request(b, home, 600, 0, nil, nil)
		n := g.rng.IntN(16)
		b = append(b, t, byte(n))
		b = g.randBytes(b, n)
		b = mip.AppendMHAuth(b, start, spi, hmac.New(md5.New, wrong))
	case "dup-auth":
		start := len(b)
		b = g.request(b, home, 600, 0, nil, nil)
		b = mip.AppendMHAuth(b, start, spi, hmac.New(md5.New, wrong))
		b = mip.AppendMHAuth(b, start, spi, hmac.New(md5.New, wrong))
	case "nai-no-auth":
		b = g.request(b, netip.IPv4Unspecified(), 600, 0, nil, []byte(fmt.Sprintf("mn%d@hostile.example", g.rng.IntN(1000))))
	case "nai-after-auth":
		start := len(b)
		b = g.request(b, home, 600, 0, nil, nil)
		b = mip.AppendMHAuth(b, start, spi, hmac.New(md5.New, wrong))
		b = append(b, mip.ExtNAI, 5, 'a', '@', 'b', '.', 'c')
	case "short-auth":
		// An authenticator shorter than 128 bits.
		b = g.request(b, home, 600, 0, nil, nil)
		n := g.rng.IntN(16)
		b = append(b, mip.ExtMHAuth, byte(4+n), 0, 0, 1, 0)
		b = g.randBytes(b, n)
	case "huge-lifetime":
		b = g.request(b, home, 0xffff, spi, wrong, nil)
	case "random":
		b = g.randBytes(b, g.rng.IntN(600))
	case "reply-type":
		start := len(b)
		b = append(b, seed...)
		b[start] = mip.TypeReply
	case "oversize":
		// Larger than any request: the agent's receive buffer is 2 KiB.
		start := len(b)
		b = g.request(b, home, 600, 0, nil, nil)
		for len(b)-start < 3000 {
			b = append(b, 200, 255)
			b = g.randBytes(b, 255)
		}
	}
	return b, kind
}

// Flood kinds.
var FloodKinds = []string{"unknown-node", "pool-wrong-key", "pool-good"}

// Flood appends one well-formed registration: for a home address no node
// owns (authenticated with some key), for the pool with a wrong key, or
// correctly authenticated for the next pool address (distinct addresses until
// the pool wraps). Lifetimes vary, up to the largest the wire carries.
func (g *Gen) Flood(b []byte) ([]byte, string) {
	kinds := FloodKinds
	if g.cfg.PoolKey == nil || g.cfg.PoolN == 0 {
		kinds = kinds[:1]
	}
	kind := kinds[g.rng.IntN(len(kinds))]
	lifetimes := [...]uint16{1, 60, 600, 1800, 0xfffe, 0xffff}
	lt := lifetimes[g.rng.IntN(len(lifetimes))]
	switch kind {
	case "unknown-node":
		g.unknownI++
		b = g.request(b, g.addr(g.cfg.UnknownBase, g.unknownI), lt, 256+g.rng.Uint32N(1<<20), []byte("hostile-unknown-node-key"), nil)
	case "pool-wrong-key":
		b = g.request(b, g.addr(g.cfg.PoolBase, g.rng.IntN(g.cfg.PoolN)), lt, g.cfg.PoolSPI, []byte("hostile-wrong-pool-key"), nil)
	case "pool-good":
		home := g.addr(g.cfg.PoolBase, g.floodI%g.cfg.PoolN)
		g.floodI++
		if lt < 600 {
			lt = 600 // keep the table full for the whole run
		}
		b = g.request(b, home, lt, g.cfg.PoolSPI, g.cfg.PoolKey, nil)
	}
	return b, kind
}

// groupHeader appends a group header (Length filled by sealGroup).
func (g *Gen) groupHeader(b []byte, typ uint8, keyID uint8) []byte {
	g.groupSeq++
	b = append(b, groupVersion, typ, 0, 0, keyID, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, g.cfg.GroupSender)
	b = binary.BigEndian.AppendUint32(b, g.groupSess)
	return binary.BigEndian.AppendUint32(b, g.groupSeq)
}

// sealGroup appends header, body and the ICV (HMAC-SHA-256, first 16 bytes,
// over header and body with the Length set).
func (g *Gen) sealGroup(b []byte, typ uint8, body, key []byte, keyID uint8) []byte {
	start := len(b)
	b = g.groupHeader(b, typ, keyID)
	b = append(b, body...)
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start+GroupICVLen))
	m := hmac.New(sha256.New, key)
	m.Write(b[start:])
	return append(b, m.Sum(nil)[:GroupICVLen]...)
}

// ackBody is an Update Ack body (fig. 11): code, reserved, home, id, origin.
func (g *Gen) ackBody(b []byte) []byte {
	b = append(b, 0, 0, 0, 0)
	b = g.randBytes(b, 16)
	return b
}

// groupBody appends a body of the right size for a random message type.
func (g *Gen) groupBody(b []byte) ([]byte, uint8) {
	typ := uint8(1 + g.rng.IntN(7))
	size := map[uint8]int{1: 32, 2: 20, 3: 8 + 4*g.rng.IntN(9), 4: 12 + 12*g.rng.IntN(4), 5: 16 + 36*g.rng.IntN(5), 6: 16, 7: 12 + 8*128}[typ]
	return g.randBytes(b, size), typ
}

// Group kinds. "ttl1" is sent with IP TTL 1 (the caller's job: see
// GroupNeedsTTL1).
var GroupKinds = []string{"wrong-key", "unknown-key-id", "ttl1", "replay", "truncated", "bad-length",
	"bad-version", "bitflip", "random", "auth-malformed"}

// Group appends one hostile group message and names its kind. ttl1 says the
// message must leave with IP TTL 1.
func (g *Gen) Group(b []byte) (out []byte, kind string, ttl1 bool) {
	kind = GroupKinds[g.rng.IntN(len(GroupKinds))]
	if g.cfg.GroupKey == nil && (kind == "replay" || kind == "auth-malformed") {
		kind = "wrong-key"
	}
	wrongKey := []byte("hostile-wrong-group-key-0123456789")
	sealWrong := func(b []byte) []byte {
		body, typ := g.groupBody(nil)
		return g.sealGroup(b, typ, body, wrongKey, g.cfg.GroupKeyID)
	}
	start := len(b)
	switch kind {
	case "wrong-key":
		b = sealWrong(b)
	case "unknown-key-id":
		body, typ := g.groupBody(nil)
		b = g.sealGroup(b, typ, body, wrongKey, g.cfg.GroupKeyID+1+uint8(g.rng.IntN(255)))
	case "ttl1":
		// Correctly keyed when the key is known: only the TTL is wrong.
		if g.cfg.GroupKey != nil {
			b = g.sealGroup(b, 2, g.ackBody(nil), g.cfg.GroupKey, g.cfg.GroupKeyID)
		} else {
			b = sealWrong(b)
		}
		ttl1 = true
	case "replay":
		b = append(b, g.replay...)
	case "truncated":
		b = sealWrong(b)
		b = b[:start+g.rng.IntN(len(b)-start)]
	case "bad-length":
		b = sealWrong(b)
		l := binary.BigEndian.Uint16(b[start+2:])
		nl := uint16(g.rng.Uint32())
		if nl == l {
			nl++
		}
		binary.BigEndian.PutUint16(b[start+2:], nl)
	case "bad-version":
		b = sealWrong(b)
		v := byte(g.rng.Uint32())
		if v == groupVersion {
			v = 0
		}
		b[start] = v
	case "bitflip":
		b = sealWrong(b)
		for range 1 + g.rng.IntN(8) {
			b[start+g.rng.IntN(len(b)-start)] ^= 1 << g.rng.IntN(8)
		}
	case "random":
		b = g.randBytes(b, g.rng.IntN(GroupMaxDatagram+1))
	case "auth-malformed":
		// Correct key, body that cannot parse: an unknown type, a wrong
		// size, reserved flags or a zero home address.
		switch g.rng.IntN(4) {
		case 0:
			// Types 1–11 are defined; 8 (Leave) is valid with an empty
			// body, 9 and 10 (session challenge, response) with a 12-byte
			// one, 11 (heartbeat) with a 12-byte one too, so an "unknown
			// type" starts at 12.
			b = g.sealGroup(b, uint8(12+g.rng.IntN(244)), g.randBytes(nil, g.rng.IntN(64)), g.cfg.GroupKey, g.cfg.GroupKeyID)
		case 1:
			b = g.sealGroup(b, 1, g.randBytes(nil, 33+g.rng.IntN(16)), g.cfg.GroupKey, g.cfg.GroupKeyID)
		case 2:
			rec := g.randBytes(nil, 32)
			rec[0] = 0x01 | byte(g.rng.Uint32())&0x7f
			b = g.sealGroup(b, 1, rec, g.cfg.GroupKey, g.cfg.GroupKeyID)
		default:
			rec := g.randBytes(nil, 32)
			rec[0] = 0
			copy(rec[8:12], []byte{0, 0, 0, 0})
			b = g.sealGroup(b, 1, rec, g.cfg.GroupKey, g.cfg.GroupKeyID)
		}
	}
	return b, kind, ttl1
}

// ReplayMessage is the one correctly keyed message the "replay" kind sends
// (nil without a group key).
func (g *Gen) ReplayMessage() []byte { return g.replay }

// VRRP kinds, each with exactly one defect.
var VRRPKinds = []string{"bad-checksum", "ttl", "wrong-vrid", "version2", "bad-type", "truncated",
	"interval0", "addr-list", "random"}

const vrrpProto = 112

// vrrpChecksum is RFC 5798 §5.2.8's checksum over the IPv4 pseudo-header.
func vrrpChecksum(src, dst netip.Addr, msg []byte) uint16 {
	s, d := src.As4(), dst.As4()
	sum := uint32(s[0])<<8 | uint32(s[1])
	sum += uint32(s[2])<<8 | uint32(s[3])
	sum += uint32(d[0])<<8 | uint32(d[1])
	sum += uint32(d[2])<<8 | uint32(d[3])
	sum += vrrpProto + uint32(len(msg))
	for ; len(msg) >= 2; msg = msg[2:] {
		sum += uint32(msg[0])<<8 | uint32(msg[1])
	}
	if len(msg) == 1 {
		sum += uint32(msg[0]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// VRRP appends one malformed advertisement (the VRRP payload, without the IP
// header) from src to dst and returns the IP TTL it must be sent with.
// Priority is 254 throughout: a defect the receiver missed would make it
// yield mastership, which the test notices as a role change.
func (g *Gen) VRRP(b []byte, src, dst netip.Addr) (out []byte, ttl uint8, kind string) {
	kind = VRRPKinds[g.rng.IntN(len(VRRPKinds))]
	ttl = 255
	vip := g.cfg.VIP.As4()
	ver, typ, vrid, interval := byte(3), byte(1), g.cfg.VRID, uint16(100)
	addrs := [][4]byte{vip}
	count := -1 // -1: len(addrs)
	breakSum := false
	switch kind {
	case "bad-checksum":
		breakSum = true
	case "ttl":
		ttl = [...]uint8{1, 2, 64, 128, 254}[g.rng.IntN(5)]
	case "wrong-vrid":
		vrid += 1 + uint8(g.rng.IntN(255))
	case "version2":
		ver = 2
	case "bad-type":
		typ = 2 + byte(g.rng.IntN(14))
	case "truncated":
		count = 2 + g.rng.IntN(30)
	case "interval0":
		interval = 0
	case "addr-list":
		other := vip
		other[3] ^= 0x55
		if g.rng.IntN(2) == 0 {
			addrs = [][4]byte{other}
		} else {
			addrs = append(addrs, other)
		}
	case "random":
		start := len(b)
		b = g.randBytes(b, g.rng.IntN(64))
		if len(b)-start >= 8 && vrrpChecksum(src, dst, b[start:]) == 0 {
			b[start+6] ^= 0xff
		}
		return b, ttl, kind
	}
	if count < 0 {
		count = len(addrs)
	}
	start := len(b)
	b = append(b, ver<<4|typ, vrid, 254, byte(count))
	b = binary.BigEndian.AppendUint16(b, interval)
	b = append(b, 0, 0)
	for _, a := range addrs {
		b = append(b, a[:]...)
	}
	c := vrrpChecksum(src, dst, b[start:])
	if breakSum {
		c ^= 1 << g.rng.IntN(16)
	}
	binary.BigEndian.PutUint16(b[start+6:], c)
	return b, ttl, kind
}
