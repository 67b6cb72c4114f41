package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// benchDaemon is an `mcpjail daemon` for the startup benchmark: its own
// socket, state and pins, no audit file and no metrics.
type benchDaemon struct {
	cmd    *exec.Cmd
	config string
	socket string
}

// startBenchDaemon starts a daemon that lets uid 65534 in.
func startBenchDaemon(ctx context.Context, e env) (*benchDaemon, error) {
	// Not under e.work (0700): uid 65534 must reach the socket.
	dir, err := os.MkdirTemp("", "mcpjail-bench-daemon-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil { // the socket must be reachable by uid 65534
		return nil, err
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	d := &benchDaemon{config: filepath.Join(dir, "mcpjail.yaml"), socket: filepath.Join(dir, "mcpjail.sock")}
	cfg := fmt.Sprintf("socket: %s\nallow_users: [\"65534\"]\nprofile_dirs: [%s]\npin_dir: /sys/fs/bpf/mcpjail-bench-%s\nstate_dir: %s\naudit_log: \"\"\nmetrics_address: \"\"\n",
		d.socket, dir, hex.EncodeToString(b), filepath.Join(dir, "state"))
	if err := os.WriteFile(d.config, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	d.cmd = exec.CommandContext(ctx, e.mcpjail, "daemon", "--config", d.config)
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if exec.Command(e.mcpjail, "status", "--socket", d.socket).Run() == nil {
			return d, nil
		}
		if time.Now().After(deadline) {
			d.stop(e)
			return nil, fmt.Errorf("daemon did not become ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the daemon and removes its pins.
func (d *benchDaemon) stop(e env) {
	defer os.RemoveAll(filepath.Dir(d.config))
	_ = d.cmd.Process.Signal(os.Interrupt)
	_ = d.cmd.Wait()
	if out, err := exec.Command(e.mcpjail, "daemon", "--config", d.config, "--cleanup").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "daemon --cleanup: %v\n%s", err, out)
	}
}

// asNobody runs argv as uid/gid 65534, the way an unprivileged client would.
func asNobody(argv ...string) []string {
	return append([]string{"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}, argv...)
}

// waitIdle waits until the daemon holds no jail.
func (d *benchDaemon) waitIdle(ctx context.Context, e env) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		out, err := exec.CommandContext(ctx, e.mcpjail, "status", "--json", "--socket", d.socket).Output()
		if err != nil {
			return fmt.Errorf("daemon status: %w", err)
		}
		var st struct {
			Jails []json.RawMessage `json:"jails"`
		}
		if err := json.Unmarshal(out, &st); err != nil {
			return fmt.Errorf("decode daemon status: %w", err)
		}
		if len(st.Jails) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the daemon still holds %d jail(s): %w", len(st.Jails), ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}
