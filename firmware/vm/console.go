package vm

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The serial console is shared, as on a real router: hagent's and hainit's
// slog lines and kernel messages appear between the lines a command prints.
// These helpers tell them apart and read hactl's tables, so that the demo
// and the boot tests check what hactl says, not what happens to be logged.

var kernelLine = regexp.MustCompile(`^\[\s*\d+\.\d+\]`)

// IsLogLine reports whether a console line is a log line (slog text from
// hagent or hainit, or a kernel message) rather than a command's output.
func IsLogLine(l string) bool {
	// A log line printed right after the shell's prompt follows its "$ ".
	l = strings.TrimPrefix(strings.TrimSpace(l), "$ ")
	return strings.HasPrefix(l, "time=") && strings.Contains(l, " level=") || kernelLine.MatchString(l)
}

// StripLogs removes log lines from a command's console output.
func StripLogs(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if !IsLogLine(l) {
			keep = append(keep, l)
		}
	}
	return strings.TrimSpace(strings.Join(keep, "\n"))
}

// hactl pads its key/value tables with at least two spaces (tabwriter), so a
// log fragment such as `role change" from=...` never matches.
var roleLine = regexp.MustCompile(`(?m)^role {2,}((active|standby|passive)\b.*?)\s*$`)

// Role reads the role line of `hactl show redundancy`, e.g. "active (vrrp
// Master)"; "" when the output has none (the agent did not answer).
func Role(out string) string {
	if m := roleLine.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

// IsActive reports whether a role read by Role is the active one.
func IsActive(role string) bool { return strings.HasPrefix(role, "active") }

// BindingRow finds the row of home address home in `hactl show bindings`
// and returns its line and fields (HOME CARE-OF HOME-AGENT STATE GRANTED
// REMAINING FLAGS IDENTIFICATION NODE); ok is false when there is none.
// `hactl show bindings HOME` answers in a detailed layout instead; its
// facts are returned in the same nine fields.
func BindingRow(out, home string) (line string, fields []string, ok bool) {
	if line, f, ok := bindingDetail(out, home); ok {
		return line, f, true
	}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 && f[0] == home && !IsLogLine(l) {
			return strings.TrimSpace(l), f, true
		}
	}
	return "", nil, false
}

var detailHead = regexp.MustCompile(`(?m)^Mobility binding (\S+)(?: \((.*)\))?: (\S+)\s*$`)

// bindingDetail reads the block of `hactl show bindings HOME`.
func bindingDetail(out, home string) (string, []string, bool) {
	m := detailHead.FindStringSubmatch(out)
	if m == nil || m[1] != home {
		return "", nil, false
	}
	f := []string{home, "-", "-", m[3], "-", "-", "-", "-", "-"}
	if m[2] != "" {
		f[8] = m[2]
	}
	get := func(key string) string {
		re := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(key) + ` {2,}(\S.*?)\s*$`)
		if x := re.FindStringSubmatch(out); x != nil {
			return x[1]
		}
		return ""
	}
	if v := get("Care-of address"); v != "" {
		f[1] = v
	}
	if v := get("Home agent address"); v != "" {
		f[2] = v
	}
	var granted, remaining string
	if _, err := fmt.Sscanf(get("Lifetime"), "granted %s remaining %s", &granted, &remaining); err == nil {
		f[4], f[5] = strings.TrimSuffix(granted, ","), strings.TrimSuffix(remaining, ",")
	}
	if v := get("Flags"); v != "" {
		f[6] = strings.ReplaceAll(v, " ", "")
	}
	if v := get("Identification"); v != "" {
		f[7] = v
	}
	return strings.Join(f, " "), f, true
}

// Counter reads counter name from hactl's counter sections ("  name  N");
// -1 when absent. "section/name" reads it from the section titled
// "section:" only (labels repeat across sections of show redundancy).
func Counter(out, name string) int64 {
	lines := strings.Split(out, "\n")
	if sec, label, ok := strings.Cut(name, "/"); ok {
		start := -1
		for i, l := range lines {
			if strings.TrimSpace(l) == sec+":" {
				start = i + 1
				break
			}
		}
		if start < 0 {
			return -1
		}
		end := start
		for end < len(lines) && strings.HasPrefix(lines[end], "  ") {
			end++
		}
		lines, name = lines[start:end], label
	}
	for _, l := range lines {
		rest, ok := strings.CutPrefix(strings.TrimSpace(l), name)
		if !ok || !strings.HasPrefix(rest, "  ") {
			continue
		}
		if v, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64); err == nil {
			return v
		}
	}
	return -1
}

// Field reads a key/value line of hactl's tables ("reason  master down timer
// expired"); "" when absent.
func Field(out, key string) string {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + ` {2,}(\S.*?)\s*$`)
	if m := re.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}
