package main

import (
	"fmt"
	"strings"
	"testing"
)

// consoleLog is a guest console as run.sh captures it: one binary's
// verbose test output between the guest's markers.
func consoleLog(body string, exit int) string {
	return fmt.Sprintf("boot noise\nmcpjail-vm: BEGIN e2e.test\n%smcpjail-vm: END e2e.test exit=%d\nmcpjail-vm: RESULT exit=%d\n", body, exit, exit)
}

func TestSummaryPrintsWhyATestFailed(t *testing.T) {
	log := consoleLog(`=== RUN   TestA
--- PASS: TestA (0.00s)
=== RUN   TestB
    b_test.go:10: no kill event within the wait; events:
        {"kind":"start"}
--- FAIL: TestB (1.00s)
=== RUN   TestC
    c_test.go:5: needs X
--- SKIP: TestC (0.00s)
FAIL
`, 1)
	var out strings.Builder
	ok, err := summarize(strings.NewReader(log), &out, "6.1", "")
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Errorf("a failed test was summarised as a pass:\n%s", out.String())
	}
	for _, want := range []string{
		"e2e.test: 2 executed, 1 passed, 1 failed, 1 skipped",
		"test-vm:   FAILED TestB\n",
		"test-vm:         b_test.go:10: no kill event within the wait; events:\n",
		`test-vm:             {"kind":"start"}` + "\n",
		"test-vm:   skipped TestC: c_test.go:5: needs X\n",
		"test-vm: FAIL\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "FAILED TestA") || strings.Contains(out.String(), "--- FAIL") {
		t.Errorf("summary has more than TestB's own lines:\n%s", out.String())
	}
}

func TestSummaryKeepsTheEndOfALongFailure(t *testing.T) {
	var body strings.Builder
	body.WriteString("=== RUN   TestLong\n")
	const lines = failureLines + 7
	for i := range lines {
		fmt.Fprintf(&body, "    long_test.go:1: line %d\n", i)
	}
	body.WriteString("--- FAIL: TestLong (0.00s)\nFAIL\n")
	var out strings.Builder
	if _, err := summarize(strings.NewReader(consoleLog(body.String(), 1)), &out, "6.1", ""); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if !strings.Contains(got, fmt.Sprintf("(%d earlier lines are above, in the guest's console output)", lines-failureLines)) {
		t.Errorf("no note of the lines left out:\n%s", got)
	}
	if strings.Contains(got, "line 6\n") || !strings.Contains(got, "line 7\n") || !strings.Contains(got, fmt.Sprintf("line %d\n", lines-1)) {
		t.Errorf("want the last %d lines (7 to %d):\n%s", failureLines, lines-1, got)
	}
}

func TestSummaryPassesACleanRun(t *testing.T) {
	var out strings.Builder
	ok, err := summarize(strings.NewReader(consoleLog("=== RUN   TestA\n--- PASS: TestA (0.00s)\nPASS\n", 0)), &out, "6.1", "")
	if err != nil || !ok {
		t.Errorf("ok=%v err=%v for a passing run:\n%s", ok, err, out.String())
	}
}
