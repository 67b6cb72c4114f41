package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mcpjail/mcpjail/sandbox"
	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// DeclaredServer is one file of servers.d: a long-running server the host
// approved, started and supervised by the daemon.
type DeclaredServer struct {
	Name    string   `yaml:"name"`
	Command []string `yaml:"command"`
	Profile string   `yaml:"profile"`
	User    string   `yaml:"user"`
	Workdir string   `yaml:"workdir"`
	Restart Restart  `yaml:"restart"`
	// AllowDegraded runs it with the layers this host has, as --allow-degraded.
	AllowDegraded bool `yaml:"allow_degraded"`
	file          string
}

// Restart says when a declared server is started again.
type Restart struct {
	Policy         string        `yaml:"policy"` // always, on-failure (default), never
	BackoffInitial time.Duration `yaml:"backoff_initial"`
	BackoffMax     time.Duration `yaml:"backoff_max"`
}

// Compiled on first use: package init runs in every process of the binary,
// the init step and the cleanup guard of each run included.
var serverName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`) })

// LoadDeclaredServers reads dir/*.yaml strictly; one bad file is an error
// naming it, so an operator's typo never starts a server half-configured.
func LoadDeclaredServers(dir string) ([]*DeclaredServer, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("servers_dir: %w", err)
	}
	var out []*DeclaredServer
	seen := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("declared server: %w", err)
		}
		s := &DeclaredServer{file: f}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(s); err != nil {
			return nil, fmt.Errorf("declared server %s: %w", f, err)
		}
		if err := s.validate(); err != nil {
			return nil, fmt.Errorf("declared server %s: %w", f, err)
		}
		if prev, dup := seen[s.Name]; dup {
			return nil, fmt.Errorf("declared server %s: name %q is also declared in %s", f, s.Name, prev)
		}
		seen[s.Name] = f
		out = append(out, s)
	}
	return out, nil
}

func (s *DeclaredServer) validate() error {
	var errs []error
	if !serverName().MatchString(s.Name) {
		errs = append(errs, fmt.Errorf("name %q: letters, digits, '.', '_' and '-' only, at most 64", s.Name))
	}
	if len(s.Command) == 0 || !filepath.IsAbs(s.Command[0]) {
		errs = append(errs, errors.New("command: must start with an absolute path"))
	}
	if s.Profile == "" {
		errs = append(errs, errors.New("profile: must name one of the daemon's profiles"))
	}
	if s.User == "" {
		errs = append(errs, errors.New("user: must be set (a declared server never runs as root by default)"))
	}
	if s.Workdir != "" && !filepath.IsAbs(s.Workdir) {
		errs = append(errs, fmt.Errorf("workdir %q: must be absolute", s.Workdir))
	}
	switch s.Restart.Policy {
	case "":
		s.Restart.Policy = "on-failure"
	case "always", "on-failure", "never":
	default:
		errs = append(errs, fmt.Errorf("restart.policy %q: want always, on-failure or never", s.Restart.Policy))
	}
	if s.Restart.BackoffInitial <= 0 {
		s.Restart.BackoffInitial = time.Second
	}
	if s.Restart.BackoffMax < s.Restart.BackoffInitial {
		s.Restart.BackoffMax = max(time.Minute, s.Restart.BackoffInitial)
	}
	return errors.Join(errs...)
}

// supervise runs a declared server as its user through this daemon's own
// socket (`mcpjail run --daemon always`): the same path, checks and jail as
// any user's run. It restarts per policy with exponential backoff and stops
// with ctx. A refusal (exit 125: integrity pin, missing layer) is an event
// and is not retried: starting it again would fail the same way.
func (d *Daemon) supervise(ctx context.Context, s *DeclaredServer) {
	st := &DeclaredStatus{Name: s.Name, Profile: s.Profile, User: s.User, State: "starting"}
	d.mu.Lock()
	d.declared = append(d.declared, st)
	d.mu.Unlock()
	set := func(state string, f func()) {
		d.mu.Lock()
		defer d.mu.Unlock()
		st.State = state
		if f != nil {
			f()
		}
	}
	backoff := s.Restart.BackoffInitial
	emit := func(kind audit.Kind, verdict audit.Verdict, reason string) {
		d.hub.publish(audit.Event{Time: time.Now(), Server: audit.Server{Name: s.Name, Instance: "declared"},
			Kind: kind, Verdict: verdict, Layer: audit.LayerMcpjail, Action: audit.ActionNone, Reason: reason}, hostOwned)
	}
	for attempt := 1; ; attempt++ {
		started := time.Now()
		set("running", nil)
		code, why, err := d.runDeclared(ctx, s)
		set("exited", func() { st.LastExit = code })
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			set("refused", nil)
			emit(audit.KindRefuse, audit.VerdictDeny, fmt.Sprintf("declared server %s not started: %v", s.Name, err))
			return
		case code == sandbox.ExitRefused || code == sandbox.ExitUsage:
			set("refused", nil)
			emit(audit.KindRefuse, audit.VerdictDeny, fmt.Sprintf("declared server %s refused (exit %d): %s; not restarted", s.Name, code, why))
			return
		case s.Restart.Policy == "never" || (s.Restart.Policy == "on-failure" && code == 0):
			d.log.Info("declared server ended", "server", s.Name, "exit", code)
			return
		}
		if time.Since(started) > 2*s.Restart.BackoffMax {
			backoff = s.Restart.BackoffInitial // it ran long enough: start over
		}
		d.log.Warn("declared server ended; restarting", "server", s.Name, "exit", code, "attempt", attempt, "backoff", backoff)
		emit(audit.KindExit, audit.VerdictAudit, fmt.Sprintf("declared server %s exited with %d; restart %d in %s", s.Name, code, attempt, backoff))
		set("backoff", func() { st.Restarts++ })
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.Restart.BackoffMax)
	}
}

// runDeclared runs the server once and returns its exit status and the
// last line the run printed (the reason when mcpjail refused).
func (d *Daemon) runDeclared(ctx context.Context, s *DeclaredServer) (int, string, error) {
	u, err := user.Lookup(s.User)
	if err != nil {
		return 0, "", fmt.Errorf("user %q: %w", s.User, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	// The run is mcpjail's own, beside this daemon's binary.
	self, err := sandbox.Sibling(sandbox.McpjailBinary)
	if err != nil {
		return 0, "", err
	}
	workdir := s.Workdir
	if workdir == "" {
		workdir = u.HomeDir
	}
	args := []string{"run", "--daemon", "always", "--socket", d.cfg.Socket, "--profile", s.Profile, "--name", s.Name, "--workdir", workdir}
	if s.AllowDegraded {
		args = append(args, "--allow-degraded")
	}
	args = append(args, "--")
	cmd := exec.Command(self, append(args, s.Command...)...)
	cmd.Env = []string{"HOME=" + u.HomeDir, "USER=" + u.Username, "LOGNAME=" + u.Username, "PATH=/usr/local/bin:/usr/bin:/bin"}
	cmd.Dir = "/"
	// The server's stdout and stderr, and the run's own messages, go to the
	// daemon's log (the journal under systemd); stdin is /dev/null.
	last := &lastLine{}
	cmd.Stdout, cmd.Stderr = os.Stderr, io.MultiWriter(os.Stderr, last)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, "", fmt.Errorf("start: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-ctx.Done():
		// The daemon is stopping: the declared server is not a jail that
		// outlives it unsupervised; its run kills it on SIGTERM.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
	}
	return cmd.ProcessState.ExitCode(), last.String(), nil
}

// lastLine keeps the last complete line written to it (bounded).
type lastLine struct {
	mu        sync.Mutex
	cur, done []byte
}

func (l *lastLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range p {
		if c == '\n' {
			l.done, l.cur = append(l.done[:0], l.cur...), l.cur[:0]
		} else if len(l.cur) < 4096 {
			l.cur = append(l.cur, c)
		}
	}
	return len(p), nil
}

func (l *lastLine) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.done)
}

// startDeclared loads servers.d and supervises each server until ctx ends.
// A broken directory starts none of them and is logged: the daemon still
// serves users.
func (d *Daemon) startDeclared(ctx context.Context) {
	if d.cfg.ServersDir == "" {
		return
	}
	servers, err := LoadDeclaredServers(d.cfg.ServersDir)
	if err != nil {
		d.log.Error("declared servers not started", "err", err)
		d.hub.publish(audit.Event{Time: time.Now(), Server: audit.Server{Name: "mcpjail", Instance: "daemon"}, Kind: audit.KindRefuse,
			Verdict: audit.VerdictDeny, Layer: audit.LayerMcpjail, Action: audit.ActionNone, Reason: err.Error()}, hostOwned)
		return
	}
	for _, s := range servers {
		go d.supervise(ctx, s)
	}
}
