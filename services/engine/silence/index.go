package silence

import (
	"sync"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/common/model"
)

// tenantSet indexes a tenant's silences for Mutes: each silence is filed
// under one of its equality matchers (name=value), so an alert only tests
// the silences filed under its own labels plus the few without one, instead
// of every silence of the tenant.
type tenantSet struct {
	mu      sync.Mutex
	byID    map[string]*compiled
	index   map[model.LabelName]map[string][]*compiled
	rest    []*compiled
	dirty   bool
	expires time.Time // earliest EndsAt among indexed silences: prune after
}

type compiled struct {
	sil      *Silence
	matchers labels.Matchers
}

func newTenantSet() *tenantSet {
	return &tenantSet{byID: map[string]*compiled{}}
}

func (t *tenantSet) set(sil *Silence) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ms, err := sil.Compile()
	if err != nil {
		delete(t.byID, sil.ID)
	} else {
		t.byID[sil.ID] = &compiled{sil: sil, matchers: ms}
	}
	t.dirty = true
}

func (t *tenantSet) mutes(lset model.LabelSet, now time.Time) []string {
	t.mu.Lock()
	if t.dirty || (!t.expires.IsZero() && !now.Before(t.expires)) {
		t.rebuild(now)
	}
	index, rest := t.index, t.rest
	t.mu.Unlock()
	var ids []string
	test := func(cs []*compiled) {
		for _, c := range cs {
			if c.sil.State(now) == StateActive && c.matchers.Matches(lset) {
				ids = append(ids, c.sil.ID)
			}
		}
	}
	for name, value := range lset {
		if byValue, ok := index[name]; ok {
			test(byValue[string(value)])
		}
	}
	test(rest)
	return ids
}

// rebuild indexes the silences that are active now or will be: expired ones
// never mute again, so they are left out (they stay in byID for listing).
func (t *tenantSet) rebuild(now time.Time) {
	t.index = map[model.LabelName]map[string][]*compiled{}
	t.rest = nil
	t.expires = time.Time{}
	for id, c := range t.byID {
		if c.sil.State(now) == StateExpired {
			delete(t.byID, id)
			continue
		}
		if t.expires.IsZero() || c.sil.EndsAt.Before(t.expires) {
			t.expires = c.sil.EndsAt
		}
		filed := false
		for _, m := range c.matchers {
			if m.Type == labels.MatchEqual && m.Value != "" {
				byValue := t.index[model.LabelName(m.Name)]
				if byValue == nil {
					byValue = map[string][]*compiled{}
					t.index[model.LabelName(m.Name)] = byValue
				}
				byValue[m.Value] = append(byValue[m.Value], c)
				filed = true
				break
			}
		}
		if !filed {
			t.rest = append(t.rest, c)
		}
	}
	t.dirty = false
}
