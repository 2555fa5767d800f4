package failover

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// The agent's console protocol (ha/internal/console, which tools outside
// ha/ cannot import): one JSON request line over a unix socket, one JSON
// response line back. Only the fields this tool reads are declared.

type consoleResp struct {
	Error    string `json:"error"`
	Bindings *struct {
		Live int `json:"live"`
		Rows []struct {
			Home  string `json:"home"`
			State string `json:"state"`
		} `json:"rows"`
	} `json:"bindings"`
	Redundancy *struct {
		Role   string `json:"role"`
		Synced bool   `json:"synced"`
	} `json:"redundancy"`
}

func consoleCall(socket, cmd string, limit int) (*consoleResp, error) {
	c, err := net.DialTimeout("unix", socket, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("failover: console %s: %w (is that agent running?)", socket, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	req, _ := json.Marshal(map[string]any{"cmd": cmd, "limit": limit})
	if _, err := c.Write(append(req, '\n')); err != nil {
		return nil, fmt.Errorf("failover: console %s: sending %q: %w", socket, cmd, err)
	}
	line, err := bufio.NewReaderSize(c, 1<<20).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("failover: console %s: reading the answer to %q: %w", socket, cmd, err)
	}
	var r consoleResp
	if err := json.Unmarshal(line, &r); err != nil {
		return nil, fmt.Errorf("failover: console %s: bad answer to %q: %w", socket, cmd, err)
	}
	if r.Error != "" {
		return nil, fmt.Errorf("failover: console %s: %q: %s", socket, cmd, r.Error)
	}
	return &r, nil
}

// role returns the member's VRRP role ("active …", "standby …") and
// whether its table is synced with the group.
func role(socket string) (string, bool, error) {
	r, err := consoleCall(socket, "show redundancy", 0)
	if err != nil {
		return "", false, err
	}
	if r.Redundancy == nil {
		return "", false, fmt.Errorf("failover: console %s: no redundancy payload", socket)
	}
	return r.Redundancy.Role, r.Redundancy.Synced, nil
}

// liveHomes returns the home addresses of the member's live bindings.
func liveHomes(socket string) (map[string]bool, error) {
	r, err := consoleCall(socket, "show bindings", -1)
	if err != nil {
		return nil, err
	}
	if r.Bindings == nil {
		return nil, fmt.Errorf("failover: console %s: no bindings payload", socket)
	}
	m := make(map[string]bool, r.Bindings.Live)
	for _, row := range r.Bindings.Rows {
		if row.State == "live" {
			m[row.Home] = true
		}
	}
	return m, nil
}
