package vm

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// GroupConfigs derives the configs of a two-agent group from the reference
// config (rootfs/etc/hagent.toml): a keeps the agent address 192.0.2.2 with
// VRRP priority 200, b gets 192.0.2.3, agent_id+1 and priority 100. It edits
// lines inside their sections, so comments and every other key stay as
// shipped, and fails if a key it must change is not where it expects.
func GroupConfigs(ref string) (a, b string, err error) {
	edit := func(section, key, value string) func([]string) ([]string, error) {
		return func(lines []string) ([]string, error) {
			cur := ""
			for i, l := range lines {
				t := strings.TrimSpace(l)
				if strings.HasPrefix(t, "[") {
					cur = strings.Trim(t, "[]")
					continue
				}
				if cur == section && strings.HasPrefix(t, key+" ") && strings.Contains(t, "=") {
					lines[i] = key + " = " + value
					return lines, nil
				}
			}
			return nil, fmt.Errorf("vm: reference config: no %s in [%s]", key, section)
		}
	}
	apply := func(edits ...func([]string) ([]string, error)) (string, error) {
		lines := strings.Split(ref, "\n")
		var err error
		for _, e := range edits {
			if lines, err = e(lines); err != nil {
				return "", err
			}
		}
		return strings.Join(lines, "\n"), nil
	}
	if a, err = apply(edit("vrrp", "priority", "200")); err != nil {
		return "", "", err
	}
	b, err = apply(
		edit("agent", "address", `"192.0.2.3"`),
		edit("agent", "agent_id", "3221225987"),
		edit("vrrp", "priority", "100"),
	)
	return a, b, err
}

// BuildGroup builds board's image for a two-agent group into
// build/firmware/<board>-group: /etc/hagent.toml is config a and
// /etc/hagent-b.toml config b of GroupConfigs; boot the second guest with
// hagent.config=/etc/hagent-b.toml.
func BuildGroup(ctx context.Context, root, boardName string, log io.Writer) (Image, error) {
	ref, err := os.ReadFile(filepath.Join(root, "rootfs", "etc", "hagent.toml"))
	if err != nil {
		return Image{}, err
	}
	a, b, err := GroupConfigs(string(ref))
	if err != nil {
		return Image{}, err
	}
	out := filepath.Join(root, "build", "firmware", boardName+"-group")
	src := filepath.Join(out, "src")
	if err := os.MkdirAll(filepath.Join(src, "extra", "etc"), 0o755); err != nil {
		return Image{}, err
	}
	for name, text := range map[string]string{"a.toml": a, "extra/etc/hagent-b.toml": b} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(text), 0o644); err != nil {
			return Image{}, err
		}
	}
	return Build(ctx, root, boardName, BuildOptions{
		Config: filepath.Join(src, "a.toml"), ExtraFiles: filepath.Join(src, "extra"), OutDir: out, Log: log,
	})
}
