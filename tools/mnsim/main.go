// Command mnsim simulates Mobile IPv4 mobile nodes (RFC 5944) against a home
// agent: one registration, renewal or de-registration, or a load run of many
// nodes; `respond` runs a stand-in home agent for measuring mnsim itself.
//
//	mnsim register   -ha 192.0.2.1 -home 10.1.0.5 -coa 198.51.100.7 -spi 256 -key secret
//	mnsim deregister -ha 192.0.2.1 -home 10.1.0.5 -coa-home -spi 256 -key secret
//	mnsim load       -ha 192.0.2.1 -base 10.1.0.1 -n 10000 -rate 50000 -duration 10s -spi 256 -key secret
//	mnsim respond    -listen 127.0.0.1:4434 -spi 256 -key secret
//	mnsim register   -ha 192.0.2.1 -home 10.1.0.5 -coa 198.51.100.7 -spi 256 -key secret -mobile-network 10.9.0.0/24
//	mnsim register   -ha 192.0.2.1 -home 10.1.0.5 -coa 10.0.0.2 -spi 256 -key secret -udp-tunnel ipip -tun mn0
//
// Exit status: 0 accepted (load: every request answered and accepted),
// 1 denied (load: some timeouts or denials), 2 error or no reply.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hagent/hagent/ha/mip"
	"github.com/hagent/hagent/tools/mnsim/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: mnsim register|renew|deregister|load|respond [flags]   (mnsim <mode> -h lists the flags)`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return 2
	}
	mode, args := args[0], args[1:]
	var err error
	var status int
	switch mode {
	case "register", "renew", "deregister":
		status, err = single(ctx, mode, args, stdout, stderr)
	case "load":
		status, err = load(ctx, args, stdout, stderr)
	case "respond":
		status, err = respond(ctx, args, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return 0
	default:
		err = fmt.Errorf("unknown mode %q; %s", mode, usage)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0 // `mnsim register -h`: the flags were asked for and printed
		}
		fmt.Fprintln(stderr, "mnsim:", strings.TrimPrefix(err.Error(), "mnsim: "))
		return 2
	}
	return status
}

// explain turns the socket errors of an exchange with ha into what they
// mean for the operator. An ICMP port unreachable comes back as
// ECONNREFUSED on the connected UDP socket: the address answers but no
// Home Agent listens on that port.
func explain(err error, ha netip.AddrPort) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("no Home Agent listening at %v (ICMP port unreachable)", ha)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return fmt.Errorf("no route to the Home Agent at %v (ICMP unreachable: check -ha and this host's routes)", ha)
	}
	return err
}

// common are the flags every client mode shares.
type common struct {
	ha, src, key, keyHex, flags, homeAgent string
	spi                                    uint
	jsonOut                                bool
	timeout                                time.Duration
	noVerify                               bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.ha, "ha", "", "home agent `ADDR[:port]` (port 434 by default)")
	fs.StringVar(&c.src, "src", "", "source `ADDR[:port]`")
	fs.UintVar(&c.spi, "spi", 256, "security parameter index of the MN-HA association")
	fs.StringVar(&c.key, "key", "", "MN-HA shared secret (text)")
	fs.StringVar(&c.keyHex, "key-hex", "", "MN-HA shared secret (hex)")
	fs.StringVar(&c.flags, "flags", "", "request flags, comma-separated: S,B,D,M,G,T")
	fs.StringVar(&c.homeAgent, "home-agent", "", "Home Agent field of the request (default: the -ha address)")
	fs.BoolVar(&c.jsonOut, "json", false, "print JSON")
	fs.DurationVar(&c.timeout, "timeout", time.Second, "wait this long for a reply")
	fs.BoolVar(&c.noVerify, "no-verify", false, "accept replies whose MN-HA authenticator is missing or wrong")
}

func (c *common) parse() (ha netip.AddrPort, key []byte, flags uint8, homeAgent netip.Addr, err error) {
	if c.ha == "" {
		return ha, nil, 0, homeAgent, errors.New("-ha is required")
	}
	if ha, err = parseAddrPort(c.ha, mip.Port); err != nil {
		return ha, nil, 0, homeAgent, fmt.Errorf("-ha: %w", err)
	}
	switch {
	case c.key != "" && c.keyHex != "":
		return ha, nil, 0, homeAgent, errors.New("give -key or -key-hex, not both")
	case c.keyHex != "":
		if key, err = hex.DecodeString(c.keyHex); err != nil {
			return ha, nil, 0, homeAgent, fmt.Errorf("-key-hex: %w", err)
		}
	case c.key != "":
		key = []byte(c.key)
	default:
		return ha, nil, 0, homeAgent, errors.New("-key or -key-hex is required")
	}
	if c.spi > 1<<32-1 {
		return ha, nil, 0, homeAgent, fmt.Errorf("-spi %d out of range 0..4294967295", c.spi)
	}
	if flags, err = parseFlags(c.flags); err != nil {
		return ha, nil, 0, homeAgent, err
	}
	if c.homeAgent != "" {
		if homeAgent, err = parseAddr4(c.homeAgent); err != nil {
			return ha, nil, 0, homeAgent, fmt.Errorf("-home-agent: %w", err)
		}
	}
	return ha, key, flags, homeAgent, nil
}

func parseAddr4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, err
	}
	if a = a.Unmap(); !a.Is4() {
		return a, fmt.Errorf("%s is not an IPv4 address", s)
	}
	return a, nil
}

func parseAddrPort(s string, port uint16) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		if !ap.Addr().Unmap().Is4() {
			return ap, fmt.Errorf("%s is not an IPv4 address", s)
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	a, err := parseAddr4(s)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(a, port), nil
}

func parseFlags(s string) (uint8, error) {
	var f uint8
	if s == "" {
		return 0, nil
	}
	for _, n := range strings.Split(s, ",") {
		switch strings.TrimSpace(n) {
		case "S", "s":
			f |= mip.FlagS
		case "B", "b":
			f |= mip.FlagB
		case "D", "d":
			f |= mip.FlagD
		case "M", "m":
			f |= mip.FlagM
		case "G", "g":
			f |= mip.FlagG
		case "T", "t":
			f |= mip.FlagT
		case "":
		default:
			return 0, fmt.Errorf("-flags: unknown flag %q (want S,B,D,M,G,T)", n)
		}
	}
	return f, nil
}

type singleJSON struct {
	Code          uint8   `json:"code"`
	Name          string  `json:"name"`
	Accepted      bool    `json:"accepted"`
	Lifetime      uint16  `json:"lifetime"`
	Home          string  `json:"home"`
	HomeAgent     string  `json:"home_agent"`
	ID            string  `json:"id"`
	NAI           string  `json:"nai,omitempty"`
	RTTMicros     float64 `json:"rtt_us"`
	Attempts      int     `json:"attempts"`
	Resynced      bool    `json:"resynced"`
	Authenticated bool    `json:"authenticated"`
	Error         string  `json:"error,omitempty"`
	// UDPTunnel is the reply's RFC 3519 UDP Tunnel Reply extension.
	UDPTunnel *udpTunnelJSON `json:"udp_tunnel,omitempty"`
	// MobileNet is the reply's RFC 5177 acknowledgements, with
	// -mobile-network or -implicit.
	MobileNet *mobileNetJSON `json:"mobile_networks,omitempty"`
}

type udpTunnelJSON struct {
	Code      uint8  `json:"code"`
	Name      string `json:"name"`
	Forced    bool   `json:"forced"`
	Keepalive uint16 `json:"keepalive_s"`
}

// parseUDPTunnel reads -udp-tunnel: an encapsulation, then the F (force)
// and R (registration through a foreign agent required) flags.
func parseUDPTunnel(s string) (mip.UDPTunnelRequest, error) {
	u := mip.UDPTunnelRequest{Present: true}
	for i, w := range strings.Split(s, ",") {
		switch w = strings.TrimSpace(w); {
		case i == 0 && w == "ipip":
			u.Encapsulation = mip.NextIPv4
		case i == 0 && w == "gre":
			u.Encapsulation = mip.NextGRE
		case i == 0 && w == "minimal":
			u.Encapsulation = mip.NextMinimal
		case i > 0 && w == "force":
			u.Flags |= mip.UDPTunnelForce
		case i > 0 && w == "fa":
			u.Flags |= mip.UDPTunnelFARequired
		default:
			return u, fmt.Errorf("-udp-tunnel %q: want ipip, gre or minimal, then optionally ,force and ,fa", s)
		}
	}
	return u, nil
}

// udpTunnelNote describes the reply's UDP Tunnel Reply for the text output.
func udpTunnelNote(u mip.UDPTunnelReply) string {
	if !u.Present {
		return "udp-tunnel: no reply extension (the home agent ignored the request)"
	}
	s := fmt.Sprintf("udp-tunnel: %d %s keepalive %ds", u.Code, u.Code, u.Keepalive)
	if u.Flags&mip.UDPTunnelReplyForced != 0 {
		s += " forced"
	}
	return s
}

func single(ctx context.Context, mode string, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("mnsim "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	home := fs.String("home", "", "home `ADDR` (0.0.0.0 with -nai asks for an assigned one)")
	coa := fs.String("coa", "", "care-of `ADDR`")
	coaHome := fs.Bool("coa-home", false, "care-of address = home address (de-registration from home)")
	nai := fs.String("nai", "", "mobile node NAI (RFC 2794), e.g. user@realm")
	lifetime := fs.Uint("lifetime", 600, "requested lifetime in seconds (deregister: always 0)")
	idFlag := fs.String("id", "ts", "Identification: ts (NTP timestamp of now) or a number (decimal or 0x hex)")
	retries := fs.Int("retries", 0, "retransmit this many times after a timeout")
	resync := fs.Bool("resync", false, "after a 133 (identification mismatch), take the HA's clock from the reply and retry once")
	udpTunnel := fs.String("udp-tunnel", "", "add an RFC 3519 UDP Tunnel Request: `ENCAP[,force][,fa]` with ENCAP ipip, gre or minimal")
	var router mobileRouter
	fs.Func("mobile-network", "mobile router, explicit mode (RFC 5177): claim this `PREFIX` (repeat, at most 8)", router.add)
	fs.BoolVar(&router.implicit, "implicit", false, "mobile router, implicit mode (RFC 5177): claim no prefix, print those the home agent routes")
	tun := tunnelFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	if fs.NArg() > 0 {
		return 2, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	ha, key, flags, homeAgent, err := c.parse()
	if err != nil {
		return 2, err
	}
	o := sim.Options{HA: ha, HomeAgent: homeAgent, SPI: uint32(c.spi), Key: key, Flags: flags,
		Timeout: c.timeout, Retries: *retries, Resync: *resync, NoVerify: c.noVerify}
	if *home == "" {
		return 2, errors.New("-home is required")
	}
	if o.Home, err = parseAddr4(*home); err != nil {
		return 2, fmt.Errorf("-home: %w", err)
	}
	switch {
	case *coaHome:
		o.CareOf = o.Home
	case *coa != "":
		if o.CareOf, err = parseAddr4(*coa); err != nil {
			return 2, fmt.Errorf("-coa: %w", err)
		}
	case mode == "deregister":
		o.CareOf = o.Home
	default:
		return 2, errors.New("-coa is required (or -coa-home)")
	}
	if *nai != "" {
		o.NAI = []byte(*nai)
	}
	if *lifetime > 65535 {
		return 2, fmt.Errorf("-lifetime %d out of range 0..65535", *lifetime)
	}
	o.Lifetime = uint16(*lifetime)
	if mode == "deregister" {
		o.Lifetime = 0
	}
	if *idFlag != "ts" {
		if o.ID, err = strconv.ParseUint(*idFlag, 0, 64); err != nil || o.ID == 0 {
			return 2, fmt.Errorf("-id %q: want ts or a non-zero number", *idFlag)
		}
	}
	if c.src != "" {
		if o.Local, err = parseAddrPort(c.src, 0); err != nil {
			return 2, fmt.Errorf("-src: %w", err)
		}
	}
	if *udpTunnel != "" {
		if o.UDPTunnel, err = parseUDPTunnel(*udpTunnel); err != nil {
			return 2, err
		}
	}
	if router.implicit && router.req.N > 0 {
		return 2, errors.New("give -mobile-network (explicit mode) or -implicit, not both")
	}
	o.MobileNet = router.req
	if tun.enabled() {
		return runTunnel(ctx, mode, o, tun, c.jsonOut, stdout, stderr)
	}

	res, err := sim.Exchange(ctx, o)
	err = explain(err, ha)
	if err != nil && !errors.Is(err, sim.ErrReplyAuth) {
		if c.jsonOut {
			json.NewEncoder(stdout).Encode(singleJSON{Error: err.Error(), Attempts: res.Attempts})
			return 2, nil
		}
		return 2, err
	}
	r := res.Reply
	if c.jsonOut {
		j := singleJSON{Code: uint8(r.Code), Name: r.Code.String(), Accepted: r.Code.Accepted(), Lifetime: r.Lifetime,
			Home: r.HomeAddr.String(), HomeAgent: r.HomeAgent.String(), ID: fmt.Sprintf("%#016x", r.ID), NAI: string(r.NAI),
			RTTMicros: float64(res.RTT.Nanoseconds()) / 1e3, Attempts: res.Attempts, Resynced: res.Resynced,
			Authenticated: res.Authenticated}
		if u := r.UDPTunnel; u.Present {
			j.UDPTunnel = &udpTunnelJSON{Code: uint8(u.Code), Name: u.Code.String(),
				Forced: u.Flags&mip.UDPTunnelReplyForced != 0, Keepalive: u.Keepalive}
		}
		if router.on() {
			j.MobileNet = router.json(&r.MobileNet)
		}
		if err != nil {
			j.Error = err.Error()
		}
		json.NewEncoder(stdout).Encode(j)
	} else {
		note := ""
		if res.Resynced {
			note += " resynced"
		}
		if !res.Authenticated {
			note += " unauthenticated"
		}
		if o.UDPTunnel.Present {
			note += " " + udpTunnelNote(r.UDPTunnel)
		}
		fmt.Fprintf(stdout, "%d %s lifetime %d home %v ha %v id %#016x rtt %v%s\n",
			r.Code, r.Code, r.Lifetime, r.HomeAddr, r.HomeAgent, r.ID, res.RTT.Round(time.Microsecond), note)
		if router.on() {
			router.print(stdout, &r.MobileNet)
		}
		if err != nil {
			fmt.Fprintln(stderr, "mnsim:", strings.TrimPrefix(err.Error(), "mnsim: "))
		}
	}
	switch {
	case err != nil:
		return 2, nil
	case r.Code.Accepted() && (!router.on() || router.allRouted(&r.MobileNet)):
		return 0, nil
	}
	return 1, nil
}

func load(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("mnsim load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c common
	c.register(fs)
	base := fs.String("base", "", "first home `ADDR`; nodes get consecutive addresses")
	n := fs.Int("n", 1000, "number of mobile nodes")
	rate := fs.Float64("rate", 0, "requests per second in total (0: as fast as the window allows)")
	duration := fs.Duration("duration", 5*time.Second, "how long to send")
	workers := fs.Int("workers", 2, "UDP sockets (each with a sender and a receiver)")
	window := fs.Int("window", 256, "outstanding requests per worker")
	coa := fs.String("coa", "", "care-of `ADDR` for every node (default: the socket's address)")
	lifetime := fs.Uint("lifetime", 600, "requested lifetime in seconds")
	dereg := fs.Bool("deregister", false, "send de-registrations (lifetime 0)")
	noGSO := fs.Bool("no-gso", false, "send batches with sendmmsg, not as UDP GSO trains")
	resync := fs.Bool("resync", false, "after an authenticated 133, all nodes take the HA's clock from the reply")
	netsPerNode := fs.Int("nets-per-node", 0, "mobile routers (RFC 5177): each node claims this many networks explicitly, consecutive from -net-base")
	netBase := fs.String("net-base", "", "with -nets-per-node: the first network `PREFIX`; all have its length (e.g. 32.0.0.0/24)")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	if fs.NArg() > 0 {
		return 2, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	ha, key, flags, homeAgent, err := c.parse()
	if err != nil {
		return 2, err
	}
	o := sim.LoadOptions{HA: ha, HomeAgent: homeAgent, N: *n, Rate: *rate, Duration: *duration, SPI: uint32(c.spi),
		Key: key, Flags: flags, Workers: *workers, Window: *window, Timeout: c.timeout, NoVerify: c.noVerify,
		Deregister: *dereg, NoGSO: *noGSO, Resync: *resync}
	if *base == "" {
		return 2, errors.New("-base is required")
	}
	if o.NetsPerNode = *netsPerNode; o.NetsPerNode > 0 {
		if o.NetBase, err = netip.ParsePrefix(*netBase); err != nil {
			return 2, fmt.Errorf("-net-base: %w", err)
		}
	}
	if o.Base, err = parseAddr4(*base); err != nil {
		return 2, fmt.Errorf("-base: %w", err)
	}
	if *coa != "" {
		if o.CareOf, err = parseAddr4(*coa); err != nil {
			return 2, fmt.Errorf("-coa: %w", err)
		}
	}
	if *lifetime > 65535 {
		return 2, fmt.Errorf("-lifetime %d out of range 0..65535", *lifetime)
	}
	o.Lifetime = uint16(*lifetime)
	if c.src != "" {
		ap, err := parseAddrPort(c.src, 0)
		if err != nil {
			return 2, fmt.Errorf("-src: %w", err)
		}
		o.Local = ap.Addr()
	}
	rep, err := sim.Load(ctx, o)
	if err != nil && !errors.Is(err, context.Canceled) {
		return 2, err
	}
	if c.jsonOut {
		json.NewEncoder(stdout).Encode(rep)
	} else {
		fmt.Fprintln(stdout, rep)
	}
	if rep.Replies == 0 {
		return 2, nil
	}
	for _, cc := range rep.Codes {
		if !mip.Code(cc.Code).Accepted() {
			return 1, nil
		}
	}
	if rep.Timeouts > 0 || rep.BadAuth > 0 {
		return 1, nil
	}
	return 0, nil
}

func respond(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("mnsim respond", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:434", "listen `ADDR:port`")
	spi := fs.Uint("spi", 256, "SPI")
	key := fs.String("key", "", "shared secret of every node")
	sockets := fs.Int("sockets", 1, "SO_REUSEPORT sockets, one goroutine each")
	tolerance := fs.Duration("tolerance", 0, "answer 133 to timestamps further than this from our clock (0: no check)")
	noGSO := fs.Bool("no-gso", false, "reply with sendmmsg, not UDP GSO trains")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	ap, err := parseAddrPort(*listen, mip.Port)
	if err != nil {
		return 2, fmt.Errorf("-listen: %w", err)
	}
	if *key == "" {
		return 2, errors.New("-key is required")
	}
	r, err := sim.StartResponder(ctx, sim.ResponderConfig{Addr: ap, SPI: uint32(*spi), Key: []byte(*key),
		Sockets: *sockets, Tolerance: *tolerance, NoGSO: *noGSO})
	if err != nil {
		return 2, err
	}
	fmt.Fprintf(stderr, "mnsim: answering on %v until interrupted\n", r.Addr())
	<-ctx.Done()
	r.Close()
	fmt.Fprintf(stdout, "requests %d replies %d auth-failures %d malformed %d\n",
		r.Requests.Load(), r.Replies.Load(), r.AuthFailures.Load(), r.Malformed.Load())
	return 0, nil
}
