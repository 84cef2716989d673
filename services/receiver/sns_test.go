package receiver_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/services/receiver"
)

// fakeAWS serves signing certificates and SubscribeURLs over TLS under SNS
// host names. The receiver's HTTP client dials it whatever the host, and
// trusts its certificate, so the host checks are the receiver's own.
type fakeAWS struct {
	key       *rsa.PrivateKey
	certPEM   []byte
	srv       *httptest.Server
	client    *http.Client
	mu        sync.Mutex
	confirmed []string
	certGets  int
	certURLs  []string // request URIs of certificate GETs
}

// awsCertPathRE: AWS serves each signing certificate at one path (whatever
// the query); any other .pem path is 404.
var awsCertPathRE = regexp.MustCompile(`^/SimpleNotificationService-[0-9a-f]+\.pem$`)

// gets is how many times a certificate was fetched at exactly uri.
func (f *fakeAWS) gets(uri string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, u := range f.certURLs {
		if u == uri {
			n++
		}
	}
	return n
}

func (f *fakeAWS) allGets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.certGets
}

func newFakeAWS(t *testing.T) *fakeAWS {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "sns.amazonaws.com"},
		DNSNames:     []string{"sns.us-east-1.amazonaws.com", "sns.eu-west-1.amazonaws.com", "evil.example.com"},
		NotBefore:    testNow.Add(-24 * time.Hour),
		NotAfter:     testNow.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAWS{key: key, certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, ".pem"):
			f.certGets++
			f.certURLs = append(f.certURLs, r.URL.RequestURI())
			if r.Method != http.MethodGet || !awsCertPathRE.MatchString(r.URL.Path) {
				http.NotFound(w, r)
				return
			}
			_, _ = w.Write(f.certPEM)
		case r.URL.Query().Get("Action") == "ConfirmSubscription":
			f.confirmed = append(f.confirmed, r.URL.Query().Get("Token"))
			_, _ = w.Write([]byte("<ConfirmSubscriptionResponse/>"))
		default:
			http.NotFound(w, r)
		}
	}))
	cert, err := tls.X509KeyPair(f.certPEM, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	if err != nil {
		t.Fatal(err)
	}
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(f.certPEM)
	addr := f.srv.Listener.Addr().String()
	f.client = &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	return f
}

type snsMsg map[string]string

// sign fills Signature for version "1" or "2" with the canonical string.
func (f *fakeAWS) sign(t *testing.T, m snsMsg, key *rsa.PrivateKey) snsMsg {
	t.Helper()
	var keys []string
	if m["Type"] == "Notification" {
		keys = []string{"Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"}
	} else {
		keys = []string{"Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"}
	}
	var sb strings.Builder
	for _, k := range keys {
		if v, ok := m[k]; ok && !(k == "Subject" && v == "") {
			sb.WriteString(k + "\n" + v + "\n")
		}
	}
	var sig []byte
	var err error
	if m["SignatureVersion"] == "1" {
		d := sha1.Sum([]byte(sb.String()))
		sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA1, d[:])
	} else {
		d := sha256.Sum256([]byte(sb.String()))
		sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, d[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	m["Signature"] = base64.StdEncoding.EncodeToString(sig)
	return m
}

func notification(version, message string) snsMsg {
	return snsMsg{
		"Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
		"TopicArn": "arn:aws:sns:us-east-1:123456789012:klaxon", "Subject": "alert",
		"Message": message, "Timestamp": testNow.Add(-time.Minute).Format("2006-01-02T15:04:05.000Z"),
		"SignatureVersion": version, "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
		"UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
	}
}

func (m snsMsg) json(t *testing.T) string {
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSNSVerification(t *testing.T) {
	aws := newFakeAWS(t)
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	h := newHarness(t, receiver.Config{SNS: receiver.SNSConfig{Client: aws.client}})
	cases := []struct {
		name string
		msg  func() snsMsg
		code int
	}{
		{"valid v1", func() snsMsg { return aws.sign(t, notification("1", "disk full"), aws.key) }, 200},
		{"valid v2", func() snsMsg {
			m := notification("2", "disk full 2")
			m["MessageId"] = "v2-id"
			return aws.sign(t, m, aws.key)
		}, 200},
		{"forged signature", func() snsMsg { return aws.sign(t, notification("2", "x"), otherKey) }, 403},
		{"tampered message", func() snsMsg {
			m := aws.sign(t, notification("2", "x"), aws.key)
			m["Message"] = "y"
			return m
		}, 403},
		{"cert host not SNS", func() snsMsg {
			m := notification("2", "x")
			m["SigningCertURL"] = "https://evil.example.com/SimpleNotificationService-abc.pem"
			return aws.sign(t, m, aws.key)
		}, 403},
		{"cert host suffix trick", func() snsMsg {
			m := notification("2", "x")
			m["SigningCertURL"] = "https://sns.us-east-1.amazonaws.com.evil.example.com/a.pem"
			return aws.sign(t, m, aws.key)
		}, 403},
		{"http cert URL", func() snsMsg {
			m := notification("2", "x")
			m["SigningCertURL"] = "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem"
			return aws.sign(t, m, aws.key)
		}, 403},
		{"cert URL not .pem", func() snsMsg {
			m := notification("2", "x")
			m["SigningCertURL"] = "https://sns.us-east-1.amazonaws.com/cert.txt"
			return aws.sign(t, m, aws.key)
		}, 403},
		{"unknown SignatureVersion", func() snsMsg {
			m := aws.sign(t, notification("2", "x"), aws.key)
			m["SignatureVersion"] = "3"
			return m
		}, 403},
		{"expired timestamp", func() snsMsg {
			m := notification("2", "x")
			m["Timestamp"] = testNow.Add(-2 * time.Hour).Format(time.RFC3339)
			return aws.sign(t, m, aws.key)
		}, 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := h.post("/api/v1/sns", c.msg().json(t), "x-amz-sns-message-type", "Notification")
			if r.code != c.code {
				t.Fatalf("code %d, want %d: %v", r.code, c.code, r.body)
			}
		})
	}
	if n := len(h.stored()); n != 2 {
		t.Fatalf("stored %d, want only the 2 valid messages", n)
	}
	if aws.certGets != 1 {
		t.Errorf("certificate fetched %d times, want 1 (cached)", aws.certGets)
	}
}

func TestSNSSubscriptionConfirmation(t *testing.T) {
	aws := newFakeAWS(t)
	h := newHarness(t, receiver.Config{SNS: receiver.SNSConfig{Client: aws.client}})
	m := snsMsg{
		"Type": "SubscriptionConfirmation", "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b", "Token": "tok123",
		"TopicArn": "arn:aws:sns:us-east-1:123456789012:klaxon", "Message": "You have chosen to subscribe...",
		"SubscribeURL":     "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:us-east-1:123456789012:klaxon&Token=tok123",
		"Timestamp":        testNow.Format(time.RFC3339),
		"SignatureVersion": "1", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
	}
	r := h.post("/api/v1/sns", aws.sign(t, m, aws.key).json(t))
	if r.code != 200 || r.body["confirmed"] != true {
		t.Fatalf("code %d %v", r.code, r.body)
	}
	if len(aws.confirmed) != 1 || aws.confirmed[0] != "tok123" {
		t.Fatalf("SubscribeURL visited: %v", aws.confirmed)
	}
	// A forged confirmation is never visited.
	forged := snsMsg{}
	for k, v := range m {
		forged[k] = v
	}
	forged["MessageId"] = "other"
	forged["Token"] = "tok999"
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	if r := h.post("/api/v1/sns", aws.sign(t, forged, otherKey).json(t)); r.code != 403 {
		t.Fatalf("forged confirmation: %d", r.code)
	}
	// A SubscribeURL that is not SNS is never visited.
	evil := snsMsg{}
	for k, v := range m {
		evil[k] = v
	}
	evil["MessageId"] = "evil"
	evil["SubscribeURL"] = "https://evil.example.com/?Action=ConfirmSubscription&Token=tok666"
	if r := h.post("/api/v1/sns", aws.sign(t, evil, aws.key).json(t)); r.code != 403 {
		t.Fatalf("non-SNS SubscribeURL: %d", r.code)
	}
	if len(aws.confirmed) != 1 {
		t.Fatalf("visited %v", aws.confirmed)
	}
}

func TestSNSAllowListAndNoAutoConfirm(t *testing.T) {
	aws := newFakeAWS(t)
	h := newHarness(t, receiver.Config{SNS: receiver.SNSConfig{Client: aws.client,
		TopicARNs: []string{"arn:aws:sns:us-east-1:123456789012:klaxon"}, NoAutoConfirm: []string{"*"}}})
	other := notification("2", "x")
	other["TopicArn"] = "arn:aws:sns:us-east-1:123456789012:other"
	if r := h.post("/api/v1/sns", aws.sign(t, other, aws.key).json(t)); r.code != 403 {
		t.Fatalf("topic outside allow-list: %d", r.code)
	}
	m := snsMsg{
		"Type": "SubscriptionConfirmation", "MessageId": "m1", "Token": "tok1",
		"TopicArn": "arn:aws:sns:us-east-1:123456789012:klaxon", "Message": "subscribe",
		"SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=tok1", "Timestamp": testNow.Format(time.RFC3339),
		"SignatureVersion": "2", "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
	}
	r := h.post("/api/v1/sns", aws.sign(t, m, aws.key).json(t))
	if r.code != 200 || r.body["confirmed"] != false || len(aws.confirmed) != 0 {
		t.Fatalf("auto-confirm off: %d %v confirmed=%v", r.code, r.body, aws.confirmed)
	}
}

func TestSNSCarriesCloudTrailAndAlarms(t *testing.T) {
	aws := newFakeAWS(t)
	h := newHarness(t, receiver.Config{SNS: receiver.SNSConfig{Client: aws.client}})
	ct := `{"version":"0","id":"eb-1","detail-type":"AWS API Call via CloudTrail","source":"aws.cloudtrail","account":"123456789012",
	  "time":"2026-11-24T11:58:00Z","region":"us-east-1","detail":{"eventID":"ct-9","eventName":"StopLogging","eventSource":"cloudtrail.amazonaws.com",
	  "userIdentity":{"type":"Root","arn":"arn:aws:iam::123456789012:root"}}}`
	alarm := `{"AlarmName":"HighCPU","AlarmDescription":"cpu","AWSAccountId":"123456789012","NewStateValue":"ALARM",
	  "NewStateReason":"Threshold Crossed","StateChangeTime":"2026-11-24T11:58:00.000+0000","Region":"US East (N. Virginia)"}`
	for i, body := range []string{ct, alarm} {
		m := notification("2", body)
		m["MessageId"] = []string{"n1", "n2"}[i]
		if r := h.post("/api/v1/sns", aws.sign(t, m, aws.key).json(t)); r.code != 200 {
			t.Fatalf("code %d %v", r.code, r.body)
		}
	}
	envs := h.stored()
	if len(envs) != 2 {
		t.Fatalf("stored %d", len(envs))
	}
	ev := envs[0].GetEvent()
	if ev == nil || ev.Kind != "cloudtrail" || ev.Labels["eventName"] != "StopLogging" || ev.Labels["userIdentity_type"] != "Root" {
		t.Fatalf("CloudTrail inside SNS not parsed twice: %+v", envs[0])
	}
	al := envs[1].GetAlert()
	if al == nil || al.Labels["alertname"] != "HighCPU" || al.Annotations["summary"] != "Threshold Crossed" {
		t.Fatalf("CloudWatch alarm: %+v", envs[1])
	}
}

// clock is a test clock the server's goroutines may read.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// withCert is a notification signed with the genuine key that names certURL:
// only the receiver's URL checks can refuse it.
func (f *fakeAWS) withCert(t *testing.T, id, certURL string) string {
	m := notification("2", "disk full")
	m["MessageId"] = id
	m["SigningCertURL"] = certURL
	return f.sign(t, m, f.key).json(t)
}

const certBase = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-"

// Anyone can post to /api/v1/sns, and the certificate is fetched before the
// signature is checked. Operators rely on such posts not being able to make
// Klaxon fetch and remember without end. Before, any SigningCertURL on an
// SNS host ending in .pem was fetched and cached by its full text, so
// ?x=<random> made every fake message one more outbound GET and one more
// cache entry. Only the URL as SNS writes it is fetched now.
func TestSNSRefusesSigningCertURLsSNSNeverSends(t *testing.T) {
	aws := newFakeAWS(t)
	h := newHarness(t, receiver.Config{SNS: receiver.SNSConfig{Client: aws.client}})
	for _, u := range []string{
		certBase + "abc.pem?x=1",
		certBase + "abc.pem?",
		certBase + "abc.pem#x",
		certBase + "abc.pem#",
		"https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
		"https://sns.us-east-1.amazonaws.com:443/SimpleNotificationService-abc.pem",
		"https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-abc.pem",
		"https://sns.us-east-1.amazonaws.com/x/SimpleNotificationService-abc.pem",
		"https://sns.us-east-1.amazonaws.com/x/../SimpleNotificationService-abc.pem",
		"https://sns.us-east-1.amazonaws.com//SimpleNotificationService-abc.pem",
		"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-%61bc.pem",
		"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-.pem",
		"https://sns.us-east-1.amazonaws.com/other.pem",
		"HTTPS://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
	} {
		t.Run(u, func(t *testing.T) {
			r := h.post("/api/v1/sns", aws.withCert(t, "m", u), "x-amz-sns-message-type", "Notification")
			if msg, _ := r.body["error"].(string); r.code != 400 || !strings.Contains(msg, "SigningCertURL") {
				t.Fatalf("code %d %v, want 400 naming SigningCertURL", r.code, r.body)
			}
		})
	}
	if n := aws.allGets(); n != 0 {
		t.Errorf("fetched a certificate %d times: %v", n, aws.certURLs)
	}
	if n := len(h.stored()); n != 0 {
		t.Errorf("stored %d", n)
	}
	// The URL as SNS writes it still verifies.
	if r := h.post("/api/v1/sns", aws.withCert(t, "ok", certBase+"abc.pem")); r.code != 200 {
		t.Fatalf("genuine URL: %d %v", r.code, r.body)
	}
}

// Signing certificates are remembered, but not without bound: URLs of the
// right shape on SNS hosts are still many. The certificate every message
// uses stays in memory through a stream of others; one not used for long is
// forgotten and fetched again when needed. Before, every URL ever fetched
// stayed in a map for good.
func TestSNSCertificateCacheIsBounded(t *testing.T) {
	aws := newFakeAWS(t)
	clk := newClock(testNow)
	h := newHarness(t, receiver.Config{Now: clk.now, SNS: receiver.SNSConfig{Client: aws.client}})
	hot := certBase + "abc.pem"
	cold := func(i int) string { return certBase + fmt.Sprintf("%032x", i) + ".pem" }
	const n = 100
	for i := 1; i <= n; i++ {
		if r := h.post("/api/v1/sns", aws.withCert(t, fmt.Sprint("cold-", i), cold(i))); r.code != 200 {
			t.Fatalf("cold %d: %d %v", i, r.code, r.body)
		}
		if r := h.post("/api/v1/sns", aws.withCert(t, fmt.Sprint("hot-", i), hot)); r.code != 200 {
			t.Fatalf("hot %d: %d %v", i, r.code, r.body)
		}
		clk.advance(time.Second) // within the fetch budget: not what this test is about
	}
	uri := func(u string) string { return strings.TrimPrefix(u, "https://sns.us-east-1.amazonaws.com") }
	if got := aws.gets(uri(hot)); got != 1 {
		t.Errorf("certificate in use fetched %d times, want 1", got)
	}
	for _, c := range []struct {
		i, want int
	}{{n, 1}, {1, 2}} { // the newest still remembered, the oldest forgotten
		if r := h.post("/api/v1/sns", aws.withCert(t, fmt.Sprint("again-", c.i), cold(c.i))); r.code != 200 {
			t.Fatalf("cold %d again: %d %v", c.i, r.code, r.body)
		}
		if got := aws.gets(uri(cold(c.i))); got != c.want {
			t.Errorf("certificate %d fetched %d times, want %d", c.i, got, c.want)
		}
	}
}

// Fetches the receiver makes for unauthenticated posts are bounded too: a
// certificate that could not be fetched is not fetched again for every
// message naming it, and a flood of new URLs is fetched a few at a time,
// the rest told 503 with Retry-After (SNS retries a 5xx), while messages
// signed with a certificate in memory are still accepted. Before, every
// post was a fetch.
func TestSNSCertificateFetchesAreBounded(t *testing.T) {
	aws := newFakeAWS(t)
	clk := newClock(testNow)
	h := newHarness(t, receiver.Config{Now: clk.now, SNS: receiver.SNSConfig{Client: aws.client}})
	if r := h.post("/api/v1/sns", aws.withCert(t, "first", certBase+"abc.pem")); r.code != 200 {
		t.Fatalf("genuine: %d %v", r.code, r.body)
	}
	missing := certBase + "0nothere.pem" // the right shape, but AWS answers 404
	for i := 0; i < 5; i++ {
		if r := h.post("/api/v1/sns", aws.withCert(t, "m", missing)); r.code != 403 {
			t.Fatalf("missing certificate: %d %v", r.code, r.body)
		}
	}
	if got := aws.gets("/SimpleNotificationService-0nothere.pem"); got != 1 {
		t.Fatalf("missing certificate fetched %d times for 5 messages, want 1", got)
	}
	clk.advance(time.Minute) // failures are remembered only briefly
	if r := h.post("/api/v1/sns", aws.withCert(t, "m", missing)); r.code != 403 {
		t.Fatalf("missing certificate later: %d %v", r.code, r.body)
	}
	if got := aws.gets("/SimpleNotificationService-0nothere.pem"); got != 2 {
		t.Fatalf("missing certificate fetched %d times, want 2 (tried again a minute later)", got)
	}

	before := aws.allGets()
	codes := map[int]int{}
	for i := 0; i < 50; i++ {
		r := h.post("/api/v1/sns", aws.withCert(t, "m", certBase+fmt.Sprintf("0flood%d.pem", i)))
		codes[r.code]++
		if r.code == 503 && r.header.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
	}
	if fetched := aws.allGets() - before; fetched > 10 || codes[503] == 0 || codes[403] != fetched {
		t.Errorf("50 new URLs at once: %d fetched, codes %v; want a few fetched (403), the rest 503", fetched, codes)
	}
	if r := h.post("/api/v1/sns", aws.withCert(t, "during", certBase+"abc.pem")); r.code != 200 {
		t.Fatalf("genuine message during the flood: %d %v", r.code, r.body)
	}
}
