package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mcpjail/mcpjail/tests/internal/e2e"
)

// loopConfig sizes the syscalls section.
type loopConfig struct {
	rounds, connects, opens int
}

// loopTimeout bounds one run of the fixture, jail set-up included: a loop
// that stalls (a dropped SYN costs a second) must not hang the benchmark.
const loopTimeout = 2 * time.Minute

// timedWay is one way of running a loop; run returns the time the fixture
// measured for the loop itself.
type timedWay struct {
	name string
	run  func(ctx context.Context) (time.Duration, error)
}

// comparison is a set of ways to measure against each other; the ratio of
// interest is ways[1] over ways[0]. A third way, when there is one, is the
// jail without its privileged layers: ways[1] over ways[2] is their share.
type comparison struct {
	title  string
	ops    int
	target string
	ways   []timedWay
	times  [][]time.Duration
}

// benchSyscalls runs the connect and openat loops of the hostile fixture
// inside a jail and bare, and bare with and without another jail running.
func benchSyscalls(ctx context.Context, e env, c loopConfig) error {
	if c.rounds < 1 || c.connects < 1 || c.opens < 1 {
		return fmt.Errorf("-loop-rounds, -connects and -opens must be at least 1")
	}
	// e.work is 0755: the Landlock-only way runs as uid 65534.
	hostile := filepath.Join(e.work, "hostile")
	fmt.Fprintln(os.Stderr, "building the hostile fixture ...")
	if err := e2e.GoBuild(ctx, e.repo, "./tests/fixtures/hostile", hostile); err != nil {
		return err
	}
	target := filepath.Join(e.work, "open-target")
	if err := os.WriteFile(target, []byte("read me\n"), 0o644); err != nil {
		return fmt.Errorf("write open target: %w", err)
	}
	sink, err := newTCPSink()
	if err != nil {
		return err
	}
	defer sink.Close()
	addr := sink.addr()
	profile, err := writeLoopProfile(e.work, hostile, target, sink.port)
	if err != nil {
		return err
	}
	jailed := func(argv ...string) []string {
		return append([]string{e.mcpjail, "run", "--profile", profile, "--"}, argv...)
	}
	// What an unprivileged run without a daemon has: Landlock, seccomp and
	// no_new_privs; no cgroups, no eBPF layer, no PID namespace.
	unprivileged := func(argv ...string) []string {
		return asNobody(append([]string{e.mcpjail, "run", "--daemon", "never", "--allow-degraded", "--profile", profile, "--"}, argv...)...)
	}
	const landlockOnly = "Landlock and seccomp only (uid 65534, --allow-degraded)"
	bystander := idleJail{mcpjail: e.mcpjail, profile: profile, hostile: hostile}

	connect := []string{hostile, "loop", "connect", addr, strconv.Itoa(c.connects)}
	open := []string{hostile, "loop", "open", target, strconv.Itoa(c.opens)}
	comparisons := []*comparison{
		{title: fmt.Sprintf("connect loop, inside the jail: %d TCP connects to %s", c.connects, addr), ops: c.connects, target: "<= 1.10",
			ways: []timedWay{{"bare", fixtureLoop(connect)}, {"mcpjail run --profile " + loopProfileName, fixtureLoop(jailed(connect...))},
				{landlockOnly, fixtureLoop(unprivileged(connect...))}}},
		{title: fmt.Sprintf("openat loop, inside the jail: %d open+close of a readable file", c.opens), ops: c.opens, target: "<= 1.10",
			ways: []timedWay{{"bare", fixtureLoop(open)}, {"mcpjail run --profile " + loopProfileName, fixtureLoop(jailed(open...))},
				{landlockOnly, fixtureLoop(unprivileged(open...))}}},
		{title: fmt.Sprintf("connect loop, unrelated process: %d TCP connects to %s", c.connects, addr), ops: c.connects, target: "<= 1.01",
			ways: []timedWay{{"no jail running", fixtureLoop(connect)}, {"another jail running", bystander.during(fixtureLoop(connect))}}},
		{title: fmt.Sprintf("openat loop, unrelated process: %d open+close of a readable file", c.opens), ops: c.opens, target: "<= 1.01",
			ways: []timedWay{{"no jail running", fixtureLoop(open)}, {"another jail running", bystander.during(fixtureLoop(open))}}},
	}
	fmt.Fprintf(os.Stderr, "syscall loops: %d rounds of %d comparisons ...\n", c.rounds, len(comparisons))
	overflowsBefore, err := listenOverflows()
	if err != nil {
		return err
	}
	for r := range c.rounds {
		for _, cmp := range comparisons {
			if err := cmp.measureRound(ctx, r); err != nil {
				return err
			}
		}
	}
	fmt.Printf("syscall loops: %d rounds per way, interleaved, order alternating; time of the loop alone as the fixture measured it\n", c.rounds)
	fmt.Printf("eBPF programs loaded while the other jail ran: %s\n", bystander.programs)
	overflowsAfter, err := listenOverflows()
	if err != nil {
		return err
	}
	// A dropped SYN stalls one loop for a second; the medians absorb a few.
	fmt.Printf("accept queue overflows (TcpExt ListenOverflows) during the section: %d\n\n", overflowsAfter-overflowsBefore)
	for _, cmp := range comparisons {
		cmp.print()
	}
	return nil
}

// measureRound runs every way once, in reverse order on odd rounds so that
// neither way always runs first (right after the previous comparison).
func (c *comparison) measureRound(ctx context.Context, round int) error {
	if c.times == nil {
		c.times = make([][]time.Duration, len(c.ways))
	}
	for k := range c.ways {
		i := k
		if round%2 == 1 {
			i = len(c.ways) - 1 - k
		}
		d, err := c.ways[i].run(ctx)
		if err != nil {
			return fmt.Errorf("%s, %s, round %d: %w", c.title, c.ways[i].name, round+1, err)
		}
		c.times[i] = append(c.times[i], d)
	}
	return nil
}

func (c *comparison) print() {
	fmt.Println(c.title)
	rows := [][]string{{"", "median", "min", "max", "per op (median)"}}
	med, low := make([]float64, len(c.ways)), make([]float64, len(c.ways))
	for i, w := range c.ways {
		s := summarize(c.times[i])
		med[i], low[i] = float64(s.median), float64(s.min)
		perOp := fmt.Sprintf("%.2f µs", float64(s.median)/float64(c.ops)/float64(time.Microsecond))
		rows = append(rows, []string{w.name, ms(s.median), ms(s.min), ms(s.max), perOp})
	}
	table(os.Stdout, rows)
	// The ratio of minimums is less sensitive to other load on the host.
	fmt.Printf("ratio %s / %s: medians %s (target %s), minimums %s\n",
		c.ways[1].name, c.ways[0].name, ratio(med[1], med[0]), c.target, ratio(low[1], low[0]))
	if len(c.ways) > 2 {
		fmt.Printf("ratio %s / bare: medians %s, minimums %s\n", c.ways[2].name, ratio(med[2], med[0]), ratio(low[2], low[0]))
		fmt.Printf("share of cgroups, the PID namespace and the eBPF layer (%s / %s): medians %s, minimums %s\n",
			c.ways[1].name, c.ways[2].name, ratio(med[1], med[2]), ratio(low[1], low[2]))
	}
	fmt.Println()
}

// fixtureLoop runs argv (a hostile loop, bare or through mcpjail) to the end
// and returns the elapsed_ns it printed.
func fixtureLoop(argv []string) func(ctx context.Context) (time.Duration, error) {
	return func(ctx context.Context) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(ctx, loopTimeout)
		defer cancel()
		cmd := commandOf(argv...)(ctx)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, stderr.Bytes())
		}
		return parseElapsed(stdout.String())
	}
}

// parseElapsed finds the fixture's "elapsed_ns=N" line.
func parseElapsed(out string) (time.Duration, error) {
	for line := range strings.Lines(out) {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "elapsed_ns=")
		if !ok {
			continue
		}
		ns, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ns <= 0 {
			return 0, fmt.Errorf("bad elapsed_ns in fixture output %q", line)
		}
		return time.Duration(ns), nil
	}
	return 0, fmt.Errorf("no elapsed_ns line in fixture output %q", out)
}

const loopProfileName = "bench-loops"

// writeLoopProfile allows exactly what the loops need: running the fixture,
// reading the open target, and TCP to the listener's port on 127.0.0.1.
func writeLoopProfile(dir, hostile, target string, port int) (string, error) {
	body := fmt.Sprintf(`apiVersion: mcpjail.dev/v1
kind: Profile
name: %s
description: the benchmark's syscall loops
filesystem:
  exec: [%q]
  read: [%q]
network:
  egress:
    - cidr: 127.0.0.1/32
      ports: [%d]
`, loopProfileName, hostile, target, port)
	path := filepath.Join(dir, loopProfileName+".yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		return "", fmt.Errorf("write profile: %w", err)
	}
	return path, nil
}
