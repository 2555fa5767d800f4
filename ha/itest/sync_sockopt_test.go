package itest

import "golang.org/x/sys/unix"

// setTTL sets the unicast IP TTL of socket fd.
func setTTL(fd, ttl int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, ttl) }
