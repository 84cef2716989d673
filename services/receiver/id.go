package receiver

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// EnvelopeID is the deterministic message id used for JetStream dedup: the
// same item from the same source for the same tenant always gets the same id.
func EnvelopeID(tenant, source, identity string) string {
	h := sha256.New()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(source))
	h.Write([]byte{0})
	h.Write([]byte(identity))
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Fingerprint is Alertmanager's fingerprint of a label set, so Klaxon and
// Alertmanager agree on alert identity.
func Fingerprint(labels map[string]string) string {
	ls := make(model.LabelSet, len(labels))
	for k, v := range labels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls.Fingerprint().String()
}

func alertIdentity(fp, status string, startsAt, endsAt time.Time) string {
	return strings.Join([]string{fp, status, startsAt.UTC().Format(time.RFC3339Nano), endsAt.UTC().Format(time.RFC3339Nano)}, "|")
}
