package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deviceless/deviceless/topic"
)

// Benchmarks for BENCHMARKS.md (run: go tool task bench). Each reports events/s, and
// allocs/op is allocations per event.

func benchSet(b *testing.B, n int, cond string) *Set {
	b.Helper()
	var sb strings.Builder
	sb.WriteString("rules:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, "  - name: r%d\n    on: site/%d/+/temperature\n    if: %s\n    do: [{publish: {topic: '\"alerts/\" + topic', payload: 'payload.celsius'}}]\n",
			i, i%100, strings.ReplaceAll(cond, "N", fmt.Sprint(i%50)))
	}
	set, err := Compile(mustParse(b, sb.String()), Options{})
	if err != nil {
		b.Fatal(err)
	}
	return set
}

func reportRate(b *testing.B, unit string, perOp float64) {
	b.ReportMetric(perOp*float64(b.N)/b.Elapsed().Seconds(), unit)
}

// An event that matches no rule: the trie walk only, no decoding.
func BenchmarkEventNoMatch(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			e := benchSet(b, n, "payload.celsius > N").NewEvaluator()
			x := &Event{Topic: "site/x/room/humidity", Payload: []byte(`{"celsius": 31.5}`), Time: t0}
			var dst []Firing
			b.ReportAllocs()
			for b.Loop() {
				dst = e.Eval(x, dst[:0])
			}
			reportRate(b, "events/s", 1)
		})
	}
}

// One rule that matches and evaluates `payload.celsius > 28` (not firing), JSON decode
// included; and the same with 1,000 rules of which 10 match the event.
func BenchmarkEventMatch(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			set := benchSet(b, n, "payload.celsius > 100 + N")
			e := set.NewEvaluator()
			x := &Event{Topic: "site/0/room/temperature", Payload: []byte(`{"celsius": 31.5, "humidity": 60}`), Time: t0}
			var dst []Firing
			b.ReportAllocs()
			for b.Loop() {
				dst = e.Eval(x, dst[:0])
			}
			reportRate(b, "events/s", 1)
			matched := uint64(0)
			for _, r := range set.Rules {
				matched += r.Counters().Matched.Load()
			}
			b.ReportMetric(float64(matched)/float64(b.N), "rules-matched/event")
		})
	}
}

// The cost of one simple rule evaluation on an event already decoded: the figure behind
// "rule evaluations per second per core".
func BenchmarkRuleEvaluation(b *testing.B) {
	set := benchSet(b, 1, "payload.celsius > 28 && payload.humidity < 80")
	e := set.NewEvaluator()
	r := set.Rules[0]
	e.env = Env{Topic: "site/0/room/temperature", Payload: DecodePayload([]byte(`{"celsius": 21.5, "humidity": 60}`)), Now: t0}
	b.ReportAllocs()
	for b.Loop() {
		if _, fired := e.evalRule(r, t0); fired {
			b.Fatal("fired")
		}
	}
	reportRate(b, "evals/s", 1)
}

// A rule with a 5-minute window, `for` and throttle over 100 keys: the stateful path.
func BenchmarkStatefulRule(b *testing.B) {
	set, err := Compile(mustParse(b, `
rules:
  - name: hot
    on: site/+/+/temperature
    key: topic_parts[1]
    window: {over: 5m, of: payload.celsius}
    if: window.avg > 100
    for: 1m
    throttle: 30s
    do: [{publish: {topic: '"x"'}}]
`), Options{})
	if err != nil {
		b.Fatal(err)
	}
	e := set.NewEvaluator()
	events := make([]Event, 100)
	for i := range events {
		events[i] = Event{Topic: fmt.Sprintf("site/%d/room/temperature", i), Payload: []byte(`{"celsius": 31.5}`)}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		x := &events[i%len(events)]
		x.Time = t0.Add(time.Duration(i) * 10 * time.Millisecond) // 100 events/s per key
		e.Eval(x, nil)
		i++
	}
	reportRate(b, "events/s", 1)
}

// Matching cost must not depend on how many other filters exist: the trie the rule set
// keeps its filters in (topic.Matcher), measured here so that `go tool task bench` reports it.
func BenchmarkMatchFlat(b *testing.B) {
	for _, others := range []int{10, 10000} {
		b.Run(fmt.Sprintf("others=%d", others), func(b *testing.B) {
			var m topic.Matcher[int32]
			for i := 0; i < others; i++ {
				_ = m.Add(fmt.Sprintf("plant/%d/+/pressure", i), int32(i))
				_ = m.Add(fmt.Sprintf("line/%d/#", i), int32(i))
			}
			_ = m.Add("site/+/room/temperature", -1)
			dst := make([]int32, 0, 4)
			b.ReportAllocs()
			for b.Loop() {
				dst = m.Match("site/7/room/temperature", dst[:0])
			}
			if len(dst) != 1 {
				b.Fatal("no match")
			}
		})
	}
}
