package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/admin/v1"
	klaxonv1 "github.com/klaxon-sh/klaxon/proto/gen/klaxon/v1"
	"github.com/klaxon-sh/klaxon/services/admin"
)

// silenceStore keeps silences in memory: the CLI's output is under test
// here, not the engine's store.
type silenceStore struct {
	mu  sync.Mutex
	all []*adminv1.Silence
}

func (m *silenceStore) CreateSilence(_ context.Context, _ string, s *adminv1.Silence) (*adminv1.Silence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s = proto.Clone(s).(*adminv1.Silence)
	s.Id = fmt.Sprintf("sil-%d", len(m.all)+1)
	s.State = adminv1.SilenceState_SILENCE_STATE_ACTIVE
	m.all = append(m.all, s)
	return s, nil
}

func (m *silenceStore) ExpireSilence(_ context.Context, _, id string) (*adminv1.Silence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.all {
		if s.Id == id {
			s.State = adminv1.SilenceState_SILENCE_STATE_EXPIRED
			return s, nil
		}
	}
	return nil, fmt.Errorf("silence %s: %w", id, admin.ErrNotFound)
}

func (m *silenceStore) ListSilences(context.Context, string) ([]*adminv1.Silence, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*adminv1.Silence(nil), m.all...), nil
}

func TestSilenceVerbsGolden(t *testing.T) {
	now := time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	s := startServer(t, func(c *admin.Config) {
		c.Silences = &silenceStore{}
		c.Now = func() time.Time { return now }
	})
	code, out, errOut := s.ctl(t, "silence", "add", "alertname=DiskFull", `instance=~"db-.*"`,
		"--start", "2026-11-24T08:00:00Z", "--duration", "2h", "-a", "ops", "-c", "disk swap")
	if code != 0 || out != "sil-1\n" {
		t.Fatalf("silence add: exit %d, %q, %q", code, out, errOut)
	}
	code, _, errOut = s.ctl(t, "silence", "add", "alertname=CPU", "--end", "2026-11-24T09:00:00Z", "-a", "ops")
	if code != 0 {
		t.Fatalf("silence add --end: exit %d, %q", code, errOut)
	}
	code, _, errOut = s.ctl(t, "silence", "add", `a=~"("`)
	if code != 2 || !strings.Contains(errOut, "matcher") {
		t.Fatalf("bad matcher: exit %d, %q", code, errOut)
	}
	code, out, errOut = s.ctl(t, "silence", "expire", "sil-2")
	if code != 0 || out != "expired sil-2\n" {
		t.Fatalf("expire: exit %d, %q, %q", code, out, errOut)
	}
	code, _, errOut = s.ctl(t, "silence", "expire", "sil-9")
	if code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("expire unknown: exit %d, %q", code, errOut)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"silence-list.table", []string{"silence", "list"}},
		{"silence-list-expired.table", []string{"silence", "list", "--expired"}},
		{"silence-list.json", []string{"-o", "json", "silence", "list"}},
	} {
		code, out, errOut := s.ctl(t, tc.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		golden(t, tc.name, out)
	}
}

type alertStore []*adminv1.AlertState

func (a alertStore) ListAlerts(context.Context, string) ([]*adminv1.AlertState, error) { return a, nil }

func TestAlertsListGolden(t *testing.T) {
	s := startServer(t, func(c *admin.Config) {
		c.Alerts = alertStore{
			{Tenant: "default", Fingerprint: "5f1c0a9e2b7d4c33", Labels: map[string]string{"alertname": "DiskFull", "instance": "db-1"},
				Annotations: map[string]string{"summary": "disk 97% full"}, Status: klaxonv1.AlertStatus_ALERT_STATUS_FIRING,
				StartsAt: timestamppb.New(at.Add(-time.Hour)), Receivers: []string{"sink", "oncall"}},
			{Tenant: "default", Fingerprint: "0a2b3c4d5e6f7081", Labels: map[string]string{"alertname": "CPU"},
				Status: klaxonv1.AlertStatus_ALERT_STATUS_FIRING, StartsAt: timestamppb.New(at.Add(-2 * time.Hour)),
				Receivers: []string{"sink"}, SilencedBy: []string{"sil-1"}},
		}
	})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"alerts-list.table", []string{"alerts", "list"}},
		{"alerts-list-silenced.table", []string{"alerts", "list", "--silenced"}},
		{"alerts-list.json", []string{"alerts", "list", "-o", "json", "alertname=DiskFull"}},
	} {
		code, out, errOut := s.ctl(t, tc.args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, errOut)
		}
		golden(t, tc.name, out)
	}
}
