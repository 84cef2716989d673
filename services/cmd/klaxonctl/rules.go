package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/alecthomas/kingpin/v2"
	"gopkg.in/yaml.v3"

	"github.com/klaxon-sh/klaxon/services/notify/receivers"
	"github.com/klaxon-sh/klaxon/services/ruleset"
	"github.com/klaxon-sh/klaxon/services/ruleset/rulerfile"
	"github.com/klaxon-sh/klaxon/services/ruleset/ruletest"
	"github.com/klaxon-sh/klaxon/services/simulator"
)

// registerRules adds the offline rule commands, `rules lint` and `rules
// test`, which work on files and need no server.
func registerRules(rules *kingpin.CmdClause, stdout, stderr io.Writer) dispatcher {
	lint := rules.Command("lint", "Validate every rule file under DIR (Klaxon/Alertmanager rules, Prometheus/Loki ruler files, rule tests); errors as file:line:col: message.")
	lintDir := lint.Arg("dir", "Rules directory (rules/<tenant>/*.yml).").Default("rules").String()
	test := rules.Command("test", "Run rule unit tests (*_test.yml) on a simulated clock.")
	testFiles := test.Arg("file", "Rule test files.").Required().Strings()
	return func(cmd string) (int, bool) {
		switch cmd {
		case lint.FullCommand():
			return lintRules(*lintDir, stdout, stderr), true
		case test.FullCommand():
			return testRules(*testFiles, stdout, stderr), true
		}
		return 0, false
	}
}

// loadOptions are the checks the server applies too: integrations the
// notifier does not implement are errors at load, not at the first page.
func loadOptions() []ruleset.Option {
	return []ruleset.Option{ruleset.WithReceiverCheck(receivers.Unsupported)}
}

// printErrors writes every error of err, one per line.
func printErrors(w io.Writer, err error) int {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		n := 0
		for _, e := range joined.Unwrap() {
			n += printErrors(w, e)
		}
		return n
	}
	fmt.Fprintln(w, err)
	return 1
}

func lintRules(dir string, stdout, stderr io.Writer) int {
	nerr := 0
	set, err := ruleset.Load(dir, loadOptions()...)
	if err != nil {
		nerr += printErrors(stderr, err)
	}
	// The server reads only Klaxon rule files; ruler files and rule tests
	// beside them are checked here.
	files, err := filepath.Glob(filepath.Join(dir, "*", "*"))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	sort.Strings(files)
	var ruler, tests, rulerRules, skipped int
	for _, f := range files {
		ext := filepath.Ext(f)
		if (ext != ".yml" && ext != ".yaml") || strings.HasPrefix(filepath.Base(f), ".") {
			continue
		}
		if info, err := os.Stat(filepath.Dir(f)); err != nil || !info.IsDir() || strings.HasPrefix(filepath.Base(filepath.Dir(f)), ".") {
			continue
		}
		if !ruleset.IsRuleFile(f) { // *_test.yml
			tests++
			if _, err := ruletest.ParseFile(f); err != nil {
				nerr += printErrors(stderr, err)
			}
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			nerr += printErrors(stderr, err)
			continue
		}
		var doc yaml.Node
		if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 || !rulerfile.IsRulerFile(doc.Content[0]) {
			continue // a Klaxon rule file: Load above reported it
		}
		ruler++
		res := rulerfile.Validate(f, data, exprCheck)
		rulerRules += res.Rules
		skipped += res.Skipped
		for _, e := range res.Errors {
			nerr += printErrors(stderr, e)
		}
	}
	if nerr == 0 && set != nil && len(set.Tenants) == 0 {
		// The server reads DIR/<tenant>/*.yml only: a CI job pointed at a
		// tenant's directory, or at a mistyped path, would pass on rules
		// the next reload refuses.
		if own, _ := filepath.Glob(filepath.Join(dir, "*.y*ml")); len(own) > 0 {
			fmt.Fprintf(stderr, "%s: no tenant directories, but rule files: rules are read from DIR/<tenant>/*.yml, so pass %s (the parent of this tenant's directory)\n", dir, filepath.Dir(filepath.Clean(dir)))
		} else {
			fmt.Fprintf(stderr, "%s: no tenant directories (rules are read from DIR/<tenant>/*.yml)\n", dir)
		}
		nerr++
	}
	if nerr > 0 {
		fmt.Fprintf(stderr, "%d error(s)\n", nerr)
		return 1
	}
	rf := 0
	for _, t := range set.Tenants {
		rf += len(t.Files)
	}
	fmt.Fprintf(stdout, "%d tenants, %d rule files, %d ruler files (%d rules), %d rule test files: OK\n",
		len(set.Tenants), rf, ruler, rulerRules, tests)
	if skipped > 0 {
		fmt.Fprintf(stdout, "note: %d PromQL expressions were checked for structure only (no PromQL parser linked)\n", skipped)
	}
	return 0
}

func testRules(files []string, stdout, stderr io.Writer) int {
	// Policies, heartbeats and SLOs run for real on the simulated clock.
	defer simulator.CloseAll()
	results, err := ruletest.Run(files, simulator.New, stdout, loadOptions()...)
	if err != nil {
		printErrors(stderr, err)
		return 1
	}
	failed := 0
	for _, r := range results {
		if len(r.Failures) > 0 {
			failed++
		}
	}
	fmt.Fprintf(stdout, "%d tests, %d failed\n", len(results), failed)
	if failed > 0 {
		return 1
	}
	return 0
}
