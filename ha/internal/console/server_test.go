package console

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// flakyListener fails its first n accepts with EMFILE, then delegates.
type flakyListener struct {
	net.Listener
	mu sync.Mutex
	n  int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.n > 0 {
		l.n--
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func TestServeSurvivesAcceptErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	s := NewServer(func(r Request) *Response { return &Response{Message: "limit " + itoa(r.Limit)} },
		slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil)))
	done := make(chan error, 1)
	go func() { done <- s.Serve(&flakyListener{Listener: ln, n: 6}) }()
	resp, err := Call(path, Request{Cmd: "x", Limit: -1}, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// -limit -1 still means every row.
	if resp.Message != "limit -1" {
		t.Fatalf("answer %+v", resp)
	}
	ln.Close()
	if err := <-done; err != nil {
		t.Fatalf("Serve after Close: %v", err)
	}
	if st := s.Stats(); st.AcceptErrors != 6 {
		t.Fatalf("stats %+v, want 6 accept errors", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(logs.String(), "accepting a client failed"); n != 1 {
		t.Fatalf("%d log lines for 6 accept errors, want 1 (rate-limited):\n%s", n, logs.String())
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func itoa(n int) string { return strconv.Itoa(n) }

// Until it is renamed into place, the socket lives in a directory only the
// owner may enter, already with mode 0600, whatever the umask.
func TestListenNeverExposesTheSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	if err := os.WriteFile(path, nil, 0o644); err != nil { // a stale file is replaced
		t.Fatal(err)
	}
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	var dirMode, sockMode os.FileMode
	beforeRename = func(dir, sock string) {
		if st, err := os.Stat(dir); err == nil {
			dirMode = st.Mode().Perm()
		}
		if st, err := os.Stat(sock); err == nil {
			sockMode = st.Mode().Perm()
		}
	}
	defer func() { beforeRename = nil }()
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if dirMode != 0o700 || sockMode != 0o600 {
		t.Fatalf("before the rename: directory %v, socket %v; want 0700 and 0600", dirMode, sockMode)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode()&os.ModeSocket == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("at %s: %v %v, want the socket with 0600", path, st.Mode(), err)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".hagent-sock-*"))
	if len(left) != 0 {
		t.Fatalf("private directories left behind: %v", left)
	}
}

// However many clients ask for the whole table, one such answer is
// computed and held at a time: the next is computed only when the previous
// was taken (or abandoned). Small requests are served meanwhile.
func TestOneLargeAnswerAtATime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	large := 0
	first := make(chan struct{})
	big := strings.Repeat("x", 4<<20) // more than the socket buffers: the write blocks
	s := NewServer(func(r Request) *Response {
		if r.Cmd == "show bindings" {
			mu.Lock()
			large++
			if large == 1 {
				close(first)
			}
			mu.Unlock()
			return &Response{Message: big}
		}
		return &Response{Message: "small"}
	}, nil)
	go s.Serve(ln)

	a, err := net.Dial("unix", path) // asks for the table and never reads
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	_, _ = a.Write([]byte(`{"cmd":"show bindings","limit":-1}` + "\n"))
	<-first
	b, err := net.Dial("unix", path) // asks too, and reads
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	_, _ = b.Write([]byte(`{"cmd":"show bindings","limit":-1}` + "\n"))
	for s.Stats().Waiting != 1 { // bounded by the test's timeout: fails as a hang without the turn
		mu.Lock()
		n := large
		mu.Unlock()
		if n > 1 {
			t.Fatalf("%d large answers computed while the first is not taken, want 1", n)
		}
		time.Sleep(time.Millisecond)
	}
	if r, err := Call(path, Request{Cmd: "show stats"}, 10*time.Second); err != nil || r.Message != "small" {
		t.Fatalf("a small request while a large answer is held: %+v %v", r, err)
	}
	a.Close() // the first client leaves: its turn passes to the second
	_ = b.SetReadDeadline(time.Now().Add(20 * time.Second))
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(b); err != nil || buf.Len() < len(big) {
		t.Fatalf("second client got %d bytes, %v", buf.Len(), err)
	}
}
