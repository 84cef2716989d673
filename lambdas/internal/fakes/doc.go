// Package fakes holds the local peers the lambdas tests talk to: HTTP fakes
// that enforce the wire contracts of the Klaxon receiver, PagerDuty Events
// v2, Slack incoming webhooks, SES v2 and SSM, and launchers for the real
// local servers dynalite (DynamoDB) and goaws (SNS).
//
// Every fake records what it accepted and lets a test wait for it without
// sleeping.
package fakes

import (
	"os"
	"testing"
)

// Missing handles a tool that is not installed: under CI=true the test fails
// (CI installs it with scripts/install-test-deps.sh), elsewhere it is skipped
// with the command that installs it.
func Missing(t testing.TB, tool string) {
	t.Helper()
	msg := tool + " is not installed; run: sudo bash lambdas/scripts/install-test-deps.sh"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
