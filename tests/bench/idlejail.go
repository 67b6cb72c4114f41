package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
)

// idleJail is a jail that does nothing while an unrelated process is
// measured: `mcpjail run --profile P -- hostile idle`, started before the
// measurement and stopped after it, so its eBPF programs are loaded and
// attached (and any global tracepoints active) for exactly that time.
type idleJail struct {
	mcpjail, profile, hostile string
	// programs describes the eBPF programs that appeared while the jail
	// ran, as seen on its last start; it shows what the ratio paid for.
	programs string
}

// during wraps measure so that it runs while the idle jail is up.
func (j *idleJail) during(measure func(context.Context) (time.Duration, error)) func(context.Context) (time.Duration, error) {
	return func(ctx context.Context) (time.Duration, error) {
		before, err := loadedPrograms()
		if err != nil {
			return 0, err
		}
		stop, err := j.start(ctx)
		if err != nil {
			return 0, err
		}
		during, err := loadedPrograms()
		if err != nil {
			return 0, errors.Join(err, stop())
		}
		j.programs = describeNew(before, during)
		d, err := measure(ctx)
		if stopErr := stop(); err == nil {
			err = stopErr
		}
		return d, err
	}
}

// start runs the idle jail and waits until the fixture inside says "ready";
// stop fails when the jail had already ended, since the measurement it
// bracketed would then not have had a jail running.
func (j *idleJail) start(ctx context.Context) (stop func() error, err error) {
	ctx, cancel := context.WithTimeout(ctx, loopTimeout)
	cmd := commandOf(j.mcpjail, "run", "--profile", j.profile, "--", j.hostile, "idle")(ctx)
	// mcpjail relays SIGTERM to the server and reports its exit.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("idle jail: %w", err)
	}
	// The jail keeps this stdin (a pipe with no writer yet closed) until stop.
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("idle jail: %w", err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("idle jail: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopNow := func() error {
		select {
		case err := <-done:
			cancel()
			return fmt.Errorf("idle jail ended before it was stopped: %v\n%s", err, stderr.Bytes())
		default:
		}
		cancel()
		stdin.Close()
		<-done // cmd.Cancel and WaitDelay bound this
		return nil
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		cancel()
		<-done
		return nil, fmt.Errorf("idle jail did not start: read %q: %v\n%s", line, err, stderr.Bytes())
	}
	return stopNow, nil
}

// loadedPrograms maps the id of every eBPF program in the kernel to its
// type and name.
func loadedPrograms() (map[ebpf.ProgramID]string, error) {
	out := map[ebpf.ProgramID]string{}
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list eBPF programs: %w", err)
		}
		id = next
		prog, err := ebpf.NewProgramFromID(id)
		if errors.Is(err, os.ErrNotExist) {
			continue // unloaded since it was listed
		}
		if err != nil {
			return nil, fmt.Errorf("open eBPF program %d: %w", id, err)
		}
		info, err := prog.Info()
		prog.Close()
		if err != nil {
			return nil, fmt.Errorf("eBPF program %d info: %w", id, err)
		}
		out[id] = fmt.Sprintf("%s %s", info.Type, info.Name)
	}
}

// describeNew summarizes the programs in after that are not in before,
// counted by type and name.
func describeNew(before, after map[ebpf.ProgramID]string) string {
	count, total := map[string]int{}, 0
	for id, desc := range after {
		if _, ok := before[id]; !ok {
			count[desc]++
			total++
		}
	}
	if total == 0 {
		return "none"
	}
	var parts []string
	for _, desc := range slices.Sorted(maps.Keys(count)) {
		if count[desc] > 1 {
			desc = fmt.Sprintf("%s x%d", desc, count[desc])
		}
		parts = append(parts, desc)
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}
