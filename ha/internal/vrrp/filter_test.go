package vrrp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strconv"
	"testing"

	"golang.org/x/net/bpf"
)

// ipAdvert is an advert as a raw socket delivers it: the IPv4 header (no
// options, TTL 255, protocol 112; id and tos as given) and the payload.
func ipAdvert(t testing.TB, src netip.Addr, prio uint8, naddrs int, id uint16) []byte {
	t.Helper()
	a := Advertisement{VRID: 51, Priority: prio, Interval: 10}
	for i := range naddrs {
		a.Addrs[i] = netip.AddrFrom4([4]byte{10, 77, 0, byte(100 + i)})
	}
	a.Count = uint8(naddrs)
	pay, err := a.AppendChecksummed(nil, src, Group)
	if err != nil {
		t.Fatal(err)
	}
	h := make([]byte, 20, 20+len(pay))
	h[0], h[1] = 0x45, 0xc0
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(pay)))
	binary.BigEndian.PutUint16(h[4:], id)
	h[8], h[9] = TTL, IPProtocol
	binary.BigEndian.PutUint16(h[10:], ^id) // any: not compared
	s, d := src.As4(), Group.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return append(h, pay...)
}

// vm runs prog in golang.org/x/net/bpf's interpreter, an implementation
// of classic BPF independent of the builder (out-of-bounds loads reject,
// as in the kernel).
func vm(t testing.TB, prog []Insn) *bpf.VM {
	t.Helper()
	ins := make([]bpf.Instruction, len(prog))
	for i, in := range prog {
		ins[i] = bpf.RawInstruction{Op: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}.Disassemble()
		if _, raw := ins[i].(bpf.RawInstruction); raw {
			t.Fatalf("instruction %d %+v is not classic BPF the interpreter knows", i, in)
		}
	}
	v, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatalf("the program does not load: %v", err)
	}
	return v
}

func accepts(t testing.TB, v *bpf.VM, pkt []byte) bool {
	t.Helper()
	n, err := v.Run(pkt)
	if err != nil {
		t.Fatal(err)
	}
	return n > 0
}

// compared reports whether the filters compare the byte at offset i of
// an IPv4 header without options.
func compared(i int) bool { return i == 0 || i == 2 || i == 3 || i == 8 || i == 9 || i >= 12 }

func TestFilter(t *testing.T) {
	src := netip.MustParseAddr("10.77.0.2")
	for _, naddrs := range []int{1, 2, 7, MaxAddrs} {
		tmpl := ipAdvert(t, src, 200, naddrs, 1)
		if !TemplateOK(tmpl) {
			t.Fatalf("%d addresses: not a template", naddrs)
		}
		lazyP := AppendFilter(make([]Insn, 0, MaxFilter), tmpl, true)
		polledP := AppendFilter(make([]Insn, 0, MaxFilter), tmpl, false)
		if len(lazyP) > MaxFilter {
			t.Fatalf("%d instructions, MaxFilter %d", len(lazyP), MaxFilter)
		}
		lazy, polled := vm(t, lazyP), vm(t, polledP)
		check := func(what string, pkt []byte, want bool) {
			t.Helper()
			if got := accepts(t, lazy, pkt); got != want {
				t.Errorf("%d addresses, %s: lazy socket accepts %v, want %v", naddrs, what, got, want)
			}
			if got := accepts(t, polled, pkt); got == want {
				t.Errorf("%d addresses, %s: polled socket accepts %v, want %v", naddrs, what, got, !want)
			}
		}
		check("the template", tmpl, true)
		check("the next advert (new IP id and checksum)", ipAdvert(t, src, 200, naddrs, 2), true)
		for i := range tmpl {
			p := bytes.Clone(tmpl)
			p[i] ^= 0x01
			check("byte "+strconv.Itoa(i)+" changed", p, !compared(i))
		}
		check("another priority", ipAdvert(t, src, 201, naddrs, 1), false)
		check("priority 0", ipAdvert(t, src, 0, naddrs, 1), false)
		check("another source", ipAdvert(t, netip.MustParseAddr("10.77.0.3"), 200, naddrs, 1), false)
		for cut := 1; cut <= 4; cut++ {
			check("shorter by "+strconv.Itoa(cut), tmpl[:len(tmpl)-cut], false)
			short := bytes.Clone(tmpl[:len(tmpl)-cut])
			binary.BigEndian.PutUint16(short[2:], uint16(len(short)))
			check("shorter by "+strconv.Itoa(cut)+", total length too", short, false)
		}
		check("shorter than an IP header", tmpl[:10], false)
		check("empty", nil, false)
		for extra := 1; extra <= 4; extra++ {
			long := append(bytes.Clone(tmpl), make([]byte, extra)...)
			check("longer by "+strconv.Itoa(extra), long, false)
			binary.BigEndian.PutUint16(long[2:], uint16(len(long)))
			check("longer by "+strconv.Itoa(extra)+", total length too", long, false)
		}
		// The same packet with an IP option (a no-op and an end of list:
		// IHL 6): the payload moves, the header no longer matches.
		opt := append(append(bytes.Clone(tmpl[:20]), 1, 1, 1, 0), tmpl[20:]...)
		opt[0] = 0x46
		binary.BigEndian.PutUint16(opt[2:], uint16(len(opt)))
		check("with IP options", opt, false)
		if TemplateOK(opt) {
			t.Error("a packet with IP options is a template")
		}
	}
	// Template lengths that are not a whole number of words: every byte
	// of the tail is compared.
	for tail := 1; tail <= 3; tail++ {
		tmpl := append(ipAdvert(t, src, 200, 1, 1), make([]byte, tail)...)
		binary.BigEndian.PutUint16(tmpl[2:], uint16(len(tmpl)))
		lazy := vm(t, AppendFilter(nil, tmpl, true))
		if !accepts(t, lazy, tmpl) {
			t.Errorf("tail %d: the template is not accepted", tail)
		}
		for i := len(tmpl) - tail; i < len(tmpl); i++ {
			p := bytes.Clone(tmpl)
			p[i] ^= 0x80
			if accepts(t, lazy, p) {
				t.Errorf("tail %d: byte %d changed, accepted", tail, i)
			}
		}
	}
	// No template: the lazy socket accepts nothing, the polled one all.
	lazy, polled := vm(t, AppendFilter(nil, nil, true)), vm(t, AppendFilter(nil, nil, false))
	for _, p := range [][]byte{ipAdvert(t, src, 200, 1, 1), make([]byte, 20), {0x45}} {
		if accepts(t, lazy, p) || !accepts(t, polled, p) {
			t.Errorf("no template, %d bytes: lazy %v polled %v, want false true", len(p), accepts(t, lazy, p), accepts(t, polled, p))
		}
	}
	if TemplateOK(make([]byte, MaxTemplate+4)) {
		t.Error("a packet longer than MaxTemplate is a template")
	}
}

func TestFilterAllocs(t *testing.T) {
	tmpl := ipAdvert(t, netip.MustParseAddr("10.77.0.2"), 200, MaxAddrs, 1)
	prog := make([]Insn, 0, MaxFilter)
	if a := testing.AllocsPerRun(100, func() { prog = AppendFilter(prog[:0], tmpl, true) }); a != 0 {
		t.Errorf("AppendFilter: %v allocations, want 0", a)
	}
}

// FuzzFilter: the programs' verdict on any packet is the plain comparison
// of the bytes the filters compare (an oracle with bytes.Equal on copies
// with the uncompared header bytes cleared).
func FuzzFilter(f *testing.F) {
	tmpl := ipAdvert(f, netip.MustParseAddr("10.77.0.2"), 200, 2, 1)
	f.Add(tmpl, tmpl)
	f.Add(tmpl, tmpl[:len(tmpl)-1])
	f.Add(tmpl, append(bytes.Clone(tmpl), 0))
	f.Add(tmpl[:len(tmpl)-3], tmpl)
	f.Fuzz(func(t *testing.T, tm, pkt []byte) {
		if len(tm) < 20+HeaderLen || len(tm) > MaxTemplate {
			return
		}
		tm = bytes.Clone(tm)
		tm[0] = 0x45
		binary.BigEndian.PutUint16(tm[2:], uint16(len(tm)))
		if !TemplateOK(tm) {
			t.Fatal("not a template")
		}
		mask := func(b []byte) []byte {
			b = bytes.Clone(b)
			for i := 0; i < len(b) && i < 12; i++ {
				if !compared(i) {
					b[i] = 0
				}
			}
			return b
		}
		want := bytes.Equal(mask(tm), mask(pkt))
		if got := accepts(t, vm(t, AppendFilter(nil, tm, true)), pkt); got != want {
			t.Fatalf("lazy program accepts %v, oracle says %v", got, want)
		}
		if got := accepts(t, vm(t, AppendFilter(nil, tm, false)), pkt); got == want {
			t.Fatalf("polled program accepts %v, oracle says %v", got, !want)
		}
	})
}
