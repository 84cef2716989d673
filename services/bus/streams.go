package bus

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names and subject roots (DESIGN §4).
const (
	StreamIngest = "INGEST"
	StreamNotify = "NOTIFY"
	StreamDLQ    = "DLQ"
	StreamAudit  = "AUDIT"

	subjIn    = "klaxon.in"
	subjOut   = "klaxon.out"
	subjDefer = "klaxon.defer"
	subjDLQ   = "klaxon.dlq"
	subjAudit = "klaxon.audit"
)

// KV bucket names. State that must survive restarts lives here, never only in memory.
const (
	BucketGroups     = "klaxon_groups"
	BucketWindows    = "klaxon_windows"
	BucketSilences   = "klaxon_silences"
	BucketHeartbeats = "klaxon_heartbeats"
	BucketSLO        = "klaxon_slo"
	BucketNotifyLog  = "klaxon_nflog"
	BucketSlackRefs  = "klaxon_slack_refs"
)

// IngestSubject is where a received item of a tenant and source is published.
func IngestSubject(tenant, source string) string {
	return subjIn + "." + Token(tenant) + "." + Token(source)
}

// NotifySubject carries notifications for one receiver of a tenant.
func NotifySubject(tenant, receiver string) string {
	return subjOut + "." + Token(tenant) + "." + Token(receiver)
}

// DeferSubject holds a notification deferred until its next delivery (see
// Message.At): one subject per deferred delivery, id a token unique to it, in
// the NOTIFY stream but outside NotifyFilter, so no consumer takes it; at
// its time JetStream publishes it back to its NotifySubject.
func DeferSubject(tenant, receiver, id string) string {
	return subjDefer + "." + Token(tenant) + "." + Token(receiver) + "." + Token(id)
}

// DLQSubject carries dead letters for one receiver of a tenant.
func DLQSubject(tenant, receiver string) string {
	return subjDLQ + "." + Token(tenant) + "." + Token(receiver)
}

// AuditSubject carries audit records of a tenant.
func AuditSubject(tenant string) string { return subjAudit + "." + Token(tenant) }

// IngestFilter matches every ingested item of a tenant ("*" for all).
func IngestFilter(tenant string) string { return subjIn + "." + tokenOrWildcard(tenant) + ".>" }

// NotifyFilter matches every notification of a tenant ("*" for all).
func NotifyFilter(tenant string) string { return subjOut + "." + tokenOrWildcard(tenant) + ".>" }

// DLQFilter matches every dead letter of a tenant ("*" for all).
func DLQFilter(tenant string) string { return subjDLQ + "." + tokenOrWildcard(tenant) + ".>" }

// AuditFilter matches the audit records of a tenant ("*" for all).
func AuditFilter(tenant string) string { return subjAudit + "." + tokenOrWildcard(tenant) }

func tokenOrWildcard(s string) string {
	if s == "*" || s == "" {
		return "*"
	}
	return Token(s)
}

// Token makes s safe as one subject token. Tenant names are validated to be
// safe already; receiver names are free text in Alertmanager configs, so
// anything outside [A-Za-z0-9_-] is escaped as _XX (hex), which is reversible
// and cannot collide with a safe name containing no '_'... and '_' itself is
// escaped too, so the mapping is injective.
func Token(s string) string {
	safe := true
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			safe = false
			break
		}
	}
	if safe && s != "" {
		return s
	}
	var sb strings.Builder
	if s == "" {
		return "_"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if tokenByte(c) {
			sb.WriteByte(c)
			continue
		}
		fmt.Fprintf(&sb, "_%02X", c)
	}
	return sb.String()
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
}

func (b *Bus) streamConfigs() []jetstream.StreamConfig {
	l := b.cfg.Limits
	mk := func(name, subj string, age time.Duration, bytes int64, desc string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{subj + ".>"},
			Storage:     jetstream.FileStorage,
			Replicas:    b.cfg.Replicas,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      age,
			MaxBytes:    bytes,
			Discard:     jetstream.DiscardOld,
			Duplicates:  l.Duplicates,
		}
	}
	notify := mk(StreamNotify, subjOut, l.NotifyMaxAge, l.NotifyMaxBytes, "notifications to deliver")
	// Deferred notifications (Message.At) are scheduled messages of NOTIFY:
	// NATS 2.12 or later.
	notify.Subjects = append(notify.Subjects, subjDefer+".>")
	notify.AllowMsgSchedules = true
	return []jetstream.StreamConfig{
		mk(StreamIngest, subjIn, l.IngestMaxAge, l.IngestMaxBytes, "alerts and events received over HTTP"),
		notify,
		mk(StreamDLQ, subjDLQ, l.DLQMaxAge, l.DLQMaxBytes, "notifications that exhausted their attempts"),
		mk(StreamAudit, subjAudit, l.AuditMaxAge, l.AuditMaxBytes, "what was sent, for tail and audit"),
	}
}

// declare creates or updates the streams, and notes whether NOTIFY can
// schedule messages: a NATS server older than 2.12 ignores the setting, and
// a message published for later there would be stored and never delivered.
func (b *Bus) declare(ctx context.Context) error {
	for _, sc := range b.streamConfigs() {
		if err := b.retry(ctx, "declare stream "+sc.Name, func(ctx context.Context) error {
			st, err := b.JS.CreateOrUpdateStream(ctx, sc)
			if err == nil && sc.Name == StreamNotify {
				b.schedules = st.CachedInfo().Config.AllowMsgSchedules
			}
			return err
		}); err != nil {
			return err
		}
	}
	if !b.schedules {
		b.log.Warn("the NATS server does not schedule messages (NATS 2.12 or later does): notifications waiting on a failing integration stay pending on the notifier's consumer, and enough of them hold up every receiver's")
	}
	return nil
}

// Schedules reports whether NOTIFY takes messages for later (Message.At).
func (b *Bus) Schedules() bool { return b.schedules }

// retry runs a JetStream API call until it succeeds, each attempt bounded to
// 5s, for up to a minute: a cluster that is still electing its JetStream
// leader, or that just lost a node, answers with errors or not at all for a
// while (every pod starting at once, a rolling restart).
func (b *Bus) retry(ctx context.Context, what string, call func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		err := call(actx)
		acancel()
		if err == nil {
			return nil
		}
		b.log.Warn(what+"; retrying", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, err)
		case <-time.After(wait):
		}
	}
}

// KV opens (creating if needed) a key-value bucket with the bus replication.
// ttl bounds the age of entries (0 = forever).
func (b *Bus) KV(ctx context.Context, bucket string, ttl time.Duration) (jetstream.KeyValue, error) {
	var kv jetstream.KeyValue
	err := b.retry(ctx, "kv bucket "+bucket, func(ctx context.Context) (err error) {
		kv, err = b.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:   bucket,
			History:  1,
			TTL:      ttl,
			Storage:  jetstream.FileStorage,
			Replicas: b.cfg.Replicas,
		})
		return err
	})
	return kv, err
}
