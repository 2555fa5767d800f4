package attack

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// NamespaceCheck reports whether the calling process runs in a network
// namespace other than the host's, by comparing the /proc/self/ns/net link
// with PID 1's. Where PID 1's link cannot be read (a supervisor without
// ptrace rights over it, as on the build machines), kthreadd's (PID 2, a
// kernel thread: always in the initial namespace) stands in for it. Not being
// able to read either counts as "not in a namespace": the safe answer.
func NamespaceCheck() (inNetNS bool, why string) {
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return false, fmt.Sprintf("cannot read /proc/self/ns/net (%v)", err)
	}
	ref, who := "", "PID 1"
	init, err := os.Readlink("/proc/1/ns/net")
	if err == nil {
		ref = init
	} else if st, serr := os.ReadFile("/proc/2/status"); serr == nil && strings.HasPrefix(string(st), "Name:\tkthreadd\n") {
		if k, kerr := os.Readlink("/proc/2/ns/net"); kerr == nil {
			ref, who = k, "kthreadd, PID 2 (PID 1's link is unreadable)"
		}
	}
	if ref == "" {
		return false, fmt.Sprintf("cannot read /proc/1/ns/net (%v) nor kthreadd's: cannot tell whether this is a lab namespace", err)
	}
	if self == ref {
		return false, fmt.Sprintf("this process is in the network namespace of %s (%s): the host's", who, self)
	}
	return true, fmt.Sprintf("network namespace %s, %s in %s", self, who, ref)
}

// CheckTarget is the tool's safety rule: hostile traffic goes to loopback
// (127.0.0.0/8), or anywhere only from inside a network namespace that is not
// the host's (a test's throw-away lab). VRRP adverts go to the multicast
// group 224.0.0.18 of the local link whatever the target, so they need a
// namespace even with a loopback target. inNetNS is NamespaceCheck's answer
// (a parameter so that the rule itself is testable).
func CheckTarget(target netip.Addr, modes Modes, inNetNS bool, why string) error {
	target = target.Unmap()
	if !target.Is4() || target.IsUnspecified() || target.IsMulticast() || target == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return fmt.Errorf("hostile: target %v: need one unicast IPv4 address (e.g. 127.0.0.1, or the agent's address in a lab namespace)", target)
	}
	if modes.Has(ModeVRRP) && !inNetNS {
		return fmt.Errorf("hostile: mode vrrp multicasts to 224.0.0.18 on a real link: refused outside a network namespace (%s); run it with `ip netns exec LAB-NS` / nsenter in a namespace a test created", why)
	}
	if !target.IsLoopback() && !inNetNS {
		return fmt.Errorf("hostile: target %v is outside 127.0.0.0/8 and %s: refused; use a loopback target or run inside a network namespace a test created", target, why)
	}
	return nil
}
