// Command summary reads the serial console log of the test VM (tests/vm/run.sh)
// and prints, per test binary run in the guest, how many tests (subtests
// included) ran, passed, failed and were skipped, with each skip's reason.
// It exits 1 unless the guest reached its result marker and every binary
// ran at least one test and passed.
//
// The guest runs each binary with -test.v=test2json between the markers
// "mcpjail-vm: BEGIN NAME" and "mcpjail-vm: END NAME exit=N"; this program
// converts each section with `go tool test2json`, the converter `go test -json`
// uses.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

const marker = "mcpjail-vm: "

func main() {
	kernel := flag.String("kernel", "", "the guest kernel's name, for the report")
	excluded := flag.String("excluded", "", "the -test.skip pattern of tests kept out of the guest, for the report")
	flag.Parse()
	ok, err := summarize(os.Stdin, os.Stdout, *kernel, *excluded)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test-vm:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// section is the console output of one test binary.
type section struct {
	name string
	exit string // "" when the END marker never came
	out  bytes.Buffer
}

// splitLog cuts the console log into the binaries' sections and reports
// whether the guest printed its final result marker.
func splitLog(r io.Reader) (sections []*section, finished bool, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var cur *section
	for sc.Scan() {
		line := sc.Text()
		// A test's output may end without a newline, so a marker can follow
		// other text on the same console line.
		if i := strings.Index(line, marker); i >= 0 {
			if cur != nil && i > 0 {
				cur.out.WriteString(line[:i] + "\n")
			}
			fields := strings.Fields(line[i+len(marker):])
			switch {
			case len(fields) == 2 && fields[0] == "BEGIN":
				cur = &section{name: fields[1]}
				sections = append(sections, cur)
				continue
			case len(fields) == 3 && fields[0] == "END" && cur != nil && fields[1] == cur.name:
				cur.exit = strings.TrimPrefix(fields[2], "exit=")
				cur = nil
				continue
			case len(fields) == 2 && fields[0] == "RESULT":
				finished = true
				continue
			}
		}
		if cur != nil {
			cur.out.WriteString(line + "\n")
		}
	}
	return sections, finished, sc.Err()
}

// event is the part of a test2json event this program reads.
type event struct {
	Action string
	Test   string
	Output string
}

// counts of one binary's run.
type counts struct {
	passed, failed, skipped []string
	reasons                 map[string][]string // output of each skipped test
	failures                map[string][]string // output of each failed test
}

// failureLines bounds what is printed of one failed test's output: the
// summary is the tail of a CI log, which is often all a reader gets.
const failureLines = 40

func (s *section) count(ctx context.Context) (*counts, error) {
	cmd := exec.CommandContext(ctx, "go", "tool", "test2json", "-p", s.name)
	cmd.Stdin = &s.out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go tool test2json for %s: %w\n%s", s.name, err, stderr.String())
	}
	c := &counts{reasons: map[string][]string{}, failures: map[string][]string{}}
	output := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var e event
		if err := dec.Decode(&e); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decode test2json output of %s: %w", s.name, err)
		}
		if e.Test == "" {
			continue
		}
		switch e.Action {
		case "output":
			// Kept as printed (indentation included): a failure's
			// continuation lines are indented.
			if line := strings.TrimRight(e.Output, "\n"); strings.TrimSpace(line) != "" &&
				!strings.HasPrefix(line, "=== ") && !strings.HasPrefix(strings.TrimSpace(line), "--- ") {
				output[e.Test] = append(output[e.Test], line)
			}
		case "pass":
			c.passed = append(c.passed, e.Test)
		case "fail":
			c.failed = append(c.failed, e.Test)
			c.failures[e.Test] = output[e.Test]
		case "skip":
			c.skipped = append(c.skipped, e.Test)
			for _, line := range output[e.Test] {
				c.reasons[e.Test] = append(c.reasons[e.Test], strings.TrimSpace(line))
			}
		}
	}
	return c, nil
}

func summarize(r io.Reader, w io.Writer, kernel, excluded string) (bool, error) {
	sections, finished, err := splitLog(r)
	if err != nil {
		return false, fmt.Errorf("read console log: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ok := finished
	fmt.Fprintf(w, "test-vm: ---- results inside %s ----\n", kernel)
	for _, s := range sections {
		c, err := s.count(ctx)
		if err != nil {
			return false, err
		}
		run := len(c.passed) + len(c.failed)
		fmt.Fprintf(w, "test-vm: %s: %d executed, %d passed, %d failed, %d skipped (tests and subtests); exit status %s\n",
			s.name, run, len(c.passed), len(c.failed), len(c.skipped), orNone(s.exit))
		for _, name := range c.skipped {
			fmt.Fprintf(w, "test-vm:   skipped %s: %s\n", name, strings.Join(c.reasons[name], " / "))
		}
		for _, name := range c.failed {
			fmt.Fprintf(w, "test-vm:   FAILED %s\n", name)
			lines := c.failures[name]
			if len(lines) > failureLines {
				fmt.Fprintf(w, "test-vm:     (%d earlier lines are above, in the guest's console output)\n", len(lines)-failureLines)
				lines = lines[len(lines)-failureLines:]
			}
			for _, line := range lines {
				fmt.Fprintf(w, "test-vm:     %s\n", line)
			}
		}
		if s.exit != "0" || len(c.failed) > 0 || run == 0 {
			ok = false
		}
	}
	if excluded != "" {
		fmt.Fprintf(w, "test-vm: not run in the guest (they need Node, which stays on the host): %s\n", excluded)
	}
	switch {
	case len(sections) == 0:
		fmt.Fprintln(w, "test-vm: FAIL: no test binary started in the guest (see the console log above)")
	case !finished:
		fmt.Fprintln(w, "test-vm: FAIL: the guest never printed its result (kernel panic, hang or timeout)")
	case ok:
		fmt.Fprintln(w, "test-vm: PASS")
	default:
		fmt.Fprintln(w, "test-vm: FAIL")
	}
	return ok && len(sections) > 0, nil
}

func orNone(s string) string {
	if s == "" {
		return "none (the binary did not finish)"
	}
	return s
}
