package rules

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/deviceless/deviceless/protocol"
	"github.com/deviceless/deviceless/topic"
)

// DefaultActuationExpiry is how long an actuation may take to reach its agent when its
// rule says nothing (`expire`): an agent that was away longer does not apply it late.
const DefaultActuationExpiry = time.Minute

// Options bound what a rule set may cost. The zero value takes the defaults.
type Options struct {
	// MaxKeys is the number of state keys kept per rule; the least recently used key is
	// evicted beyond it, so a flood of distinct topics cannot exhaust memory.
	MaxKeys int
	// MaxSamples bounds a time window's samples per key; the oldest go first.
	MaxSamples int
	// MaxNodes bounds an expression's size at compile time.
	MaxNodes uint
	// MemoryBudget bounds the memory one expression run may allocate (expr's units).
	MemoryBudget uint
	// ErrorLogInterval is how often a rule's runtime errors are logged at most.
	ErrorLogInterval time.Duration
	// Logger receives rate-limited runtime errors; nil discards them.
	Logger *slog.Logger
	// Deployed reports whether ref, a function name or name@version, is a function
	// deployed through the engine's API. Rules may invoke those besides the functions of
	// their files; nil: none is.
	Deployed func(ref string) bool
}

func (o Options) withDefaults() Options {
	if o.MaxKeys <= 0 {
		o.MaxKeys = 10000
	}
	if o.MaxSamples <= 0 {
		o.MaxSamples = 1024
	}
	if o.MaxNodes == 0 {
		o.MaxNodes = 2000
	}
	if o.MemoryBudget == 0 {
		o.MemoryBudget = 100000
	}
	if o.ErrorLogInterval <= 0 {
		o.ErrorLogInterval = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Function is a function a rule file defines: its name, where, and its spec with the
// defaults applied. A Deployed function is a reference (name or name@version) to one
// deployed through the engine's API: it has no spec here, the engine resolves it at each
// invocation.
type Function struct {
	Name     string
	Pos      Pos
	Spec     protocol.FunctionSpec
	Deployed bool
	// Module is a wasm function's module (its digest is Spec.Module), which the engine
	// serves to agents that lack it.
	Module []byte
}

// Rule is a compiled rule.
type Rule struct {
	Name        string
	Description string
	Pos         Pos
	Filters     []string
	For         time.Duration
	Throttle    time.Duration
	// Schedule is when the rule runs, for a rule with `schedule` instead of `on`.
	Schedule *Schedule

	cond     *vm.Program
	key      *vm.Program
	window   *windowSpec
	actions  []*actionSpec
	uses     uses
	stateful bool
	maxKeys  int

	state    *ruleState
	sched    *schedState
	counters *Counters
}

// Counters are a rule's running totals and its last runtime error. They are shared with
// the rule's successor across reloads when its state is kept, and safe for concurrent
// readers.
type Counters struct {
	Matched   atomic.Uint64 // events whose topic matched
	Fired     atomic.Uint64 // firings
	Throttled atomic.Uint64 // firings suppressed by throttle
	Errors    atomic.Uint64 // runtime errors (missing field, wrong type, budget)
	Evicted   atomic.Uint64 // keys evicted from state
	lastLog   atomic.Int64
	lastErr   atomic.Pointer[RuntimeError]
}

// RuntimeError is a rule's runtime error on one event, kept as the rule's last error (as
// os.PathError keeps an operation and a path with its error). It is formatted when read,
// so a failing event pays one allocation for it.
type RuntimeError struct {
	In    string    // the part of the rule that failed: key, condition, if, action
	Err   error     // the expression's error
	Topic string    // the event's topic
	At    time.Time // the event's receive time (the rules' clock)
}

func (e *RuntimeError) Error() string { return e.In + ": " + e.Err.Error() }

func (e *RuntimeError) Unwrap() error { return e.Err }

// Invokes lists the functions the rule's invoke actions name, in order (a deployed
// function as its reference, name or name@version).
func (r *Rule) Invokes() []*Function {
	var out []*Function
	for _, a := range r.actions {
		if a.kind == Invoke && a.function != nil {
			out = append(out, a.function)
		}
	}
	return out
}

// LastError is the rule's most recent runtime error, or nil.
func (c *Counters) LastError() *RuntimeError { return c.lastErr.Load() }

// Counters returns the rule's running totals.
func (r *Rule) Counters() *Counters { return r.counters }

// Keys is the number of state keys the rule holds now.
func (r *Rule) Keys() int {
	if r.state == nil {
		return 0
	}
	r.state.mu.Lock()
	defer r.state.mu.Unlock()
	return len(r.state.keys)
}

type windowSpec struct {
	over       time.Duration
	count      int
	of         *vm.Program
	maxSamples int
}

// ActionKind says what an action does.
type ActionKind int

// Action kinds.
const (
	Invoke ActionKind = iota + 1
	Actuate
	Publish
)

func (k ActionKind) String() string {
	switch k {
	case Invoke:
		return "invoke"
	case Actuate:
		return "actuate"
	case Publish:
		return "publish"
	}
	return "unknown"
}

type actionSpec struct {
	kind     ActionKind
	function *Function
	target   protocol.Target
	argNames []string
	args     []*vm.Program
	line     string
	value    *vm.Program
	dur      time.Duration
	expire   time.Duration
	topic    *vm.Program
	// fixedTopic is the topic when its expression is a constant string, checked once at
	// load instead of run and checked at every firing.
	fixedTopic string
	payload    *vm.Program
	qos        byte
	retain     bool
}

// Set is a compiled, immutable rule set with the state of its rules. Evaluate events
// with an Evaluator (one per goroutine).
type Set struct {
	Rules     []*Rule
	Functions map[string]*Function

	matcher topic.Matcher[int32]
	opts    Options
	files   []string
	agents  atomic.Pointer[[]Agent]
}

// Files lists the rule files the set was loaded from.
func (s *Set) Files() []string { return s.files }

// Rule returns the rule with this name, or nil.
func (s *Set) Rule(name string) *Rule {
	for _, r := range s.Rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// SetAgents publishes the agent registry that expressions see as `agents`.
func (s *Set) SetAgents(a []Agent) { s.agents.Store(&a) }

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	topicLike = regexp.MustCompile(`^[A-Za-z0-9_-]+(/[A-Za-z0-9_+#-]*)+$`)
)

// Compile checks and compiles parsed rule files into a Set. Every problem is reported,
// as Errors, with its position.
func Compile(files []*FileDef, opts Options) (*Set, error) {
	opts = opts.withDefaults()
	c := &compiler{opts: opts, set: &Set{Functions: map[string]*Function{}, opts: opts}}
	for _, f := range files {
		for _, fd := range f.Functions {
			c.function(fd)
		}
	}
	seen := map[string]Pos{}
	for _, f := range files {
		for _, rd := range f.Rules {
			if prev, dup := seen[rd.Name.Value]; dup && rd.Name.Value != "" {
				c.errf(rd.Name.Pos, "duplicate rule name %q (first defined at %s)", rd.Name.Value, prev)
				continue
			}
			seen[rd.Name.Value] = rd.Name.Pos
			c.rule(rd)
		}
	}
	if len(c.errs) > 0 {
		return nil, c.errs
	}
	return c.set, nil
}

type compiler struct {
	opts Options
	set  *Set
	errs Errors
}

func (c *compiler) errf(p Pos, format string, args ...any) {
	c.errs = append(c.errs, errorf(p, format, args...))
}

func (c *compiler) function(fd *FunctionDef) {
	name := fd.Name
	if prev, dup := c.set.Functions[name.Value]; dup {
		c.errf(name.Pos, "duplicate function name %q (first defined at %s)", name.Value, prev.Pos)
		return
	}
	if !nameRE.MatchString(name.Value) {
		c.errf(name.Pos, "function name %q: use letters, digits, '_', '-' and '.'", name.Value)
	}
	if err := fd.Spec.Validate(); err != nil {
		for _, e := range unjoin(err) {
			c.errf(name.Pos, "function %q: %v", name.Value, e)
		}
	}
	if fd.Spec.Runtime == protocol.RuntimeWasm && fd.Spec.Module != "" && fd.Module == nil {
		c.errf(name.Pos, "function %q: module %q was not loaded (a rule file's module is a .wasm file, read by rules.Load)", name.Value, fd.Spec.Module)
	}
	fn := &Function{Name: name.Value, Pos: name.Pos, Spec: fd.Spec.WithDefaults(), Module: fd.Module}
	c.set.Functions[name.Value] = fn
}

func (c *compiler) rule(rd *RuleDef) {
	name := rd.Name
	if name.Value == "" {
		c.errf(rd.Pos, "a rule needs a `name`")
		return
	}
	if !nameRE.MatchString(name.Value) {
		c.errf(name.Pos, "rule name %q: use letters, digits, '_', '-' and '.'", name.Value)
	}
	if rd.Disabled {
		return
	}
	r := &Rule{
		Name: name.Value, Description: rd.Description, Pos: name.Pos,
		For: rd.For.D(), Throttle: rd.Throttle.D(), maxKeys: c.opts.MaxKeys, counters: &Counters{},
	}
	if rd.MaxKeys < 0 {
		c.errf(name.Pos, "rule %q: max_keys must not be negative", name.Value)
	} else if rd.MaxKeys > 0 {
		r.maxKeys = rd.MaxKeys
	}
	switch {
	case rd.Schedule != nil && len(rd.On) > 0:
		c.errf(rd.Schedule.Pos, "rule %q takes `on` or `schedule`, not both: a scheduled run has no event (write two rules)", name.Value)
	case rd.Schedule != nil:
		r.Schedule = c.schedule(name.Value, rd.Schedule)
	case len(rd.On) == 0:
		c.errf(name.Pos, "rule %q needs `on`: an MQTT topic filter or a list of them (or a `schedule`)", name.Value)
	}
	for _, f := range rd.On {
		if err := topic.ValidateFilter(f.Value); err != nil {
			c.errf(f.Pos, "invalid topic filter %q: %v", f.Value, err)
			continue
		}
		r.Filters = append(r.Filters, f.Value)
	}
	if rd.If.IsSet() {
		r.cond = c.expr(rd.If, &r.uses, expr.AsBool())
		if r.cond != nil {
			if t := r.cond.Node().Type(); t == nil || t.Kind() != reflect.Bool {
				// Payload fields are untyped: catch `if: payload.level` or `payload.v + 1`
				// at load time rather than on every event.
				c.errf(rd.If.Pos, "`if` must be a boolean expression, but its type is not known to be boolean; compare it, e.g. payload.on == true")
				r.cond = nil
			}
		}
	}
	if rd.Key.IsSet() {
		r.key = c.expr(rd.Key, &r.uses)
	}
	if w := rd.Window; w != nil {
		ws := &windowSpec{over: w.Over.D(), count: w.Count, maxSamples: c.opts.MaxSamples}
		switch {
		case ws.over == 0 && ws.count == 0:
			c.errf(name.Pos, "rule %q: window needs `over` (a duration) or `count`", name.Value)
		case ws.over != 0 && ws.count != 0:
			c.errf(name.Pos, "rule %q: window takes `over` or `count`, not both", name.Value)
		case ws.count < 0:
			c.errf(name.Pos, "rule %q: window count must be positive", name.Value)
		case ws.count > 100000:
			c.errf(name.Pos, "rule %q: window count %d is above the limit of 100000", name.Value, ws.count)
		}
		if w.MaxSamples > 0 {
			ws.maxSamples = w.MaxSamples
		}
		if ws.count > 0 {
			ws.maxSamples = ws.count
		}
		if !w.Of.IsSet() {
			c.errf(name.Pos, "rule %q: window needs `of`: the number to aggregate, e.g. payload.celsius", name.Value)
		} else {
			ws.of = c.expr(w.Of, &r.uses)
		}
		r.window = ws
	}
	if len(rd.Do) == 0 {
		c.errf(name.Pos, "rule %q needs `do`: a list of invoke, actuate or publish actions", name.Value)
	}
	for _, ad := range rd.Do {
		if a := c.action(r, ad); a != nil {
			r.actions = append(r.actions, a)
		}
	}
	if r.window == nil && r.uses&useWindow != 0 {
		c.errf(name.Pos, "rule %q uses `window` but defines no window", name.Value)
	}
	r.stateful = r.window != nil || r.For > 0 || r.Throttle > 0 || r.key != nil || r.uses&usePrev != 0
	if rd.Schedule != nil {
		c.scheduledRule(r, rd)
	}
	if r.stateful {
		r.state = newRuleState(r.maxKeys)
	}
	c.set.Rules = append(c.set.Rules, r)
	idx := int32(len(c.set.Rules) - 1)
	for _, f := range r.Filters {
		_ = c.set.matcher.Add(f, idx) // validated above
	}
}

// scheduledRule refuses what needs events or per-key state in a scheduled rule: it runs
// on a clock, with no topic and no payload, so `key`, `window`, `for`, `throttle`,
// `max_keys` and `prev` have nothing to work on.
func (c *compiler) scheduledRule(r *Rule, rd *RuleDef) {
	for _, k := range []struct {
		key string
		set bool
	}{{"key", rd.Key.IsSet()}, {"window", rd.Window != nil}, {"for", rd.For > 0}, {"throttle", rd.Throttle > 0}, {"max_keys", rd.MaxKeys != 0}} {
		if k.set {
			c.errf(r.Pos, "rule %q: `%s` does not apply to a scheduled rule (it runs on a clock, with no events and no per-key state)", r.Name, k.key)
		}
	}
	if r.uses&usePrev != 0 {
		c.errf(r.Pos, "rule %q: `prev` does not apply to a scheduled rule (it has no previous payload)", r.Name)
	}
	r.stateful = false
	r.sched = &schedState{}
}

func (c *compiler) target(at Pos, t *protocol.Target) protocol.Target {
	if t == nil {
		return protocol.Target{Pick: protocol.PickOne}
	}
	out, err := t.Normalize()
	for _, e := range unjoin(err) {
		c.errf(at, "%v", e)
	}
	return out
}

// unjoin lists the errors errors.Join put together (nil: none).
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

func (c *compiler) action(r *Rule, ad *ActionDef) *actionSpec {
	n := 0
	for _, set := range []bool{ad.Invoke != nil, ad.Actuate != nil, ad.Publish != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		c.errf(ad.Pos, "an action takes exactly one of `invoke`, `actuate`, `publish`")
		return nil
	}
	switch {
	case ad.Invoke != nil:
		fn := c.set.Functions[ad.Invoke.Value]
		if fn == nil && c.opts.Deployed != nil && c.opts.Deployed(ad.Invoke.Value) {
			fn = &Function{Name: ad.Invoke.Value, Pos: ad.Invoke.Pos, Deployed: true}
		}
		if fn == nil {
			c.errf(ad.Invoke.Pos, "unknown function %q%s", ad.Invoke.Value, c.suggestFunction(ad.Invoke.Value))
		}
		a := &actionSpec{kind: Invoke, function: fn, target: c.target(ad.Pos, ad.Target)}
		for _, arg := range ad.Args {
			a.argNames = append(a.argNames, arg.Name.Value)
			a.args = append(a.args, c.expr(arg.Expr, &r.uses))
		}
		return a
	case ad.Actuate != nil:
		if ad.Target != nil || len(ad.Args) > 0 {
			c.errf(ad.Pos, "`target` and `args` of an actuate action go inside `actuate:`")
		}
		d := ad.Actuate
		if d.Target == nil {
			c.errf(ad.Pos, "actuate needs a `target` (an agent or labels)")
		}
		if d.Line.Value == "" {
			c.errf(ad.Pos, "actuate needs a `line`")
		}
		a := &actionSpec{kind: Actuate, target: c.target(ad.Pos, d.Target), line: d.Line.Value, dur: d.For.D(), expire: DefaultActuationExpiry}
		if d.Expire != nil {
			// MQTT's message expiry counts whole seconds.
			if a.expire = d.Expire.D(); a.expire < time.Second {
				c.errf(ad.Pos, "actuate expire %s: at least 1s (how long the actuation may take to reach the agent)", a.expire)
			}
		}
		if d.Value.IsSet() {
			a.value = c.expr(d.Value, &r.uses)
		} else {
			c.errf(ad.Pos, "actuate needs a `value` (an expression, e.g. 1)")
		}
		return a
	default:
		if ad.Target != nil || len(ad.Args) > 0 {
			c.errf(ad.Pos, "a publish action takes no `target` or `args`")
		}
		d := ad.Publish
		a := &actionSpec{kind: Publish, retain: d.Retain}
		if d.QoS < 0 || d.QoS > 2 {
			c.errf(ad.Pos, "publish qos %d: use 0, 1 or 2", d.QoS)
		}
		a.qos = byte(d.QoS)
		if !d.Topic.IsSet() {
			c.errf(ad.Pos, "publish needs a `topic` expression, e.g. '\"alerts/\" + topic_parts[1]'")
		} else {
			a.topic = c.expr(d.Topic, &r.uses)
			if a.topic != nil {
				if sn, ok := a.topic.Node().(*ast.StringNode); ok {
					if err := topic.ValidateTopic(sn.Value); err != nil {
						c.errf(d.Topic.Pos, "publish topic %q: %v", sn.Value, err)
					}
					a.fixedTopic = sn.Value
				}
			}
		}
		if d.Payload.IsSet() {
			a.payload = c.expr(d.Payload, &r.uses)
		} // else nil: forward the event as it came (RawPayload)
		return a
	}
}

func (c *compiler) suggestFunction(name string) string {
	var names []string
	for n := range c.set.Functions {
		if strings.EqualFold(n, name) || strings.Contains(n, name) || strings.Contains(name, n) {
			names = append(names, n)
		}
	}
	if len(names) == 1 {
		return fmt.Sprintf(" (did you mean %q?)", names[0])
	}
	if len(c.set.Functions) == 0 {
		return " (no functions are defined)"
	}
	return ""
}

// envType is the environment expressions are checked against: a value, not a pointer.
// expr (1.17.8) gives a struct environment's variables their field index only when it
// is given the struct itself; with &Env{} every `payload`, `topic`... compiled to
// OpLoadConst, a reflect lookup by name through a sync.Map at each use, which was two
// thirds of a condition's time. Programs still run on &Env (FetchField dereferences).
var envType = Env{}

// expr compiles one expression against the typed environment, reporting errors at their
// position inside the rule file.
func (c *compiler) expr(e Expr, u *uses, extra ...expr.Option) *vm.Program {
	opts := append([]expr.Option{expr.Env(envType), expr.MaxNodes(c.opts.MaxNodes)}, extra...)
	if fetchPatchable(e.Src) {
		opts = append(opts, fetchOptions...)
	}
	prog, err := expr.Compile(e.Src, opts...)
	if err != nil {
		var fe *file.Error
		p, msg := e.Pos, err.Error()
		if errors.As(err, &fe) {
			p, msg = e.At(fe.Line, fe.Column), fe.Message
		}
		msg = strings.Replace(msg, "expected bool, but got", "`if` must be a boolean expression, but it is", 1)
		if strings.HasPrefix(msg, "unknown name ") {
			msg += " (variables: " + strings.Join(Variables, ", ") + ")"
			if topicLike.MatchString(e.Src) {
				msg += fmt.Sprintf("; a fixed topic is a string: '%q'", e.Src)
			}
		}
		c.errf(p, "%s", msg)
		return nil
	}
	payloads, fetched := 0, 0 // identifiers `payload`; those that are $fetch(payload, ...)'s
	ast.Find(prog.Node(), func(n ast.Node) bool {
		if call, ok := n.(*ast.CallNode); ok && fetchesPayload(call) {
			fetched++
		}
		if id, ok := n.(*ast.IdentifierNode); ok {
			switch id.Value {
			case "payload":
				*u |= usePayload
				payloads++
			case "$env":
				// $env.payload, $env["raw"], $env itself: every variable may be read
				// through it, by a name the analysis cannot see, so all of them are
				// filled in (the payload decoded whole). prev and window are not: they
				// make a rule stateful, which $env alone should not.
				*u |= usePayload | usePayloadWhole | useRaw | useTopicParts
			case "raw":
				*u |= useRaw
			case "topic_parts":
				*u |= useTopicParts
			case "prev":
				*u |= usePrev
			case "window":
				*u |= useWindow
			}
		}
		return false
	})
	if payloads > fetched {
		*u |= usePayloadWhole
	}
	return prog
}

// fetchesPayload reports whether call is $fetch(payload, ...): a member of the payload,
// which a lazy payload can give (lazy.go). Any other use of `payload` is of the value.
func fetchesPayload(call *ast.CallNode) bool {
	callee, ok := call.Callee.(*ast.IdentifierNode)
	if !ok || callee.Value != fetchName || len(call.Arguments) != 2 {
		return false
	}
	id, ok := call.Arguments[0].(*ast.IdentifierNode)
	return ok && id.Value == "payload"
}

// Adopt carries state over from the set s replaces and returns what changed, rule by rule
// (see Diff): a rule whose name and stateful definition (filters, if, key, window, for,
// throttle, max_keys, schedule; see equalState) are unchanged keeps its windows, `for`
// clocks, throttles, next scheduled run, counters and last error; other rules start
// empty. Call it before s receives events.
func (s *Set) Adopt(old *Set) Diff {
	d := Diff{Added: []string{}, Removed: []string{}, Reset: []string{}, Changed: []string{}, Kept: []string{}}
	byName := map[string]*Rule{}
	if old != nil {
		for _, o := range old.Rules {
			byName[o.Name] = o
		}
	}
	for _, r := range s.Rules {
		o := byName[r.Name]
		delete(byName, r.Name)
		switch {
		case o == nil:
			d.Added = append(d.Added, r.Name)
		case !equalState(o, r):
			d.Reset = append(d.Reset, r.Name)
		default:
			r.state, r.counters = o.state, o.counters
			if o.sched != nil && r.sched != nil {
				r.sched = o.sched // an unchanged schedule keeps its next run
			}
			if r.Description != o.Description || !equalActions(o, r) || catchUp(o) != catchUp(r) {
				d.Changed = append(d.Changed, r.Name)
			} else {
				d.Kept = append(d.Kept, r.Name)
			}
		}
	}
	if old == nil {
		return d
	}
	for _, o := range old.Rules {
		if byName[o.Name] != nil {
			d.Removed = append(d.Removed, o.Name)
		}
	}
	if p := old.agents.Load(); p != nil && s.agents.Load() == nil {
		s.agents.Store(p)
	}
	return d
}
