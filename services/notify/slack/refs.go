package slack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/klaxon-sh/klaxon/services/notify"
)

// RefStore keeps message references; jetstream.KeyValue implements it.
type RefStore interface {
	Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error)
	Put(ctx context.Context, key string, value []byte) (uint64, error)
	Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error
}

// ref locates a posted message: chat.update needs the channel id Slack
// answered with (not the configured #name) and the message ts.
type ref struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
}

// refKey is a valid KV key for (tenant, receiver, integration, group key):
// group keys hold any character, so the key is their hash.
func (n *Notifier) refKey(no *notify.Notification) string {
	sum := sha256.Sum256([]byte(n.prefix + "\x00" + no.GroupKey))
	return "slack." + hex.EncodeToString(sum[:])
}

func (n *Notifier) loadRef(ctx context.Context, key string) (ref, bool) {
	if n.refs == nil {
		return ref{}, false
	}
	e, err := n.refs.Get(ctx, key)
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			n.log.Warn("cannot read slack message ref; posting a new message", "err", err)
		}
		return ref{}, false
	}
	var r ref
	if err := json.Unmarshal(e.Value(), &r); err != nil || r.Channel == "" || r.TS == "" {
		return ref{}, false
	}
	return r, true
}

func (n *Notifier) saveRef(ctx context.Context, key string, r ref) {
	if n.refs == nil {
		return
	}
	b, _ := json.Marshal(r)
	if _, err := n.refs.Put(ctx, key, b); err != nil {
		n.log.Warn("posted, but cannot store the slack message ref; the resolve will be a new message", "err", err)
	}
}

func (n *Notifier) deleteRef(ctx context.Context, key string) {
	if n.refs == nil {
		return
	}
	if err := n.refs.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		n.log.Warn("cannot delete slack message ref", "err", err)
	}
}
