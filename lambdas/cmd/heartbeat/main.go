// Command heartbeat is a Lambda function behind a function URL. Alertmanager
// posts its always-firing Watchdog alert to it (webhook_configs), and it
// records the time per source in DynamoDB for the deadman function to check.
package main

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/klaxon-sh/klaxon/lambdas/alerting"
)

// Settings of this function; see README.md.
const (
	envToken       = "HEARTBEAT_TOKEN" // or HEARTBEAT_TOKEN_SSM_PARAM
	envTable       = "HEARTBEAT_TABLE"
	envTTL         = "HEARTBEAT_TTL" // default 720h
	envAlertnames  = "HEARTBEAT_ALERTNAMES"
	envSourceLabel = "HEARTBEAT_SOURCE_LABEL"
)

func main() {
	log := alerting.Logger(os.Getenv)
	ctx := context.Background()
	a := &alerting.AWS{}
	s := a.Settings()
	token, err := s.Get(ctx, envToken)
	if err == nil && token == "" {
		// Without a token the URL would accept anyone's heartbeat and hide a
		// dead cluster: refuse to start.
		err = errors.New(envToken + " or " + envToken + alerting.SSMSuffix + " is required")
	}
	if err != nil {
		alerting.ExitInitError(log, "heartbeat", err)
	}
	table := os.Getenv(envTable)
	if table == "" {
		alerting.ExitInitError(log, "heartbeat", errors.New(envTable+" is required"))
	}
	ttl, err := s.Duration(ctx, envTTL, 30*24*time.Hour)
	if err != nil {
		alerting.ExitInitError(log, "heartbeat", err)
	}
	names, _ := s.List(ctx, envAlertnames)
	if len(names) == 0 {
		names = []string{"Watchdog"}
	}
	label := os.Getenv(envSourceLabel)
	if label == "" {
		label = "cluster"
	}
	db, err := a.DynamoDB(ctx)
	if err != nil {
		alerting.ExitInitError(log, "heartbeat", err)
	}
	h := &Handler{
		TokenHash:   tokenHash(token),
		Store:       &alerting.Store{DB: db, Table: table, TTL: ttl},
		Now:         time.Now,
		Alertnames:  names,
		SourceLabel: label,
		MaxBody:     1 << 20,
		Log:         log,
	}
	lambda.Start(h.Handle)
}
