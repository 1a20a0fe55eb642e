package rules

import (
	"bytes"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func compileSrc(t testing.TB, src string, opts Options) *Set {
	t.Helper()
	set, err := Compile(mustParse(t, src), opts)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func ev(topic, payload string, at time.Duration) *Event {
	return &Event{Topic: topic, Payload: []byte(payload), Time: t0.Add(at)}
}

func firedAt(t *testing.T, e *Evaluator, events []*Event) []string {
	t.Helper()
	var out []string
	for _, x := range events {
		for _, f := range e.Eval(x, nil) {
			out = append(out, fmt.Sprintf("%s@%s", f.Rule, f.Time.Sub(t0)))
		}
	}
	return out
}

func TestForAndThrottle(t *testing.T) {
	set := compileSrc(t, `
rules:
  - name: hot
    on: s/+/t
    if: payload.c > 30
    for: 1m
    throttle: 90s
    do: [{publish: {topic: '"x"'}}]
`, Options{})
	e := set.NewEvaluator()
	var events []*Event
	for i := 0; i <= 12; i++ { // every 20 s from 0 to 240 s, hot except at 100 s
		c := 35
		if i == 5 {
			c = 20
		}
		events = append(events, ev("s/a/t", fmt.Sprintf(`{"c":%d}`, c), time.Duration(i)*20*time.Second))
	}
	got := strings.Join(firedAt(t, e, events), " ")
	// true 0..80 s: fires at 60 s; false at 100 s resets `for`; true again from 120 s,
	// held at 180 s, but throttled until 60+90 = 150 s only, so fires at 180 s; then 270 s.
	if want := "hot@1m0s hot@3m0s"; got != want {
		t.Fatalf("fired %q, want %q", got, want)
	}
	c := set.Rules[0].Counters()
	if c.Fired.Load() != 2 || c.Throttled.Load() != 4 || c.Matched.Load() != 13 {
		t.Fatalf("counters fired=%d throttled=%d matched=%d", c.Fired.Load(), c.Throttled.Load(), c.Matched.Load())
	}
}

func TestWindowsAgainstReference(t *testing.T) {
	for _, spec := range []string{"{over: 30s, of: payload.v}", "{count: 7, of: payload.v}", "{over: 1h, of: payload.v, max_samples: 5}"} {
		set := compileSrc(t, `
rules:
  - name: w
    on: x
    window: `+spec+`
    do: [{publish: {topic: '"x"', payload: window}}]
`, Options{})
		e := set.NewEvaluator()
		rng := rand.New(rand.NewPCG(1, 2))
		type smp struct {
			at time.Duration
			v  float64
		}
		var hist []smp
		at := time.Duration(0)
		for i := 0; i < 2000; i++ {
			at += time.Duration(rng.IntN(5000)) * time.Millisecond
			v := math.Round(rng.NormFloat64()*1000) / 10
			hist = append(hist, smp{at, v})
			fs := e.Eval(ev("x", fmt.Sprintf(`{"v":%v}`, v), at), nil)
			if len(fs) != 1 {
				t.Fatalf("%s: no firing", spec)
			}
			got := fs[0].Actions[0].Payload.(Window)
			// Reference: recompute from the history.
			var in []float64
			for _, h := range hist {
				switch spec {
				case "{over: 30s, of: payload.v}":
					if h.at > at-30*time.Second {
						in = append(in, h.v)
					}
				default:
					in = append(in, h.v)
				}
			}
			keep := map[string]int{"{count: 7, of: payload.v}": 7, "{over: 1h, of: payload.v, max_samples: 5}": 5}[spec]
			if keep > 0 && len(in) > keep {
				in = in[len(in)-keep:]
			}
			want := Window{Min: math.Inf(1), Max: math.Inf(-1), Count: len(in), Last: v}
			for _, x := range in {
				want.Sum += x
				want.Min = math.Min(want.Min, x)
				want.Max = math.Max(want.Max, x)
			}
			want.Avg = want.Sum / float64(len(in))
			if got.Count != want.Count || got.Min != want.Min || got.Max != want.Max || got.Last != want.Last ||
				math.Abs(got.Sum-want.Sum) > 1e-6 || math.Abs(got.Avg-want.Avg) > 1e-6 {
				t.Fatalf("%s: event %d: window %+v, want %+v", spec, i, got, want)
			}
		}
	}
}

func TestStateIsBoundedLRU(t *testing.T) {
	set := compileSrc(t, `
rules:
  - name: per-device
    on: d/#
    throttle: 1h
    do: [{publish: {topic: '"x"'}}]
`, Options{MaxKeys: 100})
	e := set.NewEvaluator()
	r := set.Rules[0]
	// A flood of distinct topics: each fires once (new key), memory stays at 100 keys.
	for i := 0; i < 10000; i++ {
		if len(e.Eval(ev(fmt.Sprintf("d/%d", i), "{}", time.Duration(i)*time.Millisecond), nil)) != 1 {
			t.Fatalf("event %d did not fire", i)
		}
	}
	if r.Keys() != 100 || r.Counters().Evicted.Load() != 9900 {
		t.Fatalf("keys=%d evicted=%d, want 100 and 9900", r.Keys(), r.Counters().Evicted.Load())
	}
	// Recently used keys survive: d/9999 is still throttled, d/0 was evicted and fires.
	if len(e.Eval(ev("d/9999", "{}", 11*time.Second), nil)) != 0 {
		t.Fatal("recent key lost its throttle state")
	}
	if len(e.Eval(ev("d/0", "{}", 11*time.Second), nil)) != 1 {
		t.Fatal("evicted key should start afresh")
	}
	// Touching a key moves it to the front.
	e.Eval(ev("d/9901", "{}", 12*time.Second), nil)
	for i := 0; i < 99; i++ {
		e.Eval(ev(fmt.Sprintf("new/%d", i), "{}", 13*time.Second), nil)
	}
	if len(e.Eval(ev("d/9901", "{}", 14*time.Second), nil)) != 0 {
		t.Fatal("touched key was evicted before older ones")
	}
}

func TestRuntimeErrorsAreCountedAndIsolated(t *testing.T) {
	var logs bytes.Buffer
	set := compileSrc(t, `
rules:
  - name: fragile
    on: x
    if: payload.a.b > 1
    do: [{publish: {topic: '"x"'}}]
  - name: huge
    on: x
    if: "len(map(1..100000, # * 2)) > 1"
    do: [{publish: {topic: '"x"'}}]
  - name: bad-topic
    on: x
    do: [{publish: {topic: 'payload.t'}}]
  - name: fine
    on: x
    do: [{publish: {topic: '"ok"'}}]
`, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), ErrorLogInterval: time.Hour})
	e := set.NewEvaluator()
	for i, p := range []string{`{"a": 5}`, `not json`, `{"a": {"b": "str"}}`, `{"t": "a/+"}`, `{"t": 5}`, `{}`} {
		fs := e.Eval(ev("x", p, time.Duration(i)), nil)
		if len(fs) == 0 || fs[len(fs)-1].Rule != "fine" {
			t.Fatalf("payload %s: the healthy rule did not fire: %+v", p, fs)
		}
	}
	for name, want := range map[string]uint64{"fragile": 6, "huge": 6, "bad-topic": 6} {
		if got := set.Rule(name).Counters().Errors.Load(); got != want {
			t.Errorf("rule %s: %d errors, want %d", name, got, want)
		}
	}
	if n := strings.Count(logs.String(), "rule evaluation failed"); n != 3 {
		t.Errorf("logged %d times, want once per failing rule:\n%s", n, logs.String())
	}
}

// Each rule keeps its last runtime error: where it failed, the message, the event's topic
// and receive time. Events without an error leave it as it is.
func TestLastRuntimeError(t *testing.T) {
	set := compileSrc(t, `
rules:
  - {name: if, on: s/+, if: payload.a.b > 1, do: [{publish: {topic: '"x"'}}]}
  - {name: key, on: s/+, key: 'payload.k + 1', do: [{publish: {topic: '"x"'}}]}
  - {name: window, on: s/+, window: {count: 2, of: payload.v}, do: [{publish: {topic: '"x"'}}]}
  - {name: action, on: s/+, do: [{publish: {topic: 'payload.t'}}]}
  - {name: fine, on: s/+, do: [{publish: {topic: '"ok"'}}]}
`, Options{})
	e := set.NewEvaluator()
	e.Eval(ev("s/1", `{"a": {"b": 2}, "k": 1, "v": 1, "t": "out"}`, 0), nil)
	for _, r := range set.Rules {
		if le := r.Counters().LastError(); le != nil {
			t.Fatalf("rule %s: last error %v after an event without errors", r.Name, le)
		}
	}
	e.Eval(ev("s/2", `{"a": 5, "k": "x", "v": "high", "t": 7}`, time.Second), nil)
	e.Eval(ev("s/3", `{"a": {"b": 2}, "k": 1, "v": 1, "t": "out"}`, 2*time.Second), nil) // no error: the last one stays
	for name, want := range map[string]struct{ in, msg string }{
		"if":     {"if", "cannot fetch b from float64"},
		"key":    {"key", "invalid operation"},
		"window": {"condition", "window of: high (string) is not a number"},
		"action": {"action", "publish topic: 7 (float64) is not a string"},
	} {
		le := set.Rule(name).Counters().LastError()
		if le == nil || le.In != want.in || !strings.Contains(le.Err.Error(), want.msg) || le.Topic != "s/2" || !le.At.Equal(t0.Add(time.Second)) ||
			le.Error() != want.in+": "+le.Err.Error() {
			t.Errorf("rule %s: last error %+v, want in %q, a message with %q, topic s/2 at 1s", name, le, want.in, want.msg)
		}
	}
	if le := set.Rule("fine").Counters().LastError(); le != nil {
		t.Errorf("rule fine: last error %v", le)
	}

	// Readers (the HTTP API) load it while the evaluator stores new ones (go test -race).
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			if le := set.Rule("if").Counters().LastError(); le == nil || !strings.HasPrefix(le.Error(), "if: cannot fetch b") {
				t.Error("torn last error")
				return
			}
		}
	}()
	for i := range 1000 {
		e.Eval(ev("s/4", `{"a": 5}`, time.Duration(i)*time.Millisecond), nil)
	}
	<-done
	if le := set.Rule("if").Counters().LastError(); le.Topic != "s/4" || !le.At.Equal(t0.Add(999*time.Millisecond)) {
		t.Fatalf("last error %+v, want the last event's", le)
	}
}

func TestVariablesAndLazyPayload(t *testing.T) {
	set := compileSrc(t, `
rules:
  - name: vars
    on: a/+/c
    if: topic == "a/b/c" && topic_parts[1] == "b" && raw == "hello" && payload == "hello" && client == "dev1" && qos == 1 && !retain && now.Year() == 2026
    do:
      - publish: {topic: '"out/" + topic_parts[1]', payload: 'agents[0].labels.zone', qos: 2, retain: true}
  - name: topic-only
    on: a/#
    if: topic_parts[0] == "a"
    do: [{publish: {topic: '"x"'}}]
`, Options{})
	set.SetAgents([]Agent{{ID: "gh1", Online: true, Labels: map[string]string{"zone": "north"}}})
	e := set.NewEvaluator()
	fs := e.Eval(&Event{Topic: "a/b/c", Payload: []byte("hello"), Client: "dev1", QoS: 1, Time: t0}, nil)
	if len(fs) != 2 || fs[0].Rule != "vars" {
		t.Fatalf("firings %+v", fs)
	}
	a := fs[0].Actions[0]
	if a.Kind != Publish || a.Topic != "out/b" || a.Payload != "north" || a.QoS != 2 || !a.Retain {
		t.Fatalf("action %+v", a)
	}
	if set.Rule("topic-only").uses&usePayload != 0 {
		t.Fatal("a rule that does not read payload must not make the evaluator decode it")
	}
}

func TestDollarTopicsAndEmptyPayload(t *testing.T) {
	set := compileSrc(t, `
rules:
  - name: all
    on: "#"
    do: [{publish: {topic: '"x"'}}]
  - name: sys
    on: $SYS/#
    if: payload == ""
    do: [{publish: {topic: '"y"'}}]
`, Options{})
	e := set.NewEvaluator()
	fs := e.Eval(&Event{Topic: "$SYS/broker/uptime", Time: t0}, nil)
	if len(fs) != 1 || fs[0].Rule != "sys" {
		t.Fatalf("a leading wildcard matched a $ topic: %+v", fs)
	}
}

func TestConcurrentEvaluatorsKeepPerKeyState(t *testing.T) {
	set := compileSrc(t, `
rules:
  - name: count
    on: k/+
    window: {count: 100000, of: "1"}
    if: "true"
    do: [{publish: {topic: '"x"', payload: window.count}}]
`, Options{})
	const workers, perWorker = 4, 2000
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			e := set.NewEvaluator()
			for i := 0; i < perWorker; i++ {
				e.Eval(ev(fmt.Sprintf("k/%d", i%3), "{}", time.Duration(i)), nil)
			}
		}(w)
	}
	wg.Wait()
	total := 0
	e := set.NewEvaluator()
	for k := 0; k < 3; k++ {
		fs := e.Eval(ev(fmt.Sprintf("k/%d", k), "{}", time.Hour), nil)
		total += fs[0].Actions[0].Payload.(int) - 1
	}
	if total != workers*perWorker {
		t.Fatalf("window counted %d events, want %d", total, workers*perWorker)
	}
}

func TestRuleOrderAndDuplicateFilters(t *testing.T) {
	set := compileSrc(t, `
rules:
  - {name: first, on: [a/#, a/b, +/b], do: [{publish: {topic: '"x"'}}]}
  - {name: second, on: "#", do: [{publish: {topic: '"x"'}}]}
  - {name: third, on: a/+, do: [{publish: {topic: '"x"'}}]}
`, Options{})
	var names []string
	for _, f := range set.NewEvaluator().Eval(ev("a/b", "", 0), nil) {
		names = append(names, f.Rule)
	}
	if got := strings.Join(names, ","); got != "first,second,third" {
		t.Fatalf("fired %s, want each rule once in file order", got)
	}
}

func TestNoMatchDoesNotAllocate(t *testing.T) {
	set := compileSrc(t, "rules:\n  - {name: r, on: sensors/+/t, if: payload.c > 1, do: [{publish: {topic: '\"x\"'}}]}\n", Options{})
	e := set.NewEvaluator()
	x := ev("other/topic/here", `{"c": 5}`, 0)
	var dst []Firing
	if n := testing.AllocsPerRun(200, func() { dst = e.Eval(x, dst[:0]) }); n != 0 {
		t.Fatalf("%v allocations for an event matching no rule, want 0", n)
	}
}
