package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/mcpjail/mcpjail/sandbox/audit"
	"github.com/mcpjail/mcpjail/sandbox/daemon/api"
)

// eventsFlags are the flags of `mcpjail events`.
type eventsFlags struct {
	socket string
	follow bool
	server string
	json   bool
}

func eventsCommand() *cli.Command {
	var f eventsFlags
	return &cli.Command{
		Name:        "events",
		Usage:       "print the daemon's recent events, and follow new ones",
		Description: "Prints the events the mcpjail daemon keeps in memory (the audit log has them all);\nwith --follow, keeps printing new events until interrupted.",
		Flags: []cli.Flag{
			socketFlag(&f.socket),
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new events", Destination: &f.follow},
			&cli.StringFlag{Name: "server", Usage: "only the events of server `NAME`", Destination: &f.server},
			&cli.BoolFlag{Name: "json", Usage: "print JSON lines (the audit log's format)", Destination: &f.json},
		},
		Action: func(c *cli.Context) error {
			cl, err := api.Dial(c.Context, f.socket)
			if err != nil {
				return exitf(exitInternal, "events: %v", err)
			}
			defer cl.Close()
			enc := json.NewEncoder(os.Stdout)
			err = cl.StreamEvents(c.Context, api.EventsRequest{Follow: f.follow, Server: f.server}, func(e audit.Event) error {
				if f.json {
					return enc.Encode(e)
				}
				_, err := fmt.Println(e.Line())
				return err
			})
			if err != nil {
				return exitf(exitInternal, "events: %v", err)
			}
			return nil
		},
	}
}
