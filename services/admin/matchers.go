package admin

import (
	"fmt"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
)

func nowPB(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func matcherType(t labels.MatchType) adminv1.MatcherType {
	switch t {
	case labels.MatchEqual:
		return adminv1.MatcherType_MATCHER_TYPE_EQUAL
	case labels.MatchNotEqual:
		return adminv1.MatcherType_MATCHER_TYPE_NOT_EQUAL
	case labels.MatchRegexp:
		return adminv1.MatcherType_MATCHER_TYPE_REGEXP
	case labels.MatchNotRegexp:
		return adminv1.MatcherType_MATCHER_TYPE_NOT_REGEXP
	}
	return adminv1.MatcherType_MATCHER_TYPE_UNSPECIFIED
}

// ToLabelsMatcher converts an API matcher to Alertmanager's (stores use it
// to evaluate silences exactly as Alertmanager does).
func ToLabelsMatcher(m *adminv1.Matcher) (*labels.Matcher, error) { return toLabelsMatcher(m) }

func toLabelsMatcher(m *adminv1.Matcher) (*labels.Matcher, error) {
	if m.GetName() == "" {
		return nil, fmt.Errorf("label name is required")
	}
	var t labels.MatchType
	switch m.GetType() {
	case adminv1.MatcherType_MATCHER_TYPE_EQUAL, adminv1.MatcherType_MATCHER_TYPE_UNSPECIFIED:
		t = labels.MatchEqual
	case adminv1.MatcherType_MATCHER_TYPE_NOT_EQUAL:
		t = labels.MatchNotEqual
	case adminv1.MatcherType_MATCHER_TYPE_REGEXP:
		t = labels.MatchRegexp
	case adminv1.MatcherType_MATCHER_TYPE_NOT_REGEXP:
		t = labels.MatchNotRegexp
	default:
		return nil, fmt.Errorf("unknown matcher type %v", m.GetType())
	}
	return labels.NewMatcher(t, m.GetName(), m.GetValue())
}

// FromLabelsMatcher converts Alertmanager's matcher to the API's.
func FromLabelsMatcher(m *labels.Matcher) *adminv1.Matcher {
	return &adminv1.Matcher{Name: m.Name, Value: m.Value, Type: matcherType(m.Type)}
}
