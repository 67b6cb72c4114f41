// Command mcpjail-daemon is `mcpjail daemon`: mcpjail execs it, from
// beside its own binary, with the same arguments. It is a binary of its
// own so that mcpjail, which every run starts, links none of the daemon's
// dependencies (the Prometheus client, the HTTP server, go-systemd's
// notification); the work is in package sandbox/daemon.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/urfave/cli/v2"

	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/daemon"
	"github.com/mcpjail/mcpjail/sandbox/metrics"
)

// version is set by the linker (make build); "dev" otherwise.
var version = "dev"

// Exit codes, as mcpjail's: 2 for bad flags or configuration, 125 when the
// daemon itself fails.
const (
	exitUsage    = 2
	exitInternal = 125
)

func main() {
	err := newApp().Run(os.Args)
	if err == nil {
		return
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "mcpjail:", msg)
		}
		os.Exit(ec.ExitCode())
	}
	fmt.Fprintln(os.Stderr, "mcpjail:", err) // from flag parsing: a usage error
	os.Exit(exitUsage)
}

// exitf returns an error that makes the daemon exit with code.
func exitf(code int, format string, a ...any) error {
	return cli.Exit(fmt.Sprintf(format, a...), code)
}

// daemonFlags are the flags of `mcpjail daemon`.
type daemonFlags struct {
	config  string
	cleanup bool
	debug   bool
}

func newApp() *cli.App {
	var f daemonFlags
	return &cli.App{
		Name:            "mcpjail daemon",
		HelpName:        "mcpjail daemon",
		Usage:           "serve the full jail to unprivileged users (run as root, under systemd)",
		HideVersion:     true,
		HideHelpCommand: true,
		// Errors are printed once, by main, with the right exit code.
		ExitErrHandler: func(*cli.Context, error) {},
		Description: `Loads the eBPF programs once and pins them under /sys/fs/bpf/mcpjail, then
serves a UNIX socket (default /run/mcpjail/mcpjail.sock) through which an
allowed user's "mcpjail run" gets cgroups, limits and the eBPF layer.

If the daemon dies, running jails stay enforced (Landlock is permanent, the
eBPF programs and maps are pinned) and a restarted daemon adopts them.
--cleanup removes everything mcpjail pinned, for a host that wants it gone.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "configuration `FILE`", Value: daemon.DefaultConfigPath, Destination: &f.config},
			&cli.BoolFlag{Name: "cleanup", Usage: "remove every pinned program, link and map and every jail's state, then exit", Destination: &f.cleanup},
			&cli.BoolFlag{Name: "debug", Usage: "log debug messages", Destination: &f.debug},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return exitf(exitUsage, "daemon: unexpected arguments %q", c.Args().Slice())
			}
			return f.run(c)
		},
	}
}

func (f *daemonFlags) run(c *cli.Context) error {
	level := slog.LevelInfo
	if f.debug {
		level = slog.LevelDebug
	}
	// journald adds the time; key=value lines stay greppable there.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && os.Getenv("JOURNAL_STREAM") != "" {
				return slog.Attr{}
			}
			return a
		}}))
	if os.Geteuid() != 0 {
		return exitf(exitInternal, "daemon: must run as root")
	}
	cfg, err := daemon.LoadConfig(f.config, c.IsSet("config"))
	if err != nil {
		return exitf(exitUsage, "daemon: %v", err)
	}
	if f.cleanup {
		if err := daemon.Cleanup(cfg, logger); err != nil {
			return exitf(exitInternal, "daemon --cleanup: %v", err)
		}
		return nil
	}
	opts := daemon.Options{Version: version, Logger: logger, Notify: func(state string) {
		if _, err := sd.SdNotify(false, state); err != nil {
			logger.Warn("sd_notify", "state", state, "err", err)
		}
	}}
	if opts.WatchdogInterval, err = sd.SdWatchdogEnabled(false); err != nil {
		return exitf(exitUsage, "daemon: watchdog settings: %v", err)
	}
	if cfg.AuditLog != "" {
		af, err := audit.OpenRotating(cfg.AuditLog, cfg.AuditLogMaxBytes, cfg.AuditLogKeep)
		if err != nil {
			return exitf(exitInternal, "daemon: %v", err)
		}
		defer af.Close()
		opts.Audit = af
	}
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if cfg.MetricsAddress != "" {
		m := metrics.New()
		opts.Metrics = m
		go func() {
			if err := m.Serve(ctx, cfg.MetricsAddress, logger); err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("metrics server stopped", "err", err)
			}
		}()
	}
	d, err := daemon.New(cfg, opts)
	if err != nil {
		return exitf(exitUsage, "daemon: %v", err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			logger.Info("SIGHUP: reloading configuration and profiles", "config", f.config)
			next, err := daemon.LoadConfig(f.config, c.IsSet("config"))
			if err != nil {
				logger.Error("reload rejected; the previous configuration and rules stay", "err", err)
				if opts.Metrics != nil {
					opts.Metrics.Reload(err)
				}
				continue
			}
			_ = d.Reload(next) // logs and counts its own outcome
		}
	}()
	if err := d.Run(ctx); err != nil {
		return exitf(exitInternal, "daemon: %v", err)
	}
	return nil
}
