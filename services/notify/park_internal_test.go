package notify

import (
	"context"
	"testing"
	"time"

	"github.com/klaxon-sh/klaxon/services/bus"
	"github.com/klaxon-sh/klaxon/services/bus/bustest"
)

// Parking an integration never overwrites its delivery recorded meanwhile
// (another replica sent the same notification since this one failed): a
// Put over the record made a replay of the parked letter send it again.
// Nothing recorded, or a dead mark (a replayed letter that failed for good
// again), is parked.
func TestParkKeepsARecordedDelivery(t *testing.T) {
	ctx := context.Background()
	b := bustest.New(t)
	kv, err := b.KV(ctx, bus.BucketNotifyLog, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := &Pipeline{nflog: kv, cfg: Config{Now: time.Now}, log: bustest.Logger(t)}
	in := Integration{Name: "webhook"}
	sent := time.Now().UTC().Format(time.RFC3339Nano)
	for _, tc := range []struct {
		before string // "" for nothing recorded
		parked bool
	}{
		{"", true},
		{deadMarkPrefix + sent, true},
		{sent, false},
		{"skipped", false},
		{supersededMarkPrefix + sent + " by k-next", false},
	} {
		key := "k-" + time.Now().Format("150405.000000000") + ".webhook-0"
		if tc.before != "" {
			if _, err := kv.Put(ctx, key, []byte(tc.before)); err != nil {
				t.Fatal(err)
			}
		}
		p.park(ctx, key, giveUpMark(parkedMarkPrefix, time.Now(), ""), in)
		e, err := kv.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if got := parkedMark(e.Value()); got != tc.parked {
			t.Errorf("recorded %q: parked %v (now %q), want %v", tc.before, got, e.Value(), tc.parked)
		}
	}
}
