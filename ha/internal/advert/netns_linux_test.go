//go:build linux

package advert

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hagent/hagent/ha/internal/groupio"
	"github.com/hagent/hagent/tools/lab"
	"golang.org/x/sys/unix"
)

// heard is one advertisement seen on the home LAN.
type heard struct {
	at  time.Time
	mac net.HardwareAddr
	src netip.Addr
	dst netip.Addr
	ttl uint8
	adv Advertisement
}

// listener captures ICMP type 9 on a host's eth0 with a packet socket, so
// that it sees the sender's MAC: in a group every member advertises from
// the same virtual address, only the MAC tells who sent it.
type listener struct {
	fd   int
	mu   sync.Mutex
	got  []heard
	done chan struct{}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func listen(t *testing.T, h *lab.Host) *listener {
	t.Helper()
	l := &listener{done: make(chan struct{})}
	err := groupio.InNetNS("/var/run/netns/"+h.NS, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
		if err != nil {
			return err
		}
		l.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index}); err != nil {
			return err
		}
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50000})
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(l.done)
		buf := make([]byte, 2048)
		for {
			n, from, err := unix.Recvfrom(l.fd, buf, 0)
			if err == unix.EAGAIN || err == unix.EINTR {
				continue
			}
			if err != nil {
				return
			}
			ll, ok := from.(*unix.SockaddrLinklayer)
			b := buf[:n]
			if !ok || ll.Pkttype == unix.PACKET_OUTGOING || len(b) < 28 || b[9] != 1 || b[20] != TypeAdvertisement {
				continue
			}
			ihl := int(b[0]&0x0f) * 4
			hd := heard{at: time.Now(), mac: net.HardwareAddr(append([]byte(nil), ll.Addr[:ll.Halen]...)), ttl: b[8],
				src: netip.AddrFrom4([4]byte(b[12:16])), dst: netip.AddrFrom4([4]byte(b[16:20]))}
			if err := hd.adv.UnmarshalBinary(b[ihl:]); err != nil {
				hd.adv.Code = 0xff // marks "did not parse"; the test fails on it
			}
			l.mu.Lock()
			l.got = append(l.got, hd)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() { unix.Close(l.fd); <-l.done })
	return l
}

// wait returns everything heard once n advertisements have arrived (or the
// timeout passed).
func (l *listener) wait(n int, timeout time.Duration) []heard {
	deadline := time.Now().Add(timeout)
	for {
		l.mu.Lock()
		got := append([]heard(nil), l.got...)
		l.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *listener) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.got)
}

// solicit sends an Agent Solicitation from host h to 224.0.0.2 with ttl.
func solicit(t *testing.T, h *lab.Host, src netip.Addr, ttl uint8) {
	t.Helper()
	err := groupio.InNetNS("/var/run/netns/"+h.NS, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.BindToDevice(fd, "eth0"); err != nil {
			return err
		}
		dst := netip.AddrFrom4([4]byte{224, 0, 0, 2})
		p := appendIPHeader(nil, src, dst, ttl, SolicitationLen)
		p, _ = Solicitation{}.AppendBinary(p)
		return unix.Sendto(fd, p, 0, &unix.SockaddrInet4{Addr: dst.As4()})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func macOf(t *testing.T, h *lab.Host) string {
	t.Helper()
	var mac string
	err := groupio.InNetNS("/var/run/netns/"+h.NS, func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err == nil {
			mac = ifi.HardwareAddr.String()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// TestNetnsAdvertise: two home agents on a LAN, one active. A node on the
// LAN hears advertisements every interval from the virtual address, sent by
// the active one only; a solicitation is answered; after a failover only
// the new active agent advertises, at once; its graceful stop withdraws the
// agent (lifetime 0). tshark decodes everything with no complaint.
func TestNetnsAdvertise(t *testing.T) {
	l := lab.NewT(t)
	ha1 := l.HostT(t, "ha1", "192.0.2.2/24", "192.0.2.1/24")
	ha2 := l.HostT(t, "ha2", "192.0.2.3/24")
	mn := l.HostT(t, "mn", "192.0.2.50/24")
	vip := netip.MustParseAddr("192.0.2.1")
	mac1, mac2 := macOf(t, ha1), macOf(t, ha2)

	var pcap string
	var cap *lab.Proc
	if _, err := os.Stat("/usr/bin/tshark"); err == nil {
		pcap = filepath.Join(t.TempDir(), "adverts.pcap")
		f, _ := os.Create(pcap) // tshark may drop privileges: let it write an existing file
		f.Close()
		os.Chmod(pcap, 0o666)
		var err error
		if cap, err = mn.Start("tshark", "-n", "-i", "eth0", "-f", "icmp", "-w", pcap); err != nil {
			t.Fatal(err)
		}
		if err := cap.WaitFor("Capturing on", 10*time.Second); err != nil {
			t.Fatal(err)
		}
	} else if os.Getenv("HAGENT_TEST_STRICT") == "1" {
		t.Fatal("tshark missing (apt-get install tshark)")
	}
	ls := listen(t, mn)

	cfg := Config{
		Advert:         Schedule{Interval: time.Second, Lifetime: 3 * time.Second, Destination: netip.MustParseAddr("224.0.0.1")},
		Interface:      "eth0",
		HomeNetwork:    netip.MustParsePrefix("192.0.2.0/24"),
		RegLifetime:    1800,
		Encapsulations: []string{"ipip", "gre"},
	}
	start := func(h *lab.Host, own string) (*Runner, context.CancelFunc, func() error) {
		c := cfg
		c.Address = netip.MustParseAddr(own)
		var r *Runner
		err := groupio.InNetNS("/var/run/netns/"+h.NS, func() (err error) { r, err = New(c, nil); return err })
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		var runErr error
		go func() { runErr = r.Run(ctx); close(done) }()
		wait := func() error { <-done; return runErr }
		t.Cleanup(func() { cancel(); <-done })
		return r, cancel, wait
	}
	r1, stop1, done1 := start(ha1, "192.0.2.2")
	r2, stop2, done2 := start(ha2, "192.0.2.3")

	// 1. ha1 active: an advertisement at once, then one per second.
	t0 := time.Now()
	r1.SetActive(true, vip)
	got := ls.wait(3, 4*time.Second)
	if len(got) < 3 {
		t.Fatalf("heard %d advertisements in 4s, want 3", len(got))
	}
	for i, h := range got[:3] {
		a := &h.adv
		if h.mac.String() != mac1 || h.src != vip || h.dst != cfg.Advert.Destination || h.ttl != 1 {
			t.Errorf("advert %d from %s/%s to %s TTL %d, want %s/%s to 224.0.0.1 TTL 1", i, h.mac, h.src, h.dst, h.ttl, mac1, vip)
		}
		if a.Code != CodeRouter || a.Lifetime != 3 || a.Sequence != uint16(i) || a.RegLifetime != 1800 || a.Flags != FlagH|FlagG ||
			a.NumRouters != 1 || a.Routers[0].Addr != vip || !a.PrefixLengths || a.Prefix[0] != 24 || a.NumCareOf != 0 {
			t.Errorf("advert %d: %+v", i, *a)
		}
	}
	if d := got[0].at.Sub(t0); d > 300*time.Millisecond {
		t.Errorf("first advertisement %v after SetActive, want at once", d)
	}
	for i := 1; i < 3; i++ {
		if d := got[i].at.Sub(got[i-1].at); d < 800*time.Millisecond || d > 1200*time.Millisecond {
			t.Errorf("advertisements %d and %d %v apart, want 1s", i-1, i, d)
		}
	}

	// 2. Solicitations: TTL 1 answered (rate-limited: at most 1/s), TTL 64 dropped.
	n := ls.count()
	solicit(t, mn, netip.MustParseAddr("192.0.2.50"), 64)
	solicit(t, mn, netip.MustParseAddr("192.0.2.50"), 1)
	if got := ls.wait(n+1, 1500*time.Millisecond); len(got) < n+1 {
		t.Fatal("solicitation not answered within 1.5s")
	}
	time.Sleep(50 * time.Millisecond)
	if st := r1.Stats(); st.RxSolicitations != 1 || st.DropTTL != 1 || st.TxSolicited != 1 {
		t.Errorf("stats after a solicitation: %+v", st)
	}
	if st := r2.Stats(); st.SolicitationsStandby != 1 || st.TxAdverts != 0 {
		t.Errorf("standby agent: %+v", st)
	}

	// 3. Failover to ha2: ha1 stops at once, ha2 advertises at once.
	if err := ha1.IP("addr", "del", "192.0.2.1/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	r1.SetActive(false, netip.Addr{})
	if err := ha2.IP("addr", "add", "192.0.2.1/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	// The count is taken before SetActive: ha2's first advertisement may
	// be heard before this goroutine runs again (a loaded machine once lost it so).
	n = ls.count()
	tf := time.Now()
	r2.SetActive(true, vip)
	got = ls.wait(n+2, 3*time.Second)[n:]
	if len(got) < 2 {
		t.Fatalf("after failover heard %d advertisements, want 2", len(got))
	}
	if d := got[0].at.Sub(tf); d > 300*time.Millisecond {
		t.Errorf("new active agent advertised %v after SetActive, want at once", d)
	}
	for _, h := range got {
		if h.mac.String() != mac2 || h.src != vip {
			t.Errorf("after failover: advertisement from %s/%s, want only %s/%s", h.mac, h.src, mac2, vip)
		}
	}
	if got[0].adv.Sequence != 0 {
		t.Errorf("ha2's first advertisement has sequence %d, want 0 (its first since start)", got[0].adv.Sequence)
	}
	if inf := r2.Info(); !inf.Active || inf.Source != vip || inf.Flags.String() != "H G" || inf.PrefixLen != 24 || inf.Sent < 2 {
		t.Errorf("Info: %+v", inf)
	}
	if inf := r1.Info(); inf.Active {
		t.Errorf("ha1 still active: %+v", inf)
	}

	// 4. Graceful stop: ha2 withdraws (lifetime 0); standby ha1 sends nothing.
	n = ls.count()
	stop1()
	if err := done1(); err != nil {
		t.Fatal(err)
	}
	stop2()
	if err := done2(); err != nil {
		t.Fatal(err)
	}
	// ha2's periodic advertisement may still be heard just before its
	// final one (the count is taken up to 1 interval before the stop).
	time.Sleep(300 * time.Millisecond)
	got = ls.wait(n+1, time.Second)[n:]
	var finals []heard
	for _, h := range got {
		if h.adv.Lifetime == 0 || h.mac.String() != mac2 {
			finals = append(finals, h)
		}
	}
	if len(finals) != 1 || finals[0].mac.String() != mac2 || finals[0].adv.Lifetime != 0 {
		t.Errorf("after stop: %+v, want one lifetime-0 advertisement from ha2 (and nothing from ha1)", got)
	}
	if s1, s2 := r1.Stats(), r2.Stats(); s1.TxFinal != 0 || s2.TxFinal != 1 || s1.TxErrors+s2.TxErrors != 0 {
		t.Errorf("stats: ha1 %+v ha2 %+v", s1, s2)
	}

	// 5. tshark's verdict on everything that went over the wire.
	if cap == nil {
		t.Skip("tshark missing: decode check skipped")
	}
	time.Sleep(300 * time.Millisecond)
	_ = cap.Stop(5 * time.Second)
	tshark := "/usr/bin/tshark"
	lines := tsharkFields(t, tshark, pcap, "icmp.type", "ip.ttl", "icmp.mip.type", "icmp.mip.h", "icmp.lifetime")
	var adverts, sols int
	var last string
	for _, ln := range lines {
		f := strings.Split(ln, "|")
		switch f[0] {
		case "9":
			adverts++
			last = ln
			if f[1] != "1" || !strings.HasPrefix(f[2], "16") || (f[3] != "1" && f[3] != "True") {
				t.Errorf("tshark: advertisement fields %q", ln)
			}
		case "10":
			sols++
		}
	}
	// tshark may miss the very first advertisement while its capture arms.
	if adverts < ls.count()-1 || sols != 2 || !strings.HasSuffix(last, "|0") {
		t.Errorf("tshark saw %d advertisements (listener %d) and %d solicitations (sent 2):\n%s", adverts, ls.count(), sols, strings.Join(lines, "\n"))
	}
	if p := tsharkProblems(t, tshark, pcap); p != "" {
		t.Errorf("tshark flags problems:\n%s", p)
	}
}
