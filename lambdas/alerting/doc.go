// Package alerting is the code the Klaxon Lambdas share: the client that
// forwards to the Klaxon receiver, the direct fallback notifiers (Slack
// incoming webhook, PagerDuty Events v2, SES v2 email, SNS topic), settings
// read from the environment or SSM, and the DynamoDB heartbeat store.
//
// It imports nothing from services/: a Lambda must stay small and start fast,
// and it must keep working when everything in the cluster is broken.
package alerting
