// Command sns-relay is a Lambda function subscribed to SNS topics. It
// forwards each message to the Klaxon receiver (/api/v1/sns, or
// /api/v2/alerts for Alertmanager payloads) and notifies Slack, PagerDuty,
// SES or SNS directly when the receiver does not answer in time.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/klaxon-sh/klaxon/lambdas/alerting"
)

// envSeverity is the fallback severity of messages that carry none.
const envSeverity = "FALLBACK_SEVERITY"

func main() {
	log := alerting.Logger(os.Getenv)
	a := &alerting.AWS{}
	ctx := context.Background()
	relay, err := alerting.RelayFromSettings(ctx, a.Settings(), a, log)
	if err != nil {
		alerting.ExitInitError(log, "sns-relay", err)
	}
	sev := os.Getenv(envSeverity)
	if sev == "" {
		sev = alerting.SeverityCritical
	}
	if !alerting.ValidSeverity(sev) {
		alerting.ExitInitError(log, "sns-relay", fmt.Errorf("%s=%q: must be critical, error, warning or info", envSeverity, sev))
	}
	h := &Handler{Relay: relay, Severity: sev, Log: log}
	lambda.Start(h.Handle)
}
