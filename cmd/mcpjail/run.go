package main

import (
	"errors"
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/mcpjail/mcpjail/sandbox"
)

// runFlags are the flags of `mcpjail run`.
type runFlags struct {
	profile       string
	workdir       string
	name          string
	auditLog      string
	allowDegraded bool
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

Exit status: the server's own; 128+N when signal N ended it; 125 when mcpjail
failed or refused; 126 when CMD cannot be executed; 127 when it is not found;
2 for usage and profile errors.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "profile", Aliases: []string{"p"}, Usage: "built-in profile name or profile file", Value: "default", Destination: &f.profile},
			&cli.StringFlag{Name: "workdir", Usage: "the server's working directory and ${WORKDIR} (default: the current directory)", Destination: &f.workdir},
			&cli.StringFlag{Name: "name", Usage: "server name in events and in the cgroup name (default: the profile's name)", Destination: &f.name},
			&cli.StringFlag{Name: "audit-log", Usage: "append events as JSON lines to `PATH`", Destination: &f.auditLog},
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
	code, err := sandbox.Run(c.Context, sandbox.Options{
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
