package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// A rule with every stateful part, and edits of one part each: does the edited rule take
// over the original's state?
func TestEqualState(t *testing.T) {
	const base = `
rules:
  - name: r
    description: warm
    on: [s/+/t, s/+/h]
    if: window.avg > 30
    key: topic_parts[1]
    window: {over: 5m, of: payload.c, max_samples: 100}
    for: 1m
    throttle: 30s
    max_keys: 50
    do: [{publish: {topic: '"x"', payload: window.avg}}]
`
	tests := []struct {
		name, old, new string
		opts           Options
		want           bool
	}{
		{"unchanged", "", "", Options{}, true},
		{"action", `topic: '"x"'`, `topic: '"y"'`, Options{}, true},
		{"action starts using prev", `payload: window.avg`, `payload: prev`, Options{}, false},
		{"description", "description: warm", "description: hot", Options{}, true},
		{"moved", "  - name: r", "  - name: r\n", Options{}, true},
		{"filter added", "[s/+/t, s/+/h]", "[s/+/t, s/+/h, s/+/p]", Options{}, false},
		{"filters reordered", "[s/+/t, s/+/h]", "[s/+/h, s/+/t]", Options{}, false},
		{"if", "window.avg > 30", "window.avg > 31", Options{}, false},
		{"if spacing", "window.avg > 30", "window.avg >  30", Options{}, false},
		{"key", "key: topic_parts[1]", "key: topic", Options{}, false},
		{"window over", "over: 5m", "over: 6m", Options{}, false},
		{"window of", "of: payload.c", "of: payload.d", Options{}, false},
		{"max_samples", "max_samples: 100", "max_samples: 101", Options{}, false},
		{"for", "for: 1m", "for: 2m", Options{}, false},
		{"throttle", "throttle: 30s", "throttle: 31s", Options{}, false},
		{"max_keys", "max_keys: 50", "max_keys: 51", Options{}, false},
		{"default max_keys", "    max_keys: 50\n", "", Options{MaxKeys: 7}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			old := compileSrc(t, base, Options{})
			next := compileSrc(t, strings.Replace(base, tc.old, tc.new, 1), tc.opts)
			if got := equalState(old.Rules[0], next.Rules[0]); got != tc.want {
				t.Fatalf("equalState = %v, want %v", got, tc.want)
			}
		})
	}
}

// A stateless rule whose action starts using `prev` becomes stateful: it must not take
// over the old rule's (absent) state. (A stateful rule is reset too: its keys have not
// remembered payloads, and one that stops using prev would keep stale ones.)
func TestAdoptActionStartsUsingPrev(t *testing.T) {
	old := compileSrc(t, "rules:\n  - {name: r, on: s/+, do: [{publish: {topic: '\"x\"', payload: 'payload'}}]}\n", Options{})
	next := compileSrc(t, "rules:\n  - {name: r, on: s/+, do: [{publish: {topic: '\"x\"', payload: 'prev ?? 0'}}]}\n", Options{})
	if d := next.Adopt(old); len(d.Reset) != 1 {
		t.Fatalf("diff %+v, want r reset", d)
	}
	e := next.NewEvaluator()
	e.Eval(ev("s/1", `1`, 0), nil)
	fs := e.Eval(ev("s/1", `2`, 0), nil)
	if len(fs) != 1 || fs[0].Actions[0].Payload != 1.0 {
		t.Fatalf("firings %+v, want one with payload 1 (the previous one)", fs)
	}
}

func TestAdoptDiff(t *testing.T) {
	rule := func(name, extra string) string {
		return "  - {name: " + name + ", on: s/+" + extra + ", do: [{publish: {topic: '\"x\"'}}]}\n"
	}
	const fn = "functions:\n  f: {runtime: sh, code: cat}\n"
	tests := []struct {
		name     string
		old, new string // rule lists
		want     Diff
	}{
		{
			name: "first load",
			new:  rule("a", "") + rule("b", ""),
			want: Diff{Added: []string{"a", "b"}},
		},
		{
			name: "identical",
			old:  rule("a", ", throttle: 1m") + rule("b", ""),
			new:  rule("a", ", throttle: 1m") + rule("b", ""),
			want: Diff{Kept: []string{"a", "b"}},
		},
		{
			name: "moved and reordered",
			old:  rule("a", "") + rule("b", ""),
			new:  "\n" + rule("b", "") + rule("a", ""),
			want: Diff{Kept: []string{"b", "a"}},
		},
		{
			name: "one of each",
			old:  rule("kept", "") + rule("gone", "") + rule("reset", ", for: 1m") + rule("changed", ", for: 1m"),
			new: rule("new", "") + rule("kept", "") + rule("reset", ", for: 2m") +
				"  - {name: changed, on: s/+, for: 1m, do: [{publish: {topic: '\"y\"'}}]}\n",
			want: Diff{Added: []string{"new"}, Removed: []string{"gone"}, Reset: []string{"reset"}, Changed: []string{"changed"}, Kept: []string{"kept"}},
		},
		{
			name: "description",
			old:  rule("a", ", description: one"),
			new:  rule("a", ", description: two"),
			want: Diff{Changed: []string{"a"}},
		},
		{
			name: "invoke args",
			old:  "  - {name: a, on: s/+, do: [{invoke: f, args: {x: payload.x}}]}\n",
			new:  "  - {name: a, on: s/+, do: [{invoke: f, args: {x: payload.y}}]}\n",
			want: Diff{Changed: []string{"a"}},
		},
		{
			name: "invoke target",
			old:  "  - {name: a, on: s/+, do: [{invoke: f, target: {labels: {z: n}}}]}\n",
			new:  "  - {name: a, on: s/+, do: [{invoke: f, target: {labels: {z: s}}}]}\n",
			want: Diff{Changed: []string{"a"}},
		},
		{
			name: "default pick is pick one",
			old:  "  - {name: a, on: s/+, do: [{invoke: f, target: {agent: x}}]}\n",
			new:  "  - {name: a, on: s/+, do: [{invoke: f, target: {agent: x, pick: one}}]}\n",
			want: Diff{Kept: []string{"a"}},
		},
		{
			name: "actuate value",
			old:  "  - {name: a, on: s/+, do: [{actuate: {target: {agent: x}, line: fan, value: 1}}]}\n",
			new:  "  - {name: a, on: s/+, do: [{actuate: {target: {agent: x}, line: fan, value: 0}}]}\n",
			want: Diff{Changed: []string{"a"}},
		},
		{
			name: "actuate expire",
			old:  "  - {name: a, on: s/+, do: [{actuate: {target: {agent: x}, line: fan, value: 1}}]}\n",
			new:  "  - {name: a, on: s/+, do: [{actuate: {target: {agent: x}, line: fan, value: 1, expire: 30s}}]}\n",
			want: Diff{Changed: []string{"a"}},
		},
		{
			name: "actuate expire is 1m by default",
			old:  "  - {name: a, on: s/+, do: [{actuate: {target: {agent: x}, line: fan, value: 1}}]}\n",
			new:  "  - {name: a, on: s/+, do: [{actuate: {target: {agent: x}, line: fan, value: 1, expire: 1m}}]}\n",
			want: Diff{Kept: []string{"a"}},
		},
		{
			name: "publish payload",
			old:  rule("a", ""),
			new:  "  - {name: a, on: s/+, do: [{publish: {topic: '\"x\"', payload: raw}}]}\n",
			want: Diff{Kept: []string{"a"}}, // the default payload is `raw`
		},
		{
			name: "publish qos",
			old:  rule("a", ""),
			new:  "  - {name: a, on: s/+, do: [{publish: {topic: '\"x\"', qos: 1}}]}\n",
			want: Diff{Changed: []string{"a"}},
		},
		{
			name: "an action added",
			old:  rule("a", ""),
			new:  "  - {name: a, on: s/+, do: [{publish: {topic: '\"x\"'}}, {invoke: f}]}\n",
			want: Diff{Changed: []string{"a"}},
		},
		{
			name: "disabled is removed",
			old:  rule("a", "") + rule("b", ""),
			new:  rule("a", "") + rule("b", ", disabled: true"),
			want: Diff{Removed: []string{"b"}, Kept: []string{"a"}},
		},
		{
			name: "renamed",
			old:  rule("a", ", throttle: 1m"),
			new:  rule("b", ", throttle: 1m"),
			want: Diff{Added: []string{"b"}, Removed: []string{"a"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var old *Set
			if tc.old != "" {
				old = compileSrc(t, fn+"rules:\n"+tc.old, Options{})
			}
			next := compileSrc(t, fn+"rules:\n"+tc.new, Options{})
			if d := cmp.Diff(tc.want, next.Adopt(old), cmpopts.EquateEmpty()); d != "" {
				t.Fatalf("Adopt (-want +got):\n%s", d)
			}
		})
	}
}

// Kept and changed rules go on with their windows, throttles and counters; a reset rule
// starts empty.
func TestAdoptKeepsOrResetsState(t *testing.T) {
	src := func(action, throttle string) string {
		return `
rules:
  - name: hot
    on: s/+
    window: {count: 3, of: payload.c}
    if: window.count == 3
    do: [{publish: {topic: '"` + action + `"'}}]
  - name: once
    on: s/+
    throttle: ` + throttle + `
    do: [{publish: {topic: '"x"'}}]
`
	}
	old := compileSrc(t, src("a", "1h"), Options{})
	e := old.NewEvaluator()
	e.Eval(ev("s/1", `{"c": 1}`, 0), nil)
	e.Eval(ev("s/1", `{"c": 1}`, time.Second), nil)
	next := compileSrc(t, src("b", "2h"), Options{})
	want := Diff{Changed: []string{"hot"}, Reset: []string{"once"}}
	if d := cmp.Diff(want, next.Adopt(old), cmpopts.EquateEmpty()); d != "" {
		t.Fatalf("Adopt (-want +got):\n%s", d)
	}
	// hot's window holds its third sample and fires with the new action; once's throttle
	// was reset, so it fires again within the old hour.
	fs := next.NewEvaluator().Eval(ev("s/1", `{"c": 1}`, 2*time.Second), nil)
	if len(fs) != 2 || fs[0].Rule != "hot" || fs[0].Actions[0].Topic != "b" || fs[1].Rule != "once" {
		t.Fatalf("firings after reload: %+v", fs)
	}
	if n := next.Rule("hot").Counters().Matched.Load(); n != 3 {
		t.Fatalf("hot matched %d, want 3: counters carried over", n)
	}
	if n := next.Rule("once").Counters().Matched.Load(); n != 1 {
		t.Fatalf("once matched %d, want 1: counters start again", n)
	}
}

// The last error lives with the counters: a reload that keeps a rule's state keeps it, a
// reset starts without one.
func TestAdoptCarriesLastError(t *testing.T) {
	src := func(topic, throttle string) string {
		return "rules:\n  - {name: r, on: s/+, if: payload.a > 1, throttle: " + throttle + ", do: [{publish: {topic: '\"" + topic + "\"'}}]}\n"
	}
	old := compileSrc(t, src("x", "1m"), Options{})
	old.NewEvaluator().Eval(ev("s/1", `not json`, 0), nil)
	le := old.Rules[0].Counters().LastError()
	if le == nil {
		t.Fatal("no last error")
	}
	changed := compileSrc(t, src("y", "1m"), Options{})
	if d := changed.Adopt(old); len(d.Changed) != 1 {
		t.Fatalf("diff %+v, want r changed", d)
	}
	if got := changed.Rules[0].Counters().LastError(); got != le {
		t.Fatalf("last error after a reload that keeps state: %v, want %v", got, le)
	}
	reset := compileSrc(t, src("y", "2m"), Options{})
	if d := reset.Adopt(changed); len(d.Reset) != 1 {
		t.Fatalf("diff %+v, want r reset", d)
	}
	if got := reset.Rules[0].Counters().LastError(); got != nil {
		t.Fatalf("last error after a reset: %v, want none", got)
	}
}
