package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"
)

// benchStartup compares starting /bin/true bare, in bubblewrap and in mcpjail.
func benchStartup(ctx context.Context, e env, c config) error {
	if _, err := os.Stat(c.bwrap); err != nil {
		return fmt.Errorf("bubblewrap: %w (apt-get install bubblewrap)", err)
	}
	d, err := startBenchDaemon(ctx, e)
	if err != nil {
		return err
	}
	defer d.stop(e)
	starters := []way{
		{"bare /bin/true", commandOf("/bin/true")},
		{"bwrap /bin/true", commandOf(bwrapArgs(c.bwrap)...)},
		{"mcpjail run -- /bin/true", commandOf(e.mcpjail, "run", "--", "/bin/true")},
		{"uid 65534: bare /bin/true", commandOf(asNobody("/bin/true")...)},
		{"uid 65534: mcpjail run (daemon)", commandOf(asNobody(e.mcpjail, "run", "--socket", d.socket, "--", "/bin/true")...)},
	}
	fmt.Fprintf(os.Stderr, "startup: %d runs each ...\n", c.starts)
	times, err := measureStartups(ctx, starters, c.starts)
	if err != nil {
		return err
	}
	printStartups(starters, times, c)
	return nil
}

func printStartups(ways []way, times [][]time.Duration, c config) {
	fmt.Printf("startup: fork, set up, exec /bin/true, exit, wait; %d runs each, interleaved\n", c.starts)
	rows := [][]string{{"", "median", "min", "max"}}
	med := make([]float64, len(ways))
	for i, w := range ways {
		s := summarize(times[i])
		med[i] = float64(s.median)
		rows = append(rows, []string{w.name, ms(s.median), ms(s.min), ms(s.max)})
	}
	table(os.Stdout, rows)
	fmt.Printf("ratio mcpjail/bwrap (medians): %s (target <= 1.5)\n", ratio(med[2], med[1]))
	fmt.Printf("ratio mcpjail/bare  (medians): %s\n", ratio(med[2], med[0]))
	fmt.Printf("through the daemon, above bare exec as the same user: %s (target <= 10 ms)\n", ms(time.Duration(med[4]-med[3])))
	fmt.Printf("ratio daemon/standalone (medians): %s\n\n", ratio(med[4], med[2]))
}

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
