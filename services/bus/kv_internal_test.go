package bus

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

// Both answers JetStream gives a revision check that lost are a conflict:
// 10071, and 10164, which a replicated stream gives while another write to
// the key is in flight (callers retry on ErrConflict, and failed otherwise).
func TestRevisionMismatchCodesAreConflicts(t *testing.T) {
	for _, code := range []jetstream.ErrorCode{jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant} {
		err := fmt.Errorf("publish: %w", &jetstream.APIError{Code: 400, ErrorCode: code, Description: "wrong last sequence"})
		if !errors.Is(kvError(err), ErrConflict) {
			t.Errorf("error code %d is not a conflict", code)
		}
	}
	if errors.Is(kvError(&jetstream.APIError{Code: 503, ErrorCode: jetstream.JSErrCodeJetStreamNotEnabled}), ErrConflict) {
		t.Error("another API error is a conflict")
	}
}
