package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpjail/mcpjail/tests/internal/e2e"
)

// callTimeout bounds one MCP request; no tool the tests call takes long.
const callTimeout = 30 * time.Second

// session is an MCP client session with the server process behind it.
type session struct {
	*mcp.ClientSession
	cmd    *exec.Cmd
	stderr *syncBuffer
	closed bool
}

// connect starts cmd (mcpjail or a direct server) and initializes an MCP
// session with it. The session is closed at the end of the test.
func connect(t *testing.T, cmd *exec.Cmd) *session {
	t.Helper()
	s := &session{cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stderr = s.stderr
	cs, err := e2e.Connect(withTimeout(t, callTimeout), cmd, 3*time.Second)
	if err != nil {
		t.Fatalf("%v\nstderr:\n%s", err, s.stderr.String())
	}
	s.ClientSession = cs
	t.Cleanup(func() { s.close(t) })
	return s
}

// close ends the session (closing the server's stdin) and returns the
// server's exit code, or -1 when it was already closed.
func (s *session) close(t *testing.T) int {
	t.Helper()
	if s.closed {
		return -1
	}
	s.closed = true
	// Close waits for the process (or kills it); its error is the exit status
	// at best, which ProcessState holds anyway.
	_ = s.ClientSession.Close()
	return e2e.StateCode(s.cmd.ProcessState)
}

// call invokes a tool and fails the test on a protocol error. A tool's own
// failure (IsError) is returned for the caller to judge.
func (s *session) call(t *testing.T, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("tools/call %s %v: %v\nserver stderr:\n%s", name, args, err, s.stderr.String())
	}
	return res
}

// hostileResult mirrors the fixture's Result.
type hostileResult struct {
	OK     bool            `json:"ok"`
	Errno  string          `json:"errno"`
	Detail string          `json:"detail"`
	Data   json.RawMessage `json:"data"`
}

// attempt calls one hostile tool and decodes its result.
func (s *session) attempt(t *testing.T, name string, args map[string]any) hostileResult {
	t.Helper()
	return decodeHostile(t, name, s.call(t, name, args))
}

func decodeHostile(t *testing.T, name string, res *mcp.CallToolResult) hostileResult {
	t.Helper()
	if res.IsError || len(res.Content) != 1 {
		t.Fatalf("%s: unexpected tool result %+v", name, res)
	}
	text, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("%s: content is %T, want text", name, res.Content[0])
	}
	var r hostileResult
	if err := json.Unmarshal([]byte(text.Text), &r); err != nil {
		t.Fatalf("%s: decode %q: %v", name, text.Text, err)
	}
	return r
}

// resultJSON renders a successful tool result for comparison, with every
// occurrence of the given strings (temporary directories) replaced by a
// placeholder. A tool error fails the test: the same error direct and jailed
// would prove nothing.
func resultJSON(t *testing.T, res *mcp.CallToolResult, replace ...string) string {
	t.Helper()
	if res.IsError {
		t.Errorf("tool returned an error: %+v", res.Content)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range replace {
		b = bytes.ReplaceAll(b, []byte(r), []byte("$DIR"))
	}
	return string(b)
}

// syncBuffer is a bytes.Buffer safe for the writer goroutine of exec.Cmd and
// a reader in the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
