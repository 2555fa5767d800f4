package console

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hagent/hagent/ha/internal/clip"
)

// The console is root's, but a runaway script is root too: every resource
// a client can make the agent spend is bounded here, and none of it is
// spent on the agent's owner loop beyond one answer per request.
const (
	MaxRequest = 4096 // bytes of a request line, newline included
	MaxConns   = 8    // clients served at once; more are refused with a message
	// A request whose answer may exceed SmallRows rows (show bindings of the
	// table with the agent's default limit, -limit -1 or a limit above
	// SmallRows) waits for the one large-answer turn: however many clients
	// ask for the whole table, one such answer exists at a time. -limit -1
	// keeps meaning every row: the invariant checkers compare whole tables.
	SmallRows    = 1000
	ReadTimeout  = 5 * time.Second  // to send the request line
	WriteTimeout = 10 * time.Second // to take the whole answer
)

// Handler answers one request. The agent's handler computes the answer on
// its owner loop; the server never calls it for more than one request of a
// client, nor for more than MaxConns clients at once, nor for more than one
// request with a large answer at once.
type Handler func(Request) *Response

// ServerStats are the server's counters. Refusals, write errors and accept
// errors are also logged, at most once a minute per cause.
type ServerStats struct {
	Served       uint64 // requests answered
	Refused      uint64 // clients refused: MaxConns were being served, or a large answer waited WriteTimeout
	BadRequests  uint64 // request lines too long or not JSON
	WriteErrors  uint64 // answers not taken within WriteTimeout (or the client left)
	AcceptErrors uint64 // accept(2) failures (EMFILE…), retried after a pause
	Waiting      uint64 // clients waiting for the large-answer turn now
}

// Server serves the console protocol on a listener.
type Server struct {
	Handle Handler
	Log    *slog.Logger

	slots chan struct{}
	large chan struct{} // the large-answer turn
	stats struct {
		served, refused, bad, writeErr, acceptErr, waiting atomic.Uint64
	}
	logMu   sync.Mutex
	lastLog map[string]time.Time
}

// NewServer returns a server that answers with h and logs to log.
func NewServer(h Handler, log *slog.Logger) *Server {
	return &Server{Handle: h, Log: log, slots: make(chan struct{}, MaxConns), large: make(chan struct{}, 1), lastLog: map[string]time.Time{}}
}

// Stats returns a copy of the counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Served: s.stats.served.Load(), Refused: s.stats.refused.Load(), BadRequests: s.stats.bad.Load(),
		WriteErrors: s.stats.writeErr.Load(), AcceptErrors: s.stats.acceptErr.Load(), Waiting: s.stats.waiting.Load(),
	}
}

// Serve accepts connections until ln is closed. An accept error other than
// the listener being closed (out of descriptors, of memory, a connection
// aborted) never ends it: it pauses, growing from 5 ms to 1 s while the
// errors last, logs (at most once a minute per cause) and tries again.
func (s *Server) Serve(ln net.Listener) error {
	var pause time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.stats.acceptErr.Add(1)
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			s.warn("accept", "console: accepting a client failed; retrying", "err", err, "pause", pause, "accept_errors", s.stats.acceptErr.Load())
			time.Sleep(pause)
			continue
		}
		pause = 0
		select {
		case s.slots <- struct{}{}:
			go func() {
				defer func() { <-s.slots }()
				s.serve(c)
			}()
		default:
			s.stats.refused.Add(1)
			s.warn("refused", "console: too many clients; refusing", "max", MaxConns, "refused", s.stats.refused.Load())
			// A fresh connection's send buffer is empty: this short
			// line is written at once, never blocks the accept loop.
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write(errorLine(fmt.Sprintf("busy: %d console clients are being served; try again", MaxConns)))
			_ = c.Close()
		}
	}
}

func (s *Server) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(ReadTimeout))
	line, err := bufio.NewReaderSize(c, MaxRequest).ReadSlice('\n')
	var req Request
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		s.stats.bad.Add(1)
		s.reply(c, &Response{Error: fmt.Sprintf("bad request: longer than %d bytes (one JSON line is expected)", MaxRequest)})
		return
	case err != nil:
		return // the client left or sent nothing in time: nobody to answer
	}
	if err := json.Unmarshal(line, &req); err != nil {
		s.stats.bad.Add(1)
		s.reply(c, &Response{Error: "bad request: " + clip.Quote(err.Error())})
		return
	}
	if large(req) {
		t := time.NewTimer(WriteTimeout)
		s.stats.waiting.Add(1)
		select {
		case s.large <- struct{}{}:
			s.stats.waiting.Add(^uint64(0))
			t.Stop()
			defer func() { <-s.large }() // held until the answer is written or abandoned
		case <-t.C:
			s.stats.waiting.Add(^uint64(0))
			s.stats.refused.Add(1)
			s.reply(c, &Response{Error: "busy: another client is taking a large answer; try again"})
			return
		}
	}
	s.reply(c, s.Handle(req))
}

// large reports whether req may have an answer of more than SmallRows rows.
func large(req Request) bool {
	f := strings.Fields(req.Cmd)
	table := len(f) == 2 && f[0] == "show" && f[1] == "bindings" && len(req.Args) == 0
	return table && (req.Limit <= 0 || req.Limit > SmallRows)
}

// reply streams the answer as one JSON line; the client must take all of
// it within WriteTimeout.
func (s *Server) reply(c net.Conn, r *Response) {
	_ = c.SetWriteDeadline(time.Now().Add(WriteTimeout))
	w := bufio.NewWriterSize(c, 32<<10)
	err := json.NewEncoder(w).Encode(r) // Encode ends the line with '\n'
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		s.stats.writeErr.Add(1)
		s.warn("write", "console: a client did not take its answer", "err", err, "write_errors", s.stats.writeErr.Load())
		return
	}
	s.stats.served.Add(1)
}

func errorLine(msg string) []byte {
	b, _ := json.Marshal(&Response{Error: msg})
	return append(b, '\n')
}

// warn logs at most once a minute per cause: a flood of clients must not
// become a flood of lines on the serial console. The counters carry the
// totals.
func (s *Server) warn(cause, msg string, args ...any) {
	s.logMu.Lock()
	now := time.Now()
	last, seen := s.lastLog[cause]
	ok := !seen || now.Sub(last) >= time.Minute
	if ok {
		s.lastLog[cause] = now
	}
	s.logMu.Unlock()
	if ok && s.Log != nil {
		s.Log.Warn(msg, args...)
	}
}

// Listen creates the console socket at path, mode 0600, and listens on it.
//
// The socket must never be reachable by others, not even for an instant:
// bind(2) creates it with the process umask (often 0022: connectable by
// all), and a chmod after it leaves a window. Changing the umask around
// bind is no cure in Go: the umask belongs to the process, not the thread,
// so every goroutine creating a file meanwhile would get it too. Instead
// the socket is bound inside a fresh 0700 directory (nobody else may even
// look inside), given mode 0600 there, and renamed into place: rename is
// atomic, so path is either the old file or the finished socket. The
// directory is made next to path, on the same file system, for the rename.
func Listen(path string) (*net.UnixListener, error) {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".hagent-sock-")
	if err != nil {
		return nil, fmt.Errorf("console: socket %s: %w (does its directory exist and is it writable?)", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("console: socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // it will live at path; the owner removes it
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("console: socket %s: %w", path, err)
	}
	if beforeRename != nil {
		beforeRename(dir, tmp)
	}
	// rename replaces a stale socket left by a crashed run.
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("console: socket %s: %w (is it a directory?)", path, err)
	}
	return ln, nil
}

// beforeRename is a test hook: it sees the private directory and the socket
// before the socket becomes reachable at its path.
var beforeRename func(dir, sock string)
