package agent

import (
	"net/netip"
	"time"

	"github.com/hagent/hagent/ha/internal/binding"
	"github.com/hagent/hagent/ha/internal/console"
	"github.com/hagent/hagent/ha/mip"
)

// violationRing is how many authentication failures `show violations`
// keeps (as IOS `show ip mobile violation`): the most recent ones; older
// ones are only counted.
const violationRing = 64

// violationNAI bounds the NAI a violation keeps.
const violationNAI = 32

// Reasons a registration failed authentication.
const (
	violNoSA    uint8 = iota // no security association for the NAI or home address (129)
	violNoAuth               // no MN-HA authentication extension (131)
	violBadSPI               // the extension's SPI is not the node's (131)
	violBadAuth              // the authenticator does not verify (131)
	violFAAuth               // the foreign agent's FA-HA authentication failed (132)
	numViolReasons
)

var violNames = [numViolReasons]string{
	violNoSA:    "no security association",
	violNoAuth:  "no MN-HA authentication extension",
	violBadSPI:  "unknown SPI",
	violBadAuth: "bad authenticator",
	violFAAuth:  "FA-HA authentication failed",
}

type violation struct {
	wall      int64 // unix ns
	src, home uint32
	spi       uint32
	port      uint16
	reason    uint8
	naiLen    uint8
	nai       [violationNAI]byte
}

// violations is a fixed ring written on the registration path: recording
// one copies a few words and allocates nothing.
type violations struct {
	ring  [violationRing]violation
	next  int    // where the next one goes
	total uint64 // recorded since start
}

func (v *violations) record(wall time.Time, src netip.AddrPort, home uint32, spi uint32, nai []byte, reason uint8) {
	x := &v.ring[v.next]
	x.wall = wall.UnixNano()
	x.src, x.port = binding.AddrU32(src.Addr()), src.Port()
	x.home, x.spi, x.reason = home, spi, reason
	x.naiLen = uint8(copy(x.nai[:], nai))
	v.next = (v.next + 1) % violationRing
	v.total++
}

// show lists the recorded violations, newest first; limit > 0 keeps that
// many.
func (v *violations) show(limit int) *console.Violations {
	out := &console.Violations{Total: v.total, Capacity: violationRing, Rows: []console.Violation{}}
	n := int(min(v.total, violationRing))
	if limit > 0 && limit < n {
		n = limit
	}
	for i := 0; i < n; i++ {
		x := &v.ring[(v.next-1-i+2*violationRing)%violationRing]
		out.Rows = append(out.Rows, console.Violation{
			Time:   time.Unix(0, x.wall).UTC().Format("2006-01-02T15:04:05.000Z07:00"),
			Source: netip.AddrPortFrom(binding.U32Addr(x.src), x.port).String(),
			Home:   binding.U32Addr(x.home).String(),
			NAI:    string(x.nai[:x.naiLen]),
			SPI:    x.spi,
			Reason: violNames[x.reason],
		})
	}
	return out
}

// authFailure checks the MN-HA authentication extension (RFC 5944
// §3.8.2.1) and says why it fails, numViolReasons when it verifies.
func authFailure(req *mip.Request, n *node, pkt []byte, scratch *[64]byte) uint8 {
	switch {
	case !req.MHAuth.Present:
		return violNoAuth
	case req.MHAuth.SPI != n.cfg.SPI:
		return violBadSPI
	case !mip.Verify(pkt, req.MHAuth, n.mac, scratch):
		return violBadAuth
	}
	return numViolReasons
}

// noteSource records where the request that wrote e came from, for `show
// bindings` (allocation-free: the Source is preallocated beside e).
func (c *Core) noteSource(e *binding.Entry, addr uint32, port uint16, nai []byte) {
	if s := c.table.SourceOf(e); s != nil {
		s.Addr, s.Port = addr, port
		s.SetNAI(nai)
	}
}
