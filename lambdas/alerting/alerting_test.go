package alerting

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	sestypes "github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/klaxon-sh/klaxon/lambdas/internal/fakes"
)

const routingKey = "R0UT1NGK3Y0123456789abcdefABCDEF" // 32 characters

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func awsCfg() aws.Config {
	return aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	}
}

func sample(status Status) *Notice {
	return &Notice{
		Key: "klaxon-test/1", Status: status, Severity: SeverityCritical,
		Summary: "eks:DeleteCluster by arn:aws:iam::123456789012:user/bob", Source: "aws:123456789012:us-east-1",
		Component: "cloudtrail", Details: map[string]string{"eventID": "e1"}, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

func TestPagerDutyTriggerResolveAndContract(t *testing.T) {
	pd := fakes.NewPagerDuty()
	defer pd.Close()
	p := &PagerDuty{URL: pd.EnqueueURL(), RoutingKey: routingKey, Backoff: time.Millisecond}
	ctx := context.Background()
	long := sample(Firing)
	long.Summary = strings.Repeat("é", 2000) // multi-byte: truncation must stay valid UTF-8
	long.Key = strings.Repeat("k", 400)
	for _, n := range []*Notice{sample(Firing), sample(Resolved), long} {
		if err := p.Notify(ctx, n); err != nil {
			t.Fatalf("notify %s: %v", n.Status, err)
		}
	}
	got := pd.Got.All()
	if got[0].EventAction != "trigger" || got[0].DedupKey != "klaxon-test/1" || got[0].Payload.Severity != "critical" || got[0].Payload.Timestamp != "2026-01-02T03:04:05Z" {
		t.Errorf("trigger = %+v", got[0])
	}
	if got[1].EventAction != "resolve" || got[1].DedupKey != "klaxon-test/1" || got[1].Payload != nil {
		t.Errorf("resolve = %+v", got[1])
	}
	if n := len(got[2].Payload.Summary); n > 1024 || len(got[2].DedupKey) > 255 {
		t.Errorf("limits: summary %d bytes, dedup_key %d", n, len(got[2].DedupKey))
	}

	// A malformed event is a 400 and is not retried.
	bad := &PagerDuty{URL: pd.EnqueueURL(), RoutingKey: "short"}
	if err := bad.Notify(ctx, sample(Firing)); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("bad routing key: err = %v, want a 400", err)
	}
	// 5xx is retried.
	pd.Fail.Store(2)
	if err := p.Notify(ctx, sample(Firing)); err != nil {
		t.Fatalf("after two 500s: %v", err)
	}
}

func TestPagerDutyStatusMatrix(t *testing.T) {
	for _, tc := range []struct {
		code      int
		wantErr   bool
		wantTries int
	}{
		{202, false, 1}, {200, false, 1}, {400, true, 1}, {403, true, 1}, {429, true, 3}, {500, true, 3}, {503, true, 3},
	} {
		tries := 0
		srv := newServer(func(w http.ResponseWriter, r *http.Request) { tries++; w.WriteHeader(tc.code) })
		p := &PagerDuty{URL: srv.URL, RoutingKey: routingKey, Backoff: time.Millisecond}
		err := p.Notify(context.Background(), sample(Firing))
		srv.Close()
		if (err != nil) != tc.wantErr || tries != tc.wantTries {
			t.Errorf("status %d: err=%v tries=%d, want err=%v tries=%d", tc.code, err, tries, tc.wantErr, tc.wantTries)
		}
	}
}

func TestSlackWebhook(t *testing.T) {
	sl := fakes.NewSlack()
	defer sl.Close()
	s := &Slack{WebhookURL: sl.WebhookURL()}
	if err := s.Notify(context.Background(), sample(Firing)); err != nil {
		t.Fatal(err)
	}
	if txt := sl.Got.All()[0]; !strings.Contains(txt, "CRITICAL") || !strings.Contains(txt, "eks:DeleteCluster") {
		t.Errorf("text = %q", txt)
	}
	wrong := &Slack{WebhookURL: sl.URL + "/services/wrong"}
	err := wrong.Notify(context.Background(), sample(Firing))
	if err == nil || strings.Contains(err.Error(), sl.URL) {
		t.Errorf("wrong webhook: err = %v (must fail and not leak the URL)", err)
	}
}

func TestSESEmail(t *testing.T) {
	ses := fakes.NewSES()
	defer ses.Close()
	client := sesv2.NewFromConfig(awsCfg(), func(o *sesv2.Options) { o.BaseEndpoint = aws.String(ses.URL) })
	e := &Email{SES: client, From: "klaxon@example.com", To: []string{"oncall@example.com"}}
	if err := e.Notify(context.Background(), sample(Firing)); err != nil {
		t.Fatal(err)
	}
	got := ses.Got.All()[0]
	if got.Subject != "[CRITICAL] eks:DeleteCluster by arn:aws:iam::123456789012:user/bob" || !strings.Contains(got.Text, "eventID: e1") {
		t.Errorf("email = %+v", got)
	}
	// The fake enforces required fields the way SES does.
	// (The SDK checks Content itself; FromEmailAddress only the server does.)
	_, err := client.SendEmail(context.Background(), &sesv2.SendEmailInput{
		Destination: &sestypes.Destination{ToAddresses: []string{"a@b.c"}},
		Content:     &sestypes.EmailContent{Simple: &sestypes.Message{Subject: &sestypes.Content{Data: aws.String("s")}, Body: &sestypes.Body{Text: &sestypes.Content{Data: aws.String("b")}}}},
	})
	var bre *sestypes.BadRequestException
	if !errors.As(err, &bre) || !strings.Contains(err.Error(), "FromEmailAddress") {
		t.Fatalf("missing FromEmailAddress: err = %v, want BadRequestException", err)
	}
	bad := &Email{SES: client, From: "klaxon@example.com"} // no recipient
	if err := bad.Notify(context.Background(), sample(Firing)); !errors.As(err, &bre) {
		t.Fatalf("no recipient: err = %v, want BadRequestException", err)
	}
}

func TestSNSTopicWithGoAWS(t *testing.T) {
	sub := fakes.NewSNSSubscriber()
	defer sub.Close()
	endpoint, arn := fakes.GoAWS(t, "klaxon-pages", sub.URL)
	client := sns.NewFromConfig(awsCfg(), func(o *sns.Options) { o.BaseEndpoint = aws.String(endpoint) })
	n := sample(Firing)
	n.Summary = "line one\nline two with ü and a very long tail " + strings.Repeat("x", 200)
	if err := (&Topic{SNS: client, TopicARN: arn}).Notify(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	got := sub.Got.WaitFor(t, 1, 10*time.Second)[0]
	if got.TopicArn != arn || len(got.Subject) > 100 || strings.ContainsAny(got.Subject, "\nü") || !strings.Contains(got.Message, "line two") {
		t.Errorf("delivery = %+v", got)
	}
}

func TestSettingsFromSSM(t *testing.T) {
	fake := fakes.NewSSM(map[string]string{"/klaxon/token": "s3cret"})
	defer fake.Close()
	env := map[string]string{"KLAXON_TOKEN_SSM_PARAM": "/klaxon/token", "PLAIN": "v", "MISSING_SSM_PARAM": "/nope", "D": "90s"}
	s := &Settings{
		Getenv: func(k string) string { return env[k] },
		SSM: func(context.Context) (SSMAPI, error) {
			return ssm.NewFromConfig(awsCfg(), func(o *ssm.Options) { o.BaseEndpoint = aws.String(fake.URL) }), nil
		},
	}
	ctx := context.Background()
	if v, err := s.Get(ctx, "KLAXON_TOKEN"); err != nil || v != "s3cret" {
		t.Errorf("KLAXON_TOKEN = %q, %v", v, err)
	}
	if v, _ := s.Get(ctx, "PLAIN"); v != "v" {
		t.Errorf("PLAIN = %q", v)
	}
	if _, err := s.Get(ctx, "MISSING"); err == nil || !strings.Contains(err.Error(), "/nope") {
		t.Errorf("missing parameter: err = %v", err)
	}
	if d, err := s.Duration(ctx, "D", time.Second); err != nil || d != 90*time.Second {
		t.Errorf("D = %v, %v", d, err)
	}
}

func TestRelay(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name         string
		token        string // what the Lambda sends
		down         bool
		fallback     bool
		wantReceiver int
		wantFallback int
		wantErr      bool
	}{
		{name: "receiver up", token: "tok", wantReceiver: 1, fallback: true},
		{name: "receiver down, fallback", token: "tok", down: true, fallback: true, wantFallback: 1},
		{name: "wrong token, fallback", token: "bad", fallback: true, wantFallback: 1},
		{name: "receiver down, no fallback", token: "tok", down: true, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recv := fakes.NewReceiver("tok")
			defer recv.Close()
			recv.SetDown(tc.down)
			sl := fakes.NewSlack()
			defer sl.Close()
			r := &Relay{
				Receiver: &Receiver{URL: recv.URL, Token: tc.token, Tenant: "team-a", Timeout: 2 * time.Second, Backoff: time.Millisecond, Log: quiet},
				Log:      quiet,
			}
			if tc.fallback {
				r.Fallback = Fanout{&Slack{WebhookURL: sl.WebhookURL()}}
			}
			err := r.Deliver(ctx, PathEventBridge, []byte(`[{"id":"1"}]`), nil, []*Notice{sample(Firing)})
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if recv.Got.Len() != tc.wantReceiver || sl.Got.Len() != tc.wantFallback {
				t.Errorf("receiver got %d, fallback got %d", recv.Got.Len(), sl.Got.Len())
			}
			if tc.wantReceiver > 0 && recv.Got.All()[0].Tenant != "team-a" {
				t.Errorf("tenant header = %q", recv.Got.All()[0].Tenant)
			}
		})
	}
}

func TestReceiverDeadline(t *testing.T) {
	block := make(chan struct{})
	srv := newServer(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	})
	defer srv.Close()
	defer close(block)
	r := &Receiver{URL: srv.URL, Timeout: 300 * time.Millisecond, Log: quiet}
	start := time.Now()
	err := r.Post(context.Background(), PathSNS, []byte(`{}`), nil)
	if !errors.Is(err, ErrReceiver) {
		t.Fatalf("err = %v, want ErrReceiver", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Post took %s despite a 300ms deadline", d)
	}
}

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"}, {"abcdefghij", 8, "abcde…"}, {"ééééé", 7, "éé…"},
	} {
		if got := Truncate(tc.in, tc.max); got != tc.want || len(got) > tc.max {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
	if s := snsSubject("a\nb\tc ü"); s != "a b c ?" {
		t.Errorf("snsSubject = %q", s)
	}
}
