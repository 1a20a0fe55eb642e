package rules

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/deviceless/deviceless/protocol"
	"github.com/deviceless/deviceless/topic"
)

// Event is one message as the rules see it.
type Event struct {
	Topic   string
	Payload []byte
	Client  string
	QoS     byte
	Retain  bool
	Time    time.Time // when it was received; the rules' clock
}

// Firing is one rule firing on one event, with its actions evaluated.
type Firing struct {
	Rule    string
	Key     string
	Time    time.Time
	Actions []Action
	// Schedule is the run of a scheduled rule; nil for a firing on an event.
	Schedule *ScheduleRun
}

// Action is an evaluated action, ready for the engine to carry out.
type Action struct {
	Kind ActionKind
	// Invoke
	Function *Function
	Args     map[string]any
	// Invoke and Actuate
	Target protocol.Target
	// Actuate
	Line  string
	Value any
	For   time.Duration
	// Expire is how long the actuation may take to reach its agent (at least 1s).
	Expire time.Duration
	// Publish
	Topic   string
	Payload any
	QoS     byte
	Retain  bool
}

// Evaluator evaluates events against a Set. It reuses its buffers and expression VM, so
// it is cheap per event but must not be used by two goroutines at once: give each worker
// its own. The Set's state is shared and safe for concurrent evaluators.
type Evaluator struct {
	set     *Set
	vm      vm.VM
	env     Env
	matched []int32
	parts   []string
	keys    map[string]string // payload keys, interned (json.go)
	lazy    lazyPayload       // Eval's and Apply's event payload, when it is lazy
}

// NewEvaluator returns an evaluator for s.
func (s *Set) NewEvaluator() *Evaluator {
	e := &Evaluator{set: s, matched: make([]int32, 0, 16), keys: make(map[string]string)}
	e.vm.MemoryBudget = s.opts.MemoryBudget
	return e
}

// Match appends the indexes of the rules whose filters match topic, in rule order, once
// each.
func (s *Set) match(topic string, dst []int32) []int32 {
	dst = s.matcher.Match(topic, dst[:0])
	if len(dst) < 2 {
		return dst
	}
	// Insertion sort: a topic matches few rules, and this keeps the evaluation order
	// the order of the files.
	for i := 1; i < len(dst); i++ {
		for j := i; j > 0 && dst[j] < dst[j-1]; j-- {
			dst[j], dst[j-1] = dst[j-1], dst[j]
		}
	}
	out := dst[:1]
	for _, v := range dst[1:] {
		if v != out[len(out)-1] {
			out = append(out, v)
		}
	}
	return out
}

// Eval runs ev through every matching rule and appends the firings to dst. Runtime
// errors are counted per rule and logged at a bounded rate; they never stop other rules.
func (e *Evaluator) Eval(ev *Event, dst []Firing) []Firing {
	now, ok := e.begin(ev, &e.parts, &e.lazy)
	if !ok {
		return dst
	}
	s := e.set
	for _, i := range e.matched {
		r := s.Rules[i]
		if f, ok := e.evalRule(r, now); ok {
			dst = append(dst, f)
		}
	}
	e.lazy.reset(nil, nil) // the event's bytes are the intake's again
	return dst
}

// begin matches ev's topic into e.matched, counts the matches and sets e.env up for ev
// (topic_parts into *parts). When a matching rule uses the payload, it is decoded once,
// or, if every matching rule only reads members of it (`payload.x`), it is *lazy, set up
// for ev: the members are decoded as they are fetched (lazy.go). It reports false when
// no rule matches.
func (e *Evaluator) begin(ev *Event, parts *[]string, lazy *lazyPayload) (time.Time, bool) {
	s := e.set
	e.matched = s.match(ev.Topic, e.matched)
	if len(e.matched) == 0 {
		return time.Time{}, false
	}
	var u uses
	for _, i := range e.matched {
		u |= s.Rules[i].uses
		s.Rules[i].counters.Matched.Add(1)
	}
	now := ev.Time
	if now.IsZero() {
		now = time.Now()
	}
	env := &e.env
	*env = Env{Topic: ev.Topic, Client: ev.Client, QoS: int(ev.QoS), Retain: ev.Retain, Now: now, Fetch: fetchMember, body: ev.Payload}
	if p := s.agents.Load(); p != nil {
		env.Agents = *p
	}
	switch {
	case u&(usePayloadWhole|usePrev) != 0:
		// prev is kept past the event (stateStep): a decoded value, never a lazy one.
		env.Payload = decodePayload(ev.Payload, e.keys)
	case u&usePayload != 0:
		lazy.reset(ev.Payload, e.keys)
		env.Payload = lazy
	}
	if u&useRaw != 0 {
		env.Raw = string(ev.Payload)
	}
	if u&useTopicParts != 0 {
		*parts = splitTopic(ev.Topic, (*parts)[:0])
		env.TopicParts = *parts
	}
	return now, true
}

// DecodePayload is the `payload` variable: decoded JSON, or else the payload as a string.
func DecodePayload(b []byte) any {
	return decodePayload(b, nil)
}

// decodePayload is DecodePayload, interning object keys in keys (nil: none).
func decodePayload(b []byte, keys map[string]string) any {
	if len(b) == 0 {
		return ""
	}
	if v, ok := decodeJSON(b, keys); ok {
		return v
	}
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	return v
}

func splitTopic(t string, dst []string) []string {
	for {
		i := strings.IndexByte(t, '/')
		if i < 0 {
			return append(dst, t)
		}
		dst = append(dst, t[:i])
		t = t[i+1:]
	}
}

func (e *Evaluator) evalRule(r *Rule, now time.Time) (Firing, bool) {
	env := &e.env
	env.Window, env.Prev = Window{}, nil
	if !r.stateful {
		return e.statelessRule(r, now)
	}
	key, ok := e.ruleKey(r, now)
	if !ok {
		return Firing{}, false
	}
	return e.statefulRule(r, key, now)
}

// statelessRule evaluates a rule without state: its `if`, then its actions.
func (e *Evaluator) statelessRule(r *Rule, now time.Time) (Firing, bool) {
	if r.cond != nil {
		ok, err := e.cond(r)
		if err != nil {
			e.fail(r, now, "if", err)
			return Firing{}, false
		}
		if !ok {
			return Firing{}, false
		}
	}
	return e.fire(r, e.env.Topic, now)
}

// ruleKey is a stateful rule's key for the event in e.env: its `key` expression, else
// the topic. It sees no window and no prev: it depends on the event alone.
func (e *Evaluator) ruleKey(r *Rule, now time.Time) (string, bool) {
	if r.key == nil {
		return e.env.Topic, true
	}
	v, err := e.vm.Run(r.key, &e.env)
	if err != nil {
		e.fail(r, now, "key", err)
		return "", false
	}
	return keyString(v), true
}

// statefulRule applies the event in e.env to the rule's state of key and, when that
// fires, evaluates the actions.
func (e *Evaluator) statefulRule(r *Rule, key string, now time.Time) (Firing, bool) {
	r.state.mu.Lock()
	fire, err := e.stateStep(r, key, now)
	r.state.mu.Unlock()
	if err != nil {
		e.fail(r, now, "condition", err)
		return Firing{}, false
	}
	if !fire {
		return Firing{}, false
	}
	return e.fire(r, key, now)
}

// fire evaluates the rule's actions and counts the firing.
func (e *Evaluator) fire(r *Rule, key string, now time.Time) (Firing, bool) {
	actions, err := e.actions(r)
	if err != nil {
		e.fail(r, now, "action", err)
		return Firing{}, false
	}
	r.counters.Fired.Add(1)
	return Firing{Rule: r.Name, Key: key, Time: now, Actions: actions}, true
}

// stateStep updates the key's window, evaluates the condition against it and applies
// `for` and `throttle`. Called with the rule's state locked, so one key's events are
// applied one at a time even with concurrent evaluators.
func (e *Evaluator) stateStep(r *Rule, key string, now time.Time) (bool, error) {
	env := &e.env
	ks, evicted := r.state.get(key)
	if evicted {
		r.counters.Evicted.Add(1)
	}
	if ks.hasPrev {
		env.Prev = ks.prevVal
	}
	if w := r.window; w != nil {
		v, err := e.vm.Run(w.of, env)
		if err != nil {
			return false, fmt.Errorf("window of: %w", err)
		}
		f, ok := toFloat(v)
		if !ok {
			return false, fmt.Errorf("window of: %v (%T) is not a number", v, v)
		}
		ks.win.add(now, f, w.over, w.maxSamples)
		env.Window = ks.win.stats()
	}
	if r.uses&usePrev != 0 {
		ks.prevVal, ks.hasPrev = env.Payload, true
	}
	ok := true
	if r.cond != nil {
		var err error
		if ok, err = e.cond(r); err != nil {
			return false, err
		}
	}
	if !ok {
		ks.since = time.Time{}
		return false, nil
	}
	if r.For > 0 {
		if ks.since.IsZero() {
			ks.since = now
		}
		if now.Sub(ks.since) < r.For {
			return false, nil
		}
	}
	if r.Throttle > 0 {
		if !ks.lastFire.IsZero() && now.Sub(ks.lastFire) < r.Throttle {
			r.counters.Throttled.Add(1)
			return false, nil
		}
		ks.lastFire = now
	}
	return true, nil
}

// RawPayload is a publish action's payload when the rule has no `payload`: the event's
// bytes as they came (what `raw` holds), handed on without a copy into a string and back.
// Its JSON is the string `raw` would give.
type RawPayload []byte

// MarshalJSON encodes p as a JSON string.
func (p RawPayload) MarshalJSON() ([]byte, error) { return json.Marshal(string(p)) }

func (e *Evaluator) cond(r *Rule) (bool, error) {
	v, err := e.vm.Run(r.cond, &e.env)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("if: %v (%T) is not a boolean", v, v)
	}
	return b, nil
}

func (e *Evaluator) actions(r *Rule) ([]Action, error) {
	out := make([]Action, len(r.actions))
	for i, a := range r.actions {
		act := Action{Kind: a.kind, Function: a.function, Target: a.target, Line: a.line, For: a.dur, Expire: a.expire, QoS: a.qos, Retain: a.retain}
		switch a.kind {
		case Invoke:
			if len(a.args) > 0 {
				act.Args = make(map[string]any, len(a.args))
				for j, p := range a.args {
					v, err := e.vm.Run(p, &e.env)
					if err != nil {
						return nil, fmt.Errorf("invoke %s: arg %s: %w", a.function.Name, a.argNames[j], err)
					}
					act.Args[a.argNames[j]] = v
				}
			}
		case Actuate:
			v, err := e.vm.Run(a.value, &e.env)
			if err != nil {
				return nil, fmt.Errorf("actuate %s: value: %w", a.line, err)
			}
			act.Value = v
		case Publish:
			var err error
			if a.fixedTopic != "" {
				act.Topic = a.fixedTopic
			} else if act.Topic, err = e.topic(a); err != nil {
				return nil, err
			}
			if a.payload == nil {
				act.Payload = RawPayload(e.env.body)
			} else if act.Payload, err = e.vm.Run(a.payload, &e.env); err != nil {
				return nil, fmt.Errorf("publish payload: %w", err)
			}
		}
		out[i] = act
	}
	return out, nil
}

// topic evaluates a publish action's topic expression and checks the name.
func (e *Evaluator) topic(a *actionSpec) (string, error) {
	t, err := e.vm.Run(a.topic, &e.env)
	if err != nil {
		return "", fmt.Errorf("publish topic: %w", err)
	}
	name, ok := t.(string)
	if !ok {
		return "", fmt.Errorf("publish topic: %v (%T) is not a string", t, t)
	}
	if err := topic.ValidateTopic(name); err != nil {
		return "", fmt.Errorf("publish topic %q: %w", name, err)
	}
	return name, nil
}

// fail counts a runtime error, keeps it as the rule's last error, and logs it at most
// once per interval per rule.
func (e *Evaluator) fail(r *Rule, at time.Time, what string, err error) {
	n := r.counters.Errors.Add(1)
	r.counters.lastErr.Store(&RuntimeError{In: what, Err: err, Topic: e.env.Topic, At: at})
	now := time.Now().UnixNano()
	last := r.counters.lastLog.Load()
	if now-last < int64(e.set.opts.ErrorLogInterval) || !r.counters.lastLog.CompareAndSwap(last, now) {
		return
	}
	e.set.opts.Logger.Warn("rule evaluation failed", "rule", r.Name, "in", what, "topic", e.env.Topic, "err", err.Error(), "errors_total", n)
}

func keyString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1e15 {
			return fmt.Sprintf("%d", int64(v))
		}
	}
	return fmt.Sprint(v)
}

func toFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, !math.IsNaN(v)
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case float32:
		return float64(v), true
	case int32:
		return float64(v), true
	case uint:
		return float64(v), true
	case uint64:
		return float64(v), true
	case bool:
		if v {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}
