package confine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/landlock-lsm/go-landlock/landlock"
)

// Landlock can only grant. To deny D beneath an allowed directory A, A gets
// no rule of its own; instead each entry of A gets A's rights, except D and
// the directories on the way down to D, which are walked the same way.
//
// Known limits, by construction:
//   - entries created later directly in A, or in a directory on the way down
//     to D, get no rights (fail closed: the server cannot use them), and those
//     directories themselves cannot be listed (read_dir on a directory would
//     cover its whole subtree, D included);
//   - symlinks met on the way are given no rule: a rule follows its symlink,
//     so a link into D (or anywhere outside A) would grant its target;
//   - Landlock follows the path used, so a bind mount or hard link of D
//     elsewhere under an allowed path exposes it; so does any rule a profile
//     sets beneath D (Compile rejects those, and planPathRules re-checks after
//     resolving symlinks).
//
// A path swapped between NewPlan and Apply (say, a sibling replaced by a
// symlink into D) is refused: Apply pins each rule to the device and inode
// the plan saw (pin.go).

// maxWalkRules bounds the rules one plan may create by walking down: deny
// rules under huge directories (say /tmp) should be refused, not turned
// into thousands of rules (Apply holds one descriptor per rule).
const maxWalkRules = 2000

// grant is one allowed profile path and the rights the profile gives it.
type grant struct {
	path   string
	access landlock.AccessFSSet
}

type walker struct {
	denied  []string // resolved deny paths, and their lexical forms
	rules   map[string]PathRule
	walked  int // rules created for entries below a profile path
	limit   int // most rules walked may create
	skipped []SkippedPath
}

// planPathRules turns grants and deny paths into path rules on resolved,
// existing paths. Rights are not yet masked to the kernel's ABI.
func planPathRules(grants []grant, deny []string) ([]PathRule, []SkippedPath, error) {
	return planPathRulesLimit(grants, deny, maxWalkRules)
}

func planPathRulesLimit(grants []grant, deny []string, limit int) ([]PathRule, []SkippedPath, error) {
	w := &walker{rules: map[string]PathRule{}, limit: limit}
	for _, d := range deny {
		resolved, err := resolveMaybeMissing(d)
		if err != nil {
			return nil, nil, err
		}
		w.denied = append(w.denied, d, resolved)
	}
	for _, g := range grants {
		resolved, err := filepath.EvalSymlinks(g.path)
		if isNotExist(err) {
			w.skip(g.path, "does not exist")
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("resolve %s: %w", g.path, err)
		}
		for _, d := range w.denied {
			if within(resolved, d) {
				return nil, nil, fmt.Errorf("allowed path %s (resolved %s) lies under denied path %s", g.path, resolved, d)
			}
		}
		info, err := os.Lstat(resolved)
		if err != nil {
			return nil, nil, fmt.Errorf("stat %s: %w", resolved, err)
		}
		if err := w.walk(resolved, info, g.access, false); err != nil {
			return nil, nil, err
		}
	}
	rules := make([]PathRule, 0, len(w.rules))
	for _, r := range w.rules {
		rules = append(rules, r)
	}
	slices.SortFunc(rules, func(a, b PathRule) int { return strings.Compare(a.Path, b.Path) })
	return rules, w.skipped, nil
}

// walk grants access on path, or, when a denied path lies below it, on
// its entries instead. below is true for entries found by walking.
func (w *walker) walk(path string, info fs.FileInfo, access landlock.AccessFSSet, below bool) error {
	if !info.IsDir() || !w.deniedBelow(path) {
		return w.add(path, info, access, below)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("walk down %s toward a deny rule: %w", path, err)
	}
	for _, e := range entries {
		child := filepath.Join(path, e.Name())
		if slices.Contains(w.denied, child) {
			continue
		}
		if e.Type()&fs.ModeSymlink != 0 {
			w.skip(child, "symlink next to a denied path: its target keeps only the rights of its own rules")
			continue
		}
		childInfo, err := e.Info()
		if isNotExist(err) {
			continue // removed since the listing
		}
		if err != nil {
			return fmt.Errorf("walk down %s toward a deny rule: %w", path, err)
		}
		if err := w.walk(child, childInfo, access, true); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) add(path string, info fs.FileInfo, access landlock.AccessFSSet, below bool) error {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("stat %s: no device and inode numbers", path)
	}
	if !info.IsDir() {
		access &= accessFileOnly
	}
	r, seen := w.rules[path]
	if !seen && below {
		w.walked++
		if w.walked > w.limit {
			return fmt.Errorf("deny rules need more than %d rules walking down to them (at %s); deny paths under smaller directories", w.limit, path)
		}
	}
	w.rules[path] = PathRule{Path: path, Dir: info.IsDir(), Access: r.Access | access, dev: st.Dev, ino: st.Ino}
	return nil
}

func (w *walker) skip(path, reason string) {
	w.skipped = append(w.skipped, SkippedPath{Path: path, Reason: reason})
}

func (w *walker) deniedBelow(dir string) bool {
	for _, d := range w.denied {
		if d != dir && within(d, dir) {
			return true
		}
	}
	return false
}

// within reports whether path is dir or lies beneath it (both cleaned).
func within(path, dir string) bool {
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

// resolveMaybeMissing resolves symlinks in the longest existing prefix of
// p and appends the rest: a deny path that does not exist yet still marks
// where the walk must stop.
func resolveMaybeMissing(p string) (string, error) {
	rest := ""
	for cur := p; ; {
		resolved, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(resolved, rest), nil
		}
		if !isNotExist(err) {
			return "", fmt.Errorf("resolve deny path %s: %w", p, err)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
