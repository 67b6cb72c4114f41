package profiles

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// header is the three mandatory lines; bodies in the tables start at line 4.
const header = "apiVersion: mcpjail.dev/v1\nkind: Profile\nname: t\n"

// assertErrors checks that err is an ErrorList whose entries match want, in
// order. Each want is "LINE:COL: substring of the message", or a full
// "file:line:col: message" line when it starts with the file name.
func assertErrors(t *testing.T, err error, want ...string) {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error = %v (%T), want an ErrorList", err, err)
	}
	if len(list) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(list), len(want), err)
	}
	for i, w := range want {
		got := list[i]
		if strings.HasPrefix(w, got.File+":") {
			if got.Error() != w {
				t.Errorf("error %d:\n got  %s\n want %s", i, got, w)
			}
			continue
		}
		where := fmt.Sprintf("%d:%d: ", got.Line, got.Col)
		at, msg, _ := strings.Cut(w, ": ")
		if where != at+": " || !strings.Contains(got.Msg, msg) {
			t.Errorf("error %d:\n got  %s\n want %s (message containing %q)", i, got, at, msg)
		}
	}
}

func TestParseValid(t *testing.T) {
	p, err := LoadFile("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "example-full" || p.Description() != "every key of the language" || p.ServerUser() != "nobody" || p.Source() != "testdata/valid.yaml" {
		t.Errorf("accessors: %q %q %q %q", p.Name(), p.Description(), p.ServerUser(), p.Source())
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string // appended to header unless it starts with "!"
		want []string
	}{
		// Keys.
		{"unknown key suggests", "filesystem:\n  reed: [/usr]\n", []string{`5:3: unknown key "reed" in filesystem (did you mean "read"?)`}},
		{"unknown top-level key", "descripton: x\n", []string{`4:1: unknown key "descripton" in the profile (did you mean "description"?)`}},
		{"unknown key without suggestion", "zzz: 1\n", []string{`4:1: unknown key "zzz" in the profile`}},
		{"unknown key case", "limits:\n  Memory: 1Mi\n", []string{`5:3: unknown key "Memory" in limits (did you mean "memory"?)`}},
		{"duplicate top-level key", "name: u\n", []string{`4:1: duplicate key "name" in the profile (first at line 3)`}},
		{"duplicate nested key", "filesystem:\n  read: [/a]\n  read: [/b]\n", []string{`6:3: duplicate key "read" in filesystem (first at line 5)`}},
		{"non-scalar key", "? [a]\n: b\n", []string{`4:3: keys in the profile must be strings, got a list`}},
		// Document shape.
		{"missing everything", "!{}\n", []string{`1:1: missing required key "apiVersion"`, `1:1: missing required key "kind"`, `1:1: missing required key "name"`}},
		{"wrong apiVersion", "!apiVersion: mcpjail.dev/v2\nkind: Profile\nname: t\n", []string{`1:13: unsupported apiVersion "mcpjail.dev/v2" (this mcpjail reads mcpjail.dev/v1)`}},
		{"wrong kind", "!apiVersion: mcpjail.dev/v1\nkind: Policy\nname: t\n", []string{`2:7: kind must be "Profile", got "Policy"`}},
		{"empty name", "!apiVersion: mcpjail.dev/v1\nkind: Profile\nname:\n", []string{`3:6: name must not be empty`}},
		{"bad name", "!apiVersion: mcpjail.dev/v1\nkind: Profile\nname: ../etc\n", []string{`3:7: name "../etc" must be 1-64 letters`}},
		{"numeric name", "!apiVersion: mcpjail.dev/v1\nkind: Profile\nname: 12\n", []string{`3:7: name must be a string, got an integer (quote it: "12")`}},
		{"empty file", "!", []string{`1:1: empty profile`}},
		{"comment only", "!# nothing\n", []string{`1:1: empty profile`}},
		{"not a mapping", "!- a\n", []string{`1:1: a profile must be a mapping, got a list`}},
		{"second document", "---\nname: x\n", []string{`4:1: a profile file holds one YAML document`}},
		{"syntax error", "filesystem:\n  read: [/usr\n", []string{`4:1: YAML syntax: did not find expected ',' or ']'`}},
		{"alias", "filesystem:\n  read: &r [/usr]\n  exec: *r\n", []string{`6:9: aliases (*r) are not supported`}},
		// Types.
		{"section not a mapping", "filesystem: [/usr]\n", []string{`4:13: filesystem must be a mapping, got a list`}},
		{"list expected", "filesystem:\n  read: /usr\n", []string{`5:9: filesystem.read must be a list, got a string`}},
		{"string expected", "description: 12\n", []string{`4:14: description must be a string, got an integer (quote it: "12")`}},
		{"bool not string", "description: true\n", []string{`4:14: description must be a string, got a boolean`}},
		// Paths.
		{"relative path", "filesystem:\n  read: [usr/lib]\n", []string{`5:10: filesystem.read: path "usr/lib" is relative`}},
		{"empty path", "filesystem:\n  write: [\"\"]\n", []string{`5:11: filesystem.write: empty path`}},
		{"null path", "filesystem:\n  deny: [~]\n", []string{`5:10: filesystem.deny: empty path`}},
		{"NUL in path", "filesystem:\n  read: [\"/a\\0b\"]\n", []string{`5:10: filesystem.read: path "/a\x00b" contains a NUL byte`}},
		{"variable in the middle", "filesystem:\n  read: [\"/data${HOME}\"]\n", []string{`5:10: filesystem.read: ${HOME} in "/data${HOME}": a variable may only start a path`}},
		{"variable glued to text", "filesystem:\n  deny: [\"${HOME}.ssh\"]\n", []string{`5:10: filesystem.deny: path "${HOME}.ssh": write ${HOME}/..., a '/' must follow the variable`}},
		{"unknown variable", "filesystem:\n  read: [\"${HOEM}/x\"]\n", []string{`5:10: filesystem.read: unknown variable ${HOEM} in "${HOEM}/x" (known: ${HOME}, ${WORKDIR}, ${TMPDIR}, ${PROFILE_DIR})`}},
		{"stray dollar", "filesystem:\n  read: [$HOME/x]\n", []string{`5:10: filesystem.read: stray '$' in "$HOME/x"`}},
		{"unterminated variable", "network:\n  unix: [\"${HOME/x\"]\n", []string{`5:10: network.unix: unterminated variable reference`}},
		{"executable relative", "server:\n  executable: node\n", []string{`5:15: server.executable: path "node" is relative`}},
		// Server.
		{"sha256 upper case", "server:\n  sha256: " + strings.Repeat("AB", 32) + "\n", []string{`5:11: sha256 "` + strings.Repeat("AB", 32) + `" must be 64 lower-case hex digits`}},
		{"sha256 short", "server:\n  sha256: abc\n", []string{`5:11: sha256 "abc" must be 64 lower-case hex digits`}},
		{"user with variable", "server:\n  user: ${USER}\n", []string{`5:9: server.user "${USER}": variables are not allowed here`}},
		{"bad user", "server:\n  user: \"a b\"\n", []string{`5:9: server.user "a b" is not a valid user name or numeric uid`}},
		// Network.
		{"bad cidr", "network:\n  egress:\n    - cidr: 10.0.0.300/8\n", []string{`6:13: bad cidr "10.0.0.300/8"`}},
		{"bad address", "network:\n  egress:\n    - cidr: example.com\n", []string{`6:13: bad cidr "example.com": not an IP address or prefix`}},
		{"host bits set", "network:\n  egress:\n    - cidr: 10.0.0.1/8\n", []string{`6:13: cidr "10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?`}},
		{"prefix too long", "network:\n  egress:\n    - cidr: 10.0.0.0/33\n", []string{`6:13: bad cidr "10.0.0.0/33": prefix length out of range`}},
		{"zone", "network:\n  egress:\n    - cidr: fe80::1%eth0\n", []string{`6:13: bad cidr "fe80::1%eth0": zones are not allowed`}},
		{"short v4-mapped", "network:\n  egress:\n    - cidr: ::ffff:0:0/80\n", []string{`6:13: cidr "::ffff:0:0/80": an IPv4-mapped prefix must be /96 or longer`}},
		{"cidr not a string", "network:\n  egress:\n    - cidr: 10\n", []string{`6:13: network.egress cidr must be a string, got an integer`}},
		{"host rule", "network:\n  egress:\n    - host: api.github.com\n      ports: [443]\n", []string{`6:13: hostname rules (host: "api.github.com") are not supported yet: DNS support arrives in a later release; use cidr`}},
		{"rule without cidr", "network:\n  egress:\n    - ports: [443]\n", []string{`6:7: network.egress rule needs a cidr`}},
		{"rule not a mapping", "network:\n  egress:\n    - 10.0.0.0/8\n", []string{`6:7: network.egress rule must be a mapping, got a string`}},
		{"port zero", "network:\n  bind: [0]\n", []string{`5:10: port 0 is out of range 1-65535`}},
		{"port too large", "network:\n  bind: [65536]\n", []string{`5:10: port 65536 is out of range 1-65535`}},
		{"port range reversed", "network:\n  egress:\n    - cidr: ::1\n      ports: [\"9000-8000\"]\n", []string{`7:15: port range "9000-8000" is reversed: write 8000-9000`}},
		{"port range out of range", "network:\n  bind: [1-70000]\n", []string{`5:10: port 70000 is out of range 1-65535`}},
		{"port malformed", "network:\n  bind: [http, -1, 1-2-3]\n", []string{`5:10: malformed port "http"`, `5:16: malformed port "-1"`, `5:20: malformed port "1-2-3"`}},
		{"port float", "network:\n  bind: [80.5]\n", []string{`5:10: network.bind entry must be a port number or a "lo-hi" range, got a decimal number`}},
		{"protocol", "network:\n  egress:\n    - cidr: ::1\n      protocol: icmp\n", []string{`7:17: unknown protocol "icmp" (use tcp, udp or any)`}},
		{"budget incomplete", "network:\n  egress_budget: {bytes: 1Mi}\n", []string{`5:18: network.egress_budget needs per`}},
		{"budget per", "network:\n  egress_budget: {bytes: 1Mi, per: 0s}\n", []string{`5:36: network.egress_budget.per: duration "0s" must be greater than 0`}},
		{"budget per number", "network:\n  egress_budget: {bytes: 1Mi, per: 60}\n", []string{`5:36: network.egress_budget.per must be a string, got an integer`}},
		{"budget bytes", "network:\n  egress_budget: {bytes: 1MB, per: 1m}\n", []string{`5:26: network.egress_budget.bytes: malformed size "1MB"`}},
		// Limits.
		{"memory unit", "limits: {memory: 512MB}\n", []string{`4:18: limits.memory: malformed size "512MB": use a whole number of bytes or Ki, Mi, Gi, Ti`}},
		{"memory zero", "limits: {memory: 0}\n", []string{`4:18: limits.memory: size "0" must be greater than 0`}},
		{"memory fraction", "limits: {memory: 1.5Gi}\n", []string{`4:18: limits.memory: malformed size "1.5Gi"`}},
		{"memory overflow", "limits: {memory: 99999999999Ti}\n", []string{`4:18: limits.memory: size "99999999999Ti" is too large`}},
		{"cpu negative", "limits: {cpu: -1}\n", []string{`4:15: limits.cpu: malformed cpu "-1"`}},
		{"cpu zero", "limits: {cpu: 0.0}\n", []string{`4:15: limits.cpu: cpu "0.0" must be greater than 0`}},
		{"cpu precision", "limits: {cpu: 1.2345}\n", []string{`4:15: limits.cpu: malformed cpu "1.2345"`}},
		{"cpu huge", "limits: {cpu: 9999999}\n", []string{`4:15: limits.cpu: cpu "9999999" exceeds 1048576 cores`}},
		{"pids zero", "limits: {pids: 0}\n", []string{`4:16: limits.pids: pids must be greater than 0`}},
		{"pids string", "limits: {pids: \"12\"}\n", []string{`4:16: limits.pids must be a whole number, got a string`}},
		{"pids huge", "limits: {pids: 5000000}\n", []string{`4:16: limits.pids: pids 5000000 exceeds the kernel's maximum 4194304`}},
		{"pids hex", "limits: {pids: 0x10}\n", []string{`4:16: limits.pids: malformed pids "0x10"`}},
		// on_violation.
		{"on_violation word", "on_violation: maybe\n", []string{`4:15: on_violation: unknown action "maybe" (use deny or kill)`}},
		{"on_violation map value", "on_violation: {file: allow}\n", []string{`4:22: on_violation.file: unknown action "allow"`}},
		{"on_violation map key", "on_violation: {files: deny}\n", []string{`4:16: unknown key "files" in on_violation (did you mean "file"?)`}},
		{"on_violation list", "on_violation: [deny]\n", []string{`4:15: on_violation must be deny, kill or a mapping {file, exec, network}, got a list`}},
		// Env.
		{"env bad name", "env:\n  pass: [1BAD]\n  set: {\"A-B\": x}\n", []string{`5:10: env.pass: invalid environment variable name "1BAD"`, `6:9: env.set: invalid environment variable name "A-B"`}},
		{"env overlap", "env:\n  pass: [TOKEN]\n  secrets: {TOKEN: /etc/t}\n", []string{`6:13: env var TOKEN is already in env.pass (line 5)`}},
		{"env pass twice", "env:\n  pass: [PATH, PATH]\n", []string{`5:16: env.pass lists PATH twice (first at line 5)`}},
		{"env set number", "env:\n  set: {DEBUG: 1}\n", []string{`5:16: env.set.DEBUG must be a string, got an integer (quote it: "1")`}},
		{"env set null", "env:\n  set: {DEBUG: }\n", []string{`5:16: env.set.DEBUG: missing value`}},
		{"env set stray dollar", "env:\n  set: {PS1: \"$ \"}\n", []string{`5:14: env.set.PS1: stray '$'`}},
		{"env secret relative", "env:\n  secrets: {TOKEN: token.txt}\n", []string{`5:20: env.secrets.TOKEN: path "token.txt" is relative`}},
		{"env secret in set", "env:\n  set:\n    GITHUB_TOKEN: ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789\n", []string{`6:19: env.set.GITHUB_TOKEN looks like a GitHub token: a profile must not carry secrets; put the value in a file readable only by root and name it in env.secrets`}},
		// Several errors at once are all reported, in file order.
		{"many", "filesystem:\n  reed: [/usr]\nlimits: {memory: 1MB, pids: 0}\n", []string{`5:3: unknown key "reed"`, `6:18: malformed size "1MB"`, `6:29: pids must be greater than 0`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := header + tt.doc
			if strings.HasPrefix(tt.doc, "!") {
				doc = tt.doc[1:]
			}
			p, err := Parse("t.yaml", []byte(doc))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s\n%+v", doc, p)
			}
			assertErrors(t, err, tt.want...)
		})
	}
}

func TestErrorFormat(t *testing.T) {
	_, err := Parse("profiles/x.yaml", []byte(header+"filesystem:\n  reed: [/usr]\n  write: [a]\n"))
	want := "profiles/x.yaml:5:3: unknown key \"reed\" in filesystem (did you mean \"read\"?)\n" +
		"profiles/x.yaml:6:11: filesystem.write: path \"a\" is relative: paths must be absolute or start with a variable such as ${WORKDIR}"
	if err == nil || err.Error() != want {
		t.Errorf("error text:\n%v\nwant:\n%s", err, want)
	}
}

func TestLoadFileExample(t *testing.T) {
	_, err := LoadFile("testdata/invalid.yaml")
	assertErrors(t, err,
		`testdata/invalid.yaml:6:3: unknown key "reed" in filesystem (did you mean "read"?)`,
		`7:11: filesystem.write: path "relative/dir" is relative`,
		`10:13: cidr "10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?`,
		`11:15: port 0 is out of range`,
		`11:18: port 70000 is out of range`,
		`11:25: port range "9000-8000" is reversed`,
		`12:13: hostname rules`,
		`14:18: malformed size "512MB"`,
		`14:30: malformed cpu "-1"`,
		`16:16: env.set.TOKEN looks like a GitHub token`,
		`17:15: unknown action "maybe"`,
	)
	if _, err := LoadFile("testdata/does-not-exist.yaml"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("LoadFile(missing) = %v", err)
	}
}

func TestParseTooLarge(t *testing.T) {
	_, err := Parse("big.yaml", []byte(header+"description: \""+strings.Repeat("x", maxProfileSize)+"\"\n"))
	assertErrors(t, err, `1:1: profile is larger than 1048576 bytes`)
}

func TestParseNullSectionsAreEmpty(t *testing.T) {
	p, err := Parse("t.yaml", []byte(header+"filesystem:\nnetwork:\n  egress:\nenv:\nlimits:\n"))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := p.Compile(realisticVars)
	if err != nil {
		t.Fatal(err)
	}
	if len(pol.Filesystem.Read) != 0 || len(pol.Network.Egress) != 0 || pol.Limits != (Limits{}) {
		t.Errorf("null sections produced %+v", pol)
	}
}
