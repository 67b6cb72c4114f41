package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"
)

// measureStartups runs each way's command n times, interleaved, and returns
// the wall time of each run (fork, sandbox set-up, exec, exit, wait).
func measureStartups(ctx context.Context, ways []way, n int) ([][]time.Duration, error) {
	out := make([][]time.Duration, len(ways))
	for range n {
		for i, w := range ways {
			cmd := w.command(ctx)
			t0 := time.Now()
			b, err := cmd.CombinedOutput()
			d := time.Since(t0)
			if err != nil {
				return nil, fmt.Errorf("%s: %w\n%s", w.name, err, b)
			}
			out[i] = append(out[i], d)
		}
	}
	return out, nil
}

// bwrapArgs confines /bin/true the way `mcpjail run` does with its default
// profile, as far as bubblewrap can: read-only system directories, a private
// /tmp, no network, its own PID namespace, death with its parent.
func bwrapArgs(bwrap string) []string {
	args := []string{bwrap, "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"}
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib64"} {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
			continue
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(d)
			if err == nil {
				args = append(args, "--symlink", target, d)
			}
		default:
			args = append(args, "--ro-bind", d, d)
		}
	}
	return append(args, "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
		"--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--cap-drop", "ALL",
		"/bin/true")
}

func commandOf(argv ...string) func(context.Context) *exec.Cmd {
	return func(ctx context.Context) *exec.Cmd {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
		return cmd
	}
}
