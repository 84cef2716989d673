package admin

import (
	"context"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/alertmanager/pkg/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
)

// TailReadyHeader is sent as response header once the tail's subscriptions
// are registered with NATS: everything published after the client has seen
// it will be streamed (clients and tests wait for it instead of sleeping).
const TailReadyHeader = "x-klaxon-tail"

// TailTenantHeader, sent with TailReadyHeader, names the tenant tailed (the
// one the token implies when the caller named none).
const TailTenantHeader = "x-klaxon-tenant"

// tailBuffer is how many items may wait for a slow client before NATS drops
// (and the dropped counter counts) the excess.
const tailBuffer = 4096

// Tail streams what comes in (klaxon.in.<tenant>.>) and what goes out
// (klaxon.out.<tenant>.> and klaxon.audit.<tenant>) through core NATS subscriptions: they see every
// message JetStream stores, cost no stream state, and end with the call.
func (s *Server) Tail(req *adminv1.TailRequest, stream grpc.ServerStreamingServer[adminv1.TailResponse]) error {
	ctx := stream.Context()
	f, err := newTailFilter(req)
	if err != nil {
		return err
	}
	tenant := TenantFrom(ctx)
	nc := s.cfg.Bus.NC
	ch := make(chan *nats.Msg, tailBuffer)
	var subjects []string
	if !req.GetNoIngest() {
		subjects = append(subjects, bus.IngestFilter(tenant))
	}
	if !req.GetNoDeliveries() {
		subjects = append(subjects, bus.NotifyFilter(tenant), bus.AuditFilter(tenant))
	}
	var subs []*nats.Subscription
	defer func() {
		for _, sub := range subs {
			if n, err := sub.Dropped(); err == nil && n > 0 {
				s.metrics.dropped.Add(float64(n))
			}
			_ = sub.Unsubscribe()
		}
	}()
	for _, subj := range subjects {
		sub, err := nc.ChanSubscribe(subj, ch)
		if err != nil {
			return toStatus(ctx, "subscribe "+subj, err)
		}
		_ = sub.SetPendingLimits(tailBuffer, 64<<20)
		subs = append(subs, sub)
	}
	// Flush makes the server register the subscriptions before the client
	// is told the tail is live.
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = nc.FlushWithContext(fctx)
	cancel()
	if err != nil {
		return toStatus(ctx, "subscribe", err)
	}
	select {
	case <-s.draining:
		// Not live, though subscribed: it would end at once.
		return status.Error(codes.Unavailable, "klaxon is shutting down")
	default:
	}
	if err := stream.SendHeader(metadata.Pairs(TailReadyHeader, "live", TailTenantHeader, tenant)); err != nil {
		return err
	}
	s.metrics.tailing.Inc()
	defer s.metrics.tailing.Dec()
	for {
		select {
		case <-ctx.Done():
			// The client went away or its deadline passed: a normal end.
			return nil
		case <-s.draining:
			return status.Error(codes.Unavailable, "klaxon is shutting down")
		case msg := <-ch:
			for _, item := range s.tailItems(msg, f) {
				if err := stream.Send(item); err != nil {
					return err
				}
			}
		}
	}
}

// tailItems decodes msg (an envelope batch into one item per envelope) and
// applies the filter.
func (s *Server) tailItems(msg *nats.Msg, f *tailFilter) []*adminv1.TailResponse {
	if strings.HasPrefix(msg.Subject, "klaxon.in.") {
		envs, err := bus.DecodeEnvelopes(msg.Header, msg.Data)
		if err != nil {
			s.log.Debug("tail: undecodable envelope", "subject", msg.Subject, "err", err)
			return nil
		}
		var out []*adminv1.TailResponse
		for _, env := range envs {
			if f.envelope(env) {
				out = append(out, &adminv1.TailResponse{Subject: msg.Subject, SeenAt: timestamppb.New(s.cfg.Now()),
					Item: &adminv1.TailResponse_Envelope{Envelope: env}})
			}
		}
		return out
	}
	if item := s.tailItem(msg, f); item != nil {
		return []*adminv1.TailResponse{item}
	}
	return nil
}

// tailItem decodes a delivery or a notification and applies the filter;
// nil means skip it.
func (s *Server) tailItem(msg *nats.Msg, f *tailFilter) *adminv1.TailResponse {
	resp := &adminv1.TailResponse{Subject: msg.Subject, SeenAt: timestamppb.New(s.cfg.Now())}
	if strings.HasPrefix(msg.Subject, "klaxon.audit.") {
		var rec klaxonv1.AuditRecord
		if err := proto.Unmarshal(msg.Data, &rec); err != nil {
			s.log.Debug("tail: undecodable audit record", "subject", msg.Subject, "err", err)
			return nil
		}
		if !f.delivery(&rec) {
			return nil
		}
		resp.Item = &adminv1.TailResponse_Delivery{Delivery: &rec}
		return resp
	}
	if strings.HasPrefix(msg.Subject, "klaxon.out.") {
		var n klaxonv1.Notification
		if err := proto.Unmarshal(msg.Data, &n); err != nil {
			s.log.Debug("tail: undecodable notification", "subject", msg.Subject, "err", err)
			return nil
		}
		if !f.notification(&n) {
			return nil
		}
		resp.Item = &adminv1.TailResponse_Notification{Notification: &n}
		return resp
	}
	return nil
}

// tailFilter: each filter applies to the items it concerns (sources to
// envelopes, receivers to deliveries, matchers to both); empty passes all.
type tailFilter struct {
	sources   map[string]bool
	receivers map[string]bool
	matchers  labels.Matchers
	// passed remembers notifications (by idempotency key) the matchers let
	// through, for their audit records.
	passed map[string]bool
}

func newTailFilter(req *adminv1.TailRequest) (*tailFilter, error) {
	ms, err := parseMatchers(req.GetMatchers())
	if err != nil {
		return nil, err
	}
	return &tailFilter{sources: set(req.GetSources()), receivers: set(req.GetReceivers()), matchers: ms, passed: map[string]bool{}}, nil
}

func set(ss []string) map[string]bool {
	if len(ss) == 0 {
		return nil
	}
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		m[s] = true
	}
	return m
}

func (f *tailFilter) envelope(env *klaxonv1.Envelope) bool {
	if f.sources != nil && !f.sources[env.GetSource()] {
		return false
	}
	if len(f.matchers) == 0 {
		return true
	}
	if a := env.GetAlert(); a != nil {
		return matches(f.matchers, a.GetLabels())
	}
	return matches(f.matchers, env.GetEvent().GetLabels())
}

// delivery filters an audit record. Records may carry only the
// notification's keys, not its labels: then the matchers' verdict on the
// notification itself (seen on klaxon.out just before) is reused.
func (f *tailFilter) delivery(rec *klaxonv1.AuditRecord) bool {
	n := rec.GetNotification()
	if len(f.matchers) > 0 && len(n.GetGroupLabels()) == 0 && len(n.GetAlerts()) == 0 {
		return (f.receivers == nil || f.receivers[n.GetReceiver()]) && f.passed[n.GetIdempotencyKey()]
	}
	return f.notification(n)
}

func (f *tailFilter) notification(n *klaxonv1.Notification) bool {
	if f.receivers != nil && !f.receivers[n.GetReceiver()] {
		return false
	}
	if len(f.matchers) == 0 {
		return true
	}
	ok := matches(f.matchers, n.GetGroupLabels())
	for _, a := range n.GetAlerts() {
		ok = ok || matches(f.matchers, a.GetLabels())
	}
	if ok && n.GetIdempotencyKey() != "" {
		if len(f.passed) >= maxRemembered {
			clear(f.passed) // bounded: a forgotten key only hides a late delivery line
		}
		f.passed[n.GetIdempotencyKey()] = true
	}
	return ok
}

// maxRemembered bounds the notifications a filtered tail remembers.
const maxRemembered = 10_000

// parseMatchers parses Alertmanager matcher strings; each string may hold
// several (`{a="b",c=~"d"}`), as amtool accepts them.
func parseMatchers(ss []string) (labels.Matchers, error) {
	var out labels.Matchers
	for _, s := range ss {
		ms, err := labels.ParseMatchers(s)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "matcher %q: %v", s, err)
		}
		out = append(out, ms...)
	}
	return out, nil
}

func matches(ms labels.Matchers, lset map[string]string) bool {
	for _, m := range ms {
		if !m.Matches(lset[m.Name]) {
			return false
		}
	}
	return true
}
