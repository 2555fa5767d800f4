package vm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hagent/hagent/firmware/board"
)

func TestGroupConfigs(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	ref, err := os.ReadFile(filepath.Join(root, "rootfs", "etc", "hagent.toml"))
	if err != nil {
		t.Fatal(err)
	}
	a, b, err := GroupConfigs(string(ref))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(a, "\npriority = 200") || !strings.Contains(a, `address = "192.0.2.2"`) {
		t.Fatal("config a: priority 200 and address 192.0.2.2 expected")
	}
	if !strings.Contains(b, `address = "192.0.2.3"`) || !strings.Contains(b, "agent_id = 3221225987") || !strings.Contains(b, "\npriority = 100") {
		t.Fatal("config b: address, agent_id, priority not rewritten")
	}
	if _, _, err := GroupConfigs("[agent]\n"); err == nil {
		t.Fatal("no error for a config without the keys")
	}
}

func TestQEMUArgs(t *testing.T) {
	root, _ := Root()
	bd, err := board.Load(filepath.Join(root, "board", "qemu-arm64"))
	if err != nil {
		t.Fatal(err)
	}
	name, args := QEMUArgs(Options{
		Image: Image{Board: bd, Kernel: "K", Initrd: "I"}, Netns: "ns1",
		Append: []string{"hagent.ip=eth0:192.0.2.2/24"},
		NICs:   []NIC{TapNIC("t1", "52:54:00:00:00:01")},
	})
	got := name + " " + strings.Join(args, " ")
	want := "ip netns exec ns1 qemu-system-aarch64 -M virt -cpu cortex-a57 -m 256 -display none -no-reboot -kernel K -initrd I " +
		"-monitor none -serial stdio -append console=ttyAMA0 panic=1 quiet hagent.ip=eth0:192.0.2.2/24 " +
		"-netdev tap,ifname=t1,script=no,downscript=no,id=n0 -device virtio-net-device,netdev=n0,mac=52:54:00:00:00:01"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
