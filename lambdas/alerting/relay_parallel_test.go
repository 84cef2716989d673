package alerting_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/lambdas/alerting"
)

// With the receiver down, every notice of a message goes out within the
// run's deadline though one destination hangs: the notices are sent side
// by side. One after another, the first took the whole deadline waiting on
// the hanging destination, and the others never went out, not even to the
// destination that answers at once.
func TestRelayFallbackSendsNoticesSideBySide(t *testing.T) {
	fast := &recordingNotifier{}
	r := &alerting.Relay{Fallback: alerting.Fanout{hangingNotifier{}, fast}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	notices := []*alerting.Notice{{Key: "a", Summary: "a"}, {Key: "b", Summary: "b"}, {Key: "c", Summary: "c"}}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := r.Deliver(ctx, alerting.PathEventBridge, []byte("[]"), nil, notices); err != nil {
		t.Fatalf("Deliver: %v; want every notice delivered to the destination that answers", err)
	}
	if got := fast.keys(); len(got) != 3 {
		t.Fatalf("the answering destination got %v, want all three notices", got)
	}
}

type hangingNotifier struct{}

func (hangingNotifier) Name() string { return "hanging" }
func (hangingNotifier) Notify(ctx context.Context, _ *alerting.Notice) error {
	<-ctx.Done()
	return ctx.Err()
}

// recordingNotifier takes a notice only while its context is live, as a
// real HTTP call would.
type recordingNotifier struct {
	mu  sync.Mutex
	got []string
}

func (*recordingNotifier) Name() string { return "recording" }
func (n *recordingNotifier) Notify(ctx context.Context, no *alerting.Notice) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.mu.Lock()
	n.got = append(n.got, no.Key)
	n.mu.Unlock()
	return nil
}

func (n *recordingNotifier) keys() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.got...)
}
