package receiver

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // SNS SignatureVersion 1 is SHA1withRSA by definition.
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/types/known/timestamppb"

	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
)

// SNSConfig controls SNS verification and subscription handling.
type SNSConfig struct {
	// Client fetches signing certificates and confirms subscriptions.
	// Tests inject one that reaches a local TLS server.
	Client *http.Client
	// TopicARNs, when non-empty, is the allow-list of topics accepted.
	TopicARNs []string
	// NoAutoConfirm lists topic ARNs whose SubscriptionConfirmation is stored
	// but not confirmed (confirm by hand). "*" disables auto-confirm for all.
	NoAutoConfirm []string
	// MaxAge rejects messages whose Timestamp is older (replay protection).
	MaxAge time.Duration
}

// snsMessage is an SNS HTTP(S) delivery.
type snsMessage struct {
	Type             string `json:"Type"`
	MessageID        string `json:"MessageId"`
	Token            string `json:"Token"`
	TopicArn         string `json:"TopicArn"`
	Subject          string `json:"Subject"`
	Message          string `json:"Message"`
	Timestamp        string `json:"Timestamp"`
	SignatureVersion string `json:"SignatureVersion"`
	Signature        string `json:"Signature"`
	SigningCertURL   string `json:"SigningCertURL"`
	SubscribeURL     string `json:"SubscribeURL"`
	UnsubscribeURL   string `json:"UnsubscribeURL"`
}

var (
	snsHostRE = regexp.MustCompile(`^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)
	// snsCertPathRE is the one path SNS signing certificates are served at
	// ("/SimpleNotificationService-" and a hex digest).
	snsCertPathRE = regexp.MustCompile(`^/SimpleNotificationService-[A-Za-z0-9]{1,64}\.pem$`)
)

// Signing certificates are fetched before a message is authenticated, so
// what an unauthenticated sender can make us fetch and remember is bounded.
const (
	// maxSNSCerts certificates are kept, the least recently used forgotten
	// first: AWS serves a few per region.
	maxSNSCerts = 64
	// A failed fetch is answered from memory for snsCertFailTTL (shorter
	// than SNS's 20 s between retries), for up to maxSNSCertFailures URLs.
	snsCertFailTTL     = 10 * time.Second
	maxSNSCertFailures = 64
	// Fetches of certificates not in memory: snsCertFetchBurst at once, then
	// snsCertFetchRate a second; beyond, 503 (SNS retries it).
	snsCertFetchRate  = 1
	snsCertFetchBurst = 8
	snsCertTimeout    = 10 * time.Second
)

type snsVerifier struct {
	cfg      SNSConfig
	now      func() time.Time
	mu       sync.Mutex
	certs    *lru.Cache[string, *x509.Certificate] // by canonical SigningCertURL
	failed   *lru.Cache[string, certFailure]
	inflight map[string]*certFetch
	fetches  *rate.Limiter
}

type certFailure struct {
	err   error
	until time.Time
}

// certFetch is one fetch in flight; requests wanting the same certificate
// wait for it instead of fetching it again.
type certFetch struct {
	done chan struct{}
	cert *x509.Certificate
	err  error
}

// mustLRU is a cache of size entries that forgets the least recently used
// (lru.New fails only for a size below 1).
func mustLRU[V any](size int) *lru.Cache[string, V] {
	c, err := lru.New[string, V](size)
	if err != nil {
		panic(err)
	}
	return c
}

func newSNSVerifier(cfg SNSConfig, now func() time.Time) *snsVerifier {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = time.Hour
	}
	return &snsVerifier{
		cfg: cfg, now: now,
		certs:    mustLRU[*x509.Certificate](maxSNSCerts),
		failed:   mustLRU[certFailure](maxSNSCertFailures),
		inflight: map[string]*certFetch{},
		fetches:  rate.NewLimiter(snsCertFetchRate, snsCertFetchBurst),
	}
}

// ParseSNS decodes an SNS delivery and checks its required fields.
func ParseSNS(body []byte) (*snsMessage, error) {
	var m snsMessage
	if err := decodeJSON(body, &m); err != nil {
		return nil, err
	}
	required := map[string]string{"Type": m.Type, "MessageId": m.MessageID, "TopicArn": m.TopicArn,
		"Timestamp": m.Timestamp, "SignatureVersion": m.SignatureVersion, "Signature": m.Signature, "SigningCertURL": m.SigningCertURL}
	for _, f := range []string{"Type", "MessageId", "TopicArn", "Timestamp", "SignatureVersion", "Signature", "SigningCertURL"} {
		if required[f] == "" {
			return nil, badInput("field %q: required", f)
		}
	}
	switch m.Type {
	case "Notification":
	case "SubscriptionConfirmation", "UnsubscribeConfirmation":
		if m.SubscribeURL == "" {
			return nil, badInput(`field "SubscribeURL": required for %s`, m.Type)
		}
		if m.Token == "" {
			return nil, badInput(`field "Token": required for %s`, m.Type)
		}
	default:
		return nil, badInput(`field "Type": unknown SNS message type %q`, m.Type)
	}
	return &m, nil
}

// stringToSign builds the canonical text AWS signs, per message type.
func (m *snsMessage) stringToSign() string {
	var sb strings.Builder
	add := func(k, v string) { sb.WriteString(k + "\n" + v + "\n") }
	add("Message", m.Message)
	add("MessageId", m.MessageID)
	if m.Type == "Notification" {
		if m.Subject != "" {
			add("Subject", m.Subject)
		}
		add("Timestamp", m.Timestamp)
		add("TopicArn", m.TopicArn)
		add("Type", m.Type)
		return sb.String()
	}
	add("SubscribeURL", m.SubscribeURL)
	add("Timestamp", m.Timestamp)
	add("Token", m.Token)
	add("TopicArn", m.TopicArn)
	add("Type", m.Type)
	return sb.String()
}

func forbidden(format string, args ...any) error {
	return &statusError{status: http.StatusForbidden, msg: fmt.Sprintf(format, args...)}
}

// checkSNSURL enforces that a subscribe URL points at SNS over https;
// anything else could make us visit attacker-controlled URLs.
func checkSNSURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return forbidden("%s: unparsable URL", field)
	}
	if u.Scheme != "https" {
		return forbidden("%s: must be https", field)
	}
	if !snsHostRE.MatchString(u.Hostname()) || u.Port() != "" && u.Port() != "443" {
		return forbidden("%s: host %q is not an SNS endpoint", field, u.Host)
	}
	if u.User != nil {
		return forbidden("%s: must not carry credentials", field)
	}
	return nil
}

// checkSigningCertURL admits only the URLs SNS signs with, exactly as SNS
// writes them, and returns the URL to fetch and cache the certificate by.
// Not https, not an SNS host or not .pem is 403 (not from AWS); any other
// shape (a query, fragment, user info, port, another path, escapes) is 400:
// each variant would be one more fetch and one more cache entry.
func checkSigningCertURL(raw string) (string, error) {
	const field = "SigningCertURL"
	u, err := url.Parse(raw)
	if err != nil {
		return "", forbidden("%s: unparsable URL", field)
	}
	if u.Scheme != "https" {
		return "", forbidden("%s: must be https", field)
	}
	if !snsHostRE.MatchString(u.Hostname()) {
		return "", forbidden("%s: host %q is not an SNS endpoint", field, u.Host)
	}
	switch {
	case u.User != nil:
		return "", badInput("field %q: must not carry user info", field)
	case u.Port() != "":
		return "", badInput("field %q: must not name a port", field)
	case u.RawQuery != "" || u.ForceQuery:
		return "", badInput("field %q: must not have a query", field)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", badInput("field %q: must not have a fragment", field)
	}
	if !strings.HasSuffix(u.Path, ".pem") {
		return "", forbidden("%s: must end in .pem", field)
	}
	if !snsCertPathRE.MatchString(u.Path) {
		return "", badInput("field %q: path must be /SimpleNotificationService-<id>.pem", field)
	}
	canonical := "https://" + u.Host + u.Path
	if canonical != raw {
		return "", badInput("field %q: must be written %s", field, canonical)
	}
	return canonical, nil
}

// verify checks the signature, certificate origin and freshness.
func (v *snsVerifier) verify(ctx context.Context, m *snsMessage) error {
	var hash crypto.Hash
	switch m.SignatureVersion {
	case "1":
		hash = crypto.SHA1
	case "2":
		hash = crypto.SHA256
	default:
		return forbidden("SignatureVersion %q is not supported", m.SignatureVersion)
	}
	if len(v.cfg.TopicARNs) > 0 && !contains(v.cfg.TopicARNs, m.TopicArn) {
		return forbidden("TopicArn %q is not in the allow-list", m.TopicArn)
	}
	ts, err := time.Parse(time.RFC3339Nano, m.Timestamp)
	if err != nil {
		return badInput(`field "Timestamp": %v`, err)
	}
	if age := v.now().Sub(ts); age > v.cfg.MaxAge || age < -5*time.Minute {
		return forbidden("Timestamp %s is outside the accepted window of %s", m.Timestamp, v.cfg.MaxAge)
	}
	certURL, err := checkSigningCertURL(m.SigningCertURL)
	if err != nil {
		return err
	}
	if m.Type != "Notification" {
		if err := checkSNSURL("SubscribeURL", m.SubscribeURL); err != nil {
			return err
		}
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return forbidden("Signature is not base64")
	}
	cert, err := v.cert(ctx, certURL)
	if err != nil {
		return err
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return forbidden("signing certificate has no RSA key")
	}
	var digest []byte
	text := []byte(m.stringToSign())
	if hash == crypto.SHA1 {
		d := sha1.Sum(text) //nolint:gosec // mandated by SignatureVersion 1
		digest = d[:]
	} else {
		d := sha256.Sum256(text)
		digest = d[:]
	}
	if err := rsa.VerifyPKCS1v15(pub, hash, digest, sig); err != nil {
		return forbidden("signature does not verify")
	}
	return nil
}

// cert returns the signing certificate at certURL (checked by
// checkSigningCertURL): from memory, or fetched once however many requests
// want it, within the fetch budget. AWS rotates certificates rarely.
func (v *snsVerifier) cert(ctx context.Context, certURL string) (*x509.Certificate, error) {
	now := v.now()
	v.mu.Lock()
	if c, ok := v.certs.Get(certURL); ok && now.Before(c.NotAfter) {
		v.mu.Unlock()
		return c, nil
	}
	if f, ok := v.failed.Get(certURL); ok && now.Before(f.until) {
		v.mu.Unlock()
		return nil, f.err
	}
	f, ok := v.inflight[certURL]
	if !ok {
		if !v.fetches.AllowN(now, 1) {
			v.mu.Unlock()
			return nil, &statusError{status: http.StatusServiceUnavailable, retryAfter: time.Second,
				msg: "too many SNS signing certificates to fetch at once, retry later"}
		}
		f = &certFetch{done: make(chan struct{})}
		v.inflight[certURL] = f
		// The fetch is not the request's: others wait for it, and its
		// outcome is remembered, so a sender hanging up does not cancel it.
		go v.fetchInto(context.WithoutCancel(ctx), certURL, f)
	}
	v.mu.Unlock()
	select {
	case <-f.done:
		return f.cert, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (v *snsVerifier) fetchInto(ctx context.Context, certURL string, f *certFetch) {
	ctx, cancel := context.WithTimeout(ctx, snsCertTimeout)
	defer cancel()
	f.cert, f.err = v.fetch(ctx, certURL)
	v.mu.Lock()
	delete(v.inflight, certURL)
	if f.err == nil {
		v.certs.Add(certURL, f.cert)
	} else {
		v.failed.Add(certURL, certFailure{err: f.err, until: v.now().Add(snsCertFailTTL)})
	}
	v.mu.Unlock()
	close(f.done)
}

func (v *snsVerifier) fetch(ctx context.Context, certURL string) (*x509.Certificate, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, certURL, nil)
	if err != nil {
		return nil, forbidden("SigningCertURL: %v", err)
	}
	resp, err := v.cfg.Client.Do(req)
	if err != nil {
		// We could not reach AWS: that is our problem, not a bad message.
		return nil, fmt.Errorf("fetch SNS signing certificate: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, forbidden("SigningCertURL answered %d", resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("read SNS signing certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, forbidden("SigningCertURL did not return a PEM certificate")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, forbidden("signing certificate: %v", err)
	}
	if now := v.now(); now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return nil, forbidden("signing certificate is not valid now")
	}
	return c, nil
}

func (v *snsVerifier) autoConfirm(topic string) bool {
	for _, t := range v.cfg.NoAutoConfirm {
		if t == "*" || t == topic {
			return false
		}
	}
	return true
}

// confirm visits SubscribeURL, as SNS requires to activate a subscription.
func (v *snsVerifier) confirm(ctx context.Context, m *snsMessage) error {
	if err := checkSNSURL("SubscribeURL", m.SubscribeURL); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.SubscribeURL, nil)
	if err != nil {
		return err
	}
	resp, err := v.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("confirm subscription: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("confirm subscription: SubscribeURL answered %d", resp.StatusCode)
	}
	return nil
}

func (rc *Receiver) snsHandler(ctx context.Context, req *request) (*result, error) {
	m, err := ParseSNS(req.body)
	if err != nil {
		return nil, err
	}
	if err := rc.sns.verify(ctx, m); err != nil {
		return nil, err
	}
	// The message type header must agree with the body (AWS sends both).
	if h := req.Header.Get("x-amz-sns-message-type"); h != "" && h != m.Type {
		return nil, badInput("x-amz-sns-message-type %q does not match Type %q", h, m.Type)
	}
	switch m.Type {
	case "SubscriptionConfirmation":
		res := &result{envelopes: []*klaxonv1.Envelope{snsEvent(req, m, "subscription_confirmation")}}
		if rc.sns.autoConfirm(m.TopicArn) {
			if err := rc.sns.confirm(ctx, m); err != nil {
				// 5xx makes SNS retry the confirmation later.
				return nil, &statusError{status: http.StatusBadGateway, msg: err.Error()}
			}
			res.extra = map[string]any{"confirmed": true}
			rc.log.Info("confirmed SNS subscription", "topic", m.TopicArn, "tenant", req.tenant)
		} else {
			res.extra = map[string]any{"confirmed": false}
			rc.log.Warn("SNS subscription stored but not confirmed (auto-confirm off)", "topic", m.TopicArn)
		}
		return res, nil
	case "UnsubscribeConfirmation":
		rc.log.Info("SNS subscription removed", "topic", m.TopicArn, "tenant", req.tenant)
		return &result{envelopes: []*klaxonv1.Envelope{snsEvent(req, m, "unsubscribe_confirmation")}}, nil
	}
	envs, err := snsNotification(req, m)
	if err != nil {
		return nil, err
	}
	return &result{envelopes: envs}, nil
}

func snsEvent(req *request, m *snsMessage, kind string) *klaxonv1.Envelope {
	env := newEnvelope(req, SourceSNS, "sns|"+m.MessageID)
	ts, _ := time.Parse(time.RFC3339Nano, m.Timestamp)
	raw, _ := json.Marshal(m)
	env.Payload = &klaxonv1.Envelope_Event{Event: &klaxonv1.Event{
		Kind: "sns",
		Id:   m.MessageID,
		Time: timestamppb.New(ts),
		Labels: map[string]string{
			"sns_type":  kind,
			"topic_arn": m.TopicArn,
			"subject":   m.Subject,
		},
		Raw: raw,
	}}
	return env
}

// snsNotification unwraps what an SNS topic carries. The Message is a string
// that often holds JSON again: an EventBridge event, CloudTrail records, a
// CloudWatch alarm or an Alertmanager webhook. Parse twice; keep the rest as a
// plain SNS event.
func snsNotification(req *request, m *snsMessage) ([]*klaxonv1.Envelope, error) {
	msg := strings.TrimSpace(m.Message)
	if strings.HasPrefix(msg, "{") || strings.HasPrefix(msg, "[") {
		var probe map[string]json.RawMessage
		if json.Unmarshal([]byte(msg), &probe) == nil {
			switch {
			case probe["detail-type"] != nil:
				envs, err := parseEventBridge(req, []byte(msg))
				if err == nil {
					return envs, nil
				}
			case probe["Records"] != nil:
				envs, err := cloudTrailRecords(req, probe["Records"])
				if err == nil && len(envs) > 0 {
					return envs, nil
				}
			case probe["eventID"] != nil && probe["eventName"] != nil:
				env, err := cloudTrailRecord(req, []byte(msg))
				if err == nil {
					return []*klaxonv1.Envelope{env}, nil
				}
			case probe["AlarmName"] != nil && probe["NewStateValue"] != nil:
				env, err := cloudWatchAlarm(req, m, []byte(msg))
				if err == nil {
					return []*klaxonv1.Envelope{env}, nil
				}
			case probe["alerts"] != nil:
				alerts, err := ParseWebhook([]byte(msg))
				if err == nil {
					envs := make([]*klaxonv1.Envelope, 0, len(alerts))
					for i := range alerts {
						envs = append(envs, toEnvelope(req, SourceSNS, &alerts[i]))
					}
					return envs, nil
				}
			}
		}
	}
	return []*klaxonv1.Envelope{snsEvent(req, m, "notification")}, nil
}

// cloudWatchAlarm maps a CloudWatch alarm state change to an alert: ALARM is
// firing, OK is resolved, INSUFFICIENT_DATA is kept as firing with that state.
func cloudWatchAlarm(req *request, m *snsMessage, msg []byte) (*klaxonv1.Envelope, error) {
	var a struct {
		AlarmName        string `json:"AlarmName"`
		AlarmDescription string `json:"AlarmDescription"`
		AWSAccountID     string `json:"AWSAccountId"`
		NewStateValue    string `json:"NewStateValue"`
		NewStateReason   string `json:"NewStateReason"`
		StateChangeTime  string `json:"StateChangeTime"`
		Region           string `json:"Region"`
		AlarmArn         string `json:"AlarmArn"`
	}
	if err := json.Unmarshal(msg, &a); err != nil || a.AlarmName == "" {
		return nil, errors.New("not a CloudWatch alarm")
	}
	labels := map[string]string{"alertname": a.AlarmName, "source": "cloudwatch", "account": a.AWSAccountID, "region": a.Region}
	for k, v := range labels {
		if v == "" {
			delete(labels, k)
		}
	}
	status := "firing"
	if a.NewStateValue == "OK" {
		status = "resolved"
	}
	t, err := time.Parse("2006-01-02T15:04:05.000-0700", a.StateChangeTime)
	if err != nil {
		t, _ = time.Parse(time.RFC3339Nano, m.Timestamp)
	}
	wa := &wireAlert{Status: status, Labels: labels, Annotations: map[string]string{
		"summary": a.NewStateReason, "description": a.AlarmDescription, "state": a.NewStateValue, "alarm_arn": a.AlarmArn,
	}}
	// The alarm's identity is its name; startsAt is unknown across state
	// changes, so the state change time is used for both edges.
	if status == "firing" {
		wa.StartsAt = &t
	} else {
		wa.EndsAt = &t
	}
	env := toEnvelope(req, SourceSNS, wa)
	env.Id = EnvelopeID(req.tenant, SourceSNS, "sns|"+m.MessageID)
	return env, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
