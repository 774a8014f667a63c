package state

import (
	"maps"
	"slices"
	"time"

	"github.com/nodehealthd/nodehealthd/internal/condition"
	"github.com/nodehealthd/nodehealthd/internal/finding"
)

// CustomCondition is a condition type beyond the five that the daemon owns
// on the Node: declared in config.yaml now, or declared before and removed
// since (Removed set), in which case it is deleted from the Node on every
// write. Keeping removed types here is what makes their removal survive a
// restart: the config no longer names them.
type CustomCondition struct {
	condition.Declared
	Removed time.Time `json:"removed,omitzero"`
}

// MaxRemovedConditions bounds the removed types remembered; past it the
// longest removed are forgotten (they have been deleted from the Node on
// every write since).
const MaxRemovedConditions = 64

// DeclareConditions records the custom condition types config.yaml declares
// now; types declared before and missing from declared are marked removed.
// It reports whether the record changed.
func (s *State) DeclareConditions(declared map[string]condition.Declared, now time.Time) bool {
	changed := false
	if s.Custom == nil {
		s.Custom = map[string]CustomCondition{}
	}
	for t, d := range declared {
		if c, ok := s.Custom[t]; !ok || c.Declared != d || !c.Removed.IsZero() {
			s.Custom[t] = CustomCondition{Declared: d}
			changed = true
		}
	}
	var removed []string
	for t, c := range s.Custom {
		if _, ok := declared[t]; ok {
			continue
		}
		if c.Removed.IsZero() {
			c.Removed = now
			s.Custom[t] = c
			changed = true
		}
		removed = append(removed, t)
	}
	if len(removed) > MaxRemovedConditions {
		slices.SortFunc(removed, func(a, b string) int { return s.Custom[a].Removed.Compare(s.Custom[b].Removed) })
		for _, t := range removed[:len(removed)-MaxRemovedConditions] {
			delete(s.Custom, t)
		}
		changed = true
	}
	return changed
}

// declared is the custom types declared now.
func (s *State) declared() map[string]condition.Declared {
	out := map[string]condition.Declared{}
	for t, c := range s.Custom {
		if c.Removed.IsZero() {
			out[t] = c.Declared
		}
	}
	return out
}

// OwnedConditions lists every condition type the daemon owns on the Node:
// the five and the custom types, declared or removed. A publisher deletes
// the owned types that are not in Conditions.
func (s *State) OwnedConditions() []string {
	out := slices.Clone(finding.Conditions)
	for _, t := range slices.Sorted(maps.Keys(s.Custom)) {
		if !finding.IsCondition(t) {
			out = append(out, t)
		}
	}
	return out
}
