package alerting

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// Environment variables every function understands. Secrets may instead be
// given as <NAME>_SSM_PARAM (see Settings).
const (
	EnvKlaxonURL       = "KLAXON_URL"            // receiver base URL
	EnvKlaxonToken     = "KLAXON_TOKEN"          // bearer token (secret)
	EnvKlaxonTenant    = "KLAXON_TENANT"         // X-Scope-OrgID
	EnvKlaxonTimeout   = "KLAXON_TIMEOUT"        // receiver deadline, default 5s
	EnvSlackWebhookURL = "SLACK_WEBHOOK_URL"     // secret
	EnvPagerDutyKey    = "PAGERDUTY_ROUTING_KEY" // secret
	EnvPagerDutyURL    = "PAGERDUTY_URL"         // default DefaultPagerDutyURL
	EnvSESFrom         = "SES_FROM"
	EnvSESTo           = "SES_TO" // comma-separated
	EnvSNSTopicARN     = "SNS_TOPIC_ARN"
	EnvHTTPTimeout     = "HTTP_TIMEOUT" // per request to Slack/PagerDuty, default 5s
)

// AWS builds AWS clients from the default configuration chain. Endpoints
// follow the SDK's own AWS_ENDPOINT_URL_<SERVICE> variables, which is how the
// tests point the functions at local servers.
type AWS struct {
	once sync.Once
	cfg  aws.Config
	err  error
}

// Config loads the shared AWS configuration once.
func (a *AWS) Config(ctx context.Context) (aws.Config, error) {
	a.once.Do(func() {
		a.cfg, a.err = config.LoadDefaultConfig(ctx)
		if a.err != nil {
			a.err = fmt.Errorf("load AWS config: %w", a.err)
		}
	})
	return a.cfg, a.err
}

// SSM returns an SSM client.
func (a *AWS) SSM(ctx context.Context) (SSMAPI, error) {
	cfg, err := a.Config(ctx)
	if err != nil {
		return nil, err
	}
	return ssm.NewFromConfig(cfg), nil
}

// DynamoDB returns a DynamoDB client.
func (a *AWS) DynamoDB(ctx context.Context) (*dynamodb.Client, error) {
	cfg, err := a.Config(ctx)
	if err != nil {
		return nil, err
	}
	return dynamodb.NewFromConfig(cfg), nil
}

// Settings returns Settings that read SSM parameters with this config.
func (a *AWS) Settings() *Settings {
	return &Settings{SSM: a.SSM}
}

// RelayFromSettings builds the receiver client and the fallback notifiers
// that are configured; the ones without settings are left out.
func RelayFromSettings(ctx context.Context, s *Settings, a *AWS, log *slog.Logger) (*Relay, error) {
	g := &getter{ctx: ctx, s: s}
	httpClient := &http.Client{Timeout: g.duration(EnvHTTPTimeout, 5*time.Second)}
	relay := &Relay{Log: log}
	if url := g.str(EnvKlaxonURL); url != "" {
		relay.Receiver = &Receiver{
			URL:     url,
			Token:   g.str(EnvKlaxonToken),
			Tenant:  g.str(EnvKlaxonTenant),
			Timeout: g.duration(EnvKlaxonTimeout, 5*time.Second),
			Client:  &http.Client{},
			Log:     log,
		}
	}
	fb, err := FallbackFromSettings(ctx, s, a, httpClient)
	if err != nil {
		g.errs = append(g.errs, err)
	}
	relay.Fallback = fb
	if err := g.err(); err != nil {
		return nil, err
	}
	if relay.Receiver == nil && len(relay.Fallback) == 0 {
		return nil, fmt.Errorf("nothing to deliver to: set %s or at least one fallback (%s, %s, %s+%s, %s)",
			EnvKlaxonURL, EnvSlackWebhookURL, EnvPagerDutyKey, EnvSESFrom, EnvSESTo, EnvSNSTopicARN)
	}
	return relay, nil
}

// FallbackFromSettings builds the direct notifiers that are configured.
func FallbackFromSettings(ctx context.Context, s *Settings, a *AWS, httpClient *http.Client) (Fanout, error) {
	g := &getter{ctx: ctx, s: s}
	var f Fanout
	if u := g.str(EnvSlackWebhookURL); u != "" {
		f = append(f, &Slack{WebhookURL: u, Client: httpClient})
	}
	if k := g.str(EnvPagerDutyKey); k != "" {
		f = append(f, &PagerDuty{URL: g.str(EnvPagerDutyURL), RoutingKey: k, Client: httpClient})
	}
	from, to := g.str(EnvSESFrom), g.list(EnvSESTo)
	switch {
	case from != "" && len(to) > 0:
		cfg, err := a.Config(ctx)
		if err != nil {
			g.errs = append(g.errs, err)
			break
		}
		f = append(f, &Email{SES: sesv2.NewFromConfig(cfg), From: from, To: to})
	case from != "" || len(to) > 0:
		g.errs = append(g.errs, fmt.Errorf("set both %s and %s for email", EnvSESFrom, EnvSESTo))
	}
	if arn := g.str(EnvSNSTopicARN); arn != "" {
		cfg, err := a.Config(ctx)
		if err != nil {
			g.errs = append(g.errs, err)
		} else {
			f = append(f, &Topic{SNS: sns.NewFromConfig(cfg), TopicARN: arn})
		}
	}
	return f, g.err()
}

// Logger is the JSON logger every function uses; CloudWatch Logs indexes
// JSON fields. LOG_LEVEL=debug turns on per-delivery logs.
func Logger(getenv func(string) string) *slog.Logger {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(getenv("LOG_LEVEL")))
	return slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: level}))
}
