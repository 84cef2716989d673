package ruletest

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/ruleset"
)

// Simulator is an engine on a simulated clock with in-memory state: it is
// fed envelopes at given instants and, when the clock advances, returns the
// notifications it sent up to and including that instant (CreatedAt set to
// the simulated time of sending).
type Simulator interface {
	Ingest(at time.Time, env *klaxonv1.Envelope)
	Advance(to time.Time) []*klaxonv1.Notification
}

// NewSimulator builds a fresh simulator for one tenant's rules, its clock at
// start.
type NewSimulator func(t *ruleset.Tenant, start time.Time) (Simulator, error)

// Result is the outcome of one test.
type Result struct {
	File string
	Test string
	// Failures are human-readable, one per mismatch, each positioned at the
	// expectation (file:line:col) when there is one.
	Failures []string
}

// Run parses each test file, runs every test on a fresh simulator and
// writes promtool-like output to w. It returns the results; any parse or
// rule error is returned as err.
func Run(paths []string, newSim NewSimulator, w io.Writer, opts ...ruleset.Option) ([]Result, error) {
	var results []Result
	for _, p := range paths {
		f, err := ParseFile(p)
		if err != nil {
			return results, err
		}
		rs, err := f.Run(newSim, opts...)
		if err != nil {
			return results, err
		}
		for _, r := range rs {
			if len(r.Failures) == 0 {
				fmt.Fprintf(w, "  PASS %s: %s\n", r.File, r.Test)
				continue
			}
			fmt.Fprintf(w, "  FAIL %s: %s\n", r.File, r.Test)
			for _, msg := range r.Failures {
				fmt.Fprintf(w, "    %s\n", strings.ReplaceAll(msg, "\n", "\n    "))
			}
		}
		results = append(results, rs...)
	}
	return results, nil
}

// Run runs every test of f.
func (f *File) Run(newSim NewSimulator, opts ...ruleset.Option) ([]Result, error) {
	dir := filepath.Dir(f.path)
	tenant := f.Tenant
	if tenant == "" {
		tenant = filepath.Base(dir)
	}
	var files []string
	if len(f.RuleFiles) == 0 {
		all, err := filepath.Glob(filepath.Join(dir, "*"))
		if err != nil {
			return nil, err
		}
		files = all
	}
	for _, rf := range f.RuleFiles {
		if !filepath.IsAbs(rf) {
			rf = filepath.Join(dir, rf)
		}
		files = append(files, rf)
	}
	sort.Strings(files)
	t, errs := ruleset.LoadFiles(tenant, files, opts...)
	if len(errs) > 0 {
		return nil, joinErrs(errs)
	}
	var out []Result
	for i := range f.Tests {
		r, err := f.runTest(&f.Tests[i], t, newSim)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (f *File) runTest(tc *Test, t *ruleset.Tenant, newSim NewSimulator) (Result, error) {
	res := Result{File: f.path, Test: tc.Name}
	sim, err := newSim(t, f.start)
	if err != nil {
		return res, fmt.Errorf("%s: %s: %w", tc.pos, tc.Name, err)
	}
	var got []*klaxonv1.Notification
	startsAt := map[string]time.Time{}
	for si, s := range tc.Input {
		at := f.start.Add(s.at)
		got = append(got, sim.Advance(at)...)
		for ai, a := range s.Alerts {
			sim.Ingest(at, alertEnvelope(t.Name, at, a, startsAt, fmt.Sprintf("%d-%d-a%d", si, ai, s.at)))
		}
		for ei, e := range s.Events {
			sim.Ingest(at, eventEnvelope(t.Name, at, e, fmt.Sprintf("%d-%d-e%d", si, ei, s.at)))
		}
		got = append(got, sim.Advance(at)...)
	}
	got = append(got, sim.Advance(f.start.Add(tc.until))...)
	res.Failures = compare(f.start, tc.Expect, got)
	return res, nil
}

func alertEnvelope(tenant string, at time.Time, a Alert, startsAt map[string]time.Time, id string) *klaxonv1.Envelope {
	ls := make(model.LabelSet, len(a.Labels))
	for k, v := range a.Labels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	fp := ls.Fingerprint().String()
	start, ok := startsAt[fp]
	if !ok {
		start = at
	}
	al := &klaxonv1.Alert{
		Labels: a.Labels, Annotations: a.Annotations, Fingerprint: fp,
		StartsAt: timestamppb.New(start), Status: klaxonv1.AlertStatus_ALERT_STATUS_FIRING,
	}
	if a.Status == "resolved" {
		al.Status = klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED
		al.EndsAt = timestamppb.New(at)
		delete(startsAt, fp)
	} else {
		startsAt[fp] = start
	}
	return &klaxonv1.Envelope{Tenant: tenant, Source: "alerts-v2", ReceivedAt: timestamppb.New(at),
		Id: "ruletest-" + id, Payload: &klaxonv1.Envelope_Alert{Alert: al}}
}

func eventEnvelope(tenant string, at time.Time, e Event, id string) *klaxonv1.Envelope {
	if e.ID == "" {
		e.ID = "ruletest-" + id
	}
	return &klaxonv1.Envelope{Tenant: tenant, Source: "event", ReceivedAt: timestamppb.New(at), Id: "ruletest-" + id,
		Payload: &klaxonv1.Envelope_Event{Event: &klaxonv1.Event{
			Kind: e.Kind, Id: e.ID, Time: timestamppb.New(at), Labels: e.Labels, Name: e.Name, Good: e.Good, Total: e.Total,
		}}}
}

// key is a notification in comparable form.
type key struct {
	at       time.Duration
	receiver string
	group    string
	status   string
	alerts   string
}

func (k key) String() string {
	return fmt.Sprintf("at %s: %s %s %s %s", model.Duration(k.at), k.receiver, k.group, k.status, k.alerts)
}

func labelString(m map[string]string) string {
	return model.LabelSet(toLS(m)).String()
}

func toLS(m map[string]string) model.LabelSet {
	ls := make(model.LabelSet, len(m))
	for k, v := range m {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}

func alertsString(as []string) string {
	sort.Strings(as)
	return "[" + strings.Join(as, " ") + "]"
}

func expectedKey(e *Notification) key {
	var as []string
	firing := false
	for _, a := range e.Alerts {
		st := a.Status
		if st == "" {
			st = "firing"
		}
		firing = firing || st == "firing"
		as = append(as, labelString(a.Labels)+"="+st)
	}
	status := e.Status
	if status == "" {
		status = "resolved"
		if firing {
			status = "firing"
		}
	}
	return key{at: e.at, receiver: e.Receiver, group: labelString(e.GroupLabels), status: status, alerts: alertsString(as)}
}

func gotKey(start time.Time, n *klaxonv1.Notification) key {
	at := n.GetCreatedAt().AsTime()
	var as []string
	firing := false
	for _, a := range n.GetAlerts() {
		st := "firing"
		if a.GetStatus() == klaxonv1.AlertStatus_ALERT_STATUS_RESOLVED ||
			(a.GetEndsAt() != nil && !a.GetEndsAt().AsTime().After(at)) {
			st = "resolved"
		}
		firing = firing || st == "firing"
		as = append(as, labelString(a.GetLabels())+"="+st)
	}
	status := "resolved"
	if firing {
		status = "firing"
	}
	return key{at: at.Sub(start), receiver: n.GetReceiver(), group: labelString(n.GetGroupLabels()), status: status, alerts: alertsString(as)}
}

// compare matches expected and got notifications as multisets and reports
// every expectation that was not met and every notification not expected.
func compare(start time.Time, want []Notification, got []*klaxonv1.Notification) []string {
	left := map[key]int{}
	var gotKeys []key
	for _, n := range got {
		k := gotKey(start, n)
		left[k]++
		gotKeys = append(gotKeys, k)
	}
	var failures []string
	for i := range want {
		k := expectedKey(&want[i])
		if left[k] > 0 {
			left[k]--
			continue
		}
		failures = append(failures, fmt.Sprintf("%s: expected notification not sent: %s", want[i].pos, k))
	}
	for _, k := range gotKeys {
		if left[k] > 0 {
			left[k]--
			failures = append(failures, fmt.Sprintf("unexpected notification: %s", k))
		}
	}
	if len(failures) > 0 {
		var all []string
		for _, k := range gotKeys {
			all = append(all, k.String())
		}
		if len(all) == 0 {
			all = []string{"(none)"}
		}
		failures = append(failures, "notifications sent:\n  "+strings.Join(all, "\n  "))
	}
	return failures
}

func joinErrs(errs []error) error { return errors.Join(errs...) }
