package confine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPinPathRulesCatchesSwaps(t *testing.T) {
	root := testTree(t)
	p := func(rel string) string { return filepath.Join(root, rel) }
	rules, _, err := planPathRules([]grant{{path: root, access: accessRead}}, []string{p("home/.ssh")})
	if err != nil {
		t.Fatal(err)
	}

	pinned, err := pinPathRules(rules)
	if err != nil {
		t.Fatalf("unchanged tree: %v", err)
	}
	for i, r := range rules {
		target, err := os.Readlink(pinned.paths[i])
		if err != nil || target != r.Path {
			t.Errorf("%s names %q (%v), want %s", pinned.paths[i], target, err, r.Path)
		}
	}
	pinned.release()

	// A sibling swapped for a symlink into the denied directory after
	// planning must not be followed.
	if err := os.Rename(p("home/docs"), p("docs-moved")); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, p("home/.ssh"), p("home/docs"))
	if _, err := pinPathRules(rules); err == nil || !strings.Contains(err.Error(), "home/docs") {
		t.Errorf("swapped home/docs: err = %v, want a refusal naming it", err)
	}
}
