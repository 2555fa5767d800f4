package itest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hagent/hagent/tools/lab"
)

// TestNotifyCommand: vrrp.notify_command runs on every role change with the
// new role and the protocol's state, as keepalived's notify scripts do.
func TestNotifyCommand(t *testing.T) {
	l := lab.NewT(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "roles")
	script := filepath.Join(dir, "notify.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$1 $2\" >> "+log+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := l.HostT(t, "ha1", "192.0.2.11/24")
	cfg := strings.Replace(groupConfig(1), "garp_count = 1", "garp_count = 1\nnotify_command = \""+script+"\"", 1)
	a := StartAgent(t, h, cfg)
	eventually(t, 10*time.Second, "notify ran with the active role", func() (bool, string) {
		b, _ := os.ReadFile(log)
		return strings.Contains(string(b), "active Master"), string(b)
	})
	_ = a.Proc.Stop(5 * time.Second)
}
