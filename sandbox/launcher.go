package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/mcpjail/mcpjail/bpf"
	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/cgroup"
	"github.com/mcpjail/mcpjail/sandbox/confine"
)

// Options is one `mcpjail run`.
type Options struct {
	Profile       string // built-in name or file; "" means "default"
	Workdir       string // "" means the current directory
	Name          string // server name in events; "" means the profile's name
	AuditLog      string // JSON-lines file; "" for none
	AllowDegraded bool   // run with the layers that exist instead of refusing
	Argv          []string
	// LookupEnv reads mcpjail's own environment (os.LookupEnv when nil).
	LookupEnv func(string) (string, bool)
	Logger    *slog.Logger
	// Remote, when set, is the daemon that builds the privileged part of
	// the jail for this unprivileged run (remote.go).
	Remote Remote
}

// prepared is a run after every check and before anything was created.
type prepared struct {
	opts     Options
	policy   *profiles.Policy
	id       identity
	instance string
	tmpDir   string
	exe      string
	env      []string
	missing  []string // layers this kernel or privilege level lacks
	events   *audit.Log
	network  *bpf.Loader  // the eBPF layer; nil when missing
	netLoad  *networkLoad // the eBPF layer loading, for a standalone root run
	// early is the init step of a run through the daemon, started before
	// the daemon is asked for anything (earlyErr: why it did not start).
	early    *initProcess
	earlyErr error
	// sharedPIDNS: a run through the daemon goes on in the host's PID
	// namespace (no user namespace here, --allow-degraded).
	sharedPIDNS bool
}

// Run runs one server in a jail and returns its exit code (the server's own,
// or 128+N when signal N ended it). An *Error carries mcpjail's own failures.
func Run(ctx context.Context, opts Options) (int, error) {
	if opts.LookupEnv == nil {
		opts.LookupEnv = os.LookupEnv
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	p, err := prepare(opts)
	if err != nil {
		return 0, err
	}
	defer p.events.Close()
	defer os.RemoveAll(p.tmpDir)
	defer p.closeNetwork()
	defer p.abortEarlyInit() // refused before the launch
	if len(p.missing) > 0 {
		if !opts.AllowDegraded {
			reason := "missing layers: " + strings.Join(p.missing, "; ")
			p.events.Emit(audit.Event{Kind: audit.KindRefuse, Verdict: audit.VerdictDeny, Layer: audit.LayerMcpjail, Reason: reason})
			return 0, errorf(ExitRefused, "refusing to run %s: %s (use --allow-degraded to run without them)", p.policy.Name, reason)
		}
		for _, m := range p.missing {
			p.events.Emit(audit.Event{Kind: audit.KindDegraded, Verdict: audit.VerdictAudit, Layer: audit.LayerMcpjail, Reason: "running without " + m})
		}
	}
	return p.launch(ctx)
}

// prepare loads and checks everything; on error nothing is left behind.
func prepare(opts Options) (_ *prepared, err error) {
	if len(opts.Argv) == 0 {
		return nil, errorf(ExitUsage, "no command given (usage: mcpjail run [flags] -- CMD [ARGS...])")
	}
	if opts.Name != "" {
		if err := profiles.CheckName(opts.Name); err != nil {
			return nil, errorf(ExitUsage, "--name: %v", err)
		}
	}
	workdir, err := absWorkdir(opts.Workdir)
	if err != nil {
		return nil, &Error{Code: ExitUsage, Err: err}
	}
	getenv := func(k string) string { v, _ := opts.LookupEnv(k); return v }
	p := &prepared{opts: opts, instance: newInstanceID()}
	if opts.Remote == nil && os.Geteuid() == 0 {
		p.netLoad = startNetworkLoad(opts.Logger)
	}
	if opts.Remote != nil {
		// Go's start-up in init (a few milliseconds) overlaps the daemon's
		// work: init only waits for its spec, which it gets once the daemon
		// has moved it into the jail, as with a later start.
		p.early, p.earlyErr = p.startInit(os.Geteuid() == 0, nil)
	}
	defer func() {
		if err != nil {
			p.abortEarlyInit()
			if p.network == nil && p.netLoad != nil {
				// Loaded in the background: it must not outlive a refusal.
				p.network, _ = p.netLoad.wait()
			}
			if p.network != nil {
				p.network.Close()
			}
			p.events.Close()
			if p.tmpDir != "" {
				os.RemoveAll(p.tmpDir)
			}
		}
	}()
	if opts.Remote != nil {
		// The daemon's profile, compiled for this user: it runs as itself.
		if p.id, err = resolveIdentity("", getenv); err != nil {
			return nil, &Error{Code: ExitRefused, Err: err}
		}
		if err = prepareRemote(p, workdir); err != nil {
			return nil, err
		}
	} else if err = p.compileLocal(workdir, getenv); err != nil {
		return nil, err
	}
	if p.env, err = buildEnv(p.policy.Env, opts.LookupEnv, p.id.invokingUID); err != nil {
		return nil, p.refuse(err)
	}
	pathEnv, _ := envValue(p.env, "PATH")
	if p.exe, err = resolveExecutable(opts.Argv[0], pathEnv, workdir); err != nil {
		return nil, err
	}
	if _, err = checkIntegrity(p.exe, p.policy.Server); err != nil {
		return nil, p.refuse(err)
	}
	// Planned here only to fail closed before anything exists; the init step
	// plans again inside the jail, where /proc and the credentials are final.
	plan, err := confine.NewPlan(p.confineSpec())
	if err != nil {
		return nil, &Error{Code: ExitRefused, Err: fmt.Errorf("plan confinement: %w", err)}
	}
	p.missing = append(p.missing, plan.Missing()...)
	switch {
	case opts.Remote != nil:
		// The daemon provides cgroups and the eBPF layer; missing limits
		// are its to report when it creates the cgroup.
	case os.Geteuid() != 0:
		p.missing = append(p.missing, "cgroups (not root and no mcpjail daemon: no limits and no cgroup identity)",
			"pid namespace (not root: the server is not confined to its own PID namespace)",
			"eBPF network layer (not root and no mcpjail daemon: addresses, UDP and UNIX sockets are not filtered)")
	default:
		p.missing = append(p.missing, p.loadNetworkLayer()...)
		if err = p.checkRequiredLayers(); err != nil {
			return nil, p.refuse(err)
		}
	}
	p.opts.Workdir = workdir
	return p, nil
}

// compileLocal resolves and compiles the profile in this process.
func (p *prepared) compileLocal(workdir string, getenv func(string) string) error {
	name := p.opts.Profile
	if name == "" {
		name = "default"
	}
	prof, err := profiles.Resolve(name)
	if err != nil {
		return &Error{Code: ExitUsage, Err: err}
	}
	if p.id, err = resolveIdentity(prof.ServerUser(), getenv); err != nil {
		return &Error{Code: ExitRefused, Err: err}
	}
	serverName := p.opts.Name
	if serverName == "" {
		serverName = prof.Name()
	}
	if p.events, err = audit.Open(audit.Server{Name: serverName, Instance: p.instance}, os.Stderr, p.opts.AuditLog); err != nil {
		return &Error{Code: ExitUsage, Err: err}
	}
	if p.tmpDir, err = makePrivateTmp(serverName, p.instance, p.id.creds); err != nil {
		return &Error{Code: ExitRefused, Err: err}
	}
	if p.policy, err = prof.Compile(profiles.Vars{Home: p.id.home, Workdir: workdir, TmpDir: p.tmpDir}); err != nil {
		return &Error{Code: ExitUsage, Err: err}
	}
	return nil
}

// closeNetwork unloads the eBPF layer of a standalone run; it is idempotent.
func (p *prepared) closeNetwork() {
	if p.network == nil {
		return
	}
	if err := p.network.Close(); err != nil {
		p.opts.Logger.Warn("unload the eBPF layer", "err", err)
	}
}

// networkLoad is the eBPF layer loading in the background while the run is
// prepared: loading and verifying the programs takes tens of milliseconds
// of CPU and needs nothing of the profile, which is compiled and checked
// (an integrity pin hashes the whole executable) meanwhile.
type networkLoad struct {
	done   chan struct{}
	loader *bpf.Loader
	err    error
}

func startNetworkLoad(logger *slog.Logger) *networkLoad {
	n := &networkLoad{done: make(chan struct{})}
	if m := cgroup.DetectMode(); m == cgroup.ModeV1 || m == cgroup.ModeNone {
		n.err = errors.New("no cgroup v2 hierarchy to attach its programs to")
		close(n.done)
		return n
	}
	go func() {
		defer close(n.done)
		n.loader, n.err = bpf.Load(context.Background(), logger)
	}()
	return n
}

// wait returns the loaded layer, or why there is none.
func (n *networkLoad) wait() (*bpf.Loader, error) {
	<-n.done
	return n.loader, n.err
}

// loadNetworkLayer takes the eBPF programs that filter the jail's network
// access from the background load; it returns what is missing when they,
// or some of them (the UNIX socket filter before Linux 6.7), cannot be
// used here.
func (p *prepared) loadNetworkLayer() []string {
	l, err := p.netLoad.wait()
	if err != nil {
		return []string{fmt.Sprintf("eBPF network layer (%v)", err)}
	}
	p.network = l
	return l.Missing()
}

// checkRequiredLayers refuses a profile that requires an optional layer
// (profiles.Policy.Require) this kernel lacks. A required layer is never
// degraded: --allow-degraded does not lift this. Under a daemon, its
// loader's Register refuses the same way.
func (p *prepared) checkRequiredLayers() error {
	if !p.policy.Requires(profiles.LayerBPFLSM) {
		return nil
	}
	why := "the eBPF layer is not loaded"
	if p.network != nil {
		err := p.network.LSM()
		if err == nil {
			return nil
		}
		why = err.Error()
	}
	return fmt.Errorf("the profile requires the %s layer, which this kernel lacks (%s); --allow-degraded does not lift a required layer",
		profiles.LayerBPFLSM, why)
}

// refuse records a refusal as an event and turns it into exit code 125.
func (p *prepared) refuse(err error) error {
	p.events.Emit(audit.Event{Kind: audit.KindRefuse, Verdict: audit.VerdictDeny, Layer: audit.LayerMcpjail, Reason: err.Error()})
	return &Error{Code: ExitRefused, Err: err}
}

func (p *prepared) confineSpec() confine.Spec {
	return confine.Spec{Policy: *p.policy, Creds: p.id.creds, Degraded: p.opts.AllowDegraded}
}

func absWorkdir(dir string) (string, error) {
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("current directory: %w", err)
		}
		dir = wd
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("workdir %s: %w", dir, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("workdir: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("workdir %s is not a directory", abs)
	}
	return abs, nil
}

func newInstanceID() string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // the kernel's RNG does not fail
	}
	return hex.EncodeToString(b)
}

// makePrivateTmp creates the run's ${TMPDIR}: 0700 and owned by the server.
func makePrivateTmp(name, instance string, creds *confine.Creds) (string, error) {
	dir, err := os.MkdirTemp("/tmp", "mcpjail-"+safeName(name)+"-"+instance+"-")
	if err != nil {
		return "", fmt.Errorf("create private TMPDIR: %w", err)
	}
	if creds != nil {
		if err := os.Chown(dir, int(creds.UID), int(creds.GID)); err != nil {
			os.Remove(dir)
			return "", fmt.Errorf("chown %s: %w", dir, err)
		}
	}
	return dir, nil
}

// safeName keeps letters, digits, '-', '_' and '.', for names used in paths.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}
