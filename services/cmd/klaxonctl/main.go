// Command klaxonctl is Klaxon's CLI: rule linting and testing offline, and
// (through the gRPC admin API) alerts, silences, SLOs, deliveries and tail.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kingpin/v2"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// dispatcher runs cmd (a kingpin FullCommand) if its group registered it.
type dispatcher func(cmd string) (code int, ok bool)

// exit carries kingpin's exit code (after --help, --version, completion)
// out of Parse, so run returns it instead of the process exiting in tests.
type exit struct{ code int }

func run(args []string, stdout, stderr io.Writer) (code int) {
	app := kingpin.New("klaxonctl", "Klaxon's command line.")
	app.Version(version)
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	app.Terminate(func(c int) { panic(exit{c}) })
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(exit)
			if !ok {
				panic(r)
			}
			code = e.code
		}
	}()

	// Each command group registers its commands from its own file and
	// returns the dispatcher that runs them.
	rules := app.Command("rules", "Work with rule files.")
	groups := []dispatcher{
		registerRules(rules, stdout, stderr),      // lint, test: rules.go
		registerAdmin(app, rules, stdout, stderr), // admin-API groups: client.go
	}

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintln(stderr, "klaxonctl:", err)
		return 2
	}
	for _, g := range groups {
		if code, ok := g(cmd); ok {
			return code
		}
	}
	return 0
}
