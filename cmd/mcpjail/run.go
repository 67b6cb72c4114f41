package main

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/mcpjail/mcpjail/sandbox"
	"github.com/mcpjail/mcpjail/sandbox/daemon/api"
)

// runFlags are the flags of `mcpjail run`.
type runFlags struct {
	profile       string
	workdir       string
	name          string
	auditLog      string
	allowDegraded bool
	daemonMode    string
	socket        string
}

func runCommand() *cli.Command {
	var f runFlags
	return &cli.Command{
		Name:      "run",
		Usage:     "run an MCP server inside a jail",
		ArgsUsage: "-- CMD [ARGS...]",
		Description: `Runs CMD as a jailed MCP server. stdin, stdout and stderr are the server's own
(the JSON-RPC stream passes byte for byte). The jail is built from the profile:
Landlock for files, exec and TCP ports, a cgroup for limits and identity, a
seccomp deny-list, no capabilities and no_new_privs, and an environment built
from the profile alone.

A layer the profile needs but this host lacks makes the run refuse (exit 125)
unless --allow-degraded is given.

Unprivileged users get cgroups, limits and the eBPF layer from the mcpjail
daemon when its socket is reachable (--daemon auto, the default for them):
the daemon compiles the policy from its own profiles, builds the jail, and
kills on violations; the server runs as the user. Root runs standalone unless
--daemon always. Without a daemon an unprivileged run refuses (exit 125)
unless --allow-degraded.

Exit status: the server's own; 128+N when signal N ended it; 125 when mcpjail
failed or refused; 126 when CMD cannot be executed; 127 when it is not found;
2 for usage and profile errors.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "profile", Aliases: []string{"p"}, Usage: "built-in profile name or profile file", Value: "default", Destination: &f.profile},
			&cli.StringFlag{Name: "workdir", Usage: "the server's working directory and ${WORKDIR} (default: the current directory)", Destination: &f.workdir},
			&cli.StringFlag{Name: "name", Usage: "server name in events and in the cgroup name: 1-64 letters, digits, '.', '_' or '-' (default: the profile's name)", Destination: &f.name},
			&cli.StringFlag{Name: "audit-log", Usage: "append events as JSON lines to `PATH` (created 0600; not through a symlink)", Destination: &f.auditLog},
			&cli.StringFlag{Name: "daemon", Usage: "use the mcpjail daemon: auto (when not root and its socket exists), always, never", Value: "auto", Destination: &f.daemonMode},
			socketFlag(&f.socket),
			&cli.BoolFlag{Name: "allow-degraded", Usage: "run with the layers this host has instead of refusing, warning once per missing layer", Destination: &f.allowDegraded},
		},
		Action: func(c *cli.Context) error { return f.run(c) },
	}
}

func (f *runFlags) run(c *cli.Context) error {
	argv := c.Args().Slice()
	if len(argv) == 0 {
		return exitf(exitUsage, "run: no command given (usage: mcpjail run [flags] -- CMD [ARGS...])")
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	remote, err := f.remote(c)
	if err != nil {
		return err
	}
	code, err := sandbox.Run(c.Context, sandbox.Options{
		Remote:        remote,
		Profile:       f.profile,
		Workdir:       f.workdir,
		Name:          f.name,
		AuditLog:      f.auditLog,
		AllowDegraded: f.allowDegraded,
		Argv:          argv,
		Logger:        logger,
	})
	if err != nil {
		var se *sandbox.Error
		if errors.As(err, &se) {
			return exitf(se.Code, "%v", se.Err)
		}
		return exitf(exitInternal, "%v", err)
	}
	if code != 0 {
		return silentExit(code)
	}
	return nil
}

// remote connects to the daemon when the run should go through it; nil
// means a standalone run.
func (f *runFlags) remote(c *cli.Context) (sandbox.Remote, error) {
	use := false
	switch f.daemonMode {
	case "never":
	case "always":
		use = true
	case "auto":
		if os.Geteuid() != 0 {
			// Only a socket that does not exist means "no daemon": one we
			// cannot even look at is a broken host, not a reason to go on
			// without cgroups and eBPF.
			_, err := os.Stat(f.socket)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, exitf(exitInternal, "run: mcpjail daemon socket %s: %v (use --daemon never to run without it)", f.socket, err)
			}
			use = err == nil
		}
	default:
		return nil, exitf(exitUsage, "run: --daemon %q: want auto, always or never", f.daemonMode)
	}
	if !use {
		return nil, nil
	}
	cl, err := api.Dial(c.Context, f.socket)
	if err != nil {
		// A socket that exists but does not answer is a broken host: say so
		// rather than fall back silently to a jail without cgroups or eBPF.
		return nil, exitf(exitInternal, "run: %v (use --daemon never to run without it)", err)
	}
	return cl, nil
}
