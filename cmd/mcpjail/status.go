package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mcpjail/mcpjail/sandbox/daemon/api"
)

// statusFlags are the flags of `mcpjail status`.
type statusFlags struct {
	socket string
	json   bool
}

func socketFlag(dest *string) cli.Flag {
	return &cli.StringFlag{Name: "socket", Usage: "the daemon's socket `PATH`", Value: api.DefaultSocket,
		EnvVars: []string{"MCPJAIL_SOCKET"}, Destination: dest}
}

func statusCommand() *cli.Command {
	var f statusFlags
	return &cli.Command{
		Name:        "status",
		Usage:       "show the daemon's state and its running jails",
		Description: "Asks the mcpjail daemon for its kernel layers and a table of its jails: name, user, pid,\nprofile, uptime, memory, violations, kills; and the ring-buffer records the kernel lost.",
		Flags: []cli.Flag{
			socketFlag(&f.socket),
			&cli.BoolFlag{Name: "json", Usage: "print the status as JSON", Destination: &f.json},
		},
		Action: func(c *cli.Context) error {
			cl, err := api.Dial(c.Context, f.socket)
			if err != nil {
				return exitf(exitInternal, "status: %v", err)
			}
			defer cl.Close()
			st, err := cl.Status()
			if err != nil {
				return exitf(exitInternal, "status: %v", err)
			}
			if f.json {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			printStatus(st)
			return nil
		},
	}
}

func printStatus(st *api.Status) {
	fmt.Printf("daemon: pid %d, version %s, up %s\n", st.PID, st.Version, time.Since(st.Started).Round(time.Second))
	for _, l := range st.Layers {
		fmt.Printf("layer: %s\n", l)
	}
	fmt.Printf("ring buffer records lost: %d\n", st.Lost)
	if len(st.Declared) > 0 {
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DECLARED\tUSER\tPROFILE\tSTATE\tRESTARTS\tLAST EXIT")
		for _, s := range st.Declared {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\n", s.Name, s.User, s.Profile, s.State, s.Restarts, s.LastExit)
		}
		tw.Flush()
	}
	if len(st.Jails) == 0 {
		fmt.Println("no jails running")
		return
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tINSTANCE\tUSER\tPID\tPROFILE\tUPTIME\tMEMORY\tVIOLATIONS\tKILLS")
	for _, j := range st.Jails {
		name := j.Server.Name
		if j.Adopted {
			name += " (adopted)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%d\t%d\n", name, j.Server.Instance, j.User, j.PID, j.Profile,
			time.Since(j.Started).Round(time.Second), humanBytes(j.Memory), j.Violations, j.Kills)
	}
	tw.Flush()
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
