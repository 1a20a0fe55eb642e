package rules

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Seeds come from testdata/fuzz (committed) plus every example rule file.
func addExampleSeeds(f *testing.F, suffix string) {
	files, _ := filepath.Glob("../examples/*/rules/*" + suffix)
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
}

// FuzzLoad: any input either loads or fails with positioned errors; it never panics,
// and whatever loads can evaluate events.
func FuzzLoad(f *testing.F) {
	addExampleSeeds(f, ".yaml")
	f.Add([]byte("rules:\n  - name: a\n    on: x/+\n    if: payload.v > 1\n    do: [{publish: {topic: '\"t\"'}}]\n"))
	f.Add([]byte("functions: {f: {runtime: sh, code: echo}}\nrules: [{name: r, on: '#', window: {count: 2, of: payload.v}, do: [{invoke: f, args: {a: window.avg}}]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		def, err := Parse("f.yaml", data)
		if err != nil {
			checkPositioned(t, err)
			return
		}
		set, err := Compile([]*FileDef{def}, Options{})
		if err != nil {
			checkPositioned(t, err)
			return
		}
		e := set.NewEvaluator()
		for _, topic := range []string{"x/y", "a/b/c", "$SYS/x", "x"} {
			e.Eval(&Event{Topic: topic, Payload: []byte(`{"v": 3, "c": 31}`), Time: time.Unix(1, 0)}, nil)
		}
	})
}

func checkPositioned(t *testing.T, err error) {
	var es Errors
	if !errors.As(err, &es) || len(es) == 0 {
		t.Fatalf("error without positions: %v", err)
	}
	for _, e := range es {
		if e.Pos.Line < 1 || e.Pos.Col < 0 || e.Pos.File == "" || e.Msg == "" {
			t.Fatalf("bad error position or message: %#v", e)
		}
	}
}

// FuzzRuleTests: test files parse or fail with positions, never panic.
func FuzzRuleTests(f *testing.F) {
	addExampleSeeds(f, "_test.yaml")
	f.Add([]byte("tests:\n  - name: x\n    events: [{at: 0s, topic: a, payload: {v: 1}, repeat: 3, every: 1s}]\n    expect: [{at: 0s, rule: r}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, err := ParseTestFile("t_test.yaml", data); err != nil {
			checkPositioned(t, err)
		}
	})
}
