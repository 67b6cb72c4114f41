package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/audit"
)

// Remote is a privileged helper, the mcpjail daemon, that builds the
// privileged part of the jail for an unprivileged run: it compiles the
// policy from its own profiles, creates the cgroup, registers the eBPF
// layer, moves the init step in, and kills on violations. The run applies
// no_new_privs, Landlock and seccomp itself before exec, as always.
type Remote interface {
	// Prepare returns the server's identity in events, the policy the
	// daemon will enforce (the run confines itself with the same policy) and
	// the layers the daemon lacks on this kernel.
	Prepare(RemoteRequest) (RemotePrepared, error)
	// Attach hands over pidfds of the init step, which waits for its spec:
	// its own and, when it is PID 1 of a new PID namespace, its PID 2's.
	// When Attach returns, the jail exists and holds them.
	Attach(pidfds ...int) error
	// Events delivers the jail's events as the daemon wrote them; it is
	// closed when the connection ends.
	Events() <-chan audit.Event
	// Release ends the jail once the server has exited: when it returns,
	// nothing of the jail runs, its cgroup is gone and its last events were
	// delivered on Events. The daemon destroys its sockets and detaches its
	// programs afterwards.
	Release() error
	Close() error
}

// RemoteRequest is what the daemon needs to compile the caller's policy.
type RemoteRequest struct {
	Profile       string // a profile name of the daemon's
	ProfileYAML   string // or the caller's own profile, read with its rights
	ProfileLabel  string
	Name          string
	Instance      string
	Workdir       string
	TmpDir        string
	AllowDegraded bool
}

// RemotePrepared is the daemon's answer to Prepare.
type RemotePrepared struct {
	Server audit.Server
	Policy *profiles.Policy
	// Missing are layers the daemon cannot provide here (for example the
	// eBPF UNIX socket filter before Linux 6.7): refused unless degraded.
	Missing []string
}

// remoteProfile splits --profile into what the daemon takes: a name, or
// the contents of a file the caller can read.
func remoteProfile(arg string) (name, yaml, label string, err error) {
	if arg == "" {
		arg = "default"
	}
	if !strings.Contains(arg, "/") && filepath.Ext(arg) != ".yaml" && filepath.Ext(arg) != ".yml" {
		return arg, "", "", nil
	}
	b, err := os.ReadFile(arg)
	if err != nil {
		return "", "", "", fmt.Errorf("profile: %w", err)
	}
	return "", string(b), arg, nil
}

// prepareRemote is prepare's first half for a run through the daemon: the
// policy comes from the daemon, compiled for this user and these paths.
func prepareRemote(p *prepared, workdir string) error {
	name, yaml, label, err := remoteProfile(p.opts.Profile)
	if err != nil {
		return &Error{Code: ExitUsage, Err: err}
	}
	tmpName := p.opts.Name
	if tmpName == "" {
		tmpName = name
	}
	if tmpName == "" {
		tmpName = strings.TrimSuffix(filepath.Base(label), filepath.Ext(label))
	}
	if p.tmpDir, err = makePrivateTmp(tmpName, p.instance, nil); err != nil {
		return &Error{Code: ExitRefused, Err: err}
	}
	rp, err := p.opts.Remote.Prepare(RemoteRequest{
		Profile: name, ProfileYAML: yaml, ProfileLabel: label, Name: p.opts.Name, Instance: p.instance,
		Workdir: workdir, TmpDir: p.tmpDir, AllowDegraded: p.opts.AllowDegraded,
	})
	if err != nil {
		return err
	}
	p.policy = rp.Policy
	p.missing = append(p.missing, rp.Missing...)
	if p.events, err = audit.Open(rp.Server, os.Stderr, p.opts.AuditLog); err != nil {
		return &Error{Code: ExitUsage, Err: err}
	}
	return nil
}

// forwardRemoteEvents writes the daemon's events for this jail to the run's
// own log (stderr and --audit-log); the returned wait ends with the stream.
func (p *prepared) forwardRemoteEvents() (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for e := range p.opts.Remote.Events() {
			p.events.Forward(e)
		}
	}()
	return func() { <-done }
}
