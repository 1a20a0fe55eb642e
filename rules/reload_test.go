package rules

import (
	"strings"
	"testing"
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
// over the old rule's (absent) state.
func TestAdoptActionStartsUsingPrev(t *testing.T) {
	old := compileSrc(t, "rules:\n  - {name: r, on: s/+, do: [{publish: {topic: '\"x\"', payload: 'payload'}}]}\n", Options{})
	next := compileSrc(t, "rules:\n  - {name: r, on: s/+, do: [{publish: {topic: '\"x\"', payload: 'prev ?? 0'}}]}\n", Options{})
	if kept := next.Adopt(old); len(kept) != 0 {
		t.Fatalf("kept %v, want none", kept)
	}
	e := next.NewEvaluator()
	e.Eval(ev("s/1", `1`, 0), nil)
	fs := e.Eval(ev("s/1", `2`, 0), nil)
	if len(fs) != 1 || fs[0].Actions[0].Payload != 1.0 {
		t.Fatalf("firings %+v, want one with payload 1 (the previous one)", fs)
	}
}
