package profiles

import (
	"strings"
	"testing"
)

const pinHash = "0123456789012345678901234567890123456789012345678901234567890123" // all digits: must stay a string

func TestSetPinRoundTrip(t *testing.T) {
	in := `# Team profile, reviewed in PR 42.
apiVersion: mcpjail.dev/v1
kind: Profile
name: pinned
description: kept as is
filesystem:
  # comment on read
  read: [/usr, "${HOME}"]   # flow style kept
env:
  set: {MODE: fast}
`
	out, err := SetPin([]byte(in), "/usr/bin/node", pinHash)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, keep := range []string{"# Team profile, reviewed in PR 42.", "# comment on read", "# flow style kept", "read: [/usr, \"${HOME}\"]", "description: kept as is"} {
		if !strings.Contains(text, keep) {
			t.Errorf("lost %q:\n%s", keep, text)
		}
	}
	if !strings.Contains(text, "description: kept as is\nserver:\n  executable: /usr/bin/node\n  sha256: \""+pinHash+"\"\n") {
		t.Errorf("server block not inserted after description:\n%s", text)
	}
	p, err := Parse("out.yaml", out)
	if err != nil {
		t.Fatalf("output does not parse: %v\n%s", err, text)
	}
	pol, err := p.Compile(realisticVars)
	if err != nil {
		t.Fatal(err)
	}
	if pol.Server.Executable != "/usr/bin/node" || pol.Server.SHA256 != pinHash {
		t.Errorf("server = %+v", pol.Server)
	}

	// Pinning again replaces the values instead of adding keys.
	newHash := strings.Repeat("ab", 32)
	again, err := SetPin(out, "/opt/$node/bin/node", newHash)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(again), "sha256:") != 1 || strings.Count(string(again), "executable:") != 1 {
		t.Errorf("keys duplicated:\n%s", again)
	}
	p, err = Parse("again.yaml", again)
	if err != nil {
		t.Fatal(err)
	}
	pol, err = p.Compile(realisticVars)
	if err != nil {
		t.Fatal(err)
	}
	if pol.Server.Executable != "/opt/$node/bin/node" || pol.Server.SHA256 != newHash {
		t.Errorf("second pin: server = %+v", pol.Server)
	}
}

func TestSetPinExistingServer(t *testing.T) {
	for _, server := range []string{
		"server:\n  user: nobody\n  sha256: " + strings.Repeat("cd", 32) + " # old pin\n",
		"server:\n",
		"server: {user: nobody}\n",
	} {
		out, err := SetPin([]byte(header+server), "/usr/bin/node", pinHash)
		if err != nil {
			t.Fatalf("%q: %v", server, err)
		}
		p, err := Parse("out.yaml", out)
		if err != nil {
			t.Fatalf("%q: output does not parse: %v\n%s", server, err, out)
		}
		pol, _ := p.Compile(realisticVars)
		if pol.Server.SHA256 != pinHash || pol.Server.Executable != "/usr/bin/node" {
			t.Errorf("%q: server = %+v", server, pol.Server)
		}
		if strings.Contains(server, "nobody") && pol.Server.User != "nobody" {
			t.Errorf("%q: user lost:\n%s", server, out)
		}
		if strings.Contains(server, "# old pin") && !strings.Contains(string(out), "# old pin") {
			t.Errorf("%q: comment lost:\n%s", server, out)
		}
	}
}

func TestSetPinErrors(t *testing.T) {
	valid := []byte(header)
	tests := []struct {
		name       string
		data       []byte
		exe, hash  string
		wantSubstr string
	}{
		{"relative executable", valid, "node", pinHash, "must be an absolute, clean path"},
		{"unclean executable", valid, "/usr/bin/../bin/node", pinHash, "must be an absolute, clean path"},
		{"bad hash", valid, "/usr/bin/node", "ABC", "64 lower-case hex digits"},
		{"invalid profile", []byte(header + "filesystem:\n  reed: []\n"), "/usr/bin/node", pinHash, `profile:5:3: unknown key "reed"`},
		{"server not a mapping", []byte(header + "server: [x]\n"), "/usr/bin/node", pinHash, "server must be a mapping"},
	}
	for _, tt := range tests {
		if _, err := SetPin(tt.data, tt.exe, tt.hash); err == nil || !strings.Contains(err.Error(), tt.wantSubstr) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantSubstr)
		}
	}
}
