package mip

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"hash"
	"time"
)

// NewHMACMD5 returns the default Mobile IP authentication algorithm, HMAC-MD5
// (RFC 5944 §3.5.1, RFC 2104), keyed with the mobility security association's
// shared secret. Keep one per security association (or per key) and reuse it:
// Reset is cheap and allocation-free, New is not.
func NewHMACMD5(key []byte) hash.Hash { return hmac.New(md5.New, key) }

// AppendMHAuth appends a Mobile-Home Authentication extension (type 32,
// length 4+h.Size(), SPI, authenticator) to b. The authenticator is the keyed
// hash h of b[start:] (the message, starting at its type byte, with every
// prior extension) followed by the new extension's type, length and SPI
// (§3.5.1). h is Reset before use. It allocates nothing when cap(b) suffices.
func AppendMHAuth(b []byte, start int, spi uint32, h hash.Hash) []byte {
	return appendAuth(b, ExtMHAuth, start, spi, h)
}

// AppendFHAuth appends a Foreign-Home Authentication extension (type 34);
// otherwise as AppendMHAuth.
func AppendFHAuth(b []byte, start int, spi uint32, h hash.Hash) []byte {
	return appendAuth(b, ExtFHAuth, start, spi, h)
}

func appendAuth(b []byte, typ uint8, start int, spi uint32, h hash.Hash) []byte {
	b = append(b, typ, uint8(4+h.Size()))
	b = binary.BigEndian.AppendUint32(b, spi)
	h.Reset()
	h.Write(b[start:])
	return h.Sum(b)
}

// Verify reports whether a's authenticator is the keyed hash h (Reset first)
// of msg[:a.Covered]. The comparison takes constant time. scratch receives the
// computed sum; keep it in a long-lived struct so that nothing is allocated.
// Verify returns false for an absent extension.
func Verify(msg []byte, a AuthExt, h hash.Hash, scratch *[64]byte) bool {
	if !a.Present || a.Covered < 0 || a.Covered > len(msg) {
		return false
	}
	h.Reset()
	h.Write(msg[:a.Covered])
	sum := h.Sum(scratch[:0])
	return len(sum) == len(a.Authenticator) && hmac.Equal(sum, a.Authenticator)
}

// ntpEpochOffset is the number of seconds from 1900-01-01 (NTP era 0) to
// 1970-01-01 (Unix epoch).
const ntpEpochOffset = 2208988800

// Timestamp returns t as a 64-bit NTP timestamp (RFC 5944 §5.7.1, RFC 1305):
// seconds since 1900 in the high 32 bits, binary fraction in the low 32 bits.
// The seconds wrap in 2036 (NTP era 1), as on the wire.
func Timestamp(t time.Time) uint64 {
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := (uint64(t.Nanosecond()) << 32) / 1e9
	return secs<<32 | frac&0xffffffff
}

// TimestampTime is the inverse of Timestamp, resolving the seconds into NTP
// era 0 (1900–2036) or era 1 (2036–2172) as RFC 4330 §3 suggests: a value
// with the most significant bit clear is taken to be after 2036.
func TimestampTime(id uint64) time.Time {
	secs := int64(id >> 32)
	if secs&0x80000000 == 0 {
		secs += 1 << 32
	}
	nsec := (int64(id&0xffffffff)*1e9 + 1<<31) >> 32
	return time.Unix(secs-ntpEpochOffset, nsec)
}

// MismatchID is the Identification a home agent puts in a reply with code
// 133 when the request's timestamp is out of its tolerance (§5.7.1): the low
// 32 bits copied from the request, the high 32 bits from the agent's clock,
// so that the mobile node can resynchronise.
func MismatchID(requestID uint64, now time.Time) uint64 {
	return Timestamp(now)&^0xffffffff | requestID&0xffffffff
}

// ResyncID is the Identification a mobile node sends after a 133 reply: the
// seconds from the agent's reply, plus the time elapsed since the reply
// arrived, and a fresh fraction.
func ResyncID(replyID uint64, sinceReply time.Duration, now time.Time) uint64 {
	secs := replyID>>32 + uint64(sinceReply/time.Second)
	return secs<<32 | Timestamp(now)&0xffffffff
}
