package tests

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// canaries are set in mcpjail's environment and listed nowhere in the
// profile: none may reach the server.
var canaries = map[string]string{
	"E2E_LEAK":              "must-not-pass",
	"AWS_SECRET_ACCESS_KEY": "canary-aws-secret",
	"GITHUB_TOKEN":          "canary-github-token",
	"SSH_AUTH_SOCK":         "/tmp/canary-agent.sock",
}

// envProfile writes a profile passing E2E_PASSED, setting E2E_SET and
// reading E2E_SECRET from secretFile.
func envProfile(t *testing.T, dir, secretFile string) string {
	t.Helper()
	return writeProfile(t, dir, "e2e-env", strings.ReplaceAll(`
filesystem:
  exec: ["${HOSTILE}"]
env:
  pass: [PATH, E2E_PASSED]
  set:
    E2E_SET: from-profile
  secrets:
    E2E_SECRET: `+secretFile+`
`, "${HOSTILE}", suite.hostile))
}

func envWithCanaries() []string {
	env := append(defaultClientEnv(), "E2E_PASSED=passed-through")
	for k, v := range canaries {
		env = append(env, k+"="+v)
	}
	return env
}

// TestServerEnvironmentComesFromProfile checks that the server's environment
// is built from the profile alone: pass, set and secrets.
func TestServerEnvironmentComesFromProfile(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	const secret = "s3cr3t-value-from-file"
	secretFile := writeFile(t, dir, "secret", secret, 0o600)
	out := jailSpec{profile: envProfile(t, dir, secretFile), env: envWithCanaries()}.run(t, nil, suite.hostile, "attempt", "environ")
	if out.code != 0 {
		t.Fatalf("exit status %d\nstderr:\n%s", out.code, out.stderr)
	}
	var r struct {
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal([]byte(out.stdout), &r); err != nil {
		t.Fatalf("decode %q: %v", out.stdout, err)
	}
	want := map[string]string{"E2E_PASSED": "passed-through", "E2E_SET": "from-profile", "E2E_SECRET": secret}
	for k, v := range want {
		if got, ok := r.Data[k]; !ok || got != v {
			t.Errorf("server's %s = %q (set: %v), want %q", k, got, ok, v)
		}
	}
	for k := range canaries {
		if v, ok := r.Data[k]; ok {
			t.Errorf("%s=%q reached the server although the profile does not pass it", k, v)
		}
	}
	assertNoSecret(t, secret, out)
}

// TestSecretFileReadableByOthersIsRefused checks that mcpjail refuses a
// secret file that group or others may read, names the file, and never
// prints the secret.
func TestSecretFileReadableByOthersIsRefused(t *testing.T) {
	requireRoot(t)
	for _, perm := range []os.FileMode{0o640, 0o604, 0o644} {
		t.Run(perm.String(), func(t *testing.T) {
			dir := t.TempDir()
			const secret = "s3cr3t-that-must-not-leak"
			secretFile := writeFile(t, dir, "secret", secret, perm)
			out := jailSpec{profile: envProfile(t, dir, secretFile), env: envWithCanaries()}.run(t, nil, suite.hostile, "attempt", "environ")
			if out.code != 125 {
				t.Errorf("exit status %d, want 125 (refused)\nstderr:\n%s", out.code, out.stderr)
			}
			if out.stdout != "" {
				t.Errorf("the server ran: stdout %q", out.stdout)
			}
			if !strings.Contains(out.stderr, secretFile) {
				t.Errorf("stderr does not name %s:\n%s", secretFile, out.stderr)
			}
			assertNoSecret(t, secret, out)
		})
	}
}

// assertNoSecret fails when the secret's value shows up in mcpjail's stderr
// or audit log.
func assertNoSecret(t *testing.T, secret string, out outcome) {
	t.Helper()
	if strings.Contains(out.stderr, secret) {
		t.Errorf("the secret's value appears on mcpjail's stderr:\n%s", out.stderr)
	}
	if strings.Contains(formatEvents(out.events), secret) {
		t.Errorf("the secret's value appears in the audit log:\n%s", formatEvents(out.events))
	}
}
