package sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/mip"
)

var (
	key  = []byte("pool-secret")
	lo   = netip.MustParseAddrPort("127.0.0.1:0")
	home = netip.MustParseAddr("10.1.0.5")
	coa  = netip.MustParseAddr("127.0.0.1")
)

func startResponder(t *testing.T, cfg ResponderConfig) *Responder {
	t.Helper()
	cfg.Addr, cfg.SPI = lo, 256
	if cfg.Key == nil {
		cfg.Key = key
	}
	r, err := StartResponder(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func opts(r netip.AddrPort) Options {
	return Options{HA: r, Home: home, CareOf: coa, SPI: 256, Key: key, Lifetime: 600, Timeout: 2 * time.Second}
}

func TestRegisterAccepted(t *testing.T) {
	r := startResponder(t, ResponderConfig{})
	o := opts(r.Addr())
	o.NAI = []byte("mn@example.net")
	o.Flags = mip.FlagT
	res, err := Exchange(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	rep := res.Reply
	if rep.Code != mip.CodeAccepted || rep.Lifetime != 600 || rep.HomeAddr != home || !res.Authenticated ||
		string(rep.NAI) != "mn@example.net" || res.Attempts != 1 || res.Resynced {
		t.Fatalf("%+v", res)
	}
	if rep.ID != res.Request.ID || rep.HomeAgent != r.Addr().Addr() {
		t.Errorf("ID %#x vs %#x, HA %v", rep.ID, res.Request.ID, rep.HomeAgent)
	}
	// Identification defaults to an NTP timestamp of now.
	if d := time.Since(mip.TimestampTime(res.Request.ID)); d < 0 || d > 5*time.Second {
		t.Errorf("ID %#x is %v from now", res.Request.ID, d)
	}
	// De-registration: lifetime 0, care-of = home.
	o.Lifetime, o.CareOf = 0, netip.Addr{}
	res, err = Exchange(t.Context(), o)
	if err != nil || res.Reply.Lifetime != 0 || res.Request.CareOf != home {
		t.Fatalf("deregister: %v %+v", err, res)
	}
}

func TestRegisterDenied(t *testing.T) {
	r := startResponder(t, ResponderConfig{Decide: func(*mip.Request) (mip.Code, uint16) { return mip.CodeAdminProhibited, 0 }})
	rep, err := Register(t.Context(), opts(r.Addr()))
	if err != nil || rep.Code != mip.CodeAdminProhibited {
		t.Fatalf("%v %+v", err, rep)
	}
}

func TestReplyAuthentication(t *testing.T) {
	t.Run("wrong key", func(t *testing.T) {
		r := startResponder(t, ResponderConfig{ReplyKey: []byte("not the key")})
		res, err := Exchange(t.Context(), opts(r.Addr()))
		if !errors.Is(err, ErrReplyAuth) || res.Authenticated || res.Reply.Code != mip.CodeAccepted {
			t.Fatalf("%v %+v", err, res)
		}
		o := opts(r.Addr())
		o.NoVerify = true
		if res, err = Exchange(t.Context(), o); err != nil || res.Authenticated {
			t.Fatalf("NoVerify: %v %+v", err, res)
		}
	})
	t.Run("acceptance without authenticator", func(t *testing.T) {
		r := startResponder(t, ResponderConfig{NoReplyAuth: true})
		if _, err := Register(t.Context(), opts(r.Addr())); !errors.Is(err, ErrReplyAuth) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("denial without authenticator", func(t *testing.T) {
		// The responder cannot authenticate us (other key): 131, unsigned.
		r := startResponder(t, ResponderConfig{Key: []byte("other")})
		res, err := Exchange(t.Context(), opts(r.Addr()))
		if err != nil || res.Reply.Code != mip.CodeMNAuthFailed || res.Authenticated {
			t.Fatalf("%v %+v", err, res)
		}
		if r.AuthFailures.Load() != 1 {
			t.Errorf("responder auth failures %d", r.AuthFailures.Load())
		}
	})
	t.Run("tampered reply", func(t *testing.T) {
		// A reply whose authenticated bytes were changed in flight.
		addr := tinyResponder(t, func(req *mip.Request, out []byte) [][]byte {
			rep := mip.Reply{Code: mip.CodeAccepted, Lifetime: 600, HomeAddr: req.HomeAddr, HomeAgent: req.HomeAgent, ID: req.ID}
			b, _ := rep.AppendBinary(out)
			b = mip.AppendMHAuth(b, 0, 256, mip.NewHMACMD5(key))
			b[3]++ // lifetime 601
			return [][]byte{b}
		})
		if _, err := Register(t.Context(), opts(addr)); !errors.Is(err, ErrReplyAuth) {
			t.Fatalf("err %v", err)
		}
	})
}

// tinyResponder answers each request with whatever answer returns, in order.
func tinyResponder(t *testing.T, answer func(req *mip.Request, out []byte) [][]byte) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(lo))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var req mip.Request
			if req.UnmarshalBinary(buf[:n]) != nil {
				continue
			}
			for _, p := range answer(&req, nil) {
				c.WriteToUDPAddrPort(p, from)
			}
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

func TestIgnoresUnmatchedReplies(t *testing.T) {
	h := mip.NewHMACMD5(key)
	addr := tinyResponder(t, func(req *mip.Request, _ []byte) [][]byte {
		mk := func(id uint64, home netip.Addr, code mip.Code) []byte {
			rep := mip.Reply{Code: code, Lifetime: 600, HomeAddr: home, HomeAgent: req.HomeAgent, ID: id}
			b, _ := rep.AppendBinary(nil)
			return mip.AppendMHAuth(b, 0, 256, h)
		}
		return [][]byte{
			[]byte("garbage"),
			mk(req.ID+1, req.HomeAddr, mip.CodeAccepted),                  // another request's reply
			mk(req.ID, netip.MustParseAddr("10.9.9.9"), mip.CodeAccepted), // another node's
			mk(req.ID^0xffffffff, req.HomeAddr, mip.CodeIDMismatch),       // low bits differ
			mk(req.ID, req.HomeAddr, mip.CodeTooManyBindings),             // the answer
		}
	})
	rep, err := Register(t.Context(), opts(addr))
	if err != nil || rep.Code != mip.CodeTooManyBindings {
		t.Fatalf("%v %+v", err, rep)
	}
}

func TestResync(t *testing.T) {
	r := startResponder(t, ResponderConfig{Tolerance: 7 * time.Second})
	o := opts(r.Addr())
	o.Now = func() time.Time { return time.Unix(12345, 0) } // a router that booted in 1970
	res, err := Exchange(t.Context(), o)
	if err != nil || res.Reply.Code != mip.CodeIDMismatch || res.Resynced {
		t.Fatalf("without -resync: %v %+v", err, res)
	}
	// The reply carries our low 32 bits and the responder's seconds.
	if uint32(res.Reply.ID) != uint32(res.Request.ID) || time.Since(mip.TimestampTime(res.Reply.ID)).Abs() > 5*time.Second {
		t.Fatalf("133 ID %#x for request %#x", res.Reply.ID, res.Request.ID)
	}
	o.Resync = true
	res, err = Exchange(t.Context(), o)
	if err != nil || res.Reply.Code != mip.CodeAccepted || !res.Resynced || res.Attempts != 2 {
		t.Fatalf("with -resync: %v %+v", err, res)
	}
	// An unauthenticated 133 must not move our clock.
	addr := tinyResponder(t, func(req *mip.Request, _ []byte) [][]byte {
		rep := mip.Reply{Code: mip.CodeIDMismatch, HomeAddr: req.HomeAddr, HomeAgent: req.HomeAgent, ID: mip.MismatchID(req.ID, time.Now())}
		b, _ := rep.AppendBinary(nil)
		return [][]byte{b}
	})
	o = opts(addr)
	o.Resync = true
	res, err = Exchange(t.Context(), o)
	if err != nil || res.Resynced || res.Attempts != 1 || res.Reply.Code != mip.CodeIDMismatch {
		t.Fatalf("unauthenticated 133: %v %+v", err, res)
	}
}

func TestTimeoutAndRetries(t *testing.T) {
	n := 0
	addr := tinyResponder(t, func(*mip.Request, []byte) [][]byte { n++; return nil })
	o := opts(addr)
	o.Timeout, o.Retries = 50*time.Millisecond, 2
	res, err := Exchange(t.Context(), o)
	if !errors.Is(err, ErrTimeout) || res.Attempts != 3 {
		t.Fatalf("%v %+v", err, res)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Register(ctx, opts(addr)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestOptionErrors(t *testing.T) {
	for _, o := range []Options{
		{HA: netip.MustParseAddrPort("[::1]:434"), Home: home, Key: key},
		{HA: netip.MustParseAddrPort("127.0.0.1:434"), Key: key},
		{HA: netip.MustParseAddrPort("127.0.0.1:434"), Home: home},
	} {
		if _, err := Register(t.Context(), o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

func loadOpts(ha netip.AddrPort) LoadOptions {
	return LoadOptions{HA: ha, Base: netip.MustParseAddr("10.2.0.1"), N: 100, Rate: 5000, Duration: 200 * time.Millisecond,
		SPI: 256, Key: key, Timeout: 500 * time.Millisecond}
}

func TestLoad(t *testing.T) {
	for _, noGSO := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoGSO=%v", noGSO), func(t *testing.T) { testLoad(t, noGSO) })
	}
}

func testLoad(t *testing.T, noGSO bool) {
	// Odd home addresses are refused, so both codes show up.
	r := startResponder(t, ResponderConfig{Sockets: 2, NoGSO: noGSO, Decide: func(req *mip.Request) (mip.Code, uint16) {
		if req.HomeAddr.As4()[3]%2 == 1 {
			return mip.CodeAdminProhibited, 0
		}
		return mip.CodeAccepted, req.Lifetime
	}})
	o := loadOpts(r.Addr())
	o.NoGSO = noGSO
	rep, err := Load(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	if rep.Sent < 500 || rep.Sent > 1100 || rep.Replies != rep.Sent || rep.Timeouts != 0 || rep.BadAuth != 0 || rep.Unmatched != 0 {
		t.Fatalf("%+v", rep)
	}
	if len(rep.Codes) != 2 || rep.Codes[0].Code != 0 || rep.Codes[1].Code != 129 ||
		rep.Codes[0].Count+rep.Codes[1].Count != rep.Replies || rep.Codes[1].Name != "administratively prohibited" {
		t.Fatalf("codes %+v", rep.Codes)
	}
	if rep.P50 <= 0 || rep.P50 > rep.P99 || rep.P99 > rep.Max {
		t.Fatalf("latency %v %v %v", rep.P50, rep.P99, rep.Max)
	}
	if r.Requests.Load() != rep.Sent {
		t.Errorf("responder saw %d, we sent %d", r.Requests.Load(), rep.Sent)
	}
}

func TestLoadBadReplies(t *testing.T) {
	r := startResponder(t, ResponderConfig{ReplyKey: []byte("wrong")})
	rep, err := Load(t.Context(), loadOpts(r.Addr()))
	if err != nil || rep.BadAuth == 0 || rep.BadAuth != rep.Sent || rep.Replies != 0 || rep.Timeouts != 0 {
		t.Fatalf("%v %+v", err, rep)
	}
	// Identification mismatches match by the low 32 bits.
	r = startResponder(t, ResponderConfig{Tolerance: time.Second})
	o := loadOpts(r.Addr())
	o.Now = func() time.Time { return time.Unix(0, 0) }
	rep, err = Load(t.Context(), o)
	if err != nil || rep.Replies != rep.Sent || len(rep.Codes) != 1 || rep.Codes[0].Code != uint8(mip.CodeIDMismatch) {
		t.Fatalf("%v %+v", err, rep)
	}
	// With Resync the nodes adopt the responder's clock after the first 133s.
	o.Resync = true
	rep, err = Load(t.Context(), o)
	if err != nil || rep.Replies != rep.Sent || len(rep.Codes) != 2 || rep.Codes[0].Code != 0 ||
		rep.Codes[1].Code != uint8(mip.CodeIDMismatch) || rep.Codes[1].Count > rep.Codes[0].Count {
		t.Fatalf("resync: %v %+v", err, rep)
	}
}

func TestLoadTimeouts(t *testing.T) {
	addr := tinyResponder(t, func(*mip.Request, []byte) [][]byte { return nil })
	o := loadOpts(addr)
	o.Timeout = 100 * time.Millisecond
	o.N = 10 // fewer nodes than the window: each waits for its timeout
	rep, err := Load(t.Context(), o)
	if err != nil || rep.Sent == 0 || rep.Timeouts != rep.Sent || rep.Replies != 0 {
		t.Fatalf("%v %+v", err, rep)
	}
}

// The load generator allocates nothing per packet: a run's allocations do
// not grow with the number of requests.
func TestLoadAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("timing-dependent measurement")
	}
	r := startResponder(t, ResponderConfig{})
	o := loadOpts(r.Addr())
	o.Rate, o.N, o.Workers, o.Duration = 0, 1000, 1, 300*time.Millisecond
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rep, err := Load(t.Context(), o)
	runtime.ReadMemStats(&after)
	if err != nil || rep.Sent < 1000 {
		t.Fatalf("%v %+v", err, rep)
	}
	allocs := after.Mallocs - before.Mallocs
	t.Logf("%d requests, %d allocations (responder included)", rep.Sent, allocs)
	// A run costs a fixed few hundred (sockets, buffers, goroutines); one
	// allocation per packet would add Sent.
	if limit := 1000 + rep.Sent/100; allocs > limit {
		t.Errorf("%d allocations for %d requests, want ≤ %d", allocs, rep.Sent, limit)
	}
}

func TestLoadOptionErrors(t *testing.T) {
	good := loadOpts(netip.MustParseAddrPort("127.0.0.1:9"))
	for name, mod := range map[string]func(*LoadOptions){
		"n":        func(o *LoadOptions) { o.N = 0 },
		"base":     func(o *LoadOptions) { o.Base = netip.Addr{} },
		"overflow": func(o *LoadOptions) { o.Base = netip.MustParseAddr("255.255.255.250"); o.N = 10 },
		"key":      func(o *LoadOptions) { o.Key = nil },
		"duration": func(o *LoadOptions) { o.Duration = 0 },
		"ipv6":     func(o *LoadOptions) { o.HA = netip.MustParseAddrPort("[::1]:434") },
	} {
		o := good
		mod(&o)
		if _, err := Load(t.Context(), o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// BenchmarkLoadLoopback measures the generator against the in-process
// responder: each iteration is one second of load on loopback; both share
// the machine's cores.
//
//	go test -run '^$' -bench LoadLoopback -benchtime 3x ./tools/mnsim/sim
func BenchmarkLoadLoopback(b *testing.B) {
	for _, noGSO := range []bool{false, true} {
		b.Run(fmt.Sprintf("gso=%v", !noGSO), func(b *testing.B) {
			r, err := StartResponder(b.Context(), ResponderConfig{Addr: lo, SPI: 256, Key: key, NoGSO: noGSO})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			var replies, secs float64
			var p99 time.Duration
			for b.Loop() {
				o := loadOpts(r.Addr())
				o.Rate, o.N, o.Duration, o.Workers, o.NoGSO = 0, 100000, time.Second, 1, noGSO
				rep, err := Load(b.Context(), o)
				if err != nil || rep.Timeouts != 0 || rep.BadAuth != 0 {
					b.Fatalf("%v %s", err, rep)
				}
				replies += float64(rep.Replies)
				secs += rep.Elapsed.Seconds()
				p99 = max(p99, rep.P99)
			}
			b.ReportMetric(replies/secs, "replies/s")
			b.ReportMetric(float64(p99.Microseconds()), "p99-µs")
		})
	}
}
