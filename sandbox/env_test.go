package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mcpjail/mcpjail/profiles"
)

func writeSecret(t *testing.T, mode os.FileMode, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuildEnvOnlyFromProfile(t *testing.T) {
	secret := writeSecret(t, 0o600, "s3cr3t-value\n")
	host := map[string]string{"PATH": "/usr/bin", "LEAK": "no", "LANG": "C"}
	lookup := func(k string) (string, bool) { v, ok := host[k]; return v, ok }
	env, err := buildEnv(profiles.Env{
		Pass:    []string{"PATH", "ABSENT"},
		Set:     []profiles.EnvVar{{Name: "NODE_ENV", Value: "production"}},
		Secrets: []profiles.EnvSecret{{Name: "TOKEN", Path: secret}},
	}, lookup, os.Geteuid())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PATH=/usr/bin", "NODE_ENV=production", "TOKEN=s3cr3t-value"}
	if strings.Join(env, "\n") != strings.Join(want, "\n") {
		t.Fatalf("env = %q, want %q", env, want)
	}
}

func TestReadSecretRefusesLooseFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode os.FileMode
		want string
	}{
		{"group readable", 0o640, "mode 0640"},
		{"world readable", 0o604, "mode 0604"},
		{"group writable", 0o620, "mode 0620"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeSecret(t, tc.mode, "value-that-must-not-leak")
			_, err := readSecret(p, os.Geteuid())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v, want it to name %s and %q", err, p, tc.want)
			}
			if strings.Contains(err.Error(), "value-that-must-not-leak") {
				t.Fatal("error message contains the secret value")
			}
		})
	}
}

func TestReadSecretRefusesSymlinkAndForeignOwner(t *testing.T) {
	p := writeSecret(t, 0o600, "x")
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	if _, err := readSecret(link, os.Geteuid()); err == nil {
		t.Fatal("a symlinked secret was accepted")
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(p, 12345, 12345); err != nil {
			t.Fatal(err)
		}
		if _, err := readSecret(p, 0); err == nil || !strings.Contains(err.Error(), "owned by uid 12345") {
			t.Fatalf("foreign-owned secret: err = %v", err)
		}
	}
}

func TestEnvValueTakesLast(t *testing.T) {
	v, ok := envValue([]string{"A=1", "PATH=/x", "PATH=/y"}, "PATH")
	if !ok || v != "/y" {
		t.Fatalf("got %q %v", v, ok)
	}
	if _, ok := envValue([]string{"PATHX=1"}, "PATH"); ok {
		t.Fatal("prefix matched")
	}
}
