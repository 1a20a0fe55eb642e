package rules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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
// and whatever compiles compiles twice into sets that fire alike on the same events.
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
		again, err := Compile([]*FileDef{def}, Options{})
		if err != nil {
			t.Fatalf("compiled once, then failed: %v", err)
		}
		if diff := cmp.Diff(evalStream(set), evalStream(again), cmpopts.EquateNaNs()); diff != "" {
			t.Fatalf("two compilations fire differently (-first +second):\n%s", diff)
		}
	})
}

// streamEvents is what FuzzLoad feeds a set: rounds of one event on each topic (those of
// the examples and others), 40 s apart, with JSON that makes the example rules fire, then
// JSON that does not, a payload that is not JSON, and an empty one.
var streamEvents = func() []Event {
	payloads := []string{
		`{"v": 3, "c": 31, "celsius": 35, "humidity": 60, "moisture": 10, "state": "open", "armed": true, "motion": true}`,
		`{"v": -1, "c": [1], "celsius": 1, "humidity": 90, "moisture": 50, "state": "closed", "armed": false, "motion": false}`,
		`not json`,
		``,
	}
	topics := []string{"x/y", "a/b/c", "$SYS/x", "x", "greenhouse/gh1/climate", "greenhouse/gh1/soil", "home/hall/door", "home/garden/motion"}
	var evs []Event
	at := time.Date(2026, 1, 1, 21, 59, 0, 0, time.UTC)
	for round, p := range []int{0, 0, 0, 0, 1, 2, 3, 0, 1} {
		for i, topic := range topics {
			evs = append(evs, Event{Topic: topic, Payload: []byte(payloads[p]), Client: "c", QoS: byte(i % 3), Retain: round%2 == 0, Time: at})
		}
		at = at.Add(40 * time.Second)
	}
	return evs
}()

// streamResult is what a set did with streamEvents.
type streamResult struct {
	Firings  []Firing
	Counters []ruleCounts
}

type ruleCounts struct {
	Rule                                       string
	Matched, Fired, Throttled, Errors, Evicted uint64
}

// evalStream evaluates streamEvents on set, one event at a time.
func evalStream(set *Set) streamResult {
	var res streamResult
	e := set.NewEvaluator()
	for i := range streamEvents {
		ev := streamEvents[i] // a copy: both sets see the same events
		res.Firings = e.Eval(&ev, res.Firings)
	}
	for _, r := range set.Rules {
		c := r.Counters()
		res.Counters = append(res.Counters, ruleCounts{r.Name, c.Matched.Load(), c.Fired.Load(), c.Throttled.Load(), c.Errors.Load(), c.Evicted.Load()})
	}
	return res
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
// What parses runs against the example rule sets, bounded (fuzzMaxCases cases of
// fuzzMaxEvents events, fuzzCaseBudget in all), and every case gives the same outcome
// when run twice.
func FuzzRuleTests(f *testing.F) {
	addExampleSeeds(f, "_test.yaml")
	f.Add([]byte("tests:\n  - name: x\n    events: [{at: 0s, topic: a, payload: {v: 1}, repeat: 3, every: 1s}]\n    expect: [{at: 0s, rule: r}]\n"))
	dirs, _ := filepath.Glob("../examples/*/rules")
	_, defs, err := parseAll(dirs)
	if err != nil || len(defs) == 0 {
		f.Fatalf("example rule files: %d, %v", len(defs), err)
	}
	if _, err := Compile(defs, Options{}); err != nil {
		f.Fatalf("example rule files: %v", err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tf, err := ParseTestFile("t_test.yaml", data)
		if err != nil {
			checkPositioned(t, err)
			return
		}
		start, budget := tf.startTime(), time.Now().Add(fuzzCaseBudget)
		for _, tc := range tf.Tests[:min(len(tf.Tests), fuzzMaxCases)] {
			tc = boundCase(tc)
			first, second := runFuzzCase(t, defs, start, tc), runFuzzCase(t, defs, start, tc)
			if first != second {
				t.Fatalf("case %q gave two outcomes:\n%s\n---\n%s", tc.Name, first, second)
			}
			if time.Now().After(budget) {
				return
			}
		}
	})
}

// Bounds of one FuzzRuleTests input: a test file may repeat an event a million times.
const (
	fuzzMaxCases   = 4
	fuzzMaxEvents  = 16 // per case, each repeated at most fuzzMaxRepeat times
	fuzzMaxRepeat  = 8
	fuzzCaseBudget = 50 * time.Millisecond
)

// boundCase returns tc with at most fuzzMaxEvents events of at most fuzzMaxRepeat
// repeats.
func boundCase(tc TestCase) TestCase {
	tc.Events = append([]TestEvent(nil), tc.Events[:min(len(tc.Events), fuzzMaxEvents)]...)
	for i := range tc.Events {
		tc.Events[i].Repeat = min(tc.Events[i].Repeat, fuzzMaxRepeat)
	}
	return tc
}

// runFuzzCase runs tc on a freshly compiled set, as RunTestFile does, and returns its
// outcome as text.
func runFuzzCase(t *testing.T, defs []*FileDef, start time.Time, tc TestCase) string {
	set, err := Compile(defs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	diff, err := runCase(set, start, tc)
	return fmt.Sprintf("diff: %s\nerr: %v", diff, err)
}
