// Command deadman is a Lambda function run on an EventBridge schedule. It
// reads the heartbeats the heartbeat function stores and pages directly
// (PagerDuty, and SES or SNS, and Slack if configured) when one is stale —
// without Klaxon, which is presumably what stopped sending them.
package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/klaxon-sh/klaxon/lambdas/alerting"
)

// Settings of this function; see README.md.
const (
	envTable  = "HEARTBEAT_TABLE"
	envTTL    = "HEARTBEAT_TTL"
	envConfig = "DEADMAN_CONFIG" // or DEADMAN_CONFIG_SSM_PARAM
	// envSources: comma-separated sources that must check in, added to
	// the config's (the SAM template's DeadmanSources).
	envSources = "DEADMAN_SOURCES"
)

func main() {
	log := alerting.Logger(os.Getenv)
	ctx := context.Background()
	a := &alerting.AWS{}
	s := a.Settings()
	fail := func(err error) { alerting.ExitInitError(log, "deadman", err) }
	table := os.Getenv(envTable)
	if table == "" {
		fail(errors.New(envTable + " is required"))
	}
	raw, err := s.Get(ctx, envConfig)
	if err != nil {
		fail(err)
	}
	cfg, err := LoadConfig(envConfig, []byte(raw))
	if err != nil {
		fail(err)
	}
	cfg.Expect(strings.Split(os.Getenv(envSources), ","))
	ttl, err := s.Duration(ctx, envTTL, 30*24*time.Hour)
	if err != nil {
		fail(err)
	}
	timeout, err := s.Duration(ctx, alerting.EnvHTTPTimeout, 5*time.Second)
	if err != nil {
		fail(err)
	}
	pager, err := alerting.FallbackFromSettings(ctx, s, a, &http.Client{Timeout: timeout})
	if err == nil && len(pager) == 0 {
		err = errors.New("no pager configured: set PAGERDUTY_ROUTING_KEY(_SSM_PARAM), SES_FROM+SES_TO, SNS_TOPIC_ARN or SLACK_WEBHOOK_URL(_SSM_PARAM)")
	}
	if err != nil {
		fail(err)
	}
	db, err := a.DynamoDB(ctx)
	if err != nil {
		fail(err)
	}
	h := &Handler{
		Config: cfg,
		Store:  &alerting.Store{DB: db, Table: table, TTL: ttl},
		Pager:  pager,
		Now:    time.Now,
		Log:    log,
	}
	lambda.Start(h.Handle)
}
