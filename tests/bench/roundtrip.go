package main

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpjail/mcpjail/tests/internal/e2e"
)

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
}
