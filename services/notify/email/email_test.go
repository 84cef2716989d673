package email

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"strings"
	"testing"

	amconfig "github.com/prometheus/alertmanager/config"
	commoncfg "github.com/prometheus/common/config"

	"github.com/klaxon-sh/klaxon/services/bus/bustest"
	"github.com/klaxon-sh/klaxon/services/notify"
	"github.com/klaxon-sh/klaxon/services/notify/notifytest"
)

func config(s *smtpServer) *amconfig.EmailConfig {
	c := amconfig.DefaultEmailConfig
	host, port, _ := net.SplitHostPort(s.Addr)
	c.Smarthost = amconfig.HostPort{Host: host, Port: port}
	c.From = "Klaxon <alerts@example.org>"
	c.To = "oncall@example.org, sre@example.org"
	c.AuthUsername = smtpUser
	c.AuthPassword = smtpPassword
	c.TLSConfig = &commoncfg.TLSConfig{CAFile: s.CAFile}
	c.Headers = map[string]string{"X-Team": "{{ .CommonLabels.job }}"}
	c.Hello = "klaxon.test"
	return &c
}

func send(t *testing.T, c *amconfig.EmailConfig, resolved bool) (bool, error) {
	t.Helper()
	n, err := New(c, notifytest.Template(t), bustest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return n.Notify(context.Background(), notifytest.Notification(resolved))
}

// parts reads a delivered message back: headers and its text and HTML parts.
func parts(t *testing.T, raw []byte) (*netmail.Message, string, string) {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("content type %q: %v", m.Header.Get("Content-Type"), err)
	}
	var text, html string
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p) // multipart decodes quoted-printable
		switch ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct {
		case "text/plain":
			text = string(b)
		case "text/html":
			html = string(b)
		}
	}
	return m, text, html
}

func TestStartTLSPlainAuthDeliversBothParts(t *testing.T) {
	s := startSMTP(t, false, "PLAIN")
	if retry, err := send(t, config(s), false); err != nil {
		t.Fatalf("retry=%v err=%v", retry, err)
	}
	if retry, err := send(t, config(s), true); err != nil {
		t.Fatalf("resolve: retry=%v err=%v", retry, err)
	}
	mails := s.Mails()
	if len(mails) != 2 {
		t.Fatalf("got %d mails", len(mails))
	}
	if mails[0].From != "alerts@example.org" || len(mails[0].To) != 2 {
		t.Fatalf("envelope: %+v", mails[0])
	}
	m, text, html := parts(t, mails[0].Data)
	dec := new(mime.WordDecoder)
	subject, _ := dec.DecodeHeader(m.Header.Get("Subject"))
	if subject != "[FIRING:1] HighLatency (api-1 api critical)" {
		t.Errorf("subject %q", subject)
	}
	if m.Header.Get("X-Team") != "api" || m.Header.Get("X-Klaxon-Status") != "firing" {
		t.Errorf("headers: %v", m.Header)
	}
	if !strings.Contains(html, "<html") || !strings.Contains(html, "p99 latency above 2s") {
		t.Errorf("html part: %.300s", html)
	}
	if !strings.Contains(text, "[FIRING] HighLatency") || !strings.Contains(text, "Runbook: https://runbooks.example/high-latency") {
		t.Errorf("text part: %s", text)
	}
	notifytest.Golden(t, "email_firing.txt", []byte(text))
	notifytest.Golden(t, "email_firing.html", []byte(html))
	m2, _, _ := parts(t, mails[1].Data)
	subject, _ = dec.DecodeHeader(m2.Header.Get("Subject"))
	if !strings.HasPrefix(subject, "[RESOLVED]") {
		t.Errorf("resolve subject %q", subject)
	}
	if s.authed[0] != "PLAIN" {
		t.Errorf("auth mechanism %v", s.authed)
	}
}

func TestImplicitTLSOnPort465Semantics(t *testing.T) {
	s := startSMTP(t, true, "LOGIN")
	c := config(s)
	yes := true
	c.ForceImplicitTLS = &yes // the server is not on 465; force what 465 means
	if retry, err := send(t, c, false); err != nil {
		t.Fatalf("retry=%v err=%v", retry, err)
	}
	if len(s.Mails()) != 1 || s.authed[0] != "LOGIN" {
		t.Fatalf("mails=%d auth=%v", len(s.Mails()), s.authed)
	}
	if !(&Notifier{conf: &amconfig.EmailConfig{Smarthost: amconfig.HostPort{Port: "465"}}}).implicitTLS() {
		t.Fatal("port 465 must mean implicit TLS")
	}
}

func TestCRAMMD5WithAuthSecret(t *testing.T) {
	s := startSMTP(t, false, "CRAM-MD5")
	c := config(s)
	c.AuthPassword = ""
	c.AuthSecret = smtpPassword
	if retry, err := send(t, c, false); err != nil {
		t.Fatalf("retry=%v err=%v", retry, err)
	}
	if s.authed[0] != "CRAM-MD5" {
		t.Fatalf("auth %v", s.authed)
	}
}

func TestSMTPRetryMatrix(t *testing.T) {
	t.Run("bad password is permanent", func(t *testing.T) {
		s := startSMTP(t, false, "PLAIN")
		c := config(s)
		c.AuthPassword = "wrong"
		retry, err := send(t, c, false)
		if err == nil || retry {
			t.Fatalf("retry=%v err=%v", retry, err)
		}
	})
	t.Run("451 is retried", func(t *testing.T) {
		s := startSMTP(t, false, "PLAIN")
		s.tempFail = 1
		retry, err := send(t, config(s), false)
		if err == nil || !retry || notify.ReasonOf(err) != notify.ReasonServerError {
			t.Fatalf("retry=%v err=%v", retry, err)
		}
		if retry, err := send(t, config(s), false); err != nil {
			t.Fatalf("second try: retry=%v err=%v", retry, err)
		}
	})
	t.Run("untrusted certificate is not delivered", func(t *testing.T) {
		s := startSMTP(t, false, "PLAIN")
		c := config(s)
		c.TLSConfig = &commoncfg.TLSConfig{}
		if _, err := send(t, c, false); err == nil || len(s.Mails()) != 0 {
			t.Fatalf("sent over an unverified TLS connection: %v", err)
		}
	})
	t.Run("connection refused is retried", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		_ = l.Close()
		c := config(&smtpServer{Addr: addr})
		retry, err := send(t, c, false)
		if err == nil || !retry {
			t.Fatalf("retry=%v err=%v", retry, err)
		}
	})
}
