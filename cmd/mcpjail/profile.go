package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/mcpjail/mcpjail/profiles"
	"github.com/mcpjail/mcpjail/sandbox"
)

// showTmpDir stands for ${TMPDIR} outside a run: the real directory is created
// per run with a random instance id.
const showTmpDir = "/tmp/mcpjail-<instance>"

func profileCommand() *cli.Command {
	return &cli.Command{
		Name:  "profile",
		Usage: "validate, show, list and pin sandbox profiles",
		Description: "A profile is a YAML file (apiVersion: mcpjail.dev/v1, kind: Profile) or the name of a\n" +
			"built-in profile. See `mcpjail profile list` for the built-ins.",
		Subcommands: []*cli.Command{
			profileValidateCommand(),
			profileShowCommand(),
			profileListCommand(),
			profilePinCommand(),
		},
	}
}

// varFlags set the values of ${HOME} and ${WORKDIR} used to compile a profile.
func varFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "workdir", Usage: "value of ${WORKDIR} (default: the current directory)"},
		&cli.StringFlag{Name: "home", Usage: "value of ${HOME}: the home of the user the server runs as (default: the current user's home)"},
	}
}

func profileValidateCommand() *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check profile files; exit 0 when all are valid, 2 otherwise",
		ArgsUsage: "FILE...",
		Description: "Loads and compiles each FILE and prints every problem as file:line:col: message on\n" +
			"stderr. Compilation uses the --home and --workdir values, so a rule that only conflicts\n" +
			"for some home directory is checked against the one given. Suitable for CI.",
		Flags: varFlags(),
		Action: func(c *cli.Context) error {
			files := c.Args().Slice()
			if len(files) == 0 {
				return exitf(exitUsage, "profile validate: give at least one profile file")
			}
			if err := rejectLateFlags(files); err != nil {
				return err
			}
			vars, err := compileVars(c)
			if err != nil {
				return err
			}
			failed := false
			for _, file := range files {
				p, err := profiles.LoadFile(file)
				if err == nil {
					_, err = p.Compile(vars)
				}
				if err != nil {
					fmt.Fprintln(c.App.ErrWriter, err)
					failed = true
					continue
				}
				fmt.Fprintf(c.App.Writer, "%s: ok\n", file)
			}
			if failed {
				return silentExit(exitUsage)
			}
			return nil
		},
	}
}

func profileShowCommand() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Usage:     "print the effective policy of a profile after variable expansion",
		ArgsUsage: "NAME|FILE",
		Description: "Prints what the kernel will be told: every variable expanded, paths cleaned, lists\n" +
			"sorted, ports merged. NAME is a built-in; a value containing '/' or ending in .yaml/.yml\n" +
			"is a file. ${TMPDIR} is shown as " + showTmpDir + ".",
		Flags: append(varFlags(),
			&cli.BoolFlag{Name: "json", Usage: "print JSON instead of YAML"},
		),
		BashComplete: completeBuiltins,
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return exitf(exitUsage, "profile show: give exactly one profile name or file (flags go before it)")
			}
			vars, err := compileVars(c)
			if err != nil {
				return err
			}
			p, err := profiles.Resolve(c.Args().First())
			if err != nil {
				return profileErrors(c, err)
			}
			pol, err := p.Compile(vars)
			if err != nil {
				return profileErrors(c, err)
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				return enc.Encode(pol)
			}
			fmt.Fprintf(c.App.Writer, "# effective policy of %s\n# HOME=%s WORKDIR=%s TMPDIR=%s\n", pol.Source, vars.Home, vars.Workdir, vars.TmpDir)
			enc := yaml.NewEncoder(c.App.Writer)
			enc.SetIndent(2)
			if err := enc.Encode(pol); err != nil {
				return exitf(exitFailure, "profile show: %v", err)
			}
			return enc.Close()
		},
	}
}

func profileListCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list the built-in profiles with their descriptions",
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return exitf(exitUsage, "profile list takes no arguments")
			}
			tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDESCRIPTION")
			for _, b := range profiles.Builtins() {
				fmt.Fprintf(tw, "%s\t%s\n", b.Name, b.Description)
			}
			return tw.Flush()
		},
	}
}

func profilePinCommand() *cli.Command {
	return &cli.Command{
		Name:      "pin",
		Usage:     "write the executable and sha256 of CMD into a profile file",
		ArgsUsage: "FILE -- CMD [ARGS...]",
		Description: "Resolves CMD through PATH by the rules `mcpjail run` uses (a name with '/' is taken\n" +
			"as a path), follows symlinks to the file that will really run, hashes it, and sets\n" +
			"server.executable and server.sha256 in FILE. FILE is replaced atomically; other keys and\n" +
			"most comments are kept, and the document is re-indented with two spaces. `mcpjail run`\n" +
			"refuses to start CMD when the file no longer matches. ARGS are ignored, so a client's\n" +
			"command line can be pasted.",
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			if len(args) > 1 && args[1] == "--" {
				args = append(args[:1], args[2:]...)
			}
			if len(args) < 2 {
				return exitf(exitUsage, "profile pin: usage: mcpjail profile pin FILE -- CMD [ARGS...]")
			}
			file, cmd := args[0], args[1]
			wd, err := os.Getwd()
			if err != nil {
				return exitf(exitFailure, "profile pin: find the current directory: %v", err)
			}
			exe, sum, err := sandbox.ResolvePin(cmd, os.Getenv("PATH"), wd)
			if err != nil {
				return exitf(exitFailure, "profile pin: %v", err)
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return exitf(exitFailure, "profile pin: %v", err)
			}
			if _, err := profiles.Parse(file, data); err != nil {
				return profileErrors(c, err)
			}
			out, err := profiles.SetPin(data, exe, sum)
			if err != nil {
				return exitf(exitFailure, "profile pin: %s: %v", file, err)
			}
			if err := writeFileAtomic(file, out); err != nil {
				return exitf(exitFailure, "profile pin: %v", err)
			}
			fmt.Fprintf(c.App.Writer, "%s: pinned server.executable %s, server.sha256 %s\n", file, exe, sum)
			return nil
		},
	}
}

// profileErrors prints a profile's errors one per line, as file:line:col:
// message, and exits with the usage code.
func profileErrors(c *cli.Context, err error) error {
	fmt.Fprintln(c.App.ErrWriter, err)
	return silentExit(exitUsage)
}

// compileVars builds the variable values for validate and show.
func compileVars(c *cli.Context) (profiles.Vars, error) {
	home := c.String("home")
	if home == "" {
		u, err := user.Current()
		if err != nil {
			return profiles.Vars{}, exitf(exitFailure, "find the current user's home (pass --home): %v", err)
		}
		home = u.HomeDir
	}
	workdir := c.String("workdir")
	if workdir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return profiles.Vars{}, exitf(exitFailure, "find the current directory (pass --workdir): %v", err)
		}
		workdir = wd
	}
	var err error
	if home, err = filepath.Abs(home); err != nil {
		return profiles.Vars{}, exitf(exitUsage, "--home: %v", err)
	}
	if workdir, err = filepath.Abs(workdir); err != nil {
		return profiles.Vars{}, exitf(exitUsage, "--workdir: %v", err)
	}
	return profiles.Vars{Home: home, Workdir: workdir, TmpDir: showTmpDir}, nil
}

// rejectLateFlags catches "validate a.yaml --home /x": urfave/cli stops
// parsing flags at the first argument, so the flag would be taken as a file.
func rejectLateFlags(args []string) error {
	for _, a := range args {
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			return exitf(exitUsage, "flag %s must come before the files", a)
		}
	}
	return nil
}

func completeBuiltins(c *cli.Context) {
	if c.NArg() > 0 {
		return
	}
	for _, b := range profiles.Builtins() {
		fmt.Fprintln(c.App.Writer, b.Name)
	}
}

// writeFileAtomic replaces path with data through a temporary file in the
// same directory and a rename, keeping path's permission bits, so a reader
// never sees a half-written profile.
func writeFileAtomic(path string, data []byte) (err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".pin-*")
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err = tmp.Chmod(fi.Mode().Perm()); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	// Keep the owner too (root pinning a team's file must not take it over).
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid()) {
		if err = tmp.Chown(int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("keep the owner of %s: %w", path, err)
		}
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}
