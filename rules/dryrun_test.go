package rules

import (
	"testing"
	"time"
)

func TestFreshLeavesRunningStateAlone(t *testing.T) {
	set, err := Compile(mustParse(t, `
rules:
  - name: hot
    on: s/+
    if: payload.t > 1
    throttle: 1h
    do: [{publish: {topic: '"out"'}}]
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ev := &Event{Topic: "s/a", Payload: []byte(`{"t":5}`), Time: time.Unix(100, 0)}
	if n := len(set.NewEvaluator().Eval(ev, nil)); n != 1 {
		t.Fatalf("running set: %d firings, want 1", n)
	}
	// The running set is throttled now; a fresh copy is not, and does not count.
	for i := range 2 {
		if n := len(set.Fresh().NewEvaluator().Eval(ev, nil)); n != 1 {
			t.Errorf("fresh copy %d: %d firings, want 1 (state must start empty)", i, n)
		}
	}
	if n := len(set.NewEvaluator().Eval(ev, nil)); n != 0 {
		t.Errorf("running set after dry runs: %d firings, want 0 (still throttled)", n)
	}
	if got := set.Rules[0].Counters().Fired.Load(); got != 1 {
		t.Errorf("running set fired counter = %d, want 1 (dry runs must not count)", got)
	}
}
