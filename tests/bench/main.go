// Command bench measures what mcpjail costs, and prints a table:
//
//   - MCP round trips: sequential tools/call echo on
//     @modelcontextprotocol/server-everything from a go-sdk client, run
//     directly and through `mcpjail run --profile everything`
//     (target: at least 0.98x the direct throughput);
//   - startup: `mcpjail run -- /bin/true` against bare /bin/true and
//     bubblewrap with comparable restrictions (target: at most 1.5x bwrap).
//
// Targets are printed, never asserted. Run as root from the repository:
//
//	go run ./tests/bench [-calls 10000] [-rounds 3] [-starts 200]
//
// It builds mcpjail and installs the pinned reference servers itself.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/tests/internal/e2e"
)

type config struct {
	calls, rounds, warmup, starts int
	mcpjail                       string
	bwrap                         string
}

func main() {
	var c config
	flag.IntVar(&c.calls, "calls", 10000, "tools/call echo requests per round")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds of calls for each way of running the server, interleaved")
	flag.IntVar(&c.warmup, "warmup", 200, "untimed calls at the start of each round")
	flag.IntVar(&c.starts, "starts", 200, "runs of /bin/true for each way of starting it")
	flag.StringVar(&c.mcpjail, "mcpjail", "", "mcpjail binary to measure (default: build ./cmd/mcpjail)")
	flag.StringVar(&c.bwrap, "bwrap", "/usr/bin/bwrap", "bubblewrap binary")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: mcpjail needs it for cgroups and a PID namespace")
	}
	ctx := context.Background()
	repo, err := e2e.RepoRoot(".")
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "mcpjail-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if c.mcpjail == "" {
		c.mcpjail = filepath.Join(work, "mcpjail")
		fmt.Fprintln(os.Stderr, "building mcpjail ...")
		if err := e2e.GoBuild(ctx, repo, "./cmd/mcpjail", c.mcpjail); err != nil {
			return err
		}
	}
	fmt.Fprintln(os.Stderr, "installing reference servers ...")
	if err := e2e.InstallServers(ctx, repo); err != nil {
		return err
	}
	// The everything profile reads the package from beneath --workdir.
	modules, err := e2e.CopyModules(ctx, repo, work)
	if err != nil {
		return err
	}
	printHost()

	script := e2e.ServerScript(modules, "everything")
	servers := []way{
		{"direct", commandOf("node", script, "stdio")},
		{"mcpjail --profile everything", commandOf(c.mcpjail, "run", "--profile", "everything", "--workdir", work, "--", "node", script, "stdio")},
	}
	fmt.Fprintf(os.Stderr, "round trips: %d rounds x %d calls ...\n", c.rounds, c.calls)
	rts, err := compareRoundTrips(ctx, servers, c.rounds, c.calls, c.warmup)
	if err != nil {
		return err
	}
	printRoundTrips(rts, c)

	starters := []way{
		{"bare /bin/true", commandOf("/bin/true")},
		{"bwrap /bin/true", commandOf(bwrapArgs(c.bwrap)...)},
		{"mcpjail run -- /bin/true", commandOf(c.mcpjail, "run", "--", "/bin/true")},
	}
	if _, err := os.Stat(c.bwrap); err != nil {
		return fmt.Errorf("bubblewrap: %w (apt-get install bubblewrap)", err)
	}
	fmt.Fprintf(os.Stderr, "startup: %d runs each ...\n", c.starts)
	times, err := measureStartups(ctx, starters, c.starts)
	if err != nil {
		return err
	}
	printStartups(starters, times, c)
	return nil
}

func printHost() {
	var u unix.Utsname
	_ = unix.Uname(&u)
	node, _ := exec.Command("node", "--version").Output()
	fmt.Printf("host: Linux %s, %d CPUs, %s, node %s, %s\n\n",
		unix.ByteSliceToString(u.Release[:]), runtime.NumCPU(), runtime.Version(),
		strings.TrimSpace(string(node)), time.Now().UTC().Format(time.RFC3339))
}

func printRoundTrips(rts []roundTrips, c config) {
	fmt.Printf("MCP round trips: tools/call echo on server-everything, %d rounds x %d calls (after %d warm-up calls)\n", c.rounds, c.calls, c.warmup)
	rows := [][]string{{"", "calls/s (median round)", "latency median", "min", "max"}}
	var perSec []float64
	for _, r := range rts {
		tp := medianFloat(r.throughput)
		perSec = append(perSec, tp)
		s := summarize(r.latencies)
		rows = append(rows, []string{r.name, fmt.Sprintf("%.0f", tp), ms(s.median), ms(s.min), ms(s.max)})
	}
	table(os.Stdout, rows)
	fmt.Printf("throughput ratio jailed/direct: %s (target >= 0.98)\n\n", ratio(perSec[1], perSec[0]))
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
}

func medianFloat(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
