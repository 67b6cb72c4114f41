package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/tests/internal/e2e"
)

// referenceCase drives one reference MCP server twice, directly and through
// `mcpjail run --profile <builtin>`, and expects the same results from both.
//
// Each run gets a fresh workdir W laid out the way the built-in node profiles
// expect: W/node_modules holds the server's package (they read packages only
// from the global npm locations or beneath ${WORKDIR}) and W/data is the
// directory the test works in.
type referenceCase struct {
	server string // filesystem, memory, everything; also the built-in profile
	// args are the server's arguments after its script, given the data dir.
	args func(data string) []string
	// env is added to the client environment, given the workdir.
	env func(workdir string) []string
	// prepare fills the data dir before the server starts.
	prepare func(t *testing.T, data string)
	// script runs the session and returns results to compare, normalized.
	script func(t *testing.T, s *session, data string) []string
	// check inspects the workdir after the session (files really written).
	check func(t *testing.T, workdir string)
}

// runOnce returns the normalized results and the server's exit status.
func (rc referenceCase) runOnce(t *testing.T, jailed bool) ([]string, int) {
	workdir := t.TempDir()
	modules, err := e2e.CopyModules(withTimeout(t, time.Minute), suite.repo, workdir)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(workdir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if rc.prepare != nil {
		rc.prepare(t, data)
	}
	script := e2e.ServerScript(modules, rc.server)
	argv := append([]string{"node", script}, rc.args(data)...)
	env := defaultClientEnv()
	if rc.env != nil {
		env = append(env, rc.env(workdir)...)
	}
	name := "e2e-" + rc.server
	var cmd *exec.Cmd
	var auditLog string
	if jailed {
		spec := jailSpec{profile: rc.server, workdir: workdir, name: name, env: env}
		cmd, auditLog = spec.command(t, withTimeout(t, 5*time.Minute), argv...)
	} else {
		cmd = exec.Command(argv[0], argv[1:]...)
		cmd.Env, cmd.Dir = env, workdir
	}
	s := connect(t, cmd)
	if jailed {
		assertServerConfined(t, script, name)
	}
	results := rc.script(t, s, data)
	// Some servers exit when stdin closes, others (everything) only when the
	// client follows up with SIGTERM: either way the status must not change.
	code := s.close(t)
	if rc.check != nil {
		rc.check(t, workdir)
	}
	if jailed {
		assertStartAndExit(t, readEvents(t, auditLog), name, code)
	}
	for i := range results {
		results[i] = strings.ReplaceAll(results[i], workdir, "$WORKDIR")
	}
	return results, code
}

func (rc referenceCase) test(t *testing.T) {
	requireRoot(t)
	requireServers(t)
	direct, directCode := rc.runOnce(t, false)
	jailed, jailedCode := rc.runOnce(t, true)
	if directCode != jailedCode {
		t.Errorf("exit status direct %d, jailed %d", directCode, jailedCode)
	}
	if len(direct) != len(jailed) {
		t.Fatalf("direct run gave %d results, jailed %d", len(direct), len(jailed))
	}
	for i := range direct {
		t.Logf("result %d: %.160s", i, jailed[i])
		if direct[i] != jailed[i] {
			t.Errorf("result %d differs\n direct: %s\n jailed: %s", i, direct[i], jailed[i])
		}
	}
}

// assertServerConfined finds the node process running script and checks,
// from outside, that the kernel holds it: in the run's cgroups, no
// capabilities, no_new_privs, a seccomp filter.
func assertServerConfined(t *testing.T, script, name string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal(err)
	}
	if node, err = filepath.EvalSymlinks(node); err != nil {
		t.Fatal(err)
	}
	procs := waitForProcs(t, script, node, 1)
	for _, p := range procs {
		jailCgroupDirs(t, p.pid, name)
		assertStatus(t, p.pid, map[string]string{"NoNewPrivs": "1", "Seccomp": "2", "CapEff": "0000000000000000", "CapBnd": "0000000000000000"})
	}
}

// assertStatus compares fields of /proc/PID/status.
func assertStatus(t *testing.T, pid int, want map[string]string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		got[k] = strings.TrimSpace(v)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("pid %d: %s = %q, want %q", pid, k, got[k], v)
		}
	}
}

// assertStartAndExit checks the audit log of a run that exited with code.
func assertStartAndExit(t *testing.T, events []audit.Event, name string, code int) {
	t.Helper()
	starts, exits := eventsOf(events, audit.KindStart), eventsOf(events, audit.KindExit)
	if len(starts) != 1 || len(exits) != 1 {
		t.Fatalf("want one start and one exit event, got:\n%s", formatEvents(events))
	}
	for _, e := range []audit.Event{starts[0], exits[0]} {
		if e.Server.Name != name || e.Server.Instance == "" {
			t.Errorf("event %s names server %+v, want name %q and an instance", e.Kind, e.Server, name)
		}
	}
	if starts[0].Server.Instance != exits[0].Server.Instance {
		t.Errorf("start and exit events name different instances: %q, %q", starts[0].Server.Instance, exits[0].Server.Instance)
	}
	if ec := exits[0].ExitCode; ec == nil || *ec != code {
		t.Errorf("exit event exit_code = %v, want %d", ec, code)
	}
	if left := tmpLeftovers(events); len(left) > 0 {
		t.Errorf("the run's private TMPDIR was not removed: %v", left)
	}
}

func TestFilesystemServerSameResultsJailed(t *testing.T) {
	referenceCase{
		server: "filesystem",
		args:   func(data string) []string { return []string{data} },
		prepare: func(t *testing.T, dir string) {
			writeFile(t, dir, "a.txt", "alpha\nsecond line\n", 0o644)
			writeFile(t, dir, "sub/b.txt", "bravo\n", 0o644)
		},
		script: func(t *testing.T, s *session, dir string) []string {
			a := filepath.Join(dir, "a.txt")
			return []string{
				listTools(t, s),
				resultJSON(t, s.call(t, "list_directory", map[string]any{"path": dir}), dir),
				resultJSON(t, s.call(t, "read_text_file", map[string]any{"path": a}), dir),
				resultJSON(t, s.call(t, "write_file", map[string]any{"path": filepath.Join(dir, "new.txt"), "content": "written through MCP\n"}), dir),
				resultJSON(t, s.call(t, "edit_file", map[string]any{"path": a, "edits": []map[string]any{{"oldText": "alpha", "newText": "beta"}}}), dir),
				resultJSON(t, s.call(t, "read_text_file", map[string]any{"path": a}), dir),
				resultJSON(t, s.call(t, "list_directory", map[string]any{"path": dir}), dir),
			}
		},
		check: func(t *testing.T, workdir string) {
			assertFileContent(t, filepath.Join(workdir, "data", "new.txt"), "written through MCP\n")
			assertFileContent(t, filepath.Join(workdir, "data", "a.txt"), "beta\nsecond line\n")
		},
	}.test(t)
}

func TestMemoryServerSameResultsJailed(t *testing.T) {
	entities := []map[string]any{
		{"name": "mcpjail", "entityType": "project", "observations": []string{"runs MCP servers in a jail"}},
		{"name": "landlock", "entityType": "kernel feature", "observations": []string{"unprivileged access control"}},
	}
	referenceCase{
		server: "memory",
		args:   func(string) []string { return nil },
		// The built-in profile sets MEMORY_FILE_PATH=${WORKDIR}/memory.jsonl;
		// the direct run gets the same from its client environment.
		env: func(workdir string) []string {
			return []string{"MEMORY_FILE_PATH=" + filepath.Join(workdir, "memory.jsonl")}
		},
		script: func(t *testing.T, s *session, dir string) []string {
			return []string{
				listTools(t, s),
				resultJSON(t, s.call(t, "create_entities", map[string]any{"entities": entities}), dir),
				resultJSON(t, s.call(t, "create_relations", map[string]any{"relations": []map[string]any{{"from": "mcpjail", "to": "landlock", "relationType": "uses"}}}), dir),
				resultJSON(t, s.call(t, "add_observations", map[string]any{"observations": []map[string]any{{"entityName": "mcpjail", "contents": []string{"written in Go"}}}}), dir),
				resultJSON(t, s.call(t, "read_graph", map[string]any{}), dir),
				resultJSON(t, s.call(t, "search_nodes", map[string]any{"query": "kernel"}), dir),
			}
		},
		check: func(t *testing.T, dir string) {
			b, err := os.ReadFile(filepath.Join(dir, "memory.jsonl"))
			if err != nil {
				t.Fatalf("memory file not written in the workdir: %v", err)
			}
			if !strings.Contains(string(b), "written in Go") {
				t.Errorf("memory file lacks the last observation:\n%s", b)
			}
		},
	}.test(t)
}

func TestEverythingServerSameResultsJailed(t *testing.T) {
	referenceCase{
		server: "everything",
		args:   func(string) []string { return []string{"stdio"} },
		script: func(t *testing.T, s *session, dir string) []string {
			return []string{
				listTools(t, s),
				resultJSON(t, s.call(t, "echo", map[string]any{"message": "hello from the jail"}), dir),
				resultJSON(t, s.call(t, "get-sum", map[string]any{"a": 2, "b": 40}), dir),
			}
		},
	}.test(t)
}

// listTools renders tools/list (names, descriptions and schemas) for comparison.
func listTools(t *testing.T, s *session) string {
	t.Helper()
	res, err := s.ListTools(withTimeout(t, callTimeout), nil)
	if err != nil {
		t.Fatalf("tools/list: %v\nstderr:\n%s", err, s.stderr.String())
	}
	if len(res.Tools) == 0 {
		t.Fatal("tools/list returned no tools")
	}
	b, err := json.Marshal(res.Tools)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func assertFileContent(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != want {
		t.Errorf("%s = %q, want %q", path, b, want)
	}
}
