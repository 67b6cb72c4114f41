package audit

import (
	"bytes"
	"strings"
	"testing"
)

// TestForkBombFolds: a thousand forks of one command within the window
// are two lines, the first fork and one count, not a thousand; the last
// child's pid is kept.
func TestForkBombFolds(t *testing.T) {
	var human bytes.Buffer
	l, err := Open(Server{Name: "s"}, &human, "")
	if err != nil {
		t.Fatal(err)
	}
	const forks = 1000
	for i := range forks {
		l.Emit(Event{Kind: KindFork, PID: 100, Comm: "hostile", ChildPID: 1000 + i, Verdict: VerdictAllow, Layer: LayerBPF})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(human.String()), "\n")
	want := []string{
		"mcpjail: s fork (pid 100 hostile, child 1000)",
		"mcpjail: s fork (pid 100 hostile, child 1999) x999: repeated within 1s",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("human lines:\n%s\nwant:\n%s", human.String(), strings.Join(want, "\n"))
	}
}

func TestTaskExitLine(t *testing.T) {
	code := 137
	e := Event{Server: Server{Name: "s"}, Kind: KindTaskExit, Target: "signal SIGKILL", Verdict: VerdictAllow,
		Layer: LayerBPF, PID: 7, Comm: "node", ExitCode: &code}
	if got, want := e.Line(), "s task_exit signal SIGKILL (pid 7 node)"; got != want {
		t.Errorf("Line() = %q, want %q", got, want)
	}
}
