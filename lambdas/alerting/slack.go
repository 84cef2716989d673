package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Slack posts to a Slack incoming webhook. The URL is a secret: it is never
// logged or put into an error.
type Slack struct {
	WebhookURL string
	Client     *http.Client
}

// Name implements Notifier.
func (s *Slack) Name() string { return "slack" }

type slackMessage struct {
	Text string `json:"text"`
}

// Notify implements Notifier. An incoming webhook answers 200 "ok"; anything
// else (400 invalid_payload, 403, 404 no_service, 410 channel_is_archived) is
// a failure worth reporting.
func (s *Slack) Notify(ctx context.Context, n *Notice) error {
	icon := map[Status]string{Firing: ":rotating_light:", Resolved: ":white_check_mark:"}[n.Status]
	text := fmt.Sprintf("%s *%s* %s\n```%s```", icon, n.Title(), n.Summary, strings.TrimSpace(n.Text()))
	body, err := json.Marshal(slackMessage{Text: Truncate(text, 39000)})
	if err != nil {
		return fmt.Errorf("slack: encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("slack: build request: %w", redactURL(err))
	}
	req.Header.Set("Content-Type", "application/json")
	client := s.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("slack: post: %w", redactURL(err))
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("slack: status %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return nil
}
