package receiver

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
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
	// LabelsToSignature is the same hash as LabelSet.Fingerprint, without
	// copying the map into a LabelSet first.
	// Rendered as Fingerprint.String's %016x is, without fmt: big-endian
	// bytes in hex are the zero-padded 16 digits.
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], model.LabelsToSignature(labels))
	return hex.EncodeToString(b[:])
}

func alertIdentity(fp, status string, startsAt, endsAt time.Time) string {
	b := make([]byte, 0, len(fp)+len(status)+44)
	b = append(b, fp...)
	b = append(b, '|')
	b = append(b, status...)
	b = append(b, '|')
	b = strconv.AppendInt(b, startsAt.UnixNano(), 10)
	b = append(b, '|')
	if !endsAt.IsZero() {
		b = strconv.AppendInt(b, endsAt.UnixNano(), 10)
	}
	return string(b)
}
