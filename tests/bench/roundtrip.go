package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpjail/mcpjail/tests/internal/e2e"
)

// benchRoundTrips compares MCP round trips on server-everything run directly
// and through `mcpjail run --profile everything`.
func benchRoundTrips(ctx context.Context, e env, c config) error {
	fmt.Fprintln(os.Stderr, "installing reference servers ...")
	if err := e2e.InstallServers(ctx, e.repo); err != nil {
		return err
	}
	// The everything profile reads the package from beneath --workdir.
	modules, err := e2e.CopyModules(ctx, e.repo, e.work)
	if err != nil {
		return err
	}
	script := e2e.ServerScript(modules, "everything")
	servers := []way{
		{name: "direct", command: commandOf("node", script, "stdio")},
		{name: "mcpjail --profile everything", command: commandOf(e.mcpjail, "run", "--profile", "everything", "--workdir", e.work, "--", "node", script, "stdio")},
	}
	fmt.Fprintf(os.Stderr, "round trips: %d rounds x %d calls ...\n", c.rounds, c.calls)
	rts, err := compareRoundTrips(ctx, servers, c.rounds, c.calls, c.warmup)
	if err != nil {
		return err
	}
	printRoundTrips(rts, c)
	return nil
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

// roundTrips is the result of one way of running server-everything.
type roundTrips struct {
	name       string
	latencies  []time.Duration // every measured call
	throughput []float64       // calls per second, one per round
}

// measureRound opens a session on cmd, warms it up, and times calls
// sequential tools/call echo requests (one in flight at a time, as a chat
// client does).
func measureRound(ctx context.Context, cmd *exec.Cmd, calls, warmup int) ([]time.Duration, float64, error) {
	cs, err := e2e.Connect(ctx, cmd, time.Second)
	if err != nil {
		return nil, 0, err
	}
	defer cs.Close()
	params := &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "benchmark"}}
	call := func() error {
		res, err := cs.CallTool(ctx, params)
		if err != nil {
			return fmt.Errorf("tools/call echo: %w", err)
		}
		if res.IsError {
			return fmt.Errorf("tools/call echo: tool error %+v", res.Content)
		}
		return nil
	}
	for range warmup {
		if err := call(); err != nil {
			return nil, 0, err
		}
	}
	lat := make([]time.Duration, calls)
	start := time.Now()
	for i := range calls {
		t0 := time.Now()
		if err := call(); err != nil {
			return nil, 0, err
		}
		lat[i] = time.Since(t0)
	}
	return lat, float64(calls) / time.Since(start).Seconds(), nil
}

// compareRoundTrips alternates rounds of each way of running the server so
// that drift (CPU frequency, page cache) hits all of them alike.
func compareRoundTrips(ctx context.Context, ways []way, rounds, calls, warmup int) ([]roundTrips, error) {
	out := make([]roundTrips, len(ways))
	for i, w := range ways {
		out[i].name = w.name
	}
	for r := range rounds {
		for i, w := range ways {
			lat, perSec, err := measureRound(ctx, w.command(ctx), calls, warmup)
			if err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", w.name, r+1, err)
			}
			out[i].latencies = append(out[i].latencies, lat...)
			out[i].throughput = append(out[i].throughput, perSec)
		}
	}
	return out, nil
}

// way is one way of starting a command: directly, or through a sandbox.
type way struct {
	name    string
	command func(ctx context.Context) *exec.Cmd
	// settle, when set, runs before each timed run (startup only).
	settle func(ctx context.Context) error
}
