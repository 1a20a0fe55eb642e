package rules

import (
	"slices"
	"time"

	"github.com/expr-lang/expr/vm"
)

// stateDef is the part of a rule's definition, besides its topic filters, that its state
// (windows, `for` clocks, throttles, previous payloads, and the counters with them)
// depends on. Expressions are compared by their source text, sizes and durations by
// their effective values (defaults applied). It is comparable with ==.
type stateDef struct {
	stateful   bool // whether the rule keeps state at all (an action may start using `prev`)
	cond       string
	key        string
	over       time.Duration
	count      int
	of         string
	maxSamples int
	forD       time.Duration
	throttle   time.Duration
	maxKeys    int
}

func (r *Rule) stateDef() stateDef {
	d := stateDef{stateful: r.stateful, cond: src(r.cond), key: src(r.key), forD: r.For, throttle: r.Throttle, maxKeys: r.maxKeys}
	if w := r.window; w != nil {
		d.over, d.count, d.of, d.maxSamples = w.over, w.count, src(w.of), w.maxSamples
	}
	return d
}

// equalState reports whether next may take over prev's state: the same topic filters, in
// the same order, and the same stateDef (as Prometheus compares rule groups with Equals
// before copying their state).
func equalState(prev, next *Rule) bool {
	return slices.Equal(prev.Filters, next.Filters) && prev.stateDef() == next.stateDef()
}

// src is an expression's source text ("" when absent).
func src(p *vm.Program) string {
	if p == nil {
		return ""
	}
	return p.Source().String()
}
