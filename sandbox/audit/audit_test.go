package audit

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEventJSONContract(t *testing.T) {
	code := 137
	e := Event{Time: time.Date(2026, 11, 23, 20, 41, 7, 123456789, time.FixedZone("x", 3600)),
		Server: Server{Name: "fs", Instance: "abc"}, PID: 42, Comm: "node", Kind: KindConnect,
		Target: "10.0.0.1:443/tcp", Verdict: VerdictDeny, Layer: LayerBPF, Action: ActionKill, Reason: "r", ExitCode: &code}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["time"] != "2026-11-23T19:41:07.123456789Z" {
		t.Errorf("time = %v, want RFC 3339 with ns in UTC", m["time"])
	}
	for _, k := range []string{"server", "pid", "comm", "kind", "target", "verdict", "layer", "action", "reason", "exit_code"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %q missing in %s", k, b)
		}
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil || back.Target != e.Target || !back.Time.Equal(e.Time) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

func TestLineIsConcise(t *testing.T) {
	e := Event{Server: Server{Name: "fs"}, Kind: KindConnect, Target: "[::1]:80/tcp", Verdict: VerdictDeny, Layer: LayerBPF, Action: ActionKill, PID: 7, Comm: "node", Reason: "no rule"}
	want := "fs connect [::1]:80/tcp deny by bpf, killed (pid 7 node): no rule"
	if got := e.Line(); got != want {
		t.Errorf("Line() = %q, want %q", got, want)
	}
}

func TestRepeatsAreFoldedAndCounted(t *testing.T) {
	var human bytes.Buffer
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(Server{Name: "s", Instance: "i"}, &human, path)
	if err != nil {
		t.Fatal(err)
	}
	deny := Event{Kind: KindConnect, Target: "127.0.0.2:80/tcp", Verdict: VerdictDeny, Layer: LayerBPF}
	for i := 0; i < 5; i++ {
		deny.PID = 100 + i
		l.Emit(deny)
	}
	other := deny
	other.Target = "127.0.0.3:80/tcp"
	l.Emit(other)
	l.Emit(Event{Kind: KindExit, Verdict: VerdictAllow, Layer: LayerMcpjail})
	l.Emit(Event{Kind: KindExit, Verdict: VerdictAllow, Layer: LayerMcpjail}) // mcpjail's own events never fold
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var events []Event
	for _, ln := range lines {
		var e Event
		if err := json.Unmarshal([]byte(ln), &e); err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	if len(events) != 5 {
		t.Fatalf("got %d records, want 5 (first deny, other deny, 2 exits, one folded summary):\n%s", len(events), b)
	}
	summary := events[4]
	if summary.Target != deny.Target || summary.Count != 4 || summary.PID != 104 || !strings.Contains(summary.Reason, "repeated") {
		t.Errorf("summary = %+v, want 4 repeats of %s from the last pid", summary, deny.Target)
	}
	if strings.Count(human.String(), "\n") != 5 {
		t.Errorf("human stream has %d lines, want 5:\n%s", strings.Count(human.String(), "\n"), human.String())
	}
}

func TestRepeatWindowCloses(t *testing.T) {
	var human bytes.Buffer
	l, _ := Open(Server{Name: "s"}, &human, "")
	e := Event{Kind: KindOpen, Target: "/etc/shadow", Verdict: VerdictDeny, Layer: LayerLandlock}
	l.Emit(e)
	l.Emit(e)
	deadline := time.Now().Add(10 * repeatWindow)
	for !strings.Contains(syncString(l, &human), "repeated once more") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(syncString(l, &human), "repeated once more") {
		t.Fatalf("the window never closed on its own:\n%s", syncString(l, &human))
	}
}

func syncString(l *Log, b *bytes.Buffer) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return b.String()
}

// TestOpenRefusesASymlink: a symlink planted at the audit log's path (say
// in /tmp) must not redirect the writes of a root mcpjail.
func TestOpenRefusesASymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "audit.jsonl")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if l, err := Open(Server{Name: "t"}, nil, link); err == nil {
		l.Close()
		t.Fatal("Open followed a symlink")
	}
	if b, _ := os.ReadFile(target); string(b) != "precious\n" {
		t.Errorf("the symlink's target changed: %q", b)
	}
	l, err := Open(Server{Name: "t"}, nil, filepath.Join(dir, "real.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
}

// TestLineEscapesWhatTheServerChose: a path a server opened can hold a
// newline (a forged line), terminal escape sequences or a bidirectional
// override; the human line shows them escaped, and plain Unicode as is.
func TestLineEscapesWhatTheServerChose(t *testing.T) {
	e := Event{Server: Server{Name: "fs"}, Kind: KindOpen, Verdict: VerdictDeny, Layer: LayerLandlock, PID: 7, Comm: "c\x1b[2Jat",
		Target: "/root/e\x1b]52;c;cHduZWQ=\x07x\nmcpjail: fs exit: server exited with code 0",
		Reason: "openat refused \u202eevil\xff, wörld"}
	line := e.Line()
	for _, bad := range []string{"\x1b", "\x07", "\n", "\u202e", "\xff"} {
		if strings.Contains(line, bad) {
			t.Errorf("line %q holds %q unescaped", line, bad)
		}
	}
	for _, want := range []string{`/root/e\x1b]52;c;cHduZWQ=\ax\nmcpjail: fs exit`, `(pid 7 c\x1b[2Jat)`, `\u202eevil\xff, wörld`} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	plain := Event{Server: Server{Name: "fs"}, Kind: KindOpen, Target: "/data/wörld 文件.txt", Verdict: VerdictAllow}
	if got := printable("a\xffb\x1bc"); got != `a\xffb\x1bc` {
		t.Errorf("printable = %q, want one backslash per escape", got)
	}
	if got := plain.Line(); got != "fs open /data/wörld 文件.txt" {
		t.Errorf("plain line = %q", got)
	}
}
