// Command mcpjail runs MCP servers inside a kernel-enforced jail.
//
// This package only turns flags into calls on the library packages and errors
// into exit codes; the work lives in profiles, sandbox and bpf.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/mcpjail/mcpjail/sandbox"
)

// Exit codes follow docker run's convention where they apply.
const (
	exitOK       = 0
	exitFailure  = 1   // a check failed (doctor: a layer is missing)
	exitUsage    = 2   // bad flags, bad profile
	exitInternal = 125 // mcpjail itself failed, or refused to run
)

// version is set by the linker (make build); "dev" otherwise.
var version = "dev"

func main() {
	// The re-executed cleanup guard never goes through the CLI: it reads its
	// instructions from a pipe. (The init step is mcpjail-init.)
	if sandbox.IsGuardInvocation(os.Args) {
		sandbox.GuardMain() // never returns
	}
	os.Exit(run(os.Args))
}

func run(args []string) int {
	app := newApp()
	err := app.Run(args)
	if err == nil {
		return exitOK
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(os.Stderr, "mcpjail:", msg)
		}
		return ec.ExitCode()
	}
	// Anything else came from flag parsing in urfave/cli: a usage error.
	fmt.Fprintln(os.Stderr, "mcpjail:", err)
	return exitUsage
}

func newApp() *cli.App {
	return &cli.App{
		Name:                 "mcpjail",
		Usage:                "run MCP servers inside a kernel-enforced jail (Landlock, cgroups, eBPF)",
		Version:              version,
		EnableBashCompletion: true,
		HideVersion:          true,
		// Errors are printed once, by run, with the right exit code.
		ExitErrHandler: func(*cli.Context, error) {},
		Commands: []*cli.Command{
			runCommand(),
			profileCommand(),
			doctorCommand(),
			daemonCommand(),
			statusCommand(),
			eventsCommand(),
			versionCommand(),
		},
	}
}

// exitf returns an error that makes mcpjail exit with code.
func exitf(code int, format string, a ...any) error {
	return cli.Exit(fmt.Sprintf(format, a...), code)
}

// silentExit exits with code without printing anything more.
func silentExit(code int) error { return cli.Exit("", code) }
