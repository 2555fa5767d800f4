package datapath

import (
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The registration path calls Apply once per UDP batch, and the house rule
// is no allocation there. mdlayher/netlink marshals every message into a
// buffer of its own and returns acks as fresh []Message: 650–900 B per
// request, 92 MB for a 100,000-binding takeover. runRaw writes the window
// as one buffer it built in place (nlmsghdr + body, k.arena) with write(2)
// on the socket's descriptor, and reads the acks into one reused buffer.
// The bytes are the same as mdlayher's (the nltest goldens check those;
// TestNetnsApplyAllocatesNothing checks this path on a real kernel).

const (
	nlmsgHdrLen   = 16
	nlmFAckTLVs   = 0x200 // NLM_F_ACK_TLVS: extended-ack attributes follow
	nlmFCapped    = 0x100 // NLM_F_CAPPED: only the request's header is echoed
	nlmsgerrAttrM = 1     // NLMSGERR_ATTR_MSG: the kernel's message, a C string
)

var zeroHdr [nlmsgHdrLen]byte

// runRaw sends one window (chunk = ops[start:start+len(chunk)]) and maps
// its acks; fail records an op's error by its index in ops.
func (k *kernel) runRaw(chunk []op, start int, build func(o *op, b []byte) []byte, fail func(int, error)) {
	// Sequence numbers stay contiguous within a window: a window that
	// would wrap starts again at 1.
	if k.seq > ^uint32(0)-uint32(len(chunk))-1 {
		k.seq = 0
	}
	first := k.seq + 1
	k.arena = k.arena[:0]
	for i := range chunk {
		h := opHeader[chunk[i].what]
		flags := netlink.Request | h.flags
		if i == len(chunk)-1 {
			flags |= netlink.Acknowledge
		}
		at := len(k.arena)
		k.arena = append(k.arena, zeroHdr[:]...)
		k.arena = build(&chunk[i], k.arena)
		for len(k.arena)%4 != 0 {
			k.arena = append(k.arena, 0)
		}
		ne.PutUint32(k.arena[at:], uint32(len(k.arena)-at))
		ne.PutUint16(k.arena[at+4:], uint16(h.typ))
		ne.PutUint16(k.arena[at+6:], uint16(flags))
		ne.PutUint32(k.arena[at+8:], k.nextSeq())
	}
	k.stats.Batches++
	k.stats.Messages += uint64(len(chunk))
	k.wbuf = k.arena
	err := k.raw.Write(k.wfn)
	if err == nil {
		err = k.werr
	}
	if err != nil {
		for i := range chunk {
			fail(start+i, k.opError(&chunk[i], err))
		}
		return
	}
	last := first + uint32(len(chunk)) - 1
	var failed [window]bool // ops the kernel refused (not failed again on a timeout)
	_ = k.c.SetReadDeadline(time.Now().Add(ackTimeout))
	defer k.c.SetReadDeadline(time.Time{})
	for {
		err := k.raw.Read(k.rfn)
		if err == nil {
			err = k.rerr
		}
		if err != nil {
			// The socket itself failed (ENOBUFS, timeout): the fate of the
			// window's unanswered requests is unknown; Reconcile repairs.
			for i := range chunk {
				if !failed[i] {
					fail(start+i, k.opError(&chunk[i], fmt.Errorf("no acknowledgement: %w", err)))
				}
			}
			return
		}
		for b := k.rbuf[:k.rn]; len(b) >= nlmsgHdrLen; {
			l := int(ne.Uint32(b))
			if l < nlmsgHdrLen || l > len(b) {
				break // malformed: the kernel never sends that
			}
			m := b[:l]
			if n := (l + 3) &^ 3; n < len(b) {
				b = b[n:]
			} else {
				b = nil
			}
			if ne.Uint16(m[4:]) != unix.NLMSG_ERROR || len(m) < nlmsgHdrLen+4 {
				continue
			}
			seq := ne.Uint32(m[8:])
			if seq-first >= uint32(len(chunk)) {
				continue // a late answer to an earlier window
			}
			if code := int32(ne.Uint32(m[16:])); code != 0 {
				i := int(seq - first)
				if e := unix.Errno(-code); e != chunk[i].ignore {
					failed[i] = true
					fail(start+i, k.opError(&chunk[i], extack(e, m)))
				}
			}
			if seq == last {
				return
			}
		}
	}
}

// rawWrite and rawRead run inside RawConn.Write/Read (the runtime's poller
// waits for the descriptor and honours the read deadline).
func (k *kernel) rawWrite(fd uintptr) bool {
	_, err := unix.Write(int(fd), k.wbuf)
	if err == unix.EAGAIN || err == unix.EINTR {
		return false
	}
	k.werr = err
	return true
}

func (k *kernel) rawRead(fd uintptr) bool {
	n, err := unix.Read(int(fd), k.rbuf)
	if err == unix.EAGAIN || err == unix.EINTR {
		return false
	}
	k.rn, k.rerr = n, err
	return true
}

// extack adds the kernel's extended-ack message, when there is one, to e
// (m is the whole NLMSG_ERROR message).
func extack(e unix.Errno, m []byte) error {
	flags := ne.Uint16(m[6:])
	if flags&nlmFAckTLVs == 0 {
		return e
	}
	at := nlmsgHdrLen + 4 + nlmsgHdrLen // error code, then the request's header …
	if flags&nlmFCapped == 0 && len(m) >= nlmsgHdrLen+4+4 {
		at = nlmsgHdrLen + 4 + int(ne.Uint32(m[nlmsgHdrLen+4:])) // … or all of it
		at = (at + 3) &^ 3
	}
	if at > len(m) {
		return e
	}
	var msg string
	_ = walk(m[at:], func(typ uint16, v []byte) error {
		if typ == nlmsgerrAttrM {
			if i := len(v); i > 0 && v[i-1] == 0 {
				v = v[:i-1]
			}
			msg = string(v)
		}
		return nil
	})
	if msg == "" {
		return e
	}
	return fmt.Errorf("%w (kernel: %s)", e, msg)
}
