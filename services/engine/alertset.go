package engine

import (
	"iter"
	"slices"

	"github.com/klaxon-sh/klaxon/services/fastjson"
)

// AlertSet is a group's alerts by fingerprint. Most groups hold one alert
// (group_by: ['...'], or a label per instance); a one-entry Go map costs
// about 200 bytes, a slice of one pointer 8. So a small set is a slice and
// only a set past smallSet alerts becomes a map, which keeps an alertname-
// wide group of 100k alerts at O(1) per change.
type AlertSet struct {
	small []*Alert
	large map[string]*Alert
}

const smallSet = 8

// Len is the number of alerts.
func (s *AlertSet) Len() int {
	if s.large != nil {
		return len(s.large)
	}
	return len(s.small)
}

// Get returns the alert of fingerprint fp, or nil.
func (s *AlertSet) Get(fp string) *Alert {
	if s.large != nil {
		return s.large[fp]
	}
	for _, a := range s.small {
		if a.Fingerprint == fp {
			return a
		}
	}
	return nil
}

// Set adds a, or replaces the alert of its fingerprint.
func (s *AlertSet) Set(a *Alert) {
	if s.large != nil {
		s.large[a.Fingerprint] = a
		return
	}
	for i, b := range s.small {
		if b.Fingerprint == a.Fingerprint {
			s.small[i] = a
			return
		}
	}
	if len(s.small) < smallSet {
		s.small = append(s.small, a)
		return
	}
	s.large = make(map[string]*Alert, 2*smallSet)
	for _, b := range s.small {
		s.large[b.Fingerprint] = b
	}
	s.large[a.Fingerprint] = a
	s.small = nil
}

// Delete removes the alert of fingerprint fp, if any.
func (s *AlertSet) Delete(fp string) {
	if s.large != nil {
		delete(s.large, fp)
		return
	}
	if i := slices.IndexFunc(s.small, func(a *Alert) bool { return a.Fingerprint == fp }); i >= 0 {
		s.small = slices.Delete(s.small, i, i+1)
		if len(s.small) == 0 {
			s.small = nil
		}
	}
}

// All yields fingerprint and alert, in no particular order (as a map
// would). Deleting during the loop is not supported: collect, then delete.
func (s *AlertSet) All() iter.Seq2[string, *Alert] {
	return func(yield func(string, *Alert) bool) {
		if s.large != nil {
			for fp, a := range s.large {
				if !yield(fp, a) {
					return
				}
			}
			return
		}
		for _, a := range s.small {
			if !yield(a.Fingerprint, a) {
				return
			}
		}
	}
}

// MarshalJSON writes the set as the object by fingerprint that
// map[string]*Alert was stored as (keys in order, as encoding/json sorts
// them), without building that map on every group write.
func (s AlertSet) MarshalJSON() ([]byte, error) { return s.appendJSON(nil), nil }

// UnmarshalJSON reads that object.
func (s *AlertSet) UnmarshalJSON(data []byte) error {
	var m map[string]*Alert
	if err := fastjson.Unmarshal(data, &m); err != nil {
		return err
	}
	*s = AlertSet{}
	fps := make([]string, 0, len(m))
	for fp := range m {
		fps = append(fps, fp)
	}
	slices.Sort(fps) // a stable order for the small form
	for _, fp := range fps {
		if a := m[fp]; a != nil {
			a.Fingerprint = fp
			s.Set(a)
		}
	}
	return nil
}
