package profiles

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func mustParse(t *testing.T, body string) *Profile {
	t.Helper()
	p, err := Parse("/etc/mcpjail/profiles/t.yaml", []byte(header+body))
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return p
}

func TestCompileFull(t *testing.T) {
	p, err := LoadFile("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Compile(Vars{Home: "/home/alice/", Workdir: "/srv/work", TmpDir: "/tmp/mcpjail-1"})
	if err != nil {
		t.Fatal(err)
	}
	profileDir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	want := &Policy{
		Name:        "example-full",
		Description: "every key of the language",
		Source:      "testdata/valid.yaml",
		Server: Server{
			Executable: "/usr/bin/node",
			SHA256:     "9f2c0e4b8a6d1f3e5c7b9a0d2e4f6a8c1b3d5e7f9a0c2e4b6d8f0a1c3e5b7d9f",
			User:       "nobody",
		},
		Filesystem: Filesystem{
			Read:  slices.Sorted(slices.Values([]string{"/etc/ssl", "/home/alice", profileDir + "/data", "/usr"})),
			Write: []string{"/srv/work", "/tmp/mcpjail-1"},
			Exec:  []string{"/usr/bin/node"},
			Deny:  []string{"/home/alice/.aws", "/home/alice/.ssh"},
		},
		Network: Network{
			Egress: []EgressRule{
				{Prefix: netip.MustParsePrefix("10.1.2.3/32"), Ports: []PortRange{{22, 22}, {8000, 8100}, {9000, 9000}}, Protocol: ProtoUDP},
				{Prefix: netip.MustParsePrefix("140.82.112.0/20"), Ports: []PortRange{{443, 443}}, Protocol: ProtoTCP},
				{Prefix: netip.MustParsePrefix("2001:db8::/32"), Ports: []PortRange{}, Protocol: ProtoAny},
			},
			Unix:         []string{"/run/app.sock"},
			Bind:         []PortRange{{8080, 8080}},
			EgressBudget: &Budget{Bytes: 50 << 20, Per: time.Minute},
		},
		Limits: Limits{MemoryBytes: 512 << 20, Pids: 128, CPUMillis: 1500},
		Env: Env{
			Pass:    []string{"LANG", "PATH"},
			Set:     []EnvVar{{"CACHE", "/tmp/mcpjail-1/cache"}, {"LC_ALL", "en_US.UTF-8"}, {"NODE_ENV", "production"}},
			Secrets: []EnvSecret{{"GITHUB_TOKEN", "/etc/mcpjail/secrets/github"}},
		},
		OnViolation: OnViolation{File: ActionDeny, Exec: ActionKill, Network: ActionDeny},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Compile:\n got  %+v\n want %+v", got, want)
	}
}

func TestCompileExpansion(t *testing.T) {
	vars := Vars{Home: "/home/bob", Workdir: "/w/", TmpDir: "/tmp/x"}
	tests := []struct {
		raw, want string
	}{
		{"${HOME}", "/home/bob"},
		{"${HOME}/.cache/../.config", "/home/bob/.config"},
		{"${WORKDIR}/sub", "/w/sub"},
		{"${TMPDIR}", "/tmp/x"},
		{"${PROFILE_DIR}/data", "/etc/mcpjail/profiles/data"},
		{"/srv//a/./b/", "/srv/a/b"},
		{"/opt/$$weird", "/opt/$weird"},
	}
	for _, tt := range tests {
		pol, err := mustParse(t, "filesystem:\n  read: [\""+tt.raw+"\"]\n").Compile(vars)
		if err != nil {
			t.Errorf("%s: %v", tt.raw, err)
			continue
		}
		if !slices.Equal(pol.Filesystem.Read, []string{tt.want}) {
			t.Errorf("%s expanded to %v, want %s", tt.raw, pol.Filesystem.Read, tt.want)
		}
	}

	// Variables anywhere in env.set values; values are not cleaned.
	pol, err := mustParse(t, "env:\n  set: {A: \"x=${WORKDIR}:${HOME}/\", B: \"cost $$5\"}\n").Compile(vars)
	if err != nil {
		t.Fatal(err)
	}
	if want := []EnvVar{{"A", "x=/w:/home/bob/"}, {"B", "cost $5"}}; !slices.Equal(pol.Env.Set, want) {
		t.Errorf("env.set = %v, want %v", pol.Env.Set, want)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		vars Vars
		want []string
	}{
		{"empty variable", "filesystem:\n  read: [\"${HOME}/x\"]\n  write: [\"${TMPDIR}\"]\n", Vars{Workdir: "/w", TmpDir: "/t"},
			[]string{`5:10: filesystem.read "${HOME}/x": ${HOME} has no value for this run`}},
		{"relative variable", "server:\n  executable: ${WORKDIR}/bin/server\n", Vars{Home: "/h", Workdir: "rel", TmpDir: "/t"},
			[]string{`5:15: server.executable "${WORKDIR}/bin/server": ${WORKDIR} is "rel", which is not an absolute path`}},
		{"empty variable in env.set", "env:\n  set:\n    DIR: x${TMPDIR}\n", Vars{Home: "/h", Workdir: "/w"},
			[]string{`6:10: env.set.DIR: ${TMPDIR} has no value for this run`}},
		{"secret path variable", "env:\n  secrets: {T: \"${HOME}/t\"}\n", Vars{Workdir: "/w", TmpDir: "/t"},
			[]string{`5:16: env.secrets.T "${HOME}/t": ${HOME} has no value`}},
		{"unix path variable", "network:\n  unix: [\"${HOME}/s\"]\n", Vars{Workdir: "/w", TmpDir: "/t"},
			[]string{`5:10: network.unix "${HOME}/s": ${HOME} has no value`}},
		{"read inside deny", "filesystem:\n  read: [\"${HOME}\", \"${HOME}/.ssh/config\"]\n  deny: [\"${HOME}/.ssh\"]\n", realisticVars,
			[]string{`5:21: read path /home/alice/.ssh/config lies inside denied path /home/alice/.ssh (line 6)`}},
		{"write equal to deny", "filesystem:\n  write: [/srv/data/]\n  deny: [/srv/data]\n", realisticVars,
			[]string{`5:11: write path /srv/data lies inside denied path /srv/data (line 6)`}},
		{"exec under deny via variable", "filesystem:\n  exec: [\"${WORKDIR}/bin\"]\n  deny: [/srv]\n", realisticVars,
			[]string{`5:10: exec path /srv/project/bin lies inside denied path /srv (line 6)`}},
		{"deny root", "filesystem:\n  read: [/usr]\n  deny: [/]\n", realisticVars,
			[]string{`5:10: read path /usr lies inside denied path / (line 6)`}},
		// An MCP client that starts servers from / makes the default workdir /.
		{"workdir / in write", "filesystem:\n  write: [\"${WORKDIR}\"]\n", Vars{Home: "/h", Workdir: "/", TmpDir: "/t"},
			[]string{`5:11: filesystem.write "${WORKDIR}" expands to /, the whole filesystem; pass --workdir with the directory the server is for`}},
		{"workdir / in read", "filesystem:\n  read: [\"${WORKDIR}\"]\n", Vars{Home: "/h", Workdir: "/", TmpDir: "/t"},
			[]string{`5:10: filesystem.read "${WORKDIR}" expands to /, the whole filesystem; pass --workdir`}},
		{"exec /", "filesystem:\n  exec: [/]\n", realisticVars,
			[]string{`5:10: filesystem.exec "/" expands to /, the whole filesystem`}},
		{"write /etc", "filesystem:\n  write: [/etc/]\n", realisticVars,
			[]string{`5:11: filesystem.write "/etc/" expands to /etc, which would let the server rewrite all of /etc`}},
		{"workdir /var in write", "filesystem:\n  write: [\"${WORKDIR}\"]\n", Vars{Home: "/h", Workdir: "/var", TmpDir: "/t"},
			[]string{`5:11: filesystem.write "${WORKDIR}" expands to /var, which would let the server rewrite all of /var`}},
		{"home parent in write", "filesystem:\n  write: [\"${HOME}/..\"]\n", Vars{Home: "/home/alice", Workdir: "/w", TmpDir: "/t"},
			[]string{`5:11: filesystem.write "${HOME}/.." expands to /home, which would let the server rewrite all of /home`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol, err := mustParse(t, tt.body).Compile(tt.vars)
			if err == nil {
				t.Fatalf("Compile accepted: %+v", pol)
			}
			assertErrors(t, err, tt.want...)
		})
	}
}

// TestNarrowSystemPathsAreFine: a write rule inside a system directory, or
// a read rule on one, is a profile's business; only covering one whole for
// writing (or / for anything) is refused.
func TestNarrowSystemPathsAreFine(t *testing.T) {
	body := "filesystem:\n  read: [/etc, /usr, /home]\n  write: [/etc/myapp, /var/lib/myapp, /var/tmp, /dev/null, \"${WORKDIR}\"]\n"
	if _, err := mustParse(t, body).Compile(Vars{Home: "/home/alice", Workdir: "/home/alice/project", TmpDir: "/t"}); err != nil {
		t.Fatal(err)
	}
}

func TestDenyBeneathAllowedIsFine(t *testing.T) {
	pol, err := mustParse(t, "filesystem:\n  read: [\"${HOME}\", \"${HOME}/.sshx\"]\n  deny: [\"${HOME}/.ssh\"]\n").Compile(realisticVars)
	if err != nil {
		t.Fatal(err) // "/home/alice/.sshx" is a sibling of ".ssh", not inside it
	}
	if !slices.Equal(pol.Filesystem.Deny, []string{"/home/alice/.ssh"}) {
		t.Errorf("deny = %v", pol.Filesystem.Deny)
	}
}

func TestCompileNormalizes(t *testing.T) {
	pol, err := mustParse(t, `filesystem:
  read: [/usr, /etc, /usr/, "${HOME}", /home/alice]
network:
  egress:
    - {cidr: "::ffff:10.0.0.0/104", ports: [443, 80, 81, 82-90, 85, 1000-2000, 1500-1600]}
    - {cidr: "::ffff:1.2.3.4"}
    - {cidr: 10.0.0.0/8, ports: [80-90, 443, 3000]}
    - {cidr: 10.0.0.0/8, protocol: udp, ports: [53]}
    - {cidr: 10.0.0.0/8, protocol: udp}
    - {cidr: "2001:db8::1"}
    - {cidr: 192.0.2.1}
  bind: [9000, 8000-8999, 65535]
env:
  pass: [PATH, HOME, LANG]
`).Compile(realisticVars)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/etc", "/home/alice", "/usr"}; !slices.Equal(pol.Filesystem.Read, want) {
		t.Errorf("read = %v, want %v", pol.Filesystem.Read, want)
	}
	want := []EgressRule{
		{Prefix: netip.MustParsePrefix("1.2.3.4/32"), Ports: []PortRange{}, Protocol: ProtoTCP},
		// The mapped prefix and the IPv4 one are the same destination once
		// normalised: their ports are merged. A rule without ports covers all.
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Ports: []PortRange{{80, 90}, {443, 443}, {1000, 2000}, {3000, 3000}}, Protocol: ProtoTCP},
		{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Ports: []PortRange{}, Protocol: ProtoUDP},
		{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Ports: []PortRange{}, Protocol: ProtoTCP},
		{Prefix: netip.MustParsePrefix("2001:db8::1/128"), Ports: []PortRange{}, Protocol: ProtoTCP},
	}
	if !reflect.DeepEqual(pol.Network.Egress, want) {
		t.Errorf("egress =\n %v\nwant\n %v", pol.Network.Egress, want)
	}
	if want := []PortRange{{8000, 9000}, {65535, 65535}}; !slices.Equal(pol.Network.Bind, want) {
		t.Errorf("bind = %v, want %v", pol.Network.Bind, want)
	}
	if want := []string{"HOME", "LANG", "PATH"}; !slices.Equal(pol.Env.Pass, want) {
		t.Errorf("pass = %v, want %v", pol.Env.Pass, want)
	}
	if pol.OnViolation != DefaultOnViolation() {
		t.Errorf("on_violation = %+v, want the default", pol.OnViolation)
	}
}

func TestOnViolationForms(t *testing.T) {
	for body, want := range map[string]OnViolation{
		"on_violation: kill\n":            {ActionKill, ActionKill, ActionKill},
		"on_violation: deny\n":            {ActionDeny, ActionDeny, ActionDeny},
		"on_violation: {network: deny}\n": {ActionDeny, ActionKill, ActionDeny},
		"on_violation: {file: kill}\n":    {ActionKill, ActionKill, ActionKill},
	} {
		pol, err := mustParse(t, body).Compile(realisticVars)
		if err != nil {
			t.Fatal(err)
		}
		if pol.OnViolation != want {
			t.Errorf("%q: %+v, want %+v", body, pol.OnViolation, want)
		}
	}
}

// TestCompileSharesNothing mutates one Policy and checks that neither the
// Profile nor a second Policy sees it.
func TestCompileSharesNothing(t *testing.T) {
	p, err := LoadFile("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	first, err := p.Compile(realisticVars)
	if err != nil {
		t.Fatal(err)
	}
	pristine, _ := p.Compile(realisticVars)
	first.Filesystem.Read[0] = "/mutated"
	first.Network.Egress[0].Ports[0] = PortRange{1, 1}
	first.Network.Egress[0].Prefix = netip.MustParsePrefix("0.0.0.0/0")
	first.Network.Bind[0] = PortRange{2, 2}
	first.Network.EgressBudget.Bytes = 1
	first.Env.Set[0].Value = "mutated"
	first.Env.Pass[0] = "MUTATED"
	second, err := p.Compile(realisticVars)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(second, pristine) {
		t.Errorf("a mutation of one Policy leaked into the next:\n%+v\n%+v", second, pristine)
	}
}

func TestPolicyJSONRoundTrip(t *testing.T) {
	p, err := LoadFile("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pol, err := p.Compile(realisticVars)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(pol)
	if err != nil {
		t.Fatal(err)
	}
	var back Policy
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatalf("unmarshal %s: %v", data, err)
	}
	if !reflect.DeepEqual(&back, pol) {
		t.Errorf("round trip changed the policy:\n%+v\n%+v", &back, pol)
	}
	var bad PortRange
	if err := bad.UnmarshalText([]byte("0")); err == nil {
		t.Error("PortRange accepted port 0")
	}
}

func TestPolicyYAMLRoundTrip(t *testing.T) {
	p, err := LoadFile("testdata/valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pol, err := p.Compile(realisticVars)
	if err != nil {
		t.Fatal(err)
	}
	data, err := yaml.Marshal(pol)
	if err != nil {
		t.Fatal(err)
	}
	for _, readable := range []string{"cidr: 10.1.2.3/32", "- 22\n", "- 8000-8100\n", "per: 1m0s", "cidr: 2001:db8::/32"} {
		if !strings.Contains(string(data), readable) {
			t.Errorf("YAML lacks %q:\n%s", readable, data)
		}
	}
	var back Policy
	if err := yaml.Unmarshal(data, &back); err != nil {
		t.Fatalf("unmarshal:\n%s\n%v", data, err)
	}
	if !reflect.DeepEqual(&back, pol) {
		t.Errorf("YAML round trip changed the policy:\n%+v\n%+v", &back, pol)
	}
}
