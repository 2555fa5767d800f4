//go:build !linux

package sim

import (
	"net"
	"net/netip"
	"syscall"
)

// batchConn falls back to one system call per datagram where recvmmsg and
// sendmmsg do not exist.
type batchConn struct{ c *net.UDPConn }

func newBatchConn(c *net.UDPConn, size int) (*batchConn, error) { return &batchConn{c: c}, nil }

func (b *batchConn) readBatch(msgs []message) (int, error) {
	n, addr, err := b.c.ReadFromUDPAddrPort(msgs[0].buf)
	if err != nil {
		return 0, err
	}
	msgs[0].n, msgs[0].addr = n, addr
	return 1, nil
}

func (b *batchConn) writeBatch(msgs []message, withAddr bool) (int, error) {
	for i, m := range msgs {
		var err error
		if withAddr {
			_, err = b.c.WriteToUDPAddrPort(m.buf, m.addr)
		} else {
			_, err = b.c.Write(m.buf)
		}
		if err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}

func reusePort(_, _ string, c syscall.RawConn) error { return nil }

const haveReusePort = false

const gsoMaxSegs = 64

type gso struct{}

func newGSO() *gso { return nil }

func (g *gso) write(c *net.UDPConn, buf []byte, seg int, addr netip.AddrPort) (bool, error) {
	return false, nil
}
