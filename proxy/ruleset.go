package proxy

import "sync/atomic"

// RuleSet holds the rules in force and lets them be replaced while requests
// are served: [Config].RuleSet takes one instead of fixed [Config].Rules.
// Each request reads the set once and is judged wholly by it (the
// normalization options, the route, its scopes), so it sees either the old
// or the new rules, never a mix. The zero value holds no rules; it is safe
// for concurrent use.
type RuleSet struct {
	p atomic.Pointer[Rules]
}

// NewRuleSet returns a RuleSet holding r.
func NewRuleSet(r *Rules) *RuleSet {
	s := &RuleSet{}
	s.Store(r)
	return s
}

// Load returns the rules in force, nil before the first Store.
func (s *RuleSet) Load() *Rules { return s.p.Load() }

// Store puts r in force for every request that starts from now on. Build r
// with [ParseRules] or [NewRules] first: only rules that compiled can be
// stored. Store(nil) does nothing, so rules once in force are never
// removed, only replaced.
func (s *RuleSet) Store(r *Rules) {
	if r != nil {
		s.p.Store(r)
	}
}
