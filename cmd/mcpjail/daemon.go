package main

import (
	"os"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/mcpjail/mcpjail/sandbox"
)

// daemonCommand is `mcpjail daemon`: it execs mcpjail-daemon, installed
// beside mcpjail, with its arguments (and so the same pid, which systemd's
// Type=notify expects). Its flags and help are mcpjail-daemon's.
func daemonCommand() *cli.Command {
	return &cli.Command{
		Name:            "daemon",
		Usage:           "serve the full jail to unprivileged users (run as root, under systemd; `mcpjail daemon --help`)",
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			path, err := sandbox.Sibling(sandbox.DaemonBinary)
			if err != nil {
				return exitf(exitInternal, "daemon: %v", err)
			}
			argv := append([]string{"mcpjail daemon"}, c.Args().Slice()...)
			err = syscall.Exec(path, argv, os.Environ())
			return exitf(exitInternal, "daemon: exec %s: %v", path, err)
		},
	}
}
