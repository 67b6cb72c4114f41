package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// benchStartup compares starting /bin/true bare, in bubblewrap and in
// mcpjail: standalone with no daemon on the host (a daemon's programs would
// keep the syscall tracepoints registered, which makes a standalone run's
// detach cheaper), then through a daemon as uid 65534.
func benchStartup(ctx context.Context, e env, c config) error {
	if _, err := os.Stat(c.bwrap); err != nil {
		return fmt.Errorf("bubblewrap: %w (apt-get install bubblewrap)", err)
	}
	standalone := commandOf(e.mcpjail, "run", "--", "/bin/true")
	alone := []way{
		{name: "bare /bin/true", command: commandOf("/bin/true")},
		{name: "bwrap /bin/true", command: commandOf(bwrapArgs(c.bwrap)...)},
		{name: "mcpjail run -- /bin/true", command: standalone, settle: waitForGuards},
		{name: "  the same, back to back", command: standalone},
	}
	fmt.Fprintf(os.Stderr, "startup: %d runs each ...\n", c.starts)
	aloneTimes, err := measureStartups(ctx, alone, c.starts)
	if err != nil {
		return err
	}
	if err := waitForGuards(ctx); err != nil {
		return err
	}
	d, err := startBenchDaemon(ctx, e)
	if err != nil {
		return err
	}
	defer d.stop(e)
	// The daemon answers a run's release before it detaches the jail's
	// programs; each run starts once the daemon holds no jail, so that this
	// work is charged to neither row.
	idle := func(ctx context.Context) error { return d.waitIdle(ctx, e) }
	through := []way{
		{name: "uid 65534: bare /bin/true", command: commandOf(asNobody("/bin/true")...), settle: idle},
		{name: "uid 65534: mcpjail run (daemon)", command: commandOf(asNobody(e.mcpjail, "run", "--socket", d.socket, "--", "/bin/true")...), settle: idle},
	}
	throughTimes, err := measureStartups(ctx, through, c.starts)
	if err != nil {
		return err
	}
	printStartups(append(alone, through...), append(aloneTimes, throughTimes...), c)
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
	fmt.Printf("ratio mcpjail/bwrap, back to back (medians): %s\n", ratio(med[3], med[1]))
	fmt.Printf("ratio mcpjail/bare  (medians): %s\n", ratio(med[2], med[0]))
	fmt.Printf("through the daemon, above bare exec as the same user: %s (target <= 10 ms)\n", ms(time.Duration(med[5]-med[4])))
	fmt.Printf("ratio daemon/standalone (medians): %s\n\n", ratio(med[5], med[2]))
}

// measureStartups runs each way's command n times, interleaved, and returns
// the wall time of each run (fork, sandbox set-up, exec, exit, wait). A
// way's settle step runs before its clock starts.
func measureStartups(ctx context.Context, ways []way, n int) ([][]time.Duration, error) {
	out := make([][]time.Duration, len(ways))
	for range n {
		for i, w := range ways {
			if w.settle != nil {
				if err := w.settle(ctx); err != nil {
					return nil, fmt.Errorf("%s: %w", w.name, err)
				}
			}
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

// waitForGuards waits until no cleanup guard of an earlier run is left.
// After a standalone run, its guard detaches the run's tracepoints; the
// kernel does that under a mutex that the next run's attach also takes, so
// a run started while a guard is still at it waits for it (the "back to
// back" row).
func waitForGuards(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if !guardRunning() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cleanup guards still running: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// guardRunning reports whether any process is an mcpjail cleanup guard.
func guardRunning() bool {
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range cmdlines {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte("\x00__mcpjail_guard")) {
			return true
		}
	}
	return false
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
