// Command klaxon is Klaxon's one server binary. `klaxon run --target=all` is
// the monolith; in production each target (receiver, engine, notifier, admin)
// runs as its own Deployment against a NATS cluster.
package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kingpin/v2"
)

var version = "dev"

func main() {
	app := kingpin.New("klaxon", "Event-driven alert routing: ingest, rules, notifications.")
	app.Version(version)
	app.HelpFlag.Short('h')
	run := app.Command("run", "Run one or more targets.").Default()
	cfg := registerRunFlags(run)
	cmd, err := app.Parse(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "klaxon:", err)
		os.Exit(2)
	}
	switch cmd {
	case run.FullCommand():
		tuneGC(cfg.minHeap)
		if err := runTargets(cfg); err != nil {
			fmt.Fprintln(os.Stderr, "klaxon:", err)
			os.Exit(1)
		}
	}
}
