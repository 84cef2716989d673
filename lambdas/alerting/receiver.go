package alerting

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Receiver paths the Lambdas post to (DESIGN.md §3).
const (
	PathEventBridge = "/api/v1/eventbridge"
	PathSNS         = "/api/v1/sns"
	PathAlertsV2    = "/api/v2/alerts"
)

// ErrReceiver marks a failed delivery to the Klaxon receiver.
var ErrReceiver = errors.New("klaxon receiver did not accept the message")

// Receiver posts JSON to the Klaxon receiver.
type Receiver struct {
	URL    string // base URL, e.g. https://klaxon.example.com
	Token  string // bearer token; empty when the receiver runs without --auth
	Tenant string // X-Scope-OrgID; empty means the receiver's default tenant
	// Timeout bounds all attempts together. It must leave room in the Lambda's
	// own timeout for the direct fallback, which is the point of the deadline.
	Timeout time.Duration
	Client  *http.Client
	Log     *slog.Logger
	// Backoff is the first retry delay, doubled per attempt; default 100ms.
	Backoff time.Duration
}

// Post sends body to path and returns nil only for a 2xx answer. Transport
// errors, 408, 429 and 5xx are retried with backoff until the Timeout; any
// other 4xx is final (the same request would fail again).
func (r *Receiver) Post(ctx context.Context, path string, body []byte, header http.Header) error {
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := r.Client
	if client == nil {
		client = http.DefaultClient
	}
	url := strings.TrimSuffix(r.URL, "/") + path
	backoff := r.Backoff
	if backoff <= 0 {
		backoff = 100 * time.Millisecond
	}
	var last error
	for attempt := 1; attempt <= 5; attempt++ {
		retry, err := r.once(ctx, client, url, body, header)
		if err == nil {
			return nil
		}
		// Log a retry only when its error changes, not once per attempt.
		if last == nil || last.Error() != err.Error() {
			r.log().Warn("klaxon receiver attempt failed", "path", path, "attempt", attempt, "err", err)
		}
		last = err
		if !retry {
			break
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %s: %w (deadline %s)", ErrReceiver, path, last, timeout)
		case <-t.C:
		}
		backoff *= 2
	}
	return fmt.Errorf("%w: %s: %w", ErrReceiver, path, last)
}

func (r *Receiver) once(ctx context.Context, client *http.Client, url string, body []byte, header http.Header) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("build request: %w", err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "klaxon-lambda")
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	if r.Tenant != "" {
		req.Header.Set("X-Scope-OrgID", r.Tenant)
	}
	resp, err := client.Do(req)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	err = fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	switch {
	case resp.StatusCode == http.StatusRequestTimeout, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
		return true, err
	}
	return false, err
}

func (r *Receiver) log() *slog.Logger {
	if r.Log == nil {
		return slog.Default()
	}
	return r.Log
}

// Relay forwards to the receiver and falls back to direct notification.
type Relay struct {
	Receiver *Receiver // nil: no receiver configured, always notify directly
	Fallback Fanout
	Log      *slog.Logger
}

// Deliver posts body to the receiver. If that fails, every notice goes to the
// fallback notifiers. It returns an error only when the message reached
// nobody, so the Lambda invocation fails and its event source retries.
func (r *Relay) Deliver(ctx context.Context, path string, body []byte, header http.Header, notices []*Notice) error {
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	var recvErr error
	if r.Receiver != nil && r.Receiver.URL != "" {
		recvErr = r.Receiver.Post(ctx, path, body, header)
		if recvErr == nil {
			log.Debug("forwarded to klaxon", "path", path, "notices", len(notices))
			return nil
		}
		log.Error("klaxon receiver unavailable, notifying directly", "path", path, "err", recvErr)
	}
	if len(notices) == 0 {
		return recvErr
	}
	// Side by side: one notice can take a destination's whole retry budget
	// (PagerDuty hanging: three tries of HTTP_TIMEOUT), and one after
	// another the notices after it ran into the function's timeout, even
	// to destinations that answer at once.
	lostBy := make([]error, len(notices))
	var wg sync.WaitGroup
	for i, n := range notices {
		wg.Go(func() {
			if delivered, err := r.Fallback.Notify(ctx, log, n); delivered == 0 {
				lostBy[i] = fmt.Errorf("notice %s reached nobody: %w", n.Key, err)
			}
		})
	}
	wg.Wait()
	var lost []error
	for _, err := range lostBy {
		if err != nil {
			lost = append(lost, err)
		}
	}
	if len(lost) > 0 {
		return errors.Join(append(lost, recvErr)...)
	}
	return nil
}
