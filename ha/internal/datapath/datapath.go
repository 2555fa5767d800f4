// Package datapath programs the Linux kernel for the active Home Agent over
// rtnetlink (github.com/mdlayher/netlink; never by running ip):
//
//   - the virtual address on the home interface (RTM_NEWADDR/DELADDR);
//   - one IP-in-IP device (and optionally one GRE device) in external
//     (collect_md) mode, and per mobile node a /32 host route through it with
//     a lightweight-tunnel encapsulation (LWTUNNEL_ENCAP_IP: outer destination
//     the care-of address), tagged with our own route protocol number and
//     given a metric of its own (see docs/datapath.md: without distinct
//     metrics the kernel's fib_info hash makes N routes cost O(N²));
//   - a proxy neighbour entry (NTF_PROXY, tagged with the same protocol) per
//     away node on the home interface, so that the Home Agent answers ARP for
//     it (RFC 5944 §4.6);
//   - the reverse-tunnel source check (RFC 3024 §5.2): a tc eBPF filter on
//     each tunnel device that drops a decapsulated packet unless its outer
//     source is the care-of address of its inner source's binding
//     (revcheck.go, assembled by hand in bpf.go);
//   - RFC 3519 UDP tunnelling for nodes behind NAT (Config.UDPTunnel): per
//     binding an "encap bpf" /32 route and a home → NAT endpoint map entry,
//     and a tc filter on the uplink that decapsulates (kernel_udptun.go);
//   - reconciliation of all of that with the binding table, and withdrawal
//     when the agent stops being active;
//   - link up/down notifications for the role logic.
//
// One Datapath is driven by one goroutine (the agent's owner loop); its calls
// block for as long as the kernel takes (about 10 µs per binding, batched).
// docs/datapath.md has the design, the kernel facts and the measurements.
package datapath

import (
	"errors"
	"iter"
	"log/slog"
	"net/netip"
)

// Encap is the outer encapsulation of a binding's tunnel.
type Encap uint8

const (
	IPIP Encap = iota // IP in IP (RFC 2003), the default
	GRE               // GRE (RFC 2784), when the node set the G bit
	// UDP is RFC 3519 UDP tunnelling for a node behind NAT: IPv4/UDP(434 →
	// the NAT's mapped port)/tunnel data header/inner packet, to
	// Binding.NAT, by eBPF (udptun_*.go); Config.UDPTunnel enables it.
	UDP
)

func (e Encap) String() string {
	switch e {
	case IPIP:
		return "ipip"
	case GRE:
		return "gre"
	case UDP:
		return "udp"
	}
	return "encap?"
}

// Binding is what the kernel needs of one mobility binding.
type Binding struct {
	Home   netip.Addr // the mobile node's home address: /32 route and proxy ARP entry
	CareOf netip.Addr // outer destination of the tunnel
	Src    netip.Addr // outer source; zero: Config.Local (zero too: the kernel picks)
	Encap  Encap
	// Reverse records the T bit (RFC 3024). The reverse-tunnel check
	// (Config.ReverseCheck) admits decapsulated packets from the care-of
	// address of every binding alike: a node that did not ask for reverse
	// tunnelling may still use it, from its own care-of address only.
	Reverse bool
	// NAT is where a UDP-tunnelled binding's tunnel data goes (Encap UDP):
	// the source address and port its registration arrived from, i.e. the
	// NAT's mapping. Tunnel data is accepted from exactly there; a
	// re-registration from a new mapping moves it (a map update: the route
	// stays). The local end is Src, else Config.Local: the virtual
	// address, so that after a failover the NAT still accepts the new
	// member's tunnel data.
	NAT netip.AddrPort
}

// Config says what to program. Zero values take the defaults noted.
type Config struct {
	HomeIfname string // home interface: VIP, proxy ARP entries (required)
	TunnelName string // IP-in-IP device, default "mip0"
	// GRETunnelName is the GRE device, created by Setup when non-empty; when
	// the kernel lacks GRE, Setup logs why and Supports(GRE) is false.
	GRETunnelName string
	Protocol      uint8 // rtm_protocol of our routes and proxies, default 77
	ProxyARP      bool  // answer ARP for away nodes' home addresses on the home link
	// ProxyByRoute answers that ARP through the home interface's proxy_arp
	// setting instead of one NTF_PROXY entry per node: the kernel then
	// answers for exactly the addresses our /32 routes send into the
	// tunnel. Use it beyond ~20,000 nodes: the kernel keeps proxy entries
	// in 16 hash buckets, so N entries cost O(N²) (100,000 took 25 s).
	// Caveat: proxy_arp also answers for any address routed out of another
	// interface; on a home link whose hosts only ARP for on-link addresses
	// that is just our /32s. Config: datapath.proxy_arp_mode = "interface".
	ProxyByRoute bool
	// ReverseCheck drops (and counts) a decapsulated packet unless its
	// outer source is the care-of address of the binding of its inner
	// source (RFC 3024 §5.2): an eBPF tc filter on each tunnel device and a
	// home → care-of map sized Capacity (revcheck.go). Without it only
	// rp_filter applies (the inner source must be some registered home).
	ReverseCheck bool
	Capacity     int        // bindings the reverse-check map holds (the table's capacity)
	Local        netip.Addr // default outer source: the virtual address (or own address)
	TTL          uint8      // outer TTL, default 64 (0 in the kernel would copy the inner TTL)
	MetricBase   uint32     // first route metric handed out, default 1024
	// TunnelDF sets Don't Fragment in the outer header of every packet the
	// IP-in-IP and GRE routes encapsulate. RFC 2003 §3.1 requires it when
	// the inner packet has DF, and the kernel's encap routes cannot copy it
	// per packet, so it is on for all: inner packets without DF are already
	// fragmented to the tunnel MTU before encapsulation. With it the
	// tunnel devices learn the path MTU to the care-of address from ICMP
	// and answer DF senders with it, and Setup has forwarding cut packets
	// without DF at that MTU (tunneldf.go); without it a narrower hop
	// beyond the agent fragments the outer packets instead.
	TunnelDF bool
	// SendRedirects leaves ICMP redirects as the host has them. False (the
	// default): Setup turns send_redirects off for "all" and, with
	// accept_redirects, on every interface it forwards on: a one-armed
	// agent forwards out of the interface a packet came in on, and the
	// kernel's redirect would tell hosts to bypass it (redirects.go).
	SendRedirects bool
	// UDPTunnel loads the RFC 3519 UDP tunnel programs at Setup and
	// attaches the decapsulating tc filter to UplinkIfname's ingress
	// (removed at Close); Supports(UDP) says whether that worked.
	UDPTunnel bool
	// UplinkIfname is where tunnel data from NATs arrives and the device
	// of the UDP-tunnelled /32 routes; default HomeIfname.
	UplinkIfname string
	// TunnelMTU is the largest inner packet the UDP tunnel carries; zero:
	// the uplink's MTU less the 32 bytes the tunnel adds. Forwarded packets
	// above it are fragmented before encapsulation, or, with DF, answered
	// with ICMP "fragmentation needed" carrying it (RFC 3519 §4.8). The
	// routes hold it plus 32 as RTAX_MTU: the kernel takes the program's
	// headroom off.
	TunnelMTU uint32
	// TCPMSSClamp lowers the MSS option of TCP SYNs entering or leaving
	// the UDP tunnel to the tunnel MTU less 40, in the eBPF programs
	// (udptun_mss.go), for correspondents whose ICMP is filtered.
	TCPMSSClamp bool
	// NetNS is an open file descriptor of the network namespace to program
	// (tests); 0: the caller's namespace.
	NetNS  int
	Logger *slog.Logger // default: discard

	// anyTunnel lets tests adopt any existing device as the tunnel (the
	// build machines' kernel has no ipip; encap routes are accepted on veth).
	anyTunnel bool
}

const (
	DefaultTunnelName = "mip0"
	DefaultProtocol   = 77
	DefaultTTL        = 64
	DefaultMetricBase = 1024
)

// LinkEvent is an RTM_NEWLINK/RTM_DELLINK notification.
type LinkEvent struct {
	Index   int
	Name    string
	Up      bool // administratively up (IFF_UP)
	Carrier bool // lower layer up (IFF_LOWER_UP)
	Deleted bool // RTM_DELLINK
}

// Datapath is the kernel side of the active Home Agent. All methods are meant
// to be called from one goroutine; Links may be read from any.
type Datapath interface {
	// Setup resolves the home interface and creates (or verifies) the tunnel
	// device(s) in external mode, up, with forwarding on and rp_filter strict
	// on the tunnel device. It says which kernel option is missing when it
	// cannot. Call it once after Open; again after the home link reappears.
	Setup() error
	// Supports reports whether Setup found or made a device for e.
	Supports(e Encap) bool
	// AddVIP adds the virtual address to the home interface (present: no
	// error); DelVIP removes it (absent: no error).
	AddVIP(p netip.Prefix) error
	DelVIP(p netip.Prefix) error
	// Apply installs or replaces adds and removes dels in one batch. It
	// returns nil when everything succeeded, else a slice of length
	// len(adds)+len(dels): errs[i] concerns adds[i], errs[len(adds)+j]
	// concerns dels[j]. Removing what is absent is not an error.
	Apply(adds []Binding, dels []netip.Addr) []error
	// Reconcile lists our routes and proxy entries and converges them to
	// want: stale ones removed, missing or different ones (re)installed. It
	// returns how many kernel objects it added/replaced and removed. want
	// is walked once (the agent passes its table's range: no copy of it).
	Reconcile(want iter.Seq[Binding]) (added, removed int, err error)
	// The periodic check is Reconcile in steps, so that neither reading
	// the kernel (150–250 ms at 100,000 bindings) nor converging a large
	// table stalls the caller: BeginScan on the owner's goroutine,
	// ScanKernel on any other (its own socket; the owner may go on calling
	// Apply meanwhile), then on the owner's goroutine ConvergeStart,
	// ConvergeSome for each slice of the current want (every binding once
	// over all slices; those that arrive or go meanwhile went through
	// Apply and are skipped, left to the next check), ConvergeFinish. A
	// Reconcile or Withdraw in between makes the scan stale: any step may
	// say ErrScanStale, and then nothing more is done. One scan at a time.
	BeginScan() *Scan
	ScanKernel(s *Scan)
	ConvergeStart(s *Scan) error
	ConvergeSome(s *Scan, some iter.Seq[Binding]) error
	ConvergeFinish(s *Scan) (added, removed int, err error)
	// Withdraw removes all our routes and proxy entries and every address
	// AddVIP added (on becoming standby, and at clean shutdown).
	Withdraw() error
	// Links delivers link notifications; events are dropped (and counted)
	// when the reader is slow. Closed by Close.
	Links() <-chan LinkEvent
	// Stats returns counters (monotonic since Open).
	Stats() Stats
	// Close releases the sockets; it leaves the kernel state as it is.
	Close() error
}

// Stats are the datapath's counters.
type Stats struct {
	Batches     uint64 // Apply/Reconcile/Withdraw batches sent
	Messages    uint64 // rtnetlink requests sent in batches
	Errors      uint64 // requests the kernel refused
	LinkEvents  uint64
	LinkDropped uint64 // link events dropped: channel full
	Routes      int    // routes we believe installed (per-home metrics held)

	// The reverse-tunnel check's verdicts (Config.ReverseCheck), summed
	// over CPUs: packets passed, dropped for coming from another care-of
	// address than their inner source's binding, dropped for an inner
	// source that is no registered home, dropped as not IPv4 or without
	// tunnel metadata.
	ReversePassed, ReverseWrongCareOf, ReverseUnknownHome, ReverseMalformed uint64

	// The UDP tunnel's verdicts (Config.UDPTunnel), summed over CPUs:
	// packets encapsulated towards a NAT, dropped for want of an endpoint
	// (routed to the program but the binding has none) or because the
	// kernel refused the push; tunnel data decapsulated and forwarded,
	// keepalives (counted apart and answered by the local stack, never
	// forwarded), and tunnel data dropped for an outer source address or
	// port other than the binding's NAT mapping, an inner source with no
	// UDP binding, an inner protocol other than IPv4 (GRE, minimal), or a
	// refused strip.
	UDPEncapsulated, UDPNoEndpoint, UDPEncapFailed                            uint64
	UDPDecapsulated, UDPKeepalives                                            uint64
	UDPWrongAddr, UDPWrongPort, UDPUnknownHome, UDPNextHeader, UDPDecapFailed uint64
	UDPMSSClamped                                                             uint64 // TCP SYNs whose MSS was lowered (Config.TCPMSSClamp)
}

// ErrUnsupported is returned (wrapped) for a binding whose encapsulation has
// no device (GRE without kernel support): reply 139 to the node.
var ErrUnsupported = errors.New("encapsulation not available in this kernel")
