package confine

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/landlock-lsm/go-landlock/landlock"
)

// testTree builds:
//
//	T/top.txt  T/bin/tool  T/other/
//	T/home/notes.txt  T/home/docs/a.txt  T/home/.ssh/id
//	T/home/link-ssh -> T/home/.ssh   T/home/link-out -> /etc
func testTree(t *testing.T) string {
	t.Helper()
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"bin", "other", "home/docs", "home/.ssh"} {
		mustMkdir(t, filepath.Join(root, d))
	}
	for _, f := range []string{"top.txt", "bin/tool", "home/notes.txt", "home/docs/a.txt", "home/.ssh/id"} {
		mustWrite(t, filepath.Join(root, f), "x")
	}
	mustSymlink(t, filepath.Join(root, "home/.ssh"), filepath.Join(root, "home/link-ssh"))
	mustSymlink(t, "/etc", filepath.Join(root, "home/link-out"))
	return root
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// ruleMap renders rules as path (relative to root) -> "dir|file access".
func ruleMap(root string, rules []PathRule) map[string]string {
	m := map[string]string{}
	for _, r := range rules {
		kind := "file"
		if r.Dir {
			kind = "dir"
		}
		rel, _ := filepath.Rel(root, r.Path)
		m[rel] = fmt.Sprintf("%s %v", kind, r.Access)
	}
	return m
}

func TestPlanPathRules(t *testing.T) {
	root := testTree(t)
	p := func(rel string) string { return filepath.Join(root, rel) }
	read := func(rel string) grant { return grant{path: p(rel), access: accessRead} }
	readFile := landlock.AccessFSSet(accessRead & accessFileOnly)
	tests := []struct {
		name        string
		grants      []grant
		deny        []string
		want        map[string]string
		wantSkipped []string // relative paths
	}{
		{
			name:   "deny under an allowed parent grants the siblings instead",
			grants: []grant{read(".")},
			deny:   []string{p("home/.ssh")},
			want: map[string]string{
				"top.txt":        "file " + readFile.String(),
				"bin":            "dir " + accessRead.String(),
				"other":          "dir " + accessRead.String(),
				"home/notes.txt": "file " + readFile.String(),
				"home/docs":      "dir " + accessRead.String(),
			},
			wantSkipped: []string{"home/link-out", "home/link-ssh"},
		},
		{
			name:   "no deny below: one rule",
			grants: []grant{read("home")},
			deny:   []string{p("other")},
			want:   map[string]string{"home": "dir " + accessRead.String()},
		},
		{
			name:   "file rule gets file rights only",
			grants: []grant{read("top.txt"), {path: p("bin/tool"), access: accessWrite}},
			want: map[string]string{
				"top.txt":  "file " + readFile.String(),
				"bin/tool": "file " + (accessWrite & accessFileOnly).String(),
			},
		},
		{
			name:        "missing path is skipped",
			grants:      []grant{read("nope"), read("bin")},
			want:        map[string]string{"bin": "dir " + accessRead.String()},
			wantSkipped: []string{"nope"},
		},
		{
			name:   "missing deny path still stops at its parent",
			grants: []grant{read("home")},
			deny:   []string{p("home/.aws")},
			want: map[string]string{
				"home/notes.txt": "file " + readFile.String(),
				"home/docs":      "dir " + accessRead.String(),
				"home/.ssh":      "dir " + accessRead.String(),
			},
			wantSkipped: []string{"home/link-out", "home/link-ssh"},
		},
		{
			name:   "deny through a symlink denies its target",
			grants: []grant{read("home")},
			deny:   []string{p("home/link-ssh")},
			want: map[string]string{
				"home/notes.txt": "file " + readFile.String(),
				"home/docs":      "dir " + accessRead.String(),
			},
			wantSkipped: []string{"home/link-out"},
		},
		{
			name:   "rights of several lists merge per path",
			grants: []grant{read("."), {path: p("other"), access: accessWrite}},
			deny:   []string{p("home")},
			want: map[string]string{
				"top.txt": "file " + readFile.String(),
				"bin":     "dir " + accessRead.String(),
				"other":   "dir " + accessWrite.String(),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rules, skipped, err := planPathRules(tt.grants, tt.deny)
			if err != nil {
				t.Fatalf("planPathRules: %v", err)
			}
			got := ruleMap(root, rules)
			for path, want := range tt.want {
				if got[path] != want {
					t.Errorf("rule %s = %q, want %q", path, got[path], want)
				}
			}
			for path := range got {
				if _, ok := tt.want[path]; !ok {
					t.Errorf("unexpected rule %s: %s", path, got[path])
				}
			}
			var gotSkipped []string
			for _, s := range skipped {
				rel, _ := filepath.Rel(root, s.Path)
				gotSkipped = append(gotSkipped, rel)
			}
			slices.Sort(gotSkipped)
			if !slices.Equal(gotSkipped, tt.wantSkipped) {
				t.Errorf("skipped %v, want %v", gotSkipped, tt.wantSkipped)
			}
		})
	}
}

func TestPlanPathRulesRefusesAllowUnderDeny(t *testing.T) {
	root := testTree(t)
	p := func(rel string) string { return filepath.Join(root, rel) }
	for _, allowed := range []string{p("home/.ssh/id"), p("home/.ssh"), p("home/link-ssh")} {
		_, _, err := planPathRules([]grant{{path: allowed, access: accessRead}}, []string{p("home/.ssh")})
		if err == nil || !strings.Contains(err.Error(), "lies under denied path") {
			t.Errorf("allow %s with deny home/.ssh: err = %v, want refusal", allowed, err)
		}
	}
}

func TestPlanPathRulesLimitsWalk(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const limit = 20
	for i := range limit + 1 {
		f, err := os.Create(filepath.Join(root, fmt.Sprintf("f%05d", i)))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	grants, deny := []grant{{path: root, access: accessRead}}, []string{filepath.Join(root, "secret")}
	if _, _, err := planPathRulesLimit(grants, deny, limit+1); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	_, _, err = planPathRulesLimit(grants, deny, limit)
	if err == nil || !strings.Contains(err.Error(), "deny rules need more than") {
		t.Fatalf("over the limit: err = %v, want the walk limit", err)
	}
}

func TestWithin(t *testing.T) {
	tests := []struct {
		path, dir string
		want      bool
	}{
		{"/a/b", "/a", true},
		{"/a", "/a", true},
		{"/ab", "/a", false},
		{"/a", "/a/b", false},
		{"/x", "/", true},
	}
	for _, tt := range tests {
		if got := within(tt.path, tt.dir); got != tt.want {
			t.Errorf("within(%q, %q) = %v, want %v", tt.path, tt.dir, got, tt.want)
		}
	}
}
