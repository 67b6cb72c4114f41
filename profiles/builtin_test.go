package profiles

import (
	"slices"
	"strings"
	"testing"
)

// realisticVars are what a run as an ordinary user would supply.
var realisticVars = Vars{Home: "/home/alice", Workdir: "/srv/project", TmpDir: "/tmp/mcpjail-0123abcd"}

func TestBuiltinsCompile(t *testing.T) {
	infos := Builtins()
	var names []string
	for _, info := range infos {
		names = append(names, info.Name)
		if info.Description == "" {
			t.Errorf("built-in %s has no description", info.Name)
		}
	}
	want := []string{"default", "everything", "filesystem", "github", "memory"}
	if !slices.Equal(names, want) {
		t.Fatalf("Builtins() = %v, want %v", names, want)
	}
	for _, name := range want {
		t.Run(name, func(t *testing.T) {
			p, err := Builtin(name)
			if err != nil {
				t.Fatalf("Builtin(%q): %v", name, err)
			}
			if p.Name() != name || p.Source() != "builtin:"+name {
				t.Errorf("Name() = %q, Source() = %q", p.Name(), p.Source())
			}
			pol, err := p.Compile(realisticVars)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			if pol.OnViolation != DefaultOnViolation() {
				t.Errorf("on_violation = %+v, want the default", pol.OnViolation)
			}
			if pol.Limits.MemoryBytes == 0 || pol.Limits.Pids == 0 || pol.Limits.CPUMillis == 0 {
				t.Errorf("limits not all set: %+v", pol.Limits)
			}
			if len(pol.Filesystem.Exec) == 0 {
				t.Error("no exec paths: nothing could run")
			}
		})
	}
}

func TestBuiltinSpecifics(t *testing.T) {
	compile := func(name string) *Policy {
		t.Helper()
		p, err := Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		pol, err := p.Compile(realisticVars)
		if err != nil {
			t.Fatal(err)
		}
		return pol
	}

	def := compile("default")
	if !slices.Equal(def.Filesystem.Write, []string{"/dev/null", "/tmp/mcpjail-0123abcd"}) {
		t.Errorf("default write = %v", def.Filesystem.Write)
	}
	for _, secret := range []string{"/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh", "/etc/ssl/private", "/etc/mcpjail"} {
		if !slices.Contains(def.Filesystem.Deny, secret) {
			t.Errorf("default does not deny %s", secret)
		}
	}
	for _, dir := range []string{"/usr/bin", "/bin", "/usr/lib"} {
		if !slices.Contains(def.Filesystem.Exec, dir) {
			t.Errorf("default cannot exec from %s", dir)
		}
	}
	if len(def.Network.Egress) != 0 || def.Limits.Pids != 128 || def.Limits.MemoryBytes != 512<<20 || def.Limits.CPUMillis != 1000 {
		t.Errorf("default network/limits = %+v %+v", def.Network, def.Limits)
	}

	for _, name := range []string{"filesystem", "memory", "everything"} {
		pol := compile(name)
		if len(pol.Network.Egress) != 0 || len(pol.Network.Unix) != 0 {
			t.Errorf("%s has network access: %+v", name, pol.Network)
		}
		if !slices.Contains(pol.Filesystem.Exec, "/usr/bin/node") || !slices.Contains(pol.Filesystem.Exec, "/usr/local/bin/node") {
			t.Errorf("%s exec = %v", name, pol.Filesystem.Exec)
		}
		for _, e := range pol.Filesystem.Exec {
			if !strings.Contains(e, "node") && !strings.Contains(e, "ld-linux") {
				t.Errorf("%s may exec %s", name, e)
			}
		}
		if slices.ContainsFunc(pol.Filesystem.Read, func(p string) bool { return strings.HasPrefix(p, "/home/alice") }) {
			t.Errorf("%s reads the home directory: %v", name, pol.Filesystem.Read)
		}
	}
	if fs := compile("filesystem"); !slices.Contains(fs.Filesystem.Write, "/srv/project") {
		t.Errorf("filesystem cannot write its directory: %v", fs.Filesystem.Write)
	}
	if ev := compile("everything"); slices.Contains(ev.Filesystem.Write, "/srv/project") || len(ev.Env.Set) != 0 {
		t.Errorf("everything writes or sets env: %v %v", ev.Filesystem.Write, ev.Env.Set)
	}
	mem := compile("memory")
	if !slices.Contains(mem.Filesystem.Write, "/srv/project") ||
		!slices.Equal(mem.Env.Set, []EnvVar{{Name: "MEMORY_FILE_PATH", Value: "/srv/project/memory.jsonl"}}) {
		t.Errorf("memory write = %v env = %v", mem.Filesystem.Write, mem.Env.Set)
	}

	gh := compile("github")
	if !slices.Equal(gh.Env.Secrets, []EnvSecret{{Name: "GITHUB_PERSONAL_ACCESS_TOKEN", Path: "/etc/mcpjail/secrets/github"}}) {
		t.Errorf("github secrets = %v", gh.Env.Secrets)
	}
	for _, r := range gh.Network.Egress {
		dns := r.Prefix.String() == "127.0.0.53/32"
		switch {
		case dns && (r.Protocol != ProtoAny || !slices.Equal(r.Ports, []PortRange{{53, 53}})):
			t.Errorf("github DNS rule = %+v", r)
		case !dns && (r.Protocol != ProtoTCP || !slices.Equal(r.Ports, []PortRange{{443, 443}})):
			t.Errorf("github API rule = %+v", r)
		}
	}
	if len(gh.Network.Egress) != 7 {
		t.Errorf("github has %d egress rules, want 7", len(gh.Network.Egress))
	}
}

func TestBuiltinErrors(t *testing.T) {
	for _, name := range []string{"nope", "", "../profiles/builtin/default", "default.yaml"} {
		if _, err := Builtin(name); err == nil || !strings.Contains(err.Error(), "built-ins: default, everything, filesystem, github, memory") {
			t.Errorf("Builtin(%q) = %v, want an error listing the built-ins", name, err)
		}
	}
}

func TestResolve(t *testing.T) {
	p, err := Resolve("github")
	if err != nil || p.Source() != "builtin:github" {
		t.Fatalf("Resolve(github) = %v, %v", p, err)
	}
	p, err = Resolve("testdata/valid.yaml")
	if err != nil || p.Source() != "testdata/valid.yaml" {
		t.Fatalf("Resolve(testdata/valid.yaml) = %v, %v", p, err)
	}
	if _, err := Resolve("missing.yaml"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Resolve(missing.yaml) = %v, want a file error", err)
	}
	if _, err := Resolve("nosuch"); err == nil || !strings.Contains(err.Error(), "./nosuch.yaml") {
		t.Errorf("Resolve(nosuch) = %v, want a hint about files", err)
	}
}

func TestBuiltinCannotUseProfileDir(t *testing.T) {
	p, err := parse("builtin:x", "builtin:x", "", true, []byte("apiVersion: mcpjail.dev/v1\nkind: Profile\nname: x\nfilesystem:\n  read: [\"${PROFILE_DIR}/data\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Compile(realisticVars)
	assertErrors(t, err, "builtin:x:5:10: filesystem.read \"${PROFILE_DIR}/data\": ${PROFILE_DIR} is not available in a built-in profile")
}
