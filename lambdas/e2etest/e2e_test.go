package e2etest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/klaxon-sh/klaxon/lambdas/internal/fakes"
)

const (
	receiverToken = "klaxon-e2e-token"
	routingKey    = "E2EROUTINGKEY0123456789abcdefABC" // 32 characters
	wait          = 20 * time.Second
)

// peers are every destination a function can reach, all local.
type peers struct {
	recv  *fakes.Receiver
	pd    *fakes.PagerDuty
	slack *fakes.Slack
	ses   *fakes.SES
	ssm   *fakes.SSM
	sub   *fakes.SNSSubscriber
	env   map[string]string
}

func newPeers(t *testing.T) *peers {
	t.Helper()
	p := &peers{
		recv:  fakes.NewReceiver(receiverToken),
		pd:    fakes.NewPagerDuty(),
		slack: fakes.NewSlack(),
		ses:   fakes.NewSES(),
		sub:   fakes.NewSNSSubscriber(),
	}
	// Secrets come from SSM, as the SAM template configures them.
	p.ssm = fakes.NewSSM(map[string]string{
		"/klaxon/receiver-token": receiverToken,
		"/klaxon/pagerduty-key":  routingKey,
		"/klaxon/slack-webhook":  p.slack.WebhookURL(),
	})
	for _, s := range []interface{ Close() }{p.recv, p.pd, p.slack, p.ses, p.ssm, p.sub} {
		t.Cleanup(s.Close)
	}
	snsURL, topicARN := fakes.GoAWS(t, "klaxon-pages", p.sub.URL)
	p.env = map[string]string{
		"KLAXON_URL":                      p.recv.URL,
		"KLAXON_TOKEN_SSM_PARAM":          "/klaxon/receiver-token",
		"KLAXON_TENANT":                   "team-a",
		"KLAXON_TIMEOUT":                  "1s",
		"PAGERDUTY_ROUTING_KEY_SSM_PARAM": "/klaxon/pagerduty-key",
		"PAGERDUTY_URL":                   p.pd.EnqueueURL(),
		"SLACK_WEBHOOK_URL_SSM_PARAM":     "/klaxon/slack-webhook",
		"SES_FROM":                        "klaxon@example.com",
		"SES_TO":                          "oncall@example.com, sre@example.com",
		"SNS_TOPIC_ARN":                   topicARN,
		"AWS_ENDPOINT_URL_SSM":            p.ssm.URL,
		"AWS_ENDPOINT_URL_SESV2":          p.ses.URL,
		"AWS_ENDPOINT_URL_SNS":            snsURL,
	}
	return p
}

func (p *peers) with(extra map[string]string) map[string]string {
	env := map[string]string{}
	for k, v := range p.env {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// noFallback asserts that no direct notification went out.
func (p *peers) noFallback(t *testing.T) {
	t.Helper()
	if n := p.pd.Got.Len() + p.slack.Got.Len() + p.ses.Got.Len() + p.sub.Got.Len(); n != 0 {
		t.Fatalf("fallback used %d times while the receiver was up", n)
	}
}

// allFallbacks waits until every fallback target has n notifications.
func (p *peers) allFallbacks(t *testing.T, n int) {
	t.Helper()
	p.pd.Got.WaitFor(t, n, wait)
	p.slack.Got.WaitFor(t, n, wait)
	p.ses.Got.WaitFor(t, n, wait)
	p.sub.Got.WaitFor(t, n, wait)
}

func TestCloudTrailAlerter(t *testing.T) {
	p := newPeers(t)
	api := start(t, "cloudtrail-alerter", p.env)

	// Receiver up: matches arrive with bearer token and tenant header.
	api.mustSucceed(t, sample(t, "eventbridge-eks-delete-cluster.json"))
	api.mustSucceed(t, sample(t, "eventbridge-console-signin-root.json"))
	api.mustSucceed(t, sample(t, "eventbridge-s3-unmatched.json"))
	api.mustSucceed(t, sample(t, "sns-cloudtrail-stoplogging.json"))
	got := p.recv.Got.WaitFor(t, 3, wait)
	if len(got) != 3 {
		t.Fatalf("receiver got %d posts, want 3 (the unmatched event must be dropped)", len(got))
	}
	wantNames := []string{"DeleteCluster", "ConsoleLogin", "StopLogging"}
	for i, r := range got {
		if r.Path != "/api/v1/eventbridge" || r.Tenant != "team-a" {
			t.Errorf("post %d: path %s tenant %q", i, r.Path, r.Tenant)
		}
		var evs []struct {
			DetailType string `json:"detail-type"`
			Detail     struct {
				EventName string `json:"eventName"`
			} `json:"detail"`
		}
		if err := json.Unmarshal(r.Body, &evs); err != nil || len(evs) != 1 || evs[0].Detail.EventName != wantNames[i] {
			t.Errorf("post %d body %s (%v)", i, r.Body, err)
		}
	}
	p.noFallback(t)

	// Receiver answering 503: every configured fallback gets the page.
	p.recv.SetDown(true)
	api.mustSucceed(t, sample(t, "eventbridge-eks-delete-cluster.json"))
	p.allFallbacks(t, 1)
	page := p.pd.Got.All()[0]
	if page.EventAction != "trigger" || page.Payload.Severity != "critical" || !strings.Contains(page.Payload.Summary, "eks:DeleteCluster by arn:aws:sts::123456789012:assumed-role/Admin/bob") {
		t.Errorf("page = %+v", page)
	}
	if mail := p.ses.Got.All()[0]; len(mail.To) != 2 || !strings.HasPrefix(mail.Subject, "[CRITICAL] eks-control-plane-change") {
		t.Errorf("mail = %+v", mail)
	}

	// Receiver gone entirely (connection refused): same.
	p.recv.Close()
	api.mustSucceed(t, sample(t, "sns-cloudtrail-stoplogging.json"))
	p.allFallbacks(t, 2)
	if got := p.pd.Got.All()[1]; !strings.Contains(got.Payload.Summary, "cloudtrail:StopLogging") {
		t.Errorf("second page = %+v", got)
	}
}

func TestCloudTrailAlerterNobodyReachable(t *testing.T) {
	recv := fakes.NewReceiver(receiverToken)
	recv.SetDown(true)
	defer recv.Close()
	pd := fakes.NewPagerDuty()
	pd.Close() // configured but unreachable
	api := start(t, "cloudtrail-alerter", map[string]string{
		"KLAXON_URL": recv.URL, "KLAXON_TOKEN": receiverToken, "KLAXON_TIMEOUT": "500ms",
		"PAGERDUTY_ROUTING_KEY": routingKey, "PAGERDUTY_URL": pd.EnqueueURL(), "HTTP_TIMEOUT": "1s",
	})
	res := api.invoke(t, sample(t, "eventbridge-eks-delete-cluster.json"))
	if !res.isError || !strings.Contains(errorMessage(res.body), "reached nobody") {
		t.Fatalf("want a function error so Lambda retries; got %+v %s", res, res.body)
	}
}

func TestCloudTrailAlerterBadRulesIsInitError(t *testing.T) {
	api := start(t, "cloudtrail-alerter", map[string]string{
		"KLAXON_URL":       "http://127.0.0.1:1",
		"CLOUDTRAIL_RULES": "rules:\n  - name: x\n    match: {eventNme: [A]}\n",
	})
	ie := api.awaitInitError(t)
	if ie.errorType != "Runtime.InitError" || !strings.Contains(errorMessage(ie.body), `CLOUDTRAIL_RULES:3:13: rule "x": match: unknown field "eventNme"`) {
		t.Fatalf("init error = %s %s", ie.errorType, ie.body)
	}
}

func TestSNSRelay(t *testing.T) {
	p := newPeers(t)
	api := start(t, "sns-relay", p.env)

	api.mustSucceed(t, sample(t, "sns-alertmanager.json"))
	api.mustSucceed(t, sample(t, "sns-cloudwatch-alarm.json"))
	got := p.recv.Got.WaitFor(t, 2, wait)
	if got[0].Path != "/api/v2/alerts" {
		t.Fatalf("Alertmanager payload went to %s", got[0].Path)
	}
	var alerts []struct {
		Labels map[string]string `json:"labels"`
		EndsAt *time.Time        `json:"endsAt"`
	}
	if err := json.Unmarshal(got[0].Body, &alerts); err != nil || len(alerts) != 1 || alerts[0].Labels["alertname"] != "KubeAPIDown" || alerts[0].EndsAt != nil {
		t.Errorf("alerts body %s (%v)", got[0].Body, err)
	}
	if got[1].Path != "/api/v1/sns" || got[1].Header.Get("x-amz-sns-message-type") != "Notification" {
		t.Fatalf("CloudWatch alarm: path %s headers %v", got[1].Path, got[1].Header)
	}
	var n map[string]any
	if err := json.Unmarshal(got[1].Body, &n); err != nil {
		t.Fatal(err)
	}
	// Fields the receiver's signature check needs, byte for byte.
	if n["Timestamp"] != "2026-03-01T12:20:01.500Z" || n["SigningCertURL"] != "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem" || n["Signature"] == "" || n["Type"] != "Notification" ||
		!strings.Contains(n["Message"].(string), `"AlarmName": "rds-prod-cpu"`) {
		t.Errorf("SNS notification = %v", n)
	}
	p.noFallback(t)

	p.recv.SetDown(true)
	api.mustSucceed(t, sample(t, "sns-alertmanager.json"))
	p.allFallbacks(t, 1)
	if page := p.pd.Got.All()[0]; page.DedupKey != "klaxon-alert/alertname=KubeAPIDown,cluster=prod-eu,severity=critical" ||
		!strings.Contains(page.Payload.Summary, "Kubernetes API server is unreachable") {
		t.Errorf("page = %+v", page)
	}
}

func dynamo(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	url := fakes.Dynalite(t)
	db := dynamodb.NewFromConfig(aws.Config{
		Region:      "eu-west-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDE2ETEST", "secret", ""),
	}, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(url) })
	_, err := db.CreateTable(context.Background(), &dynamodb.CreateTableInput{
		TableName:            aws.String("klaxon-heartbeats"),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("source"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("source"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	return db, url
}

func functionURLRequest(t *testing.T, path, token string, body []byte, base64Body bool) []byte {
	t.Helper()
	req := events.LambdaFunctionURLRequest{
		Version:        "2.0",
		RawPath:        path,
		Headers:        map[string]string{"content-type": "application/json", "user-agent": "Alertmanager/0.28.1"},
		RequestContext: events.LambdaFunctionURLRequestContext{RequestID: "r1", HTTP: events.LambdaFunctionURLRequestContextHTTPDescription{Method: "POST", Path: path, SourceIP: "203.0.113.5"}},
		Body:           string(body),
	}
	if token != "" {
		req.Headers["authorization"] = "Bearer " + token
	}
	if base64Body {
		req.Body, req.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHeartbeatAndDeadman(t *testing.T) {
	db, dynURL := dynamo(t)
	p := newPeers(t)
	ctx := context.Background()

	hb := start(t, "heartbeat", map[string]string{
		"HEARTBEAT_TABLE":           "klaxon-heartbeats",
		"HEARTBEAT_TOKEN_SSM_PARAM": "/klaxon/heartbeat-token",
		"AWS_ENDPOINT_URL_SSM":      mustSSM(t, map[string]string{"/klaxon/heartbeat-token": "hb-secret"}),
		"AWS_ENDPOINT_URL_DYNAMODB": dynURL,
	})
	watchdog := sample(t, "alertmanager-watchdog.json")

	var resp events.LambdaFunctionURLResponse
	decode := func(b []byte) events.LambdaFunctionURLResponse {
		var r events.LambdaFunctionURLResponse
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("function URL response %s: %v", b, err)
		}
		return r
	}
	if resp = decode(hb.mustSucceed(t, functionURLRequest(t, "/", "wrong", watchdog, false))); resp.StatusCode != 401 {
		t.Fatalf("wrong token: %d %s", resp.StatusCode, resp.Body)
	}
	if resp = decode(hb.mustSucceed(t, functionURLRequest(t, "/", "", watchdog, false))); resp.StatusCode != 401 {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
	if resp = decode(hb.mustSucceed(t, functionURLRequest(t, "/", "hb-secret", []byte("{"), false))); resp.StatusCode != 400 {
		t.Fatalf("bad JSON: %d", resp.StatusCode)
	}
	// Source from the alert's cluster label, body base64-encoded as function
	// URLs deliver some bodies.
	if resp = decode(hb.mustSucceed(t, functionURLRequest(t, "/", "hb-secret", watchdog, true))); resp.StatusCode != 200 || !strings.Contains(resp.Body, `"recorded":["prod-eu"]`) {
		t.Fatalf("heartbeat: %d %s", resp.StatusCode, resp.Body)
	}

	// The last heartbeat of prod-eu is now ten minutes old (written as the
	// heartbeat function would have, ten minutes ago), and staging never
	// sent one: both are stale for the deadman.
	old := time.Now().Add(-10 * time.Minute)
	_, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("klaxon-heartbeats"), Item: map[string]types.AttributeValue{
		"source":     &types.AttributeValueMemberS{Value: "prod-eu"},
		"last_seen":  &types.AttributeValueMemberN{Value: strconv.FormatInt(old.UnixMilli(), 10)},
		"expires_at": &types.AttributeValueMemberN{Value: strconv.FormatInt(old.Add(720*time.Hour).Unix(), 10)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	dm := start(t, "deadman", p.with(map[string]string{
		"HEARTBEAT_TABLE":             "klaxon-heartbeats",
		"AWS_ENDPOINT_URL_DYNAMODB":   dynURL,
		"DEADMAN_CONFIG":              "stale_after: 5m\nsources:\n  staging: {severity: warning}\n",
		"SLACK_WEBHOOK_URL_SSM_PARAM": "",
		"SNS_TOPIC_ARN":               "",
	}))
	scheduled := []byte(`{"version":"0","id":"89d1a02d-5ec7-412e-82f5-13505f849b41","detail-type":"Scheduled Event","source":"aws.events","account":"123456789012","time":"2026-03-01T12:00:00Z","region":"eu-west-1","resources":["arn:aws:events:eu-west-1:123456789012:rule/klaxon-deadman"],"detail":{}}`)
	for range 3 {
		dm.mustSucceed(t, scheduled)
	}
	pages := p.pd.Got.WaitFor(t, 2, wait)
	p.ses.Got.WaitFor(t, 2, wait)
	if len(pages) != 2 || p.ses.Got.Len() != 2 {
		t.Fatalf("three runs paged %d times and mailed %d, want once per stale source", len(pages), p.ses.Got.Len())
	}
	bySource := map[string]fakes.PDEvent{}
	for _, pg := range pages {
		bySource[pg.Payload.Source] = pg
	}
	if pg := bySource["prod-eu"]; pg.EventAction != "trigger" || pg.DedupKey != "klaxon-deadman/prod-eu" || pg.Payload.Severity != "critical" {
		t.Errorf("prod-eu page = %+v", pg)
	}
	if pg := bySource["staging"]; pg.Payload == nil || pg.Payload.Severity != "warning" || !strings.Contains(pg.Payload.Summary, "last seen never") {
		t.Errorf("staging page = %+v", pg)
	}

	// prod-eu's Watchdog comes back (source from the URL path this time).
	if resp = decode(hb.mustSucceed(t, functionURLRequest(t, "/prod-eu", "hb-secret", watchdog, false))); resp.StatusCode != 200 {
		t.Fatalf("heartbeat: %d %s", resp.StatusCode, resp.Body)
	}
	for range 2 {
		dm.mustSucceed(t, scheduled)
	}
	all := p.pd.Got.WaitFor(t, 3, wait)
	if len(all) != 3 || all[2].EventAction != "resolve" || all[2].DedupKey != "klaxon-deadman/prod-eu" {
		t.Fatalf("after the heartbeat returned: %+v", all)
	}
	p.ses.Got.WaitFor(t, 3, wait)
	if mail := p.ses.Got.All()[2]; !strings.HasPrefix(mail.Subject, "[RESOLVED]") {
		t.Errorf("resolve mail = %+v", mail)
	}
	if p.pd.Got.Len() != 3 || p.slack.Got.Len() != 0 {
		t.Errorf("extra notifications: pd %d slack %d", p.pd.Got.Len(), p.slack.Got.Len())
	}
}

func mustSSM(t *testing.T, params map[string]string) string {
	t.Helper()
	s := fakes.NewSSM(params)
	t.Cleanup(s.Close)
	return s.URL
}
