package datapath

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Little-endian goldens of the tc requests that attach the reverse-tunnel
// filter (the datapath's other bodies are in nl_test.go).
var tcGoldens = []struct {
	name, hex string
	build     func(b []byte) []byte
}{
	{"RTM_NEWQDISC clsact", "" +
		"00000000" + "05000000" + "0000ffff" + "f1ffffff" + "00000000" + // tcmsg: ifindex 5, handle ffff:0, parent TC_H_CLSACT
		"0b000100" + "636c736163740000", // TCA_KIND "clsact"
		func(b []byte) []byte { return appendQdiscClsact(b, 5) }},
	{"RTM_NEWTFILTER bpf ingress", "" +
		"00000000" + "05000000" + "01000000" + "f2ffffff" + "0003d404" + // handle 1, parent ffff:fff2 (ingress), prio 0x4d4, ETH_P_ALL (be)
		"08000100" + "62706600" + // TCA_KIND "bpf"
		"24000280" + // TCA_OPTIONS (nested)
		"0800060007000000" + // TCA_BPF_FD 7
		"0f000700" + "686167656e745f72657600" + "00" + // TCA_BPF_NAME "hagent_rev"
		"0800080001000000", // TCA_BPF_FLAGS ACT_DIRECT
		func(b []byte) []byte { return appendFilterBPF(b, 5, 7) }},
	{"RTM_DELTFILTER bpf ingress", "" +
		"00000000" + "05000000" + "01000000" + "f2ffffff" + "0003d404" + "08000100" + "62706600",
		func(b []byte) []byte { return appendFilterBPF(b, 5, -1) }},
}

func TestTcGoldens(t *testing.T) {
	if bigEndian {
		t.Skip("goldens are little-endian bytes; netlink is native-endian")
	}
	for _, g := range tcGoldens {
		want, err := hex.DecodeString(g.hex)
		if err != nil {
			t.Fatalf("%s: %v", g.name, err)
		}
		if got := g.build(nil); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %x\nwant %x", g.name, got, want)
		}
	}
}

// The register nibbles of struct bpf_insn follow the bitfield order of the
// machine: dst low on little-endian, high on big-endian. Both run here (the
// mips tier runs this on big-endian).
func TestAssembleByteOrder(t *testing.T) {
	code, err := assemble([]insn{mov64Reg(r6, r1), jneImm(r0, 0x0102, "x"), at("x", exit())})
	if err != nil {
		t.Fatal(err)
	}
	regs := byte(0x16)
	imm := []byte{0x02, 0x01, 0, 0}
	off := []byte{0, 0}
	if bigEndian {
		regs, imm = 0x61, []byte{0, 0, 0x01, 0x02}
	}
	if code[0] != 0xbf || code[1] != regs {
		t.Errorf("mov r6, r1 = %x, want bf%02x…", code[:8], regs)
	}
	if code[8] != 0x55 || !bytes.Equal(code[10:12], off) || !bytes.Equal(code[12:16], imm) {
		t.Errorf("jne r0, 0x102, +0 = %x", code[8:16])
	}
	if _, err := assemble([]insn{ja("nowhere")}); err == nil {
		t.Error("jump to an unknown label assembled")
	}
	if _, err := assemble([]insn{at("a", exit()), at("a", exit())}); err == nil {
		t.Error("a label defined twice assembled")
	}
}

// revProgramGolden is the filter with map fds 3 (homes), 5 (mobile
// networks) and 4 (counters), little-endian, one instruction per line. A
// change to the program must change this on purpose (and pass the kernel's
// verifier: TestNetnsReverseCheck).
const revProgramGolden = "" +
	"bf16000000000000" + // r6 = r1
	"6161100000000000" + // r1 = *(u32 *)(r6 + 16)   skb->protocol
	"55012c0008000000" + // if r1 != htons(0x0800) goto malformed (+44)
	"bf61000000000000" + // r1 = r6
	"bfa2000000000000" + // r2 = r10
	"07020000f8ffffff" + // r2 += -8
	"b703000008000000" + // r3 = 8
	"b704000000000000" + // r4 = 0
	"8500000014000000" + // call bpf_skb_get_tunnel_key
	"5500250000000000" + // if r0 != 0 goto malformed (+37)
	"61a7fcff00000000" + // r7 = *(u32 *)(r10 - 4)   remote_ipv4
	"bf61000000000000" + // r1 = r6
	"b70200000c000000" + // r2 = 12
	"bfa3000000000000" + // r3 = r10
	"07030000f4ffffff" + // r3 += -12
	"b704000004000000" + // r4 = 4
	"b705000001000000" + // r5 = BPF_HDR_START_NET
	"8500000044000000" + // call bpf_skb_load_bytes_relative
	"55001c0000000000" + // if r0 != 0 goto malformed (+28)
	"1811000003000000" + "0000000000000000" + // r1 = map[fd 3] (homes)
	"bfa2000000000000" + // r2 = r10
	"07020000f4ffffff" + // r2 += -12
	"8500000001000000" + // call bpf_map_lookup_elem
	"1500050000000000" + // if r0 == 0 goto nets (+5)
	"6101000000000000" + // found: r1 = *(u32 *)(r0 + 0)
	"5d710e0000000000" + // if r1 != r7 goto wrong (+14)
	"b708000000000000" + "b709000000000000" + "0500130000000000" + // passed, TC_ACT_OK, goto count
	"b701000020000000" + // nets: r1 = 32
	"631ae8ff00000000" + // *(u32 *)(r10 - 24) = r1   trie key: prefix length
	"61a1f4ff00000000" + // r1 = *(u32 *)(r10 - 12)   the inner source
	"631aecff00000000" + // *(u32 *)(r10 - 20) = r1   trie key: address
	"1811000005000000" + "0000000000000000" + // r1 = map[fd 5] (mobile networks)
	"bfa2000000000000" + "07020000e8ffffff" + // r2 = r10 - 24
	"8500000001000000" + // call bpf_map_lookup_elem
	"5500f1ff00000000" + // if r0 != 0 goto found (-15)
	"0500030000000000" + // goto unknown (+3)
	"b708000001000000" + "b709000002000000" + "0500050000000000" + // wrong: TC_ACT_SHOT
	"b708000002000000" + "b709000002000000" + "0500020000000000" + // unknown
	"b708000003000000" + "b709000002000000" + // malformed
	"638af0ff00000000" + // *(u32 *)(r10 - 16) = r8
	"1811000004000000" + "0000000000000000" + // r1 = map[fd 4] (counters)
	"bfa2000000000000" + "07020000f0ffffff" + // r2 = r10 - 16
	"8500000001000000" + // call bpf_map_lookup_elem
	"1500030000000000" + // if r0 == 0 goto ret
	"7901000000000000" + "0701000001000000" + "7b10000000000000" + // (*(u64 *)r0)++
	"bf90000000000000" + // ret: r0 = r9
	"9500000000000000" // exit

func TestRevProgramGolden(t *testing.T) {
	if bigEndian {
		t.Skip("golden is little-endian; TestAssembleByteOrder covers big-endian")
	}
	code, err := assemble(revProgram(3, 5, 4))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hex.DecodeString(revProgramGolden)
	for i := 0; i < max(len(code), len(want)); i += 8 {
		var g, w []byte
		if i < len(code) {
			g = code[i : i+8]
		}
		if i < len(want) {
			w = want[i : i+8]
		}
		if !bytes.Equal(g, w) {
			t.Errorf("insn %d: got %x want %x", i/8, g, w)
		}
	}
}

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string]int{"0": 1, "0-1": 2, "0-3,8-11": 12, "0,2": 3} {
		if got, err := parseCPUList(in); err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "a-b", "0-"} {
		if _, err := parseCPUList(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// attachRev: qdisc present is fine; each missing kernel piece is named.
func TestAttachRevRequests(t *testing.T) {
	for _, c := range []struct {
		name         string
		qdisc, filt  unix.Errno
		wantErr      string
		wantRequests int
	}{
		{"fresh", 0, 0, "", 2},
		{"qdisc present", unix.EEXIST, 0, "", 2},
		{"no sch_ingress", unix.ENOENT, 0, "CONFIG_NET_SCH_INGRESS", 1},
		{"no cls_bpf", unix.EEXIST, unix.ENOENT, "CONFIG_NET_CLS_BPF", 2},
		{"other", 0, unix.ENOMEM, "attaching the filter to mip0", 2},
	} {
		k, f := ready(t, Config{})
		k.rev = &revFilter{homes: -1, counts: -1, prog: 9}
		f.answer = func(m netlink.Message) (unix.Errno, [][]byte) {
			switch m.Header.Type {
			case unix.RTM_NEWQDISC:
				return c.qdisc, nil
			case unix.RTM_NEWTFILTER:
				return c.filt, nil
			}
			return 0, nil
		}
		err := k.attachRev(5, "mip0")
		if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.wantErr)
		}
		if len(f.reqs) != c.wantRequests {
			t.Fatalf("%s: %d requests, want %d", c.name, len(f.reqs), c.wantRequests)
		}
		q := f.reqs[0]
		if q.Header.Type != unix.RTM_NEWQDISC || q.Header.Flags != netlink.Request|netlink.Acknowledge|netlink.Create|netlink.Excl {
			t.Errorf("%s: qdisc request %v %v", c.name, q.Header.Type, q.Header.Flags)
		}
		if c.wantRequests == 2 {
			r := f.reqs[1]
			if r.Header.Type != unix.RTM_NEWTFILTER || r.Header.Flags != netlink.Request|netlink.Acknowledge|netlink.Create|netlink.Replace {
				t.Errorf("%s: filter request %v %v", c.name, r.Header.Type, r.Header.Flags)
			}
			if !bytes.Contains(r.Data, []byte{8, 0, tcaBPFFD, 0}) && !bigEndian {
				t.Errorf("%s: no TCA_BPF_FD in %x", c.name, r.Data)
			}
		}
		k.rev = nil // nothing to close: fds are fake
	}
}
