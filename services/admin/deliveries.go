package admin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/notify"
)

const (
	defaultDeliveries = 50
	defaultLetters    = 100
	maxListed         = 1000
	// maxAuditScan bounds how many AUDIT messages one ListDeliveries reads
	// while looking for rare matches (a filter nothing matches must not read
	// a week of audit).
	maxAuditScan = 100_000
)

func clampLimit(n int32, def int) int {
	switch {
	case n <= 0:
		return def
	case n > maxListed:
		return maxListed
	}
	return int(n)
}

// ListDeliveries returns the newest audit records of the tenant. JetStream
// reads forward only, so it reads a window at the end of the stream and
// widens it (×4) until enough records match or the stream start is reached.
func (s *Server) ListDeliveries(ctx context.Context, req *adminv1.ListDeliveriesRequest) (*adminv1.ListDeliveriesResponse, error) {
	limit := clampLimit(req.GetLimit(), defaultDeliveries)
	st, err := s.cfg.Bus.JS.Stream(ctx, bus.StreamAudit)
	if err != nil {
		return nil, toStatus(ctx, "audit stream", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return nil, toStatus(ctx, "audit stream", err)
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	resp := &adminv1.ListDeliveriesResponse{}
	if info.State.Msgs == 0 {
		return resp, nil
	}
	match := func(r *klaxonv1.AuditRecord) bool {
		return (req.GetReceiver() == "" || r.GetNotification().GetReceiver() == req.GetReceiver()) &&
			(req.GetOutcome() == "" || r.GetOutcome() == req.GetOutcome())
	}
	filter := bus.AuditFilter(TenantFrom(ctx))
	for window := uint64(limit) * 4; ; window *= 4 {
		start := first
		if last >= window && last-window+1 > first {
			start = last - window + 1
		}
		found, err := readAudit(ctx, st, filter, start, last, match)
		if err != nil {
			return nil, toStatus(ctx, "read audit", err)
		}
		if len(found) >= limit || start == first || last-start+1 >= maxAuditScan {
			slices.Reverse(found)
			resp.Deliveries = found[:min(limit, len(found))]
			return resp, nil
		}
	}
}

// readAudit returns the matching records with sequences in [start, last],
// oldest first, through an ephemeral ordered consumer (no server state left
// behind, other readers undisturbed).
func readAudit(ctx context.Context, st jetstream.Stream, filter string, start, last uint64, match func(*klaxonv1.AuditRecord) bool) ([]*adminv1.Delivery, error) {
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
		// A one-shot read, deleted when done (else dropped 10 s after it,
		// not the default 5 min): polled, they piled up to the server's
		// consumer limit.
		InactiveThreshold: 10 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if ci := cons.CachedInfo(); ci != nil {
			_ = st.DeleteConsumer(context.WithoutCancel(ctx), ci.Name)
		}
	}()
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, err
	}
	pending := info.NumPending
	var out []*adminv1.Delivery
	for pending > 0 {
		// Bounded by the call's deadline as well as by a second of silence.
		fctx, cancel := context.WithTimeout(ctx, time.Second)
		batch, err := cons.Fetch(int(min(pending, 256)), jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			return nil, err
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil {
				continue
			}
			pending = md.NumPending
			if md.Sequence.Stream > last {
				// Written after the call began: the next call shows it.
				pending = 0
				break
			}
			var rec klaxonv1.AuditRecord
			if err := proto.Unmarshal(msg.Data(), &rec); err != nil || !match(&rec) {
				continue
			}
			out = append(out, &adminv1.Delivery{Seq: md.Sequence.Stream, Record: &rec})
		}
		cancel()
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if got == 0 {
			break
		}
	}
	return out, nil
}

// ListDeadLetters lists the DLQ of the tenant (every tenant for "*").
func (s *Server) ListDeadLetters(ctx context.Context, req *adminv1.ListDeadLettersRequest) (*adminv1.ListDeadLettersResponse, error) {
	limit := clampLimit(req.GetLimit(), defaultLetters)
	f := notify.DeadLetterFilter{Tenant: s.scope(ctx), Receiver: req.GetReceiver(), Limit: limit}
	if f.Tenant == "" {
		// notify filters by receiver only within a tenant; read all, filter here.
		f.Receiver, f.Limit = "", maxAuditScan
	}
	letters, err := notify.ListDeadLetters(ctx, s.cfg.Bus, f)
	if err != nil {
		return nil, toStatus(ctx, "list dead letters", err)
	}
	resp := &adminv1.ListDeadLettersResponse{}
	for _, dl := range letters {
		if req.GetReceiver() != "" && dl.GetNotification().GetReceiver() != req.GetReceiver() {
			continue
		}
		resp.DeadLetters = append(resp.DeadLetters, &adminv1.DeadLetter{
			Seq: dl.Seq, StoredAt: timestamppb.New(dl.Stored), Letter: dl.DeadLetter,
		})
		if len(resp.DeadLetters) == limit {
			break
		}
	}
	return resp, nil
}

// ReplayDeadLetter hands the letter back to NOTIFY with notify.Replay, which
// publishes before it deletes (a crash between the two replays twice, and
// the notification log makes the second one a no-op).
func (s *Server) ReplayDeadLetter(ctx context.Context, req *adminv1.ReplayDeadLetterRequest) (*adminv1.ReplayDeadLetterResponse, error) {
	if req.GetSeq() == 0 {
		return nil, status.Error(codes.InvalidArgument, "seq: the DLQ sequence of the dead letter is required (klaxonctl dlq list shows it)")
	}
	n, err := notify.Replay(ctx, s.cfg.Bus, s.scope(ctx), req.GetSeq())
	if err != nil {
		return nil, toStatus(ctx, fmt.Sprintf("replay dead letter %d", req.GetSeq()), err)
	}
	s.log.Info("dead letter replayed", "tenant", n.GetTenant(), "receiver", n.GetReceiver(), "seq", req.GetSeq())
	return &adminv1.ReplayDeadLetterResponse{Notification: n}, nil
}

// scope is the tenant as notify's helpers take it: "" for every tenant.
func (s *Server) scope(ctx context.Context) string {
	if t := TenantFrom(ctx); t != AllTenants {
		return t
	}
	return ""
}
