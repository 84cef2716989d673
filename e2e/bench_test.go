package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/e2e/harness"
)

// `make bench` keeps working: the load generator, run briefly against a
// real Klaxon and a real Alertmanager, prints every figure for both systems
// and writes the raw results with the core count and commit.
func TestBenchPrintsTheTableAndSavesTheResults(t *testing.T) {
	am := requireBinary(t, []string{"prometheus-alertmanager", "alertmanager"}, "prometheus-alertmanager")
	klaxon := harness.Binary(t, "klaxon")
	dir := t.TempDir()
	bench := filepath.Join(dir, "klaxon-bench")
	if out, err := exec.Command("go", "build", "-o", bench, "./bench").CombinedOutput(); err != nil {
		t.Fatalf("go build ./bench: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	results := filepath.Join(dir, "results")
	cmd := exec.CommandContext(ctx, bench, "-klaxon", klaxon, "-alertmanager", am, "-out", results,
		"-duration", "1s", "-rate", "200", "-active", "2000")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bench: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	table := string(out)
	if !strings.Contains(table, "| figure | Klaxon | Alertmanager | ratio |") {
		t.Fatalf("no table in:\n%s", table)
	}
	both := []string{
		"ingest alerts/s, 1 alert/request, 32 connections",
		"ingest alerts/s, 256 alerts/request, 8 connections",
		"latency POST→webhook p99 ms (200 alerts/s)",
		"bytes of RSS per active alert (delta)",
		"CPU seconds per 100k alerts ingested",
		"restart to ready, s, 2000 alerts on disk",
		"load generator CPU µs per request, 1 alert/request",
		"CPU µs per accepted alert while ingesting, 1 alert/request",
		"CPU µs per accepted alert while ingesting, 256 alerts/request",
	}
	for _, fig := range both {
		row := rowOf(table, fig)
		if len(row) != 4 || row[1] == "0.00" || row[2] == "0.00" || row[2] == "—" || !strings.HasSuffix(row[3], "×") {
			t.Errorf("%s: row %q, want a figure for each system and their ratio", fig, row)
		}
	}
	// Every alert of the latency phase is delivered, by both systems.
	if row := rowOf(table, "latency phase: alerts refused or not delivered (of 200)"); len(row) != 4 || row[1] != "0.00" || row[2] != "0.00" {
		t.Errorf("lost in the latency phase: row %q, want none", row)
	}
	if row := rowOf(table, "routed alerts/s, 256 alerts/request (ingest until every alert is in its group)"); len(row) != 4 || row[1] == "0.00" {
		t.Errorf("routed: row %q, want Klaxon's figure", row)
	}
	if row := rowOf(table, "bytes of RSS per active alert (delta), all in one group (Alertmanager only)"); len(row) != 4 || row[1] != "—" || row[2] == "—" || row[2] == "0.00" {
		t.Errorf("one group: row %q, want Alertmanager's figure only", row)
	}

	files, _ := filepath.Glob(filepath.Join(results, "*.json"))
	if len(files) != 1 {
		t.Fatalf("results files %v, want one", files)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var saved struct {
		Cores   int                           `json:"cores"`
		Commit  string                        `json:"commit"`
		Results map[string]map[string]float64 `json:"results"`
	}
	if err := json.Unmarshal(raw, &saved); err != nil {
		t.Fatal(err)
	}
	if saved.Cores < 1 || saved.Commit == "" || saved.Results[both[0]]["Klaxon"] <= 0 || saved.Results[both[0]]["Alertmanager"] <= 0 {
		t.Fatalf("saved results: cores %d, commit %q, %v", saved.Cores, saved.Commit, saved.Results[both[0]])
	}
}

// rowOf splits the table row of figure into its cells.
func rowOf(table, figure string) []string {
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "| "+figure+" |") {
			var cells []string
			for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
				cells = append(cells, strings.TrimSpace(c))
			}
			return cells
		}
	}
	return nil
}
