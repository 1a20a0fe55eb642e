package rules

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// stagedRules are stateful rules of every kind (window by time and count, for, throttle,
// prev, key from the payload or the topic) beside a stateless one, on overlapping
// filters, so one event fires several rules with different keys.
const stagedRules = `
rules:
  - name: plain
    on: s/+/t
    if: payload.c > 25
    do: [{publish: {topic: '"plain/" + topic_parts[1]', payload: payload.c}}]
  - name: avg
    on: s/+/t
    key: payload.dev
    window: {over: 30s, of: payload.c}
    if: window.avg > 20 && window.count >= 2
    do: [{publish: {topic: '"avg"', payload: 'string(window.avg) + "/" + string(window.count)'}}]
  - name: hot-for
    on: s/#
    for: 20s
    if: payload.c > 28
    do: [{publish: {topic: '"for"', payload: payload.seq}}]
  - name: throttled
    on: s/+/t
    key: payload.dev
    throttle: 15s
    if: payload.c > 22
    do: [{publish: {topic: '"thr"', payload: payload.seq}}]
  - name: rising
    on: s/+/t
    key: topic_parts[1] + "/" + string(payload.dev)
    if: prev != nil && payload.c > prev.c
    do: [{publish: {topic: '"rise"', payload: 'string(payload.c) + ">" + string(prev.c)'}}]
  - name: counted
    on: s/+/t
    key: int(payload.dev) % 7
    window: {count: 5, of: payload.c}
    do: [{publish: {topic: '"cnt"', payload: 'string(window.min) + "/" + string(window.max) + "/" + string(window.sum)'}}]
`

// stagedRulesLazy are stagedRules with `rising` reading no prev: every rule reads the
// payload by member only, so the events' payloads are lazy (lazy.go), staged and applied
// by workers.
var stagedRulesLazy = strings.NewReplacer(
	"if: prev != nil && payload.c > prev.c", "if: payload.c > int(payload.seq) % 30",
	`payload: 'string(payload.c) + ">" + string(prev.c)'`, `payload: 'string(payload.c) + ">" + string(int(payload.seq) % 30)'`,
).Replace(stagedRules)

// firingLog is what a run fired, per rule and key, in order.
type firingLog map[string][]string

func (l firingLog) add(fs []Firing) {
	for _, f := range fs {
		var acts []string
		for _, a := range f.Actions {
			acts = append(acts, fmt.Sprintf("%s=%v", a.Topic, a.Payload))
		}
		k := f.Rule + "|" + f.Key
		l[k] = append(l[k], fmt.Sprintf("%s %v", f.Time.Sub(t0), acts))
	}
}

// stateOf is every rule's per-key state, comparable across two sets of the same rules.
func stateOf(s *Set) map[string]string {
	out := map[string]string{}
	for _, r := range s.Rules {
		if r.state == nil {
			continue
		}
		r.state.mu.Lock()
		for k, ks := range r.state.keys {
			out[r.Name+"|"+k] = fmt.Sprintf("since=%v last=%v prev=%v/%v win=%+v", ks.since, ks.lastFire, ks.hasPrev, ks.prevVal, ks.win.stats())
		}
		r.state.mu.Unlock()
	}
	return out
}

// randomStream is n events over many keys (devices and topics), some malformed, at
// random times that never go backwards.
func randomStream(rng *rand.Rand, n int) []Event {
	events := make([]Event, n)
	at := time.Duration(0)
	for i := range events {
		at += time.Duration(rng.IntN(4000)) * time.Millisecond
		topic := fmt.Sprintf("s/%d/t", rng.IntN(12))
		payload := fmt.Sprintf(`{"c":%d,"dev":%d,"seq":%d}`, 15+rng.IntN(20), rng.IntN(40), i)
		switch rng.IntN(50) {
		case 0:
			payload = `not json` // payload.c fails: counted errors, same in both runs
		case 1:
			topic = fmt.Sprintf("s/%d/other/x", rng.IntN(3)) // only hot-for's filter
		}
		events[i] = Event{Topic: topic, Payload: []byte(payload), Time: t0.Add(at)}
	}
	return events
}

// TestWorkersEqualSequential is the property that makes parallel evaluation safe: over
// random event streams cut into random batches, Workers on 2, 3 or 8 goroutines fire
// the same rules with the same actions in the same order per (rule, key), and leave the
// same state, the same counters, as one Evaluator taking the events one by one.
func TestWorkersEqualSequential(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		rules := []string{stagedRules, stagedRulesLazy}[seed%2]
		rng := rand.New(rand.NewPCG(seed, 13))
		events := randomStream(rng, 300+rng.IntN(1500))
		workers := []int{2, 3, 8}[seed%3]

		seqSet := compileSrc(t, rules, Options{})
		for _, r := range seqSet.Rules {
			if rules == stagedRulesLazy && r.uses&usePayloadWhole != 0 {
				t.Fatalf("rule %s reads the payload whole: its events are not lazy", r.Name)
			}
		}
		seq := firingLog{}
		var seqOrder []string // every firing in the order Eval returned them
		e := seqSet.NewEvaluator()
		for i := range events {
			fs := e.Eval(&events[i], nil)
			seq.add(fs)
			for _, f := range fs {
				seqOrder = append(seqOrder, fmt.Sprint(i, f.Rule))
			}
		}

		parSet := compileSrc(t, rules, Options{})
		par := firingLog{}
		var parOrder []string
		w := parSet.NewWorkers(workers)
		for lo := 0; lo < len(events); {
			hi := min(len(events), lo+1+rng.IntN(200))
			staged := w.Eval(events[lo:hi])
			for i := range staged {
				fs := staged[i].Firings(nil)
				par.add(fs)
				for _, f := range fs {
					parOrder = append(parOrder, fmt.Sprint(lo+i, f.Rule))
				}
			}
			lo = hi
		}

		if !reflect.DeepEqual(seq, par) {
			for k := range seq {
				if !reflect.DeepEqual(seq[k], par[k]) {
					t.Fatalf("seed %d, %d workers: %s fired\n%v\nsequentially, but\n%v", seed, workers, k, seq[k], par[k])
				}
			}
			t.Fatalf("seed %d: a key fired only in parallel: %d vs %d keys", seed, len(seq), len(par))
		}
		if !reflect.DeepEqual(seqOrder, parOrder) {
			t.Fatalf("seed %d: firings in another order", seed)
		}
		if a, b := stateOf(seqSet), stateOf(parSet); !reflect.DeepEqual(a, b) {
			t.Fatalf("seed %d: final state differs:\n%v\n%v", seed, sortedKeys(a), sortedKeys(b))
		}
		for i, r := range seqSet.Rules {
			a, b := r.Counters(), parSet.Rules[i].Counters()
			if a.Matched.Load() != b.Matched.Load() || a.Fired.Load() != b.Fired.Load() || a.Errors.Load() != b.Errors.Load() || a.Throttled.Load() != b.Throttled.Load() {
				t.Fatalf("seed %d: rule %s counters differ: matched %d/%d fired %d/%d errors %d/%d",
					seed, r.Name, a.Matched.Load(), b.Matched.Load(), a.Fired.Load(), b.Fired.Load(), a.Errors.Load(), b.Errors.Load())
			}
		}
		if seqSet.Rules[1].Counters().Fired.Load() == 0 || seqSet.Rules[4].Counters().Fired.Load() == 0 {
			t.Fatalf("seed %d: the stream did not exercise the stateful rules", seed)
		}
	}
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+": "+v)
	}
	sort.Strings(out)
	return out
}

// TestWorkersKeepPerKeyOrder: one key's events spread over a large batch on many
// workers are applied in arrival order (a window of the sequence numbers sees them
// rising), while other keys' events go to other workers.
func TestWorkersKeepPerKeyOrder(t *testing.T) {
	set := compileSrc(t, `
rules:
  - name: order
    on: k/+
    if: prev == nil || payload.seq == prev.seq + 1
    do: [{publish: {topic: '"ok"'}}]
`, Options{})
	const keys, per = 64, 200
	events := make([]Event, 0, keys*per)
	for i := 0; i < per; i++ {
		for k := 0; k < keys; k++ {
			events = append(events, Event{Topic: fmt.Sprintf("k/%d", k), Payload: []byte(fmt.Sprintf(`{"seq":%d}`, i)), Time: t0})
		}
	}
	w := set.NewWorkers(4)
	fired := 0
	for lo := 0; lo < len(events); lo += 1000 {
		staged := w.Eval(events[lo:min(len(events), lo+1000)])
		for i := range staged {
			fired += len(staged[i].Firings(nil))
		}
	}
	if fired != keys*per {
		t.Fatalf("%d of %d events saw their key's previous event just before them", fired, keys*per)
	}
}

// A fixed publish topic is checked once, at load: an invalid one is a load error (it
// failed at every firing before), a valid one is used without running its expression.
func TestFixedPublishTopic(t *testing.T) {
	_, err := Compile(mustParse(t, "rules:\n  - name: r\n    on: a/#\n    do: [{publish: {topic: '\"alerts/+\"'}}]\n"), Options{})
	if err == nil || !strings.Contains(err.Error(), `publish topic "alerts/+"`) {
		t.Fatalf("invalid fixed topic: %v", err)
	}
	set := compileSrc(t, "rules:\n  - name: r\n    on: a/#\n    do: [{publish: {topic: '\"alerts/\" + \"hot\"'}}, {publish: {topic: 'topic + \"/x\"'}}]\n", Options{})
	if a := set.Rules[0].actions[0]; a.fixedTopic != "alerts/hot" {
		t.Fatalf("constant topic not folded: %q", a.fixedTopic)
	}
	fs := set.NewEvaluator().Eval(ev("a/b", "{}", 0), nil)
	if len(fs) != 1 || fs[0].Actions[0].Topic != "alerts/hot" || fs[0].Actions[1].Topic != "a/b/x" {
		t.Fatalf("firings %+v", fs)
	}
}
