// Command klaxonctl is Klaxon's CLI: rule linting and testing offline, and
// (through the gRPC admin API) alerts, silences, SLOs, deliveries and tail.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kingpin/v2"

	"github.com/klaxon-sh/klaxon/services/ruleset"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	app := kingpin.New("klaxonctl", "Klaxon's command line.")
	app.Version(version)
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	app.Terminate(nil)

	rules := app.Command("rules", "Work with rule files.")
	lint := rules.Command("lint", "Validate every rule file under DIR; errors as file:line:col: message.")
	lintDir := lint.Arg("dir", "Rules directory (rules/<tenant>/*.yml).").Default("rules").String()
	runAdmin := registerAdmin(app, rules, stdout, stderr) // admin-API groups, client.go

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintln(stderr, "klaxonctl:", err)
		return 2
	}
	if code, ok := runAdmin(cmd); ok {
		return code
	}
	switch cmd {
	case lint.FullCommand():
		return lintRules(*lintDir, stdout, stderr)
	}
	return 0
}

func lintRules(dir string, stdout, stderr io.Writer) int {
	set, err := ruleset.Load(dir)
	if err != nil {
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			for _, e := range joined.Unwrap() {
				fmt.Fprintln(stderr, e)
			}
		} else {
			fmt.Fprintln(stderr, err)
		}
		return 1
	}
	files := 0
	for _, t := range set.Tenants {
		files += len(t.Files)
	}
	fmt.Fprintf(stdout, "%d tenants, %d rule files: OK\n", len(set.Tenants), files)
	return 0
}
