package rules

import (
	"maps"
	"slices"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/deviceless/deviceless/protocol"
)

// Diff is what a reload (Set.Adopt) changed, rule by rule, as nats-server's reload lists
// its changed options. Every rule of the new set is in exactly one of Added, Reset,
// Changed and Kept; Removed lists the rules of the old set that are gone. Names are in
// file order. Functions are not compared: a function's new spec applies from the next
// invocation on, whichever rule invokes it.
type Diff struct {
	// Added are new names: their state starts empty.
	Added []string `json:"added"`
	// Removed are gone, with their state.
	Removed []string `json:"removed"`
	// Reset kept their name but changed a stateful part of their definition (filters, if,
	// key, window, for, throttle, max_keys, schedule): a new rule under an old name, whose state,
	// counters and last error start empty.
	Reset []string `json:"reset"`
	// Changed kept their stateful definition but changed their actions, description or
	// catch_up: state (a schedule's next run), counters and last error are carried over,
	// the new actions apply.
	Changed []string `json:"changed"`
	// Kept are unchanged (a change of position only): state carried over.
	Kept []string `json:"kept"`
}

// stateDef is the part of a rule's definition, besides its topic filters, that its state
// (windows, `for` clocks, throttles, previous payloads, and the counters with them)
// depends on. Expressions are compared by their source text, sizes and durations by
// their effective values (defaults applied). It is comparable with ==.
type stateDef struct {
	prev       bool // whether the rule remembers the previous payload (`prev` anywhere in it)
	cond       string
	key        string
	over       time.Duration
	count      int
	of         string
	maxSamples int
	forD       time.Duration
	throttle   time.Duration
	maxKeys    int
	schedule   string // every, or cron and zone; catch_up is not part of the clock
}

func (r *Rule) stateDef() stateDef {
	d := stateDef{prev: r.uses&usePrev != 0, cond: src(r.cond), key: src(r.key), forD: r.For, throttle: r.Throttle, maxKeys: r.maxKeys}
	if w := r.window; w != nil {
		d.over, d.count, d.of, d.maxSamples = w.over, w.count, src(w.of), w.maxSamples
	}
	if s := r.Schedule; s != nil {
		d.schedule = s.String()
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

// equalActions reports whether two rules' actions are the same, expressions by their
// source text and functions by name.
func equalActions(a, b *Rule) bool {
	return slices.EqualFunc(a.actions, b.actions, func(x, y *actionSpec) bool {
		return x.kind == y.kind && functionName(x.function) == functionName(y.function) &&
			equalTarget(x.target, y.target) && slices.Equal(x.argNames, y.argNames) &&
			slices.EqualFunc(x.args, y.args, func(p, q *vm.Program) bool { return src(p) == src(q) }) &&
			x.line == y.line && src(x.value) == src(y.value) && x.dur == y.dur && x.expire == y.expire &&
			src(x.topic) == src(y.topic) && payloadSrc(x) == payloadSrc(y) && x.qos == y.qos && x.retain == y.retain
	})
}

// payloadSrc is a publish payload's source; without one the event is forwarded, which is
// what `raw` says.
func payloadSrc(a *actionSpec) string {
	if a.kind == Publish && a.payload == nil {
		return "raw"
	}
	return src(a.payload)
}

func functionName(f *Function) string {
	if f == nil {
		return ""
	}
	return f.Name
}

func equalTarget(a, b protocol.Target) bool {
	return a.Agent == b.Agent && a.Pick == b.Pick && maps.Equal(a.Labels, b.Labels)
}

func catchUp(r *Rule) bool { return r.Schedule != nil && r.Schedule.CatchUp }
