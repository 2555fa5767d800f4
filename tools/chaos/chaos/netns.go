package chaos

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hagent/hagent/ha/mip"
)

// inNetNS runs fn on a thread switched into the namespace at path; sockets
// fn creates stay in that namespace. (ha/internal/groupio has the same
// helper, but Go's internal rule keeps tools/ from importing it; the checker
// is better off sharing no code with the agents anyway.)
func inNetNS(path string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("chaos: opening this thread's namespace: %w", err)
	}
	defer unix.Close(orig)
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("chaos: opening namespace %s: %w", path, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("chaos: setns %s (needs root): %w", path, err)
	}
	ferr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// The thread stays locked and dies with the goroutine.
		return fmt.Errorf("chaos: returning from namespace %s: %w (fn: %v)", path, err, ferr)
	}
	runtime.UnlockOSThread()
	return ferr
}

type replyKey struct {
	home netip.Addr
	id   uint64
}

// replyCounter counts every Registration Reply that reaches the mobile-node
// namespace, from a raw socket: it sees each datagram the kernel receives,
// whether or not the mnsim socket that asked is still open, so a second
// answer to one request cannot hide.
type replyCounter struct {
	fd int
	mu sync.Mutex
	// accepted counts acceptances per (home, Identification); all counts
	// every reply.
	accepted map[replyKey]int
	all      map[replyKey]int
	from     map[replyKey][]netip.Addr
}

func openReplyCounter(nsPath string) (*replyCounter, error) {
	rc := &replyCounter{fd: -1, accepted: map[replyKey]int{}, all: map[replyKey]int{}, from: map[replyKey][]netip.Addr{}}
	err := inNetNS(nsPath, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
		if err != nil {
			return fmt.Errorf("chaos: raw UDP socket in %s: %w", nsPath, err)
		}
		rc.fd = fd
		return nil
	})
	if err != nil {
		return nil, err
	}
	_ = unix.SetsockoptInt(rc.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	// A receive timeout lets run notice close.
	tv := unix.Timeval{Usec: 200000}
	_ = unix.SetsockoptTimeval(rc.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return rc, nil
}

func (rc *replyCounter) run(stop <-chan struct{}) {
	buf := make([]byte, 65536)
	var rep mip.Reply
	for {
		select {
		case <-stop:
			return
		default:
		}
		n, _, err := unix.Recvfrom(rc.fd, buf, 0)
		if err != nil {
			continue
		}
		p := buf[:n]
		if len(p) < 20 {
			continue
		}
		ihl := int(p[0]&0x0f) * 4
		if len(p) < ihl+8 {
			continue
		}
		src, _ := netip.AddrFromSlice(p[12:16])
		udp := p[ihl:]
		if binary.BigEndian.Uint16(udp[0:2]) != mip.Port {
			continue
		}
		if rep.UnmarshalBinary(udp[8:]) != nil {
			continue
		}
		k := replyKey{rep.HomeAddr, rep.ID}
		rc.mu.Lock()
		rc.all[k]++
		if rep.Code.Accepted() {
			rc.accepted[k]++
		}
		rc.from[k] = append(rc.from[k], src)
		rc.mu.Unlock()
	}
}

// duplicates returns one line per request answered more than once.
func (rc *replyCounter) duplicates() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for k, c := range rc.all {
		if c > 1 {
			out = append(out, fmt.Sprintf("%v id %#x: %d replies (%d acceptances) from %v", k.home, k.id, c, rc.accepted[k], rc.from[k]))
		}
	}
	return out
}

func (rc *replyCounter) total() (replies, accepted int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for k, c := range rc.all {
		replies += c
		accepted += rc.accepted[k]
	}
	return replies, accepted
}

func (rc *replyCounter) close() { _ = unix.Close(rc.fd) }

// The console protocol, written out here rather than imported from
// ha/internal/console: one JSON line each way over the agent's unix socket.
type consoleRequest struct {
	Cmd   string `json:"cmd"`
	Limit int    `json:"limit,omitempty"`
}

type consoleResponse struct {
	Error    string `json:"error"`
	Bindings *struct {
		Live int `json:"live"`
		Rows []struct {
			Home   string `json:"home"`
			CareOf string `json:"care_of"`
			State  string `json:"state"`
			ID     uint64 `json:"id"`
		} `json:"rows"`
		Truncated int `json:"truncated"`
	} `json:"bindings"`
	Redundancy *struct {
		Role   string `json:"role"`
		Synced bool   `json:"synced"`
	} `json:"redundancy"`
}

func consoleCall(socket string, req consoleRequest, timeout time.Duration) (*consoleResponse, error) {
	c, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		return nil, fmt.Errorf("console %s: %w", socket, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("console %s: %w", socket, err)
	}
	r := bufio.NewReaderSize(c, 1<<20)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("console %s: reading: %w", socket, err)
	}
	var resp consoleResponse
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("console %s: bad answer: %w", socket, err)
	}
	if resp.Error != "" {
		return nil, fmt.Errorf("console %s: agent says: %s", socket, resp.Error)
	}
	return &resp, nil
}

// liveRows reads a member's live bindings.
func liveRows(socket string) ([]Row, error) {
	resp, err := consoleCall(socket, consoleRequest{Cmd: "show bindings", Limit: -1}, 5*time.Second)
	if err != nil {
		return nil, err
	}
	if resp.Bindings == nil {
		return nil, fmt.Errorf("console %s: no bindings in the answer", socket)
	}
	if resp.Bindings.Truncated > 0 {
		return nil, fmt.Errorf("console %s: %d rows left out despite limit -1", socket, resp.Bindings.Truncated)
	}
	var rows []Row
	for _, r := range resp.Bindings.Rows {
		if r.State != "live" {
			continue
		}
		h, err := netip.ParseAddr(r.Home)
		if err != nil {
			return nil, fmt.Errorf("console %s: row home %q: %w", socket, r.Home, err)
		}
		c, _ := netip.ParseAddr(r.CareOf)
		rows = append(rows, Row{Home: h, CareOf: c, ID: r.ID})
	}
	return rows, nil
}
