package rules

// Fresh returns a copy of s that shares its compiled rules but has empty state, unarmed
// schedules and zeroed counters: a dry run evaluates on it without touching the running
// rules and without loading the rule files again.
func (s *Set) Fresh() *Set {
	out := &Set{Functions: s.Functions, matcher: s.matcher, opts: s.opts, files: s.files}
	out.Rules = make([]*Rule, len(s.Rules))
	for i, r := range s.Rules {
		c := *r
		c.counters = &Counters{}
		if c.state != nil {
			c.state = newRuleState(c.maxKeys)
		}
		if c.sched != nil {
			c.sched = &schedState{}
		}
		out.Rules[i] = &c
	}
	if p := s.agents.Load(); p != nil {
		out.agents.Store(p)
	}
	return out
}

// Matches reports whether some rule's `on` filter matches topic: a message no rule can
// match need not be taken into the engine at all.
func (s *Set) Matches(topic string) bool {
	var buf [4]int32
	return len(s.matcher.Match(topic, buf[:0])) > 0
}
