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
	// Every rule carries the actions a real rule set has: a publish and an invoke, whose
	// expressions are evaluated when the rule fires.
	sb.WriteString("functions:\n  cool: {runtime: sh, code: cat}\nrules:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, "  - name: r%d\n    on: site/%d/+/temperature\n    if: %s\n    do:\n      - publish: {topic: '\"alerts/\" + topic', payload: 'payload.celsius'}\n      - invoke: cool\n        args: {room: 'topic_parts[2]', celsius: payload.celsius}\n",
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

// hotCold are two events of one room, below and above 30 °C: alternating them makes a
// rule `payload.celsius > 30` fire on half the events.
func hotCold(topic string) [2]Event {
	return [2]Event{
		{Topic: topic, Payload: []byte(`{"celsius": 21.5, "humidity": 60}`), Time: t0},
		{Topic: topic, Payload: []byte(`{"celsius": 41.5, "humidity": 60}`), Time: t0},
	}
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

// One rule that matches the event and evaluates its condition, which is false (it never
// fires), JSON decode included; and the same with 1,000 rules of which 10 match the event.
func BenchmarkEventMatchNoFire(b *testing.B) {
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

// The same rules with half the events above the threshold: every matching rule fires on
// those, and its publish and invoke actions are evaluated (topic, payload, arguments).
func BenchmarkEventFire(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			set := benchSet(b, n, "payload.celsius > 30")
			e := set.NewEvaluator()
			events := hotCold("site/0/room/temperature")
			var dst []Firing
			firings, i := 0, 0
			b.ReportAllocs()
			for b.Loop() {
				dst = e.Eval(&events[i&1], dst[:0])
				firings += len(dst)
				i++
			}
			reportRate(b, "events/s", 1)
			b.ReportMetric(float64(firings)/float64(b.N), "firings/event")
			// Rules are on site/{i%100}/...: max(1, n/100) match the event, all fire when hot.
			if want := max(1, n/100) * (b.N / 2); firings != want {
				b.Fatalf("%d firings for %d events, want %d", firings, b.N, want)
			}
			if a := dst; len(a) > 0 && len(a[0].Actions) != 2 {
				b.Fatalf("firing has %d actions, want publish and invoke", len(a[0].Actions))
			}
		})
	}
}

// The cost of one simple rule evaluation on an event already decoded: the figure behind
// "rule evaluations per second per core". outcome=false: the condition is false (the
// common case); outcome=true: it holds, and the firing's publish and invoke actions are
// evaluated too.
func BenchmarkRuleEvaluation(b *testing.B) {
	for _, fires := range []bool{false, true} {
		b.Run(fmt.Sprintf("outcome=%v", fires), func(b *testing.B) {
			set := benchSet(b, 1, "payload.celsius > 28 && payload.humidity < 80")
			e := set.NewEvaluator()
			r := set.Rules[0]
			celsius := map[bool]string{false: "21.5", true: "31.5"}[fires]
			e.env = Env{Topic: "site/0/room/temperature", TopicParts: []string{"site", "0", "room", "temperature"},
				Payload: DecodePayload([]byte(`{"celsius": ` + celsius + `, "humidity": 60}`)), Now: t0, Fetch: fetchMember}
			b.ReportAllocs()
			for b.Loop() {
				if f, fired := e.evalRule(r, t0); fired != fires || (fires && len(f.Actions) != 2) {
					b.Fatalf("fired %v with %d actions, want %v", fired, len(f.Actions), fires)
				}
			}
			reportRate(b, "evals/s", 1)
		})
	}
}

// A rule with a 5-minute window, `for` and throttle over 100 keys: the stateful path.
// Half the keys are hot: their window's average holds the condition, so each fires once
// its `for` has passed and then once per throttle period (30 s of event time, 30 of its
// events); the other half never do.
func BenchmarkStatefulRule(b *testing.B) {
	set, err := Compile(mustParse(b, `
functions:
  cool: {runtime: sh, code: cat}
rules:
  - name: hot
    on: site/+/+/temperature
    key: topic_parts[1]
    window: {over: 5m, of: payload.celsius}
    if: window.avg > 30
    for: 1m
    throttle: 30s
    do:
      - publish: {topic: '"alerts/" + topic', payload: 'window.avg'}
      - invoke: cool
        args: {site: 'topic_parts[1]', avg: window.avg}
`), Options{})
	if err != nil {
		b.Fatal(err)
	}
	e := set.NewEvaluator()
	events := make([]Event, 100)
	for i := range events {
		events[i] = Event{Topic: fmt.Sprintf("site/%d/room/temperature", i), Payload: []byte(fmt.Sprintf(`{"celsius": %d.5}`, 20+20*(i%2)))}
	}
	firings := 0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		x := &events[i%len(events)]
		x.Time = t0.Add(time.Duration(i) * 10 * time.Millisecond) // one event a second per key
		firings += len(e.Eval(x, nil))
		i++
	}
	reportRate(b, "events/s", 1)
	b.ReportMetric(1000*float64(firings)/float64(b.N), "firings/1000-events")
	// Past a minute of event time (6,000 events) the hot keys must have fired.
	if b.N > 10_000 && firings == 0 {
		b.Fatalf("no firing in %d events", b.N)
	}
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

// The paced profile's rule: `payload.temp > 30` with a publish of the member, on
// `{"temp":N,"seq":i}`, firing on half the events. member: the only rule on the topic;
// whole: beside a rule that reads the whole payload (never fires), so the event is
// decoded in full.
func BenchmarkEventMember(b *testing.B) {
	const member = "rules:\n  - name: hot\n    on: sensors/+/temp\n    if: payload.temp > 30\n    do: [{publish: {topic: '\"alerts/\" + topic', payload: payload.temp}}]\n"
	for _, c := range []struct{ name, src string }{
		{"member", member},
		{"whole", member + "  - name: off\n    on: sensors/#\n    if: payload == \"off\"\n    do: [{publish: {topic: '\"off\"'}}]\n"},
	} {
		b.Run("rule="+c.name, func(b *testing.B) {
			e := compileSrc(b, c.src, Options{}).NewEvaluator()
			events := make([]Event, 256)
			for i := range events {
				events[i] = Event{Topic: "sensors/s1/temp", Payload: []byte(fmt.Sprintf(`{"temp":%d,"seq":%d}`, 25+10*(i%2), 10000+i)), Time: t0}
			}
			var dst []Firing
			firings, i := 0, 0
			b.ReportAllocs()
			for b.Loop() {
				dst = e.Eval(&events[i%len(events)], dst[:0])
				firings += len(dst)
				i++
			}
			reportRate(b, "events/s", 1)
			if want := b.N / 2; firings != want {
				b.Fatalf("%d firings for %d events, want %d", firings, b.N, want)
			}
		})
	}
}
