package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/lambdas/alerting"
	"github.com/klaxon-sh/klaxon/lambdas/internal/fakes"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func defaults(t *testing.T) *Config {
	t.Helper()
	cfg, err := LoadRules("default_rules.yaml", defaultRules)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestDefaultRulesFilter(t *testing.T) {
	cfg := defaults(t)
	for _, tc := range []struct {
		file string
		want []string // matching plain rules
	}{
		{"eventbridge-eks-delete-cluster.json", []string{"eks-control-plane-change"}},
		{"eventbridge-console-signin-root.json", []string{"root-user-activity"}},
		{"eventbridge-s3-unmatched.json", nil},
		{"sns-cloudtrail-stoplogging.json", []string{"cloudtrail-tampering"}},
		{"sns-alertmanager.json", nil}, // not CloudTrail: skipped
	} {
		t.Run(tc.file, func(t *testing.T) {
			evs, _, err := decodeInput(sample(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ev := range evs {
				for i := range cfg.Rules {
					if cfg.Rules[i].Burst == nil && cfg.Rules[i].matches(&ev.rec) {
						got = append(got, cfg.Rules[i].Name)
					}
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("matched %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRuleFields(t *testing.T) {
	cfg := defaults(t)
	rule := func(name string) *Rule {
		for i := range cfg.Rules {
			if cfg.Rules[i].Name == name {
				return &cfg.Rules[i]
			}
		}
		t.Fatalf("no rule %s", name)
		return nil
	}
	iam := rule("iam-policy-change")
	for _, tc := range []struct {
		rec  ctRecord
		rule *Rule
		want bool
	}{
		{ctRecord{EventSource: "iam.amazonaws.com", EventName: "AttachRolePolicy"}, iam, true},
		{ctRecord{EventSource: "iam.amazonaws.com", EventName: "PutUserPolicy"}, iam, true},
		{ctRecord{EventSource: "iam.amazonaws.com", EventName: "GetPolicy"}, iam, false},
		{ctRecord{EventSource: "iam.amazonaws.com", EventName: "AttachRolePolicy", ErrorCode: "AccessDenied"}, iam, false},
		{ctRecord{EventSource: "eks.amazonaws.com", EventName: "UpdateClusterConfig"}, rule("eks-control-plane-change"), true},
		{ctRecord{EventSource: "eks.amazonaws.com", EventName: "DeleteNodegroup"}, rule("eks-control-plane-change"), true},
		{ctRecord{EventSource: "eks.amazonaws.com", EventName: "DescribeCluster"}, rule("eks-control-plane-change"), false},
		{ctRecord{UserIdentity: ctIdentity{Type: "Root"}}, rule("root-user-activity"), true},
		{ctRecord{UserIdentity: ctIdentity{Type: "Root", InvokedBy: "support.amazonaws.com"}}, rule("root-user-activity"), false},
		{ctRecord{EventName: "ConsoleLogin", ResponseElements: json.RawMessage(`{"ConsoleLogin":"Failure"}`)}, rule("console-login-failure"), true},
		{ctRecord{EventName: "ConsoleLogin", ResponseElements: json.RawMessage(`{"ConsoleLogin":"Success"}`)}, rule("console-login-failure"), false},
	} {
		if got := tc.rule.matches(&tc.rec); got != tc.want {
			t.Errorf("%s on %s/%s: %v, want %v", tc.rule.Name, tc.rec.EventSource, tc.rec.EventName, got, tc.want)
		}
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"abc", "abc", true}, {"abc", "abcd", false}, {"a*", "abc", true}, {"*c", "abc", true},
		{"a*c", "abbbc", true}, {"a*b*c", "axbyc", true}, {"a*b*c", "axcyb", false}, {"*", "", false},
		{"", "", true}, {"*", "x", true}, {"arn:aws:iam::*:role/[x]*", "arn:aws:iam::1:role/[x]y", true},
	} {
		if got := glob(tc.p, tc.s); got != tc.want {
			t.Errorf("glob(%q, %q) = %v", tc.p, tc.s, got)
		}
	}
}

func TestLoadRulesErrors(t *testing.T) {
	bad := `rules:
  - name: a
    severity: loud
    match:
      eventNme: [X]
  - name: a
    match: {}
  - name: b
    match: {errorCode: ["*"]}
    burst: {count: 1, window: 0s, by: [nope]}
`
	_, err := LoadRules("rules.yaml", []byte(bad))
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		`rules.yaml:3:15: rule "a": severity "loud"`,
		`rules.yaml:5:7: rule "a": match: unknown field "eventNme"`,
		`rules.yaml:6:11: rule "a": duplicate name`,
		`rules.yaml:6:5: rule "a": match must name at least one field`,
		`rule "b": burst.count must be at least 2`,
		`rule "b": burst.window must be a positive duration`,
		`rule "b": burst.by: unknown field "nope"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if _, err := LoadRules("x.yaml", []byte("rules: []\nextra: 1\n")); err == nil || !strings.Contains(err.Error(), "field extra not found") {
		t.Errorf("unknown top-level field: %v", err)
	}
	if _, err := LoadRules("x.json", []byte(`{"rules":[{"name":"j","match":{"action":["eks:*"]}}]}`)); err != nil {
		t.Errorf("JSON rules: %v", err)
	}
}

func TestAccessDeniedBurst(t *testing.T) {
	cfg, err := LoadRules("r.yaml", []byte(`rules:
  - name: denied
    match: {errorCode: ["AccessDenied*"]}
    burst: {count: 3, window: 1m, by: [userIdentity.arn]}
`))
	if err != nil {
		t.Fatal(err)
	}
	b := NewBursts()
	r := &cfg.Rules[0]
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	mallory := &ctRecord{ErrorCode: "AccessDenied", UserIdentity: ctIdentity{ARN: "arn:mallory"}}
	bob := &ctRecord{ErrorCode: "AccessDenied", UserIdentity: ctIdentity{ARN: "arn:bob"}}
	steps := []struct {
		rec  *ctRecord
		at   time.Duration
		fire bool
	}{
		{mallory, 0, false},
		{bob, 10 * time.Second, false},
		{mallory, 20 * time.Second, false},
		{mallory, 70 * time.Second, false}, // the one at 0s left the window
		{mallory, 75 * time.Second, true},  // 20s, 70s, 75s
		{mallory, 76 * time.Second, false}, // counting restarts after a burst
		{bob, 200 * time.Second, false},
	}
	for i, s := range steps {
		if _, fired := b.Observe(r, s.rec, t0.Add(s.at)); fired != s.fire {
			t.Errorf("step %d: fired = %v, want %v", i, fired, s.fire)
		}
	}
}

// TestHandleFallback runs the whole handler: matches go to the receiver as
// one EventBridge array; with the receiver down they reach PagerDuty.
func TestHandleFallback(t *testing.T) {
	recv := fakes.NewReceiver("tok")
	defer recv.Close()
	pd := fakes.NewPagerDuty()
	defer pd.Close()
	h := &Handler{
		Rules:  defaults(t),
		Bursts: NewBursts(),
		Relay: &alerting.Relay{
			Receiver: &alerting.Receiver{URL: recv.URL, Token: "tok", Timeout: time.Second, Backoff: time.Millisecond, Log: quiet},
			Fallback: alerting.Fanout{&alerting.PagerDuty{URL: pd.EnqueueURL(), RoutingKey: strings.Repeat("k", 32)}},
			Log:      quiet,
		},
		Now: func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) },
		Log: quiet,
	}
	ctx := context.Background()
	if err := h.Handle(ctx, sample(t, "eventbridge-eks-delete-cluster.json")); err != nil {
		t.Fatal(err)
	}
	if err := h.Handle(ctx, sample(t, "eventbridge-s3-unmatched.json")); err != nil {
		t.Fatal(err)
	}
	got := recv.Got.All()
	if len(got) != 1 || got[0].Path != "/api/v1/eventbridge" {
		t.Fatalf("receiver got %+v", got)
	}
	var evs []map[string]any
	if err := json.Unmarshal(got[0].Body, &evs); err != nil || len(evs) != 1 || evs[0]["detail-type"] != "AWS API Call via CloudTrail" {
		t.Fatalf("body = %s (%v)", got[0].Body, err)
	}

	// SNS-wrapped record, receiver down: the record is wrapped into an
	// EventBridge event for the receiver, and PagerDuty gets the page.
	recv.SetDown(true)
	if err := h.Handle(ctx, sample(t, "sns-cloudtrail-stoplogging.json")); err != nil {
		t.Fatal(err)
	}
	pages := pd.Got.All()
	if len(pages) != 1 || pages[0].Payload.Severity != "critical" || !strings.Contains(pages[0].Payload.Summary, "cloudtrail:StopLogging by arn:aws:iam::123456789012:user/mallory") ||
		pages[0].DedupKey != "klaxon-cloudtrail/c0ffee00-1234-5678-9abc-def012345678" {
		t.Fatalf("pages = %+v", pages)
	}
	// Nothing reachable at all: the invocation fails so Lambda retries.
	pd.Close()
	if err := h.Handle(ctx, sample(t, "eventbridge-eks-delete-cluster.json")); err == nil {
		t.Fatal("want an error when nobody got the alert")
	}
}

func TestWrapRecordIsStable(t *testing.T) {
	evs, _, err := decodeInput(sample(t, "sns-cloudtrail-stoplogging.json"))
	if err != nil || len(evs) != 1 {
		t.Fatal(evs, err)
	}
	var eb map[string]any
	if err := json.Unmarshal(evs[0].eb, &eb); err != nil {
		t.Fatal(err)
	}
	if eb["source"] != "aws.cloudtrail" || eb["detail-type"] != "AWS API Call via CloudTrail" || eb["id"] != derivedID("ct", "c0ffee00-1234-5678-9abc-def012345678") {
		t.Errorf("wrapped = %v", eb)
	}
}

func FuzzDecodeInput(f *testing.F) {
	for _, name := range []string{"eventbridge-eks-delete-cluster.json", "sns-cloudtrail-stoplogging.json"} {
		b, _ := os.ReadFile(filepath.Join("..", "..", "testdata", name))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, _, _ := decodeInput(data)
		for _, ev := range evs {
			if !json.Valid(ev.eb) {
				t.Fatalf("invalid forwarded JSON %q", ev.eb)
			}
		}
	})
}

// The event that completes a burst completes it again when Lambda retries
// it (its notice reached nobody, the invocation failed), with the same
// burst id; and a retried event that did not complete one is not counted
// twice. Before, the count started over at the burst, the retry counted 1,
// and the burst was never delivered.
func TestRetriedEventStillCompletesItsBurst(t *testing.T) {
	cfg, err := LoadRules("r.yaml", []byte(`rules:
  - name: denied
    match: {errorCode: ["AccessDenied*"]}
    burst: {count: 3, window: 1m, by: [userIdentity.arn]}
`))
	if err != nil {
		t.Fatal(err)
	}
	b := NewBursts()
	r := &cfg.Rules[0]
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ev := func(id string) *ctRecord {
		return &ctRecord{EventID: id, ErrorCode: "AccessDenied", UserIdentity: ctIdentity{ARN: "arn:mallory"}}
	}
	for i, s := range []struct {
		id   string
		fire bool
	}{
		{"e1", false}, {"e1", false}, // a retry of e1 is not a second match
		{"e2", false}, {"e3", true}, // e1, e2, e3
		{"e3", true}, // e3 retried: the burst again
		{"e4", false},
	} {
		if _, fired := b.Observe(r, ev(s.id), t0.Add(time.Duration(i)*time.Second)); fired != s.fire {
			t.Errorf("step %d (%s): fired = %v, want %v", i, s.id, fired, s.fire)
		}
	}
	m1, err := burstMatch(r, "userIdentity.arn=arn:mallory", ev("e3"), t0.Add(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m2, err := burstMatch(r, "userIdentity.arn=arn:mallory", ev("e3"), t0.Add(4*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if m1.notice.Key != m2.notice.Key {
		t.Errorf("the retried burst is another burst: %s, then %s", m1.notice.Key, m2.notice.Key)
	}
}
