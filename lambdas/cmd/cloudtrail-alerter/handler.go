package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klaxon-sh/klaxon/lambdas/alerting"
)

// Handler filters CloudTrail events and forwards the matches.
type Handler struct {
	Rules  *Config
	Bursts *Bursts
	Relay  *alerting.Relay
	Now    func() time.Time
	Log    *slog.Logger
}

// match is one record selected by the rules (or a synthesized burst event).
type match struct {
	eb     json.RawMessage
	notice *alerting.Notice
}

// Handle is the Lambda entry point. It returns an error only when a match
// reached neither Klaxon nor any fallback, so the event source retries.
func (h *Handler) Handle(ctx context.Context, raw json.RawMessage) error {
	evs, skipped, err := decodeInput(raw)
	if err != nil {
		// Retrying a malformed event cannot help: log it and succeed.
		h.Log.Error("unreadable input dropped", "err", err)
		return nil
	}
	for _, s := range skipped {
		h.Log.Warn("message skipped", "reason", s)
	}
	now := h.Now()
	var out []match
	for _, ev := range evs {
		out = append(out, h.evaluate(&ev, now)...)
	}
	if len(out) == 0 {
		h.Log.Debug("no rule matched", "events", len(evs))
		return nil
	}
	ebs := make([]json.RawMessage, 0, len(out))
	notices := make([]*alerting.Notice, 0, len(out))
	for _, m := range out {
		ebs = append(ebs, m.eb)
		notices = append(notices, m.notice)
	}
	body, err := json.Marshal(ebs)
	if err != nil {
		return fmt.Errorf("encode events: %w", err)
	}
	return h.Relay.Deliver(ctx, alerting.PathEventBridge, body, nil, notices)
}

// evaluate applies every rule to one event. A record that matches several
// plain rules is forwarded once, under its most severe rule; each completed
// burst adds a synthesized event of its own.
func (h *Handler) evaluate(ev *event, now time.Time) []match {
	var (
		plain []*Rule
		out   []match
	)
	for i := range h.Rules.Rules {
		r := &h.Rules.Rules[i]
		if !r.matches(&ev.rec) {
			continue
		}
		if r.Burst == nil {
			plain = append(plain, r)
			continue
		}
		if key, fired := h.Bursts.Observe(r, &ev.rec, now); fired {
			m, err := burstMatch(r, key, &ev.rec, now)
			if err != nil {
				h.Log.Error("burst event not built", "rule", r.Name, "err", err)
				continue
			}
			out = append(out, m)
		}
	}
	if len(plain) > 0 {
		slices.SortStableFunc(plain, func(a, b *Rule) int { return rank(a.Severity) - rank(b.Severity) })
		names := make([]string, 0, len(plain))
		for _, r := range plain {
			names = append(names, r.Name)
		}
		h.Log.Info("cloudtrail event matched", "rules", names, "eventID", ev.rec.EventID, "action", ev.rec.action())
		out = append([]match{{eb: ev.eb, notice: recordNotice(plain[0], names, &ev.rec)}}, out...)
	}
	return out
}

func rank(sev string) int {
	return map[string]int{alerting.SeverityCritical: 0, alerting.SeverityError: 1, alerting.SeverityWarning: 2, alerting.SeverityInfo: 3}[sev]
}

func recordNotice(r *Rule, rules []string, rec *ctRecord) *alerting.Notice {
	what := rec.action()
	if rec.EventName == "ConsoleLogin" && rec.consoleLogin() != "" {
		what += " (" + rec.consoleLogin() + ")"
	}
	if rec.ErrorCode != "" {
		what += " failed with " + rec.ErrorCode
	}
	n := &alerting.Notice{
		Key:       "klaxon-cloudtrail/" + rec.EventID,
		Status:    alerting.Firing,
		Severity:  r.Severity,
		Summary:   fmt.Sprintf("%s: %s by %s in %s", r.Name, what, rec.who(), rec.AWSRegion),
		Source:    "aws:" + rec.Account + ":" + rec.AWSRegion,
		Component: "cloudtrail",
		Details: map[string]string{
			"rules":           strings.Join(rules, ","),
			"eventID":         rec.EventID,
			"eventTime":       rec.EventTime,
			"eventSource":     rec.EventSource,
			"eventName":       rec.EventName,
			"principal":       rec.who(),
			"sourceIPAddress": rec.SourceIP,
		},
	}
	if rec.ErrorCode != "" {
		n.Details["errorCode"] = rec.ErrorCode
	}
	if t, err := time.Parse(time.RFC3339, rec.EventTime); err == nil {
		n.Time = t
	}
	return n
}

// burstMatch synthesizes the EventBridge event that reports a burst: the
// receiver takes any EventBridge event, and the individual records were not
// worth forwarding one by one.
func burstMatch(r *Rule, key string, last *ctRecord, now time.Time) (match, error) {
	// The event that completed the burst names it, so the burst of a
	// retried invocation is the same event for the receiver's dedup.
	at := strconv.FormatInt(now.UnixNano(), 10)
	if last.EventID != "" {
		at = last.EventID
	}
	id := derivedID("burst", r.Name, key, at)
	detail := map[string]any{
		"rule":        r.Name,
		"severity":    r.Severity,
		"count":       r.Burst.Count,
		"window":      r.Burst.Window.String(),
		"key":         key,
		"lastEventID": last.EventID,
		"lastAction":  last.action(),
		"errorCode":   last.ErrorCode,
		"principal":   last.who(),
	}
	eb, err := json.Marshal(map[string]any{
		"version":     "0",
		"id":          id,
		"detail-type": "Klaxon CloudTrail Burst",
		"source":      "klaxon.cloudtrail-alerter",
		"account":     last.Account,
		"time":        now.UTC().Format(time.RFC3339),
		"region":      last.AWSRegion,
		"resources":   []string{},
		"detail":      detail,
	})
	if err != nil {
		return match{}, fmt.Errorf("encode burst event: %w", err)
	}
	n := &alerting.Notice{
		Key:       "klaxon-cloudtrail-burst/" + id,
		Status:    alerting.Firing,
		Severity:  r.Severity,
		Summary:   fmt.Sprintf("%s: %d matching CloudTrail events within %s (%s), last %s by %s", r.Name, r.Burst.Count, r.Burst.Window, key, last.action(), last.who()),
		Source:    "aws:" + last.Account + ":" + last.AWSRegion,
		Component: "cloudtrail",
		Details:   map[string]string{"rule": r.Name, "key": key, "lastEventID": last.EventID, "errorCode": last.ErrorCode},
		Time:      now,
	}
	return match{eb: eb, notice: n}, nil
}
