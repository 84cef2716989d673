package notify

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Reason classifies a failure; it doubles as a metric label, so it is a
// closed set.
type Reason string

// Failure reasons (bounded metric label values).
const (
	ReasonClientError Reason = "clientError"
	ReasonServerError Reason = "serverError"
	ReasonRateLimited Reason = "rateLimited"
	ReasonTimeout     Reason = "timeout"
	ReasonNetwork     Reason = "networkError"
	ReasonConfig      Reason = "configError"
	ReasonTemplate    Reason = "templateError"
	ReasonOther       Reason = "other"
)

// Error is a delivery failure with its reason and an optional Retry-After.
type Error struct {
	Reason     Reason
	Err        error
	RetryAfter time.Duration
}

func (e *Error) Error() string { return string(e.Reason) + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ErrUnavailable marks a Builder's failure that passes (JetStream briefly
// unreachable), unlike a receiver that cannot be built (bad config): the
// notification is retried instead of dead-lettered at once.
var ErrUnavailable = errors.New("temporarily unavailable")

// ReasonOf extracts the reason of err.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ReasonOther
}

// RetryAfterOf extracts a Retry-After hint from err (0 if none).
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// CheckResponse applies the shared retry policy at the protocol edge: 2xx is
// success; 408, 429 and 5xx are retried (honouring Retry-After); any other
// status is a permanent failure.
func CheckResponse(resp *http.Response) (retry bool, err error) {
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	e := &Error{Err: fmt.Errorf("unexpected status code %d: %s", resp.StatusCode, body)}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		e.Reason = ReasonRateLimited
	case resp.StatusCode == http.StatusRequestTimeout:
		e.Reason = ReasonTimeout
	case resp.StatusCode/100 == 5:
		e.Reason = ReasonServerError
	default:
		e.Reason = ReasonClientError
		return false, e
	}
	e.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	return true, e
}

// ParseRetryAfter reads seconds or an HTTP date.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
