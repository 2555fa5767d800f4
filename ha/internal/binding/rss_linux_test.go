package binding

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"testing"
)

func vmRSS(t *testing.T) int64 {
	t.Helper()
	runtime.GC()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	for _, l := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(l, []byte("VmRSS:")); ok {
			kb, _ := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimSuffix(bytes.TrimSpace(v), []byte("kB")))), 10, 64)
			return kb << 10
		}
	}
	t.Skip("VmRSS not found")
	return 0
}

func runtimeKeepAlive(x any) { runtime.KeepAlive(x) }
