package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
)

// lsm.bpf.c matches paths on the kernel's objects (dev and inode of each
// ancestor, walked up d_parent). The alternative the issue named, bpf_d_path
// plus prefix matching, is built in lsmcompare.bpf.c (with an LPM trie, its
// fastest form) so that the choice is measured: TestLSMPathMatchingChoice
// pins down what each one refuses, BenchmarkLSMFileOpen what each one costs
// (`make bench-vm` runs it in the kernel VM, where BPF LSM programs load).

// pathMatcher is one file_open program attached with the rules of a policy
// for one jail cgroup.
type pathMatcher struct {
	name     string
	prog     *ebpf.Program
	verified int // instructions the verifier processed
	verifyUS int // the verifier's time in microseconds
	closers  []interface{ Close() error }
}

func (m *pathMatcher) Close() error {
	var errs []error
	for i := len(m.closers) - 1; i >= 0; i-- {
		errs = append(errs, m.closers[i].Close())
	}
	return errors.Join(errs...)
}

// statsOpts loads programs with the verifier's statistics in their log.
var statsOpts = ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats}

var (
	processedRe = regexp.MustCompile(`processed (\d+) insns`)
	verifyTime  = regexp.MustCompile(`verification time (\d+) usec`)
)

// verifierStat reads a number from the verifier's statistics (-1: absent).
func verifierStat(p *ebpf.Program, re *regexp.Regexp) int {
	m := re.FindStringSubmatch(p.VerifierLog)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func newPathMatcher(name string, prog *ebpf.Program, closers ...interface{ Close() error }) *pathMatcher {
	return &pathMatcher{name: name, prog: prog, closers: closers,
		verified: verifierStat(prog, processedRe), verifyUS: verifierStat(prog, verifyTime)}
}

// attachWalk loads lsm.bpf.c's file_open alone, as the loader builds it.
func attachWalk(groupID uint64, p *profiles.Policy) (*pathMatcher, error) {
	spec, err := loadLsm()
	if err != nil {
		return nil, err
	}
	var objs struct {
		Open    *ebpf.Program `ebpf:"mcpjail_lsm_open"`
		Jails   *ebpf.Map     `ebpf:"mcpjail_jails"`
		FSRules *ebpf.Map     `ebpf:"mcpjail_fsrules"`
		Events  *ebpf.Map     `ebpf:"mcpjail_events"`
		Lost    *ebpf.Map     `ebpf:"mcpjail_lost"`
	}
	if err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{Programs: statsOpts}); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	m := newPathMatcher("walk", objs.Open, objs.Jails, objs.FSRules, objs.Events, objs.Lost, objs.Open)
	const policyID = 1
	identify, err := hostIdentifier()
	if err == nil {
		var rules []fsRule
		rules, _, err = compileFSRules(policyID, p.Filesystem, identify)
		for _, r := range rules {
			if err == nil {
				err = objs.FSRules.Put(r.key, r.value)
			}
		}
	}
	if err == nil {
		err = objs.Jails.Put(groupID, lsmJail{Policy: policyID})
	}
	if err == nil {
		err = m.attach()
	}
	if err != nil {
		return nil, errors.Join(err, m.Close())
	}
	return m, nil
}

// attachDPath loads lsmcompare.bpf.c with the same policy as path prefixes.
func attachDPath(groupID uint64, p *profiles.Policy) (*pathMatcher, error) {
	var objs lsmcompareObjects
	if err := loadLsmcompareObjects(&objs, &ebpf.CollectionOptions{Programs: statsOpts}); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	prog := objs.McpjailCompareDpathOpen
	m := newPathMatcher("dpath", prog, &objs)
	rules, err := prefixRules(p.Filesystem)
	for path, bits := range rules {
		if err != nil {
			break
		}
		k := lsmcomparePathPrefix{Prefixlen: uint32(len(path)) * 8}
		for i := range len(path) {
			k.Path[i] = int8(path[i])
		}
		err = objs.ComparePrefixes.Put(k, bits)
	}
	if err == nil {
		err = objs.McpjailJails.Put(groupID, lsmcompareJail{Policy: 1})
	}
	if err == nil {
		err = m.attach()
	}
	if err != nil {
		return nil, errors.Join(err, m.Close())
	}
	return m, nil
}

func (m *pathMatcher) attach() error {
	l, err := link.AttachLSM(link.LSMOptions{Program: m.prog})
	if err != nil {
		return fmt.Errorf("attach %s: %w", m.name, err)
	}
	m.closers = append(m.closers, l)
	return nil
}

// prefixRules turns a policy's directories into LPM keys ("/dir/") whose
// value is the union of their own rights and their ancestors' (the walk ORs
// the ancestors' rights as it climbs; a longest-prefix match sees one key).
func prefixRules(f profiles.Filesystem) (map[string]uint8, error) {
	own := map[string]uint8{}
	lists := []struct {
		paths []string
		bits  uint8
	}{{f.Read, fsRead}, {f.Write, fsRead | fsWrite}, {f.Exec, fsRead | fsExec}, {f.Deny, fsDeny}}
	for _, l := range lists {
		for _, p := range l.paths {
			resolved, err := filepath.EvalSymlinks(p)
			if err != nil {
				return nil, err
			}
			key := strings.TrimSuffix(resolved, "/") + "/"
			if len(key) > len(lsmcomparePathPrefix{}.Path) {
				return nil, fmt.Errorf("%s: longer than an LPM key", p)
			}
			own[key] |= l.bits
		}
	}
	all := map[string]uint8{}
	for k := range own {
		for a, bits := range own {
			if strings.HasPrefix(k, a) {
				all[k] |= bits
			}
		}
	}
	return all, nil
}

var pathMatchers = []struct {
	name   string
	attach func(uint64, *profiles.Policy) (*pathMatcher, error)
}{{"walk", attachWalk}, {"dpath", attachDPath}}

// TestLSMPathMatchingChoice: both matchers refuse a denied file reached by
// its own path, and neither touches a process outside the jail; through a
// bind mount of the denied directory under an allowed one, the inode walk
// still refuses while the d_path prefix match lets the open through, because
// d_path names the path the file was reached by. That is the reason
// lsm.bpf.c walks inodes. Where the kernel runs no BPF LSM programs, both
// fail to attach, as doctor's probe says.
func TestLSMPathMatchingChoice(t *testing.T) {
	requireKernel(t)
	g := newGroup(t)
	w := t.TempDir()
	for _, d := range []string{"secret", "public/mirror"} {
		if err := os.MkdirAll(filepath.Join(w, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"secret/key", "public/readme"} {
		if err := os.WriteFile(filepath.Join(w, f), []byte("x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := &profiles.Policy{Name: "compare", Filesystem: profiles.Filesystem{
		Read: []string{w}, Deny: []string{filepath.Join(w, "secret")}}}
	probed := lsmProbed(t)
	if probed {
		mirror := filepath.Join(w, "public", "mirror")
		if err := unix.Mount(filepath.Join(w, "secret"), mirror, "", unix.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Unmount(mirror, unix.MNT_DETACH) })
	}
	paths := []string{filepath.Join(w, "public/readme"), filepath.Join(w, "secret/key"), filepath.Join(w, "public/mirror/key")}
	want := map[string][]string{"walk": {"ok", "EPERM", "EPERM"}, "dpath": {"ok", "EPERM", "ok"}}
	for _, pm := range pathMatchers {
		t.Run(pm.name, func(t *testing.T) {
			m, err := pm.attach(g.ID(), p)
			if !probed {
				if err == nil {
					m.Close()
					t.Fatal("attached an LSM program where doctor's probe says the kernel runs none")
				}
				t.Logf("not attached, as the probe said: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			t.Logf("%s: the verifier processed %d instructions in %d µs", pm.name, m.verified, m.verifyUS)
			if got := probeOpens(t, g, openProbe{Paths: paths}).Results; !slices.Equal(got, want[pm.name]) {
				t.Errorf("in the jail, opening %v gave %v, want %v", paths, got, want[pm.name])
			}
			if got := probeOpens(t, nil, openProbe{Paths: paths}).Results; !slices.Equal(got, []string{"ok", "ok", "ok"}) {
				t.Errorf("outside the jail, opening %v gave %v, want all ok", paths, got)
			}
		})
	}
}

// BenchmarkLSMFileOpen: an open+close loop in a jail whose profile has a
// realistic number of directories, for files 6 and 16 path components deep,
// with no LSM program, with the inode walk and with d_path plus the LPM
// trie. ns/op is the loop's own time per open+close (measured in the jailed
// child); prog-ns/run is the program's own run time from the kernel's BPF
// statistics; verified-insns and verify-µs are the verifier's count of
// instructions it processed and its time, for the program.
func BenchmarkLSMFileOpen(b *testing.B) {
	if os.Geteuid() != 0 || !lsmProbed(b) {
		skipOrFail(b, "the kernel runs no BPF LSM programs here (make bench-vm runs this in Debian's 6.1)")
	}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF statistics: %v", err)
	}
	defer stats.Close()
	g := newGroup(b)
	w := b.TempDir()
	var p profiles.Policy
	for i := range 16 { // as many directories as the built-in profiles name, about
		d := filepath.Join(w, fmt.Sprintf("allowed-%02d", i))
		if err := os.Mkdir(d, 0o755); err != nil {
			b.Fatal(err)
		}
		p.Filesystem.Read = append(p.Filesystem.Read, d)
	}
	p.Filesystem.Deny = []string{filepath.Join(w, "allowed-00", "secret")}
	if err := os.Mkdir(p.Filesystem.Deny[0], 0o755); err != nil {
		b.Fatal(err)
	}
	base := len(strings.Split(strings.Trim(w, "/"), "/")) + 1 // w/allowed-15
	for _, depth := range []int{6, 16} {
		if depth <= base {
			b.Fatalf("the temporary directory %s is already %d components deep", w, base)
		}
		dir := filepath.Join(w, "allowed-15", strings.Repeat("d/", depth-base-1))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		file := filepath.Join(dir, "f")
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("none/depth-%d", depth), func(b *testing.B) {
			r := probeOpens(b, g, openProbe{Loop: file, Count: b.N})
			b.ReportMetric(float64(r.Nanos)/float64(b.N), "ns/op")
		})
		for _, pm := range pathMatchers {
			b.Run(fmt.Sprintf("%s/depth-%d", pm.name, depth), func(b *testing.B) {
				m, err := pm.attach(g.ID(), &p)
				if err != nil {
					b.Fatal(err)
				}
				defer m.Close()
				before, err := m.prog.Stats()
				if err != nil {
					b.Fatal(err)
				}
				r := probeOpens(b, g, openProbe{Paths: []string{file, p.Filesystem.Deny[0]}, Loop: file, Count: b.N})
				if !slices.Equal(r.Results, []string{"ok", "EPERM"}) {
					b.Fatalf("opening the file and the denied directory gave %v, want [ok EPERM]", r.Results)
				}
				after, err := m.prog.Stats()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(r.Nanos)/float64(b.N), "ns/op")
				if runs := after.RunCount - before.RunCount; runs > 0 {
					b.ReportMetric(float64(after.Runtime-before.Runtime)/float64(runs), "prog-ns/run")
				}
				b.ReportMetric(float64(m.verified), "verified-insns")
				b.ReportMetric(float64(m.verifyUS), "verify-µs")
			})
		}
	}
}
