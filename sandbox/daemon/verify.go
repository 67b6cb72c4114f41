package daemon

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/sys/unix"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox"
)

// childOf returns the pid behind pidfd after checking that it is a child of
// parent (the peer, or the peer's child) running as the peer's user: a
// client can only put its own child and grandchild into a jail, never
// someone else's process.
func childOf(pidfd *os.File, parent int, peer Peer) (int, error) {
	pid, err := sandbox.PidfdPID(pidfd)
	if err != nil {
		return 0, err
	}
	st, err := readStatus(pid)
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	if st["PPid"] != strconv.Itoa(parent) {
		return 0, fmt.Errorf("pid %d is not a child of pid %d (the client is pid %d)", pid, parent, peer.PID)
	}
	uids := strings.Fields(st["Uid"])
	if len(uids) != 4 {
		return 0, fmt.Errorf("pid %d: unreadable Uid line", pid)
	}
	for _, u := range uids {
		if u != strconv.Itoa(peer.UID) {
			return 0, fmt.Errorf("pid %d does not run as the client's uid %d (uids %v)", pid, peer.UID, uids)
		}
	}
	return pid, nil
}

func pidfdAlive(pidfd *os.File) error {
	return unix.PidfdSendSignal(int(pidfd.Fd()), 0, nil, 0)
}

func readStatus(pid int) (map[string]string, error) {
	return readKeyed(fmt.Sprintf("/proc/%d/status", pid))
}

// readKeyed parses "Key:\tvalue" lines.
func readKeyed(p string) (map[string]string, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out, sc.Err()
}

// checkRunPaths makes sure the workdir and the private TMPDIR the client
// names are real directories, and the TMPDIR is the peer's own (0700): the
// daemon compiles them into the policy, so they must not be borrowed.
func checkRunPaths(peer Peer, workdir, tmpdir string) error {
	for _, p := range []struct{ key, val string }{{"workdir", workdir}, {"tmpdir", tmpdir}} {
		if !filepath.IsAbs(p.val) || filepath.Clean(p.val) != p.val {
			return fmt.Errorf("%s %q is not a clean absolute path", p.key, p.val)
		}
	}
	fi, err := os.Stat(workdir)
	if err != nil {
		return fmt.Errorf("workdir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("workdir %s is not a directory", workdir)
	}
	var st unix.Stat_t
	if err := unix.Lstat(tmpdir, &st); err != nil {
		return fmt.Errorf("tmpdir: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != peer.UID || st.Mode&0o077 != 0 {
		return fmt.Errorf("tmpdir %s must be a directory owned by uid %d with mode 0700", tmpdir, peer.UID)
	}
	return nil
}

// resolveProfile finds the profile the run asks for: NAME.yaml in the
// profile directories, then the built-ins; the caller's own profile only
// when the configuration allows it.
func (d *Daemon) resolveProfile(pr *PrepareRequest) (*profiles.Profile, string, error) {
	cfg := d.config()
	if pr.ProfileYAML != "" {
		if !cfg.AllowUserProfiles {
			return nil, "", &ReplyError{Code: sandbox.ExitRefused, Message: "this daemon does not accept profiles from clients (allow_user_profiles is false): name one of its profiles"}
		}
		base := path.Base(pr.ProfileLabel)
		if strings.IndexFunc(base, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			// The label is shown in status and events, to root too.
			return nil, "", &ReplyError{Code: sandbox.ExitUsage, Message: fmt.Sprintf("profile file name %q holds characters that are not printable", base)}
		}
		label := "client:" + base
		p, err := profiles.Parse(label, []byte(pr.ProfileYAML))
		if err != nil {
			return nil, "", &ReplyError{Code: sandbox.ExitUsage, Message: err.Error()}
		}
		return p, label, nil
	}
	name := pr.Profile
	if name == "" {
		name = "default"
	}
	if strings.ContainsAny(name, "/\\") || strings.HasPrefix(name, ".") {
		return nil, "", &ReplyError{Code: sandbox.ExitUsage, Message: fmt.Sprintf("profile %q: the daemon takes profile names, not paths", name)}
	}
	for _, dir := range cfg.ProfileDirs {
		file := filepath.Join(dir, name+".yaml")
		if _, err := os.Stat(file); err == nil {
			p, err := profiles.LoadFile(file)
			if err != nil {
				return nil, "", &ReplyError{Code: sandbox.ExitUsage, Message: err.Error()}
			}
			return p, file, nil
		}
	}
	p, err := profiles.Builtin(name)
	if err != nil {
		return nil, "", &ReplyError{Code: sandbox.ExitUsage, Message: err.Error()}
	}
	return p, "builtin:" + name, nil
}

// isChildOfDaemon says whether the peer was started by this daemon.
func isChildOfDaemon(peer Peer) bool {
	st, err := readStatus(peer.PID)
	return err == nil && st["PPid"] == strconv.Itoa(os.Getpid())
}
