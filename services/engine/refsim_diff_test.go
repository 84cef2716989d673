package engine_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/engine"
	"github.com/klaxon-sh/klaxon/services/ruleset"
	"github.com/klaxon-sh/klaxon/services/ruleset/ruletest"
)

const diffRules = `
receivers:
  - name: default
    webhook_configs: [{url: "http://127.0.0.1:1/", send_resolved: true}]
  - name: quiet
    webhook_configs: [{url: "http://127.0.0.1:1/", send_resolved: false}]
  - name: db
    webhook_configs: [{url: "http://127.0.0.1:1/", send_resolved: true}]
route:
  receiver: default
  group_by: [alertname]
  group_wait: 30s
  group_interval: 2m
  repeat_interval: 10m
  routes:
    - matchers: [team=db]
      receiver: db
      group_by: ['...']
      continue: true
    - matchers: [severity=info]
      receiver: quiet
      group_wait: 10s
`

// The engine's dispatcher and the rule-test reference simulator (written
// independently from Alertmanager's source) agree on random alert sequences.
// Inhibition is left out: the reference keeps a resolved alert that is
// inhibited in its group and later sends it as resolved, where Alertmanager
// (and the engine) drop it after the flush (covered by the table tests).
func TestAgreesWithReferenceSimulator(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "am.yml")
	if err := os.WriteFile(p, []byte(diffRules), 0o644); err != nil {
		t.Fatal(err)
	}
	tn, errs := ruleset.LoadFiles("a", []string{p})
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	pool := []map[string]string{
		{"alertname": "Disk", "team": "db", "severity": "warning"},
		{"alertname": "Disk", "team": "db", "severity": "critical"},
		{"alertname": "Disk", "team": "web", "severity": "warning"},
		{"alertname": "CPU", "team": "web", "severity": "critical"},
		{"alertname": "CPU", "team": "db", "severity": "info"},
		{"alertname": "Mem", "team": "ops", "severity": "info"},
	}
	start := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 7))
		ref, _ := ruletest.NewRefSim(tn, start)
		eng, _ := engine.NewSim(tn, start)
		var got, want []string
		at := start
		for range 25 {
			at = at.Add(time.Duration(rng.IntN(240)) * time.Second)
			ls := pool[rng.IntN(len(pool))]
			a := &klaxonv1.Alert{Labels: ls, StartsAt: timestamppb.New(at.Add(-time.Second)), EndsAt: timestamppb.New(at.Add(time.Hour)),
				Status: klaxonv1.AlertStatus_ALERT_STATUS_FIRING}
			if rng.IntN(3) == 0 {
				a.EndsAt = timestamppb.New(at)
				a.Status = klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED
			}
			want = append(want, describeAll(ref.Advance(at))...)
			got = append(got, describeAll(eng.Advance(at))...)
			env := func() *klaxonv1.Envelope {
				return &klaxonv1.Envelope{Tenant: "a", Payload: &klaxonv1.Envelope_Alert{Alert: cloneAlert(a)}}
			}
			ref.Ingest(at, env())
			eng.Ingest(at, env())
		}
		end := at.Add(2 * time.Hour)
		want = append(want, describeAll(ref.Advance(end))...)
		got = append(got, describeAll(eng.Advance(end))...)
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			var onlyGot, onlyWant []string
			for _, g := range got {
				if !slices.Contains(want, g) {
					onlyGot = append(onlyGot, g)
				}
			}
			for _, w := range want {
				if !slices.Contains(got, w) {
					onlyWant = append(onlyWant, w)
				}
			}
			t.Fatalf("seed %d: %d vs %d notifications\n only engine: %q\n    only ref: %q", seed, len(got), len(want), onlyGot, onlyWant)
		}
	}
}

func cloneAlert(a *klaxonv1.Alert) *klaxonv1.Alert {
	ls := map[string]string{}
	for k, v := range a.Labels {
		ls[k] = v
	}
	// The receiver always sets the fingerprint; the reference relies on it.
	fp := model.LabelSet{}
	for k, v := range ls {
		fp[model.LabelName(k)] = model.LabelValue(v)
	}
	return &klaxonv1.Alert{Labels: ls, StartsAt: a.StartsAt, EndsAt: a.EndsAt, Status: a.Status, Fingerprint: fp.Fingerprint().String()}
}

func describeAll(ns []*klaxonv1.Notification) []string {
	var out []string
	for _, n := range ns {
		var as []string
		for _, a := range n.Alerts {
			// Resolved by its end time (the reference keeps the status the
			// alert arrived with).
			resolved := a.EndsAt != nil && !a.EndsAt.AsTime().After(n.CreatedAt.AsTime())
			as = append(as, fmt.Sprintf("%v/%v", a.Labels, resolved))
		}
		sort.Strings(as)
		out = append(out, fmt.Sprintf("%s %s %s %v [%s]", n.CreatedAt.AsTime().Format("15:04:05"), n.Receiver, n.GroupKey, n.Status, strings.Join(as, " ")))
	}
	return out
}
