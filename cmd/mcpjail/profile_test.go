package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpjail/mcpjail/profiles"
)

// runCLI runs mcpjail in-process and returns its exit code, stdout and
// stderr. run() writes to os.Stdout and os.Stderr (the app's writers default
// to them), so both are swapped for files for the duration of the call; tests
// using it must not run in parallel.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	outFile, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	errFile, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	origOut, origErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = outFile, errFile
	defer func() { os.Stdout, os.Stderr = origOut, origErr }()

	code = run(append([]string{"mcpjail"}, args...))

	outFile.Close()
	errFile.Close()
	o, _ := os.ReadFile(outFile.Name())
	e, _ := os.ReadFile(errFile.Name())
	return code, string(o), string(e)
}

// writeProfile writes a profile into a temporary directory and returns its path.
func writeProfile(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

const goodProfile = `apiVersion: mcpjail.dev/v1
kind: Profile
name: good
filesystem:
  read: [/usr, "${HOME}"]
  deny: ["${HOME}/.ssh"]
`

const badProfile = `apiVersion: mcpjail.dev/v1
kind: Profile
name: bad
filesystem:
  reed: [/usr]
network:
  egress:
    - cidr: 10.0.0.1/8
      ports: [0]
`

func TestProfileValidate(t *testing.T) {
	good := writeProfile(t, "good.yaml", goodProfile)
	bad := writeProfile(t, "bad.yaml", badProfile)

	code, stdout, stderr := runCLI(t, "profile", "validate", good)
	if code != 0 || stderr != "" || stdout != good+": ok\n" {
		t.Errorf("valid file: code %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	code, stdout, stderr = runCLI(t, "profile", "validate", good, bad)
	wantErr := bad + ":5:3: unknown key \"reed\" in filesystem (did you mean \"read\"?)\n" +
		bad + ":8:13: cidr \"10.0.0.1/8\" has host bits set; did you mean 10.0.0.0/8?\n" +
		bad + ":9:15: port 0 is out of range 1-65535\n"
	if code != exitUsage || stderr != wantErr || stdout != good+": ok\n" {
		t.Errorf("mixed files: code %d, stdout %q\nstderr:\n%s\nwant:\n%s", code, stdout, stderr, wantErr)
	}
}

func TestProfileValidateCompileErrors(t *testing.T) {
	// Valid syntax, but the read path lies inside the denied one once ${HOME}
	// is known: validate compiles with --home.
	path := writeProfile(t, "conflict.yaml", "apiVersion: mcpjail.dev/v1\nkind: Profile\nname: c\nfilesystem:\n  read: [/srv/alice/.ssh/config]\n  deny: [\"${HOME}/.ssh\"]\n")
	code, _, stderr := runCLI(t, "profile", "validate", "--home", "/srv/alice", path)
	want := path + ":5:10: read path /srv/alice/.ssh/config lies inside denied path /srv/alice/.ssh (line 6)\n"
	if code != exitUsage || stderr != want {
		t.Errorf("code %d, stderr %q, want %q", code, stderr, want)
	}
	if code, _, _ := runCLI(t, "profile", "validate", "--home", "/home/bob", path); code != 0 {
		t.Errorf("with another home: code %d, want 0", code)
	}
}

func TestProfileValidateUsage(t *testing.T) {
	for _, args := range [][]string{
		{"profile", "validate"},
		{"profile", "validate", "missing.yaml"},
		{"profile", "validate", writeProfile(t, "g.yaml", goodProfile), "--home", "/x"},
		{"profile", "validate", "--no-such-flag", "x.yaml"},
	} {
		code, _, stderr := runCLI(t, args...)
		if code != exitUsage || stderr == "" {
			t.Errorf("%v: code %d, stderr %q; want %d and a message", args, code, stderr, exitUsage)
		}
	}
}

func TestProfileShow(t *testing.T) {
	code, stdout, stderr := runCLI(t, "profile", "show", "--workdir", "/srv/data", "--home", "/home/bob", "memory")
	if code != 0 || stderr != "" {
		t.Fatalf("code %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"source: builtin:memory", "- /srv/data\n", "value: /srv/data/memory.jsonl", "- /home/bob/.ssh\n", "memory_bytes: 536870912"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("show memory lacks %q:\n%s", want, stdout)
		}
	}

	code, stdout, _ = runCLI(t, "profile", "show", "--json", "github")
	var pol profiles.Policy
	if err := json.Unmarshal([]byte(stdout), &pol); code != 0 || err != nil {
		t.Fatalf("show --json: code %d, %v\n%s", code, err, stdout)
	}
	if len(pol.Network.Egress) == 0 || pol.Network.Egress[0].Prefix.String() != "127.0.0.53/32" {
		t.Errorf("show --json github: egress %v", pol.Network.Egress)
	}

	bad := writeProfile(t, "bad.yaml", badProfile)
	code, _, stderr = runCLI(t, "profile", "show", bad)
	if code != exitUsage || !strings.HasPrefix(stderr, bad+":5:3: unknown key") {
		t.Errorf("show bad file: code %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "profile", "show", "nosuch")
	if code != exitUsage || !strings.Contains(stderr, "built-ins: default") {
		t.Errorf("show unknown name: code %d, stderr %q", code, stderr)
	}
}

func TestProfileList(t *testing.T) {
	code, stdout, _ := runCLI(t, "profile", "list")
	if code != 0 {
		t.Fatalf("code %d", code)
	}
	for _, b := range profiles.Builtins() {
		if !strings.Contains(stdout, b.Name) || !strings.Contains(stdout, b.Description) {
			t.Errorf("list lacks %s:\n%s", b.Name, stdout)
		}
	}
}

func TestProfilePin(t *testing.T) {
	// A fake server reached through a symlink on PATH: the pin must name the
	// real file and its digest.
	bin := t.TempDir()
	real := filepath.Join(bin, "server-1.2.3")
	content := []byte("#!/bin/sh\necho fake server\n")
	if err := os.WriteFile(real, content, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, filepath.Join(bin, "server")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	sum := sha256.Sum256(content)
	wantSum := hex.EncodeToString(sum[:])

	path := writeProfile(t, "p.yaml", "# keep me\n"+goodProfile)
	code, stdout, stderr := runCLI(t, "profile", "pin", path, "--", "server", "--flag", "arg")
	if code != 0 {
		t.Fatalf("pin: code %d, stderr %q", code, stderr)
	}
	if !strings.Contains(stdout, wantSum) {
		t.Errorf("stdout %q lacks the digest", stdout)
	}
	p, err := profiles.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pol, err := p.Compile(profiles.Vars{Home: "/h", Workdir: "/w", TmpDir: "/t"})
	if err != nil {
		t.Fatal(err)
	}
	if pol.Server.Executable != real || pol.Server.SHA256 != wantSum {
		t.Errorf("pinned %+v, want %s %s", pol.Server, real, wantSum)
	}
	data, _ := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if !strings.HasPrefix(string(data), "# keep me\n") || fi.Mode().Perm() != 0o640 {
		t.Errorf("comment or mode lost: mode %v\n%s", fi.Mode().Perm(), data)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".p.yaml.pin-*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}

	// Failures leave the file alone.
	before, _ := os.ReadFile(path)
	if code, _, stderr := runCLI(t, "profile", "pin", path, "--", "no-such-command"); code != exitFailure || !strings.Contains(stderr, "no-such-command") {
		t.Errorf("unknown command: code %d, stderr %q", code, stderr)
	}
	if code, _, _ := runCLI(t, "profile", "pin", path); code != exitUsage {
		t.Errorf("missing command: code %d, want %d", code, exitUsage)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("a failed pin changed the file")
	}
	bad := writeProfile(t, "bad.yaml", badProfile)
	if code, _, stderr := runCLI(t, "profile", "pin", bad, "--", "server"); code != exitUsage || !strings.HasPrefix(stderr, bad+":5:3:") {
		t.Errorf("invalid profile: code %d, stderr %q", code, stderr)
	}
}
