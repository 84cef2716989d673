package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/klaxon-sh/klaxon/lambdas/alerting"
	"github.com/klaxon-sh/klaxon/lambdas/internal/fakes"
)

// TestOutageLifecycle drives the handler with an injected clock against a
// real dynalite: stale → one page across runs → fresh → one resolve; and a
// page that reaches nobody is retried on the next run.
func TestOutageLifecycle(t *testing.T) {
	ctx := context.Background()
	store := heartbeatTable(t)
	pd := fakes.NewPagerDuty()
	defer pd.Close()
	cfg, err := LoadConfig("cfg", []byte("stale_after: 2m\n"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := &Handler{
		Config: cfg, Store: store, Now: func() time.Time { return now },
		Pager: alerting.Fanout{&alerting.PagerDuty{URL: pd.EnqueueURL(), RoutingKey: strings.Repeat("k", 32), Backoff: time.Millisecond}},
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	step := func(d time.Duration) {
		t.Helper()
		now = now.Add(d)
		if err := h.Handle(ctx); err != nil {
			t.Fatalf("at %s: %v", now, err)
		}
	}
	if _, err := store.Record(ctx, "prod", now); err != nil {
		t.Fatal(err)
	}
	step(time.Minute) // fresh
	step(90 * time.Second)
	if pd.Got.Len() != 1 || pd.Got.All()[0].EventAction != "trigger" {
		t.Fatalf("after 2m30s: %+v", pd.Got.All())
	}
	step(time.Minute)
	step(time.Minute)
	if pd.Got.Len() != 1 {
		t.Fatalf("paged again during the same outage: %d", pd.Got.Len())
	}
	if _, err := store.Record(ctx, "prod", now); err != nil {
		t.Fatal(err)
	}
	step(time.Second)
	step(time.Second)
	if got := pd.Got.All(); len(got) != 2 || got[1].EventAction != "resolve" || got[1].DedupKey != "klaxon-deadman/prod" {
		t.Fatalf("resolve: %+v", got)
	}

	// Second outage with PagerDuty failing: the run errors and leaves no
	// claim, so the next run pages.
	pd.Fail.Store(3)
	now = now.Add(5 * time.Minute)
	if err := h.Handle(ctx); err == nil {
		t.Fatal("want an error when the page reached nobody")
	}
	step(time.Second)
	if got := pd.Got.All(); len(got) != 3 || got[2].EventAction != "trigger" {
		t.Fatalf("retry page: %+v", got)
	}
}

// heartbeatTable is the heartbeat table in a real dynalite.
func heartbeatTable(t *testing.T) *alerting.Store {
	t.Helper()
	url := fakes.Dynalite(t)
	db := dynamodb.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")},
		func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(url) })
	if _, err := db.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName:            aws.String("heartbeats"),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("source"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("source"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	}); err != nil {
		t.Fatal(err)
	}
	return &alerting.Store{DB: db, Table: "heartbeats"}
}

func TestLoadConfig(t *testing.T) {
	cfg, err := LoadConfig("c", []byte("sources:\n  a: {stale_after: 1m, severity: warning}\n"))
	if err != nil || cfg.staleAfter("a") != time.Minute || cfg.staleAfter("b") != 5*time.Minute || cfg.severity("a") != "warning" || cfg.severity("b") != "critical" {
		t.Fatalf("%+v %v", cfg, err)
	}
	if _, err := LoadConfig("c", []byte("stale: 1m\n")); err == nil {
		t.Error("unknown field accepted")
	}
	if _, err := LoadConfig("c", []byte("sources: {a: {severity: loud}}\n")); err == nil {
		t.Error("bad severity accepted")
	}
	// DEADMAN_SOURCES adds sources that must check in; the config's own
	// settings for one it lists stay.
	cfg.Expect([]string{"a", " prod-eu", "", "prod-us "})
	if len(cfg.Sources) != 3 || cfg.staleAfter("a") != time.Minute || cfg.severity("prod-eu") != "critical" {
		t.Fatalf("expected sources: %+v", cfg.Sources)
	}
	if _, ok := cfg.Sources["prod-us"]; !ok {
		t.Fatalf("prod-us not expected: %+v", cfg.Sources)
	}
}

// A page that runs into the function's deadline (PagerDuty hanging) gives
// its claim back all the same, within a margin kept back for it, so the next
// run pages again. Before, the claim was given back with the run's own
// context, already expired: it stayed, the source counted as paged, and no
// later run paged it for the whole outage.
func TestPageThatTimesOutIsRetried(t *testing.T) {
	ctx := context.Background()
	store := heartbeatTable(t)
	cfg, err := LoadConfig("cfg", []byte("stale_after: 2m\n"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	hang := &hangingNotifier{}
	h := &Handler{Config: cfg, Store: store, Now: func() time.Time { return now }, Pager: alerting.Fanout{hang},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if _, err := store.Record(ctx, "prod", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	// The run's deadline: the margin plus a moment for the claim.
	rctx, cancel := context.WithTimeout(ctx, undoMargin+500*time.Millisecond)
	err = h.Handle(rctx)
	cancel()
	if err == nil {
		t.Fatal("want an error: the page reached nobody")
	}
	beats, err := store.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(beats) != 1 || !beats[0].PagedAt.IsZero() {
		t.Fatalf("after a page that timed out: %+v, want the claim given back", beats)
	}
	if hang.calls.Load() != 1 {
		t.Fatalf("notified %d times, want 1", hang.calls.Load())
	}
}

// hangingNotifier answers only when its context ends.
type hangingNotifier struct{ calls atomic.Int32 }

func (n *hangingNotifier) Name() string { return "hanging" }
func (n *hangingNotifier) Notify(ctx context.Context, _ *alerting.Notice) error {
	n.calls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}
