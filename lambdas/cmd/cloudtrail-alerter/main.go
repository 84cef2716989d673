// Command cloudtrail-alerter is a Lambda function that filters CloudTrail
// events (from EventBridge, or wrapped in SNS) with operator rules and
// forwards the matches to the Klaxon receiver, notifying Slack, PagerDuty,
// SES or SNS directly when the receiver does not answer in time.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/klaxon-sh/klaxon/lambdas/alerting"
)

// Rule source settings; see README.md.
const envRules = "CLOUDTRAIL_RULES"

func main() {
	log := alerting.Logger(os.Getenv)
	h, err := setup(context.Background())
	if err != nil {
		alerting.ExitInitError(log, "cloudtrail-alerter", err)
	}
	h.Log = log
	lambda.Start(h.Handle)
}

func setup(ctx context.Context) (*Handler, error) {
	log := alerting.Logger(os.Getenv)
	a := &alerting.AWS{}
	s := a.Settings()
	relay, err := alerting.RelayFromSettings(ctx, s, a, log)
	if err != nil {
		return nil, err
	}
	rules, err := loadRules(ctx, s)
	if err != nil {
		return nil, err
	}
	return &Handler{Rules: rules, Bursts: NewBursts(), Relay: relay, Now: time.Now, Log: log}, nil
}

func loadRules(ctx context.Context, s *alerting.Settings) (*Config, error) {
	data, err := s.Get(ctx, envRules)
	if err != nil {
		return nil, err
	}
	name := envRules
	if os.Getenv(envRules) == "" && os.Getenv(envRules+alerting.SSMSuffix) != "" {
		name = "ssm:" + os.Getenv(envRules+alerting.SSMSuffix)
	}
	if data == "" {
		data, name = string(defaultRules), "default_rules.yaml"
	}
	cfg, err := LoadRules(name, []byte(data))
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	return cfg, nil
}
