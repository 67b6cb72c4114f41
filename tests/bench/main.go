// Command bench measures what mcpjail costs, and prints tables. Sections
// (all by default; -only picks some):
//
//   - roundtrips: sequential tools/call echo on
//     @modelcontextprotocol/server-everything from a go-sdk client, run
//     directly and through `mcpjail run --profile everything`
//     (target: at least 0.98x the direct throughput);
//   - startup: `mcpjail run -- /bin/true` against bare /bin/true and
//     bubblewrap with comparable restrictions (target: at most 1.5x bwrap);
//   - syscalls: the hostile fixture's connect loop (TCP to an allowed port of
//     a loopback listener the bench runs) and openat loop (open and close a
//     readable file), timed by the fixture itself so start-up is excluded:
//     inside `mcpjail run` against bare (target: at most 1.10x), with the
//     jail's unprivileged form (Landlock and seccomp only) beside it to show
//     what cgroups and the eBPF layer add, and bare in
//     an unrelated process while another jail runs, with its eBPF programs
//     loaded and attached, against no jail running (target: at most 1.01x).
//
// Ways are interleaved round by round, alternating their order, so drift
// (CPU frequency, page cache) hits all of them alike. Targets are printed,
// never asserted. Run as root from the repository:
//
//	go run ./tests/bench [-only roundtrips,startup,syscalls]
//	    [-calls 10000] [-rounds 3] [-starts 50]
//	    [-loop-rounds 7] [-connects 5000] [-opens 100000]
//
// It builds mcpjail and the hostile fixture, and installs the pinned
// reference servers itself (roundtrips only).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/tests/internal/e2e"
)

// sectionNames are the parts of the benchmark, in the order they run.
var sectionNames = []string{"roundtrips", "startup", "syscalls"}

type config struct {
	calls, rounds, warmup, starts int
	loops                         loopConfig
	only                          string
	mcpjail                       string
	bwrap                         string
}

// env is what every section shares: the repository, a scratch directory
// removed at the end, and the mcpjail binary under test.
type env struct {
	repo, work, mcpjail string
}

func main() {
	var c config
	flag.StringVar(&c.only, "only", "", "comma-separated sections to run: "+strings.Join(sectionNames, ", ")+" (default: all)")
	flag.IntVar(&c.calls, "calls", 10000, "roundtrips: tools/call echo requests per round")
	flag.IntVar(&c.rounds, "rounds", 3, "roundtrips: rounds of calls for each way of running the server, interleaved")
	flag.IntVar(&c.warmup, "warmup", 200, "roundtrips: untimed calls at the start of each round")
	flag.IntVar(&c.starts, "starts", 50, "startup: runs of /bin/true for each way of starting it")
	flag.IntVar(&c.loops.rounds, "loop-rounds", 7, "syscalls: rounds of each loop for each way, interleaved")
	flag.IntVar(&c.loops.connects, "connects", 5000, "syscalls: TCP connects per connect loop")
	flag.IntVar(&c.loops.opens, "opens", 100000, "syscalls: open+close pairs per openat loop")
	flag.StringVar(&c.mcpjail, "mcpjail", "", "mcpjail binary to measure (default: build ./cmd/mcpjail)")
	flag.StringVar(&c.bwrap, "bwrap", "/usr/bin/bwrap", "startup: bubblewrap binary")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	sections, err := parseSections(c.only)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("run as root: mcpjail needs it for cgroups, a PID namespace and eBPF")
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
	// uid 65534 runs the built binary in the startup section.
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}
	e := env{repo: repo, work: work, mcpjail: c.mcpjail}
	if e.mcpjail == "" {
		fmt.Fprintln(os.Stderr, "building mcpjail ...")
		if e.mcpjail, err = e2e.BuildMcpjail(ctx, repo, work); err != nil {
			return err
		}
	}
	printHost()
	if sections["roundtrips"] {
		if err := benchRoundTrips(ctx, e, c); err != nil {
			return fmt.Errorf("roundtrips: %w", err)
		}
	}
	if sections["startup"] {
		if err := benchStartup(ctx, e, c); err != nil {
			return fmt.Errorf("startup: %w", err)
		}
	}
	if sections["syscalls"] {
		if err := benchSyscalls(ctx, e, c.loops); err != nil {
			return fmt.Errorf("syscalls: %w", err)
		}
	}
	return nil
}

// parseSections reads -only; empty means every section.
func parseSections(only string) (map[string]bool, error) {
	out := map[string]bool{}
	if strings.TrimSpace(only) == "" {
		for _, s := range sectionNames {
			out[s] = true
		}
		return out, nil
	}
	for _, s := range strings.Split(only, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(sectionNames, s) {
			return nil, fmt.Errorf("-only: unknown section %q (want %s)", s, strings.Join(sectionNames, ", "))
		}
		out[s] = true
	}
	return out, nil
}

func printHost() {
	var u unix.Utsname
	_ = unix.Uname(&u)
	node, _ := exec.Command("node", "--version").Output()
	fmt.Printf("host: Linux %s, %d CPUs, %s, node %s, %s\n\n",
		unix.ByteSliceToString(u.Release[:]), runtime.NumCPU(), runtime.Version(),
		strings.TrimSpace(string(node)), time.Now().UTC().Format(time.RFC3339))
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
