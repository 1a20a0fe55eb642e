package rules

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/expr-lang/expr/vm"
)

// exprUses compiles src as a rule's expression does and returns its uses.
func exprUses(t *testing.T, src string) uses {
	t.Helper()
	c := &compiler{opts: Options{}.withDefaults(), set: &Set{Functions: map[string]*Function{}}}
	var u uses
	if c.expr(Expr{Src: src}, &u) == nil {
		t.Fatalf("%s: %v", src, c.errs)
	}
	return u
}

// TestPayloadUses: an expression that reads payload only through members keeps the
// event's payload lazy; any other read of the value needs it decoded.
func TestPayloadUses(t *testing.T) {
	members := []string{
		`payload.temp > 30`, `payload.a.b == 1`, `payload.temp ?? 0`, `len(payload.list) > 0`,
		`payload.x + payload.y`, `all(payload.list, {# > 1})`, `string(payload.temp)`,
		`payload.list[0]`, `payload.list[0].x`, `{"t": payload.temp}.t`, `payload.s matches "^a"`,
		`"x" in payload.tags`, `payload.temp > 30 ? payload.a : payload.b`, `map(payload.l, .v)`,
		`let t = payload.temp; t > 1`, `$fetch(payload, "temp")`, `$fetch(payload, topic)`,
		`payload["temp"]`, // a member too: the patch makes it $fetch(payload, "temp")
	}
	whole := []string{
		`payload`, `payload == nil`, `payload[topic]`, `payload?.temp`, `len(payload)`,
		`payload.temp > 1 && payload?.x == 1`, `get(payload, "temp")`, `"temp" in payload`,
		`keys(payload)`, `toJSON(payload)`, `let p = payload; p.temp`, `payload.temp > 1 || payload != nil`,
		`$env.payload.temp`, `$env["payload"]`, `$env`, `$fetch($fetch(payload, "a"), payload)`,
		`[payload][0].temp`, `type(payload)`,
	}
	for _, src := range members {
		if u := exprUses(t, src); u&usePayload == 0 || u&usePayloadWhole != 0 {
			t.Errorf("%s: uses %b, want payload by member only", src, u)
		}
	}
	for _, src := range whole {
		if u := exprUses(t, src); u&(usePayload|usePayloadWhole) != usePayload|usePayloadWhole {
			t.Errorf("%s: uses %b, want the whole payload", src, u)
		}
	}
	for _, src := range []string{`topic == "x"`, `raw != ""`, `prev.temp > 1`, `window.avg`} {
		if u := exprUses(t, src); u&(usePayload|usePayloadWhole) != 0 {
			t.Errorf("%s: uses %b, want no payload", src, u)
		}
	}
}

// TestLazyExpressionsEvaluateAlike: the expressions the analysis leaves lazy give, run
// by the VM on a lazy payload, the values and errors they give on the decoded payload.
func TestLazyExpressionsEvaluateAlike(t *testing.T) {
	exprs := []string{
		`payload.temp`, `payload.temp > 30`, `payload.zone.name`, `payload.zone.n + 1`, `payload["zone"]["name"]`,
		`payload.missing`, `payload.missing == nil`, `payload.missing.deeper`, `payload.list[1].x`,
		`payload.s.x`, `payload.temp ?? 0`, `len(payload.list)`, `all(payload.list, {# != nil})`,
		`payload.zone.name + "!"`, `{"t": payload.temp}.t`, `payload.temp > 30 && payload.zone.n == 2`,
		`$fetch(payload, topic)`, `$fetch(payload, 1)`, `$fetch(payload, nil)`,
	}
	payloads := append([]string{
		`{"temp": 31.5, "zone": {"name": "north", "n": 2}, "list": [1, {"x": 3}], "s": "text"}`,
		`{"temp": null, "zone": "flat", "temp": 3}`, `{"zone": {"name": "\u00e9"}}`,
	}, lazyPayloads...)
	c := &compiler{opts: Options{}.withDefaults(), set: &Set{Functions: map[string]*Function{}}}
	for _, src := range exprs {
		var u uses
		p := c.expr(Expr{Src: src}, &u)
		if p == nil || u&usePayloadWhole != 0 {
			t.Fatalf("%s: not a lazy expression (%v)", src, c.errs)
		}
		for _, pl := range payloads {
			var lazy lazyPayload
			lazy.reset([]byte(pl), map[string]string{})
			decoded := Env{Topic: "zone", Payload: DecodePayload([]byte(pl)), Fetch: fetchMember}
			undecoded := Env{Topic: "zone", Payload: &lazy, Fetch: fetchMember}
			var m vm.VM
			want, werr := m.Run(p, &decoded)
			got, gerr := m.Run(p, &undecoded)
			if fmt.Sprint(werr) != fmt.Sprint(gerr) || !reflect.DeepEqual(got, want) {
				t.Errorf("%s over %q: got %#v, %v; want %#v, %v", src, pl, got, gerr, want, werr)
			}
		}
	}
}

// lazyPayloads are payloads on which a lazy fetch must give what the full decode gives:
// beside payloadSeeds, the cases of the scan (duplicates, nesting, escapes, ranges, more
// members than its index).
var lazyPayloads = func() []string {
	out := append([]string{}, payloadSeeds...)
	var many, manyDup strings.Builder
	many.WriteString("{")
	manyDup.WriteString(`{"temp": 1`)
	for i := range 20 {
		if i > 0 {
			many.WriteString(",")
		}
		fmt.Fprintf(&many, `"k%d": %d`, i, i)
		fmt.Fprintf(&manyDup, `, "k%d": [%d]`, i, i)
	}
	many.WriteString(`, "temp": 3}`)
	manyDup.WriteString(`, "temp": {"x": 2}}`)
	deep := func(n int) string { return strings.Repeat("[", n) + "1" + strings.Repeat("]", n) }
	return append(out,
		`{"temp":31,"seq":12345}`, ` { "temp" : 31.5 , "seq" : -0 } `, "{\"temp\":\t1,\n\"a\":\r2}",
		`{"temp":1,"temp":2}`, `{"temp":{"a":1},"temp":[1,{"b":null}]}`, `{"temp":1,"x":2,"temp":3,"temp":4}`,
		`{"temp":{"a":{"b":[1,2,{"c":"d"}]}},"seq":1}`, `{"temp":[],"seq":{}}`, `{"temp":"text","s":true,"n":null,"f":false}`,
		`{"te\u006dp":1}`, `{"temp":"\u00e9"}`, `{"temp":"é"}`, `{"é":1,"temp":2}`, `{"temp":1,"s":"a\"b"}`,
		`{"temp":1e400}`, `{"a":1e400,"temp":1}`, `{"temp":1,"a":-1e400}`, `{"temp":1.5e-400}`, `{"temp":1E5,"b":2e+3}`,
		`{"temp":`+"1"+strings.Repeat("0", 308)+`}`, `{"temp":`+"2"+strings.Repeat("0", 308)+`}`,
		`{"temp":`+strings.Repeat("9", 308)+`.5}`, `{"temp":-`+strings.Repeat("9", 309)+`}`,
		`{"temp":01}`, `{"temp":1.}`, `{"temp":.5}`, `{"temp":+1}`, `{"temp":1,}`, `{"temp":1} x`, `{"temp":1}}`,
		`{"temp" 1}`, `{"temp":}`, `{"temp":1`, `{"temp`, `{`, `{}`, `{"":1}`, `{"temp":tru}`, `{"temp":nulll}`,
		`[{"temp":1}]`, `42`, `"temp"`, ``, `null`, `true`, ` `, `{"temp":1,"d":`+deep(30)+`}`,
		`{"temp":1,"d":`+deep(31)+`}`, `{"temp":1,"d":`+deep(32)+`}`, `{"temp":`+deep(40)+`}`,
		"{\"temp\":\"a\x01\"}", "{\"temp\":1}\x00", many.String(), manyDup.String(),
	)
}()

var lazyNames = []string{"temp", "a", "seq", "", "missing", "TEMP", "é", "k0", "k15", "k16", "k19", "d"}

// fetchResult is a fetch's value, or its panic's message.
func fetchResult(f func() any) (v any, panicked string) {
	defer func() {
		if r := recover(); r != nil {
			panicked = fmt.Sprint(r)
		}
	}()
	return f(), ""
}

// checkLazyFetches fetches names in turn from a lazy payload of b, from a copy of it
// halfway (Apply's), and compares each with fetchMember on the decoded payload.
func checkLazyFetches(t *testing.T, b []byte, keys map[string]string, names ...any) {
	t.Helper()
	full := decodePayload(b, nil)
	var p, q lazyPayload
	p.reset(b, keys)
	for i, name := range names {
		from := &p
		if i >= len(names)/2 {
			if i == len(names)/2 {
				q.copyOf(&p, keys)
			}
			from = &q
		}
		got, gotPanic := fetchResult(func() any { return fetchMember(from, name) })
		want, wantPanic := fetchResult(func() any { return fetchMember(full, name) })
		if gotPanic != wantPanic || !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: fetch %d of %q: got %#v (panic %q), want %#v (panic %q)", b, i, name, got, gotPanic, want, wantPanic)
		}
	}
}

func TestLazyFetchEqualsFullDecode(t *testing.T) {
	keys := map[string]string{}
	for _, s := range lazyPayloads {
		for _, n := range lazyNames {
			checkLazyFetches(t, []byte(s), keys, n)
			checkLazyFetches(t, []byte(s), nil, n, "temp", n, "k3", "temp")
		}
		checkLazyFetches(t, []byte(s), keys, "temp", 1, "temp")
		checkLazyFetches(t, []byte(s), keys, nil, "temp")
	}
}

// The scan indexes once: a document with few members is not decoded in full whatever
// is fetched, one with more members than the index only for a second name.
func TestLazyFetchScansOnce(t *testing.T) {
	var p lazyPayload
	p.reset([]byte(`{"temp":31,"seq":12345,"zone":{"n":2}}`), nil)
	for _, n := range []string{"temp", "seq", "zone", "missing", "temp", "zone"} {
		fetchMember(&p, n)
	}
	if p.state != lazyIndexed || p.n != 3 || !p.m[0].done || !p.m[1].done || !p.m[2].done {
		t.Fatalf("state %d, %d members: %+v", p.state, p.n, p.m[:p.n])
	}
	if z1, z2 := fetchMember(&p, "zone"), fetchMember(&p, "zone"); reflect.ValueOf(z1).Pointer() != reflect.ValueOf(z2).Pointer() {
		t.Fatal("a member fetched twice was decoded twice")
	}
	many := []byte(lazyPayloads[len(lazyPayloads)-2])
	p.reset(many, nil)
	if v := fetchMember(&p, "temp"); v != 3.0 || p.state != lazyIndexed || !p.over {
		t.Fatalf("temp %v, state %d, over %v", v, p.state, p.over)
	}
	if v := fetchMember(&p, "k3"); v != 3.0 || p.state != lazyFull {
		t.Fatalf("k3 %v, state %d: want the full decode", v, p.state)
	}
}

// A numeric member costs its box and nothing else: no map, no key.
func TestLazyFetchAllocations(t *testing.T) {
	b := []byte(`{"temp":31.5,"seq":12345}`)
	var p lazyPayload
	n := testing.AllocsPerRun(100, func() {
		p.reset(b, nil)
		if fetchMember(&p, "temp") != 31.5 || fetchMember(&p, "temp") != 31.5 {
			t.Fatal("temp")
		}
	})
	if n > 1 {
		t.Fatalf("%v allocations per event, want at most the box", n)
	}
}

// FuzzLazyFetch: a lazy fetch, in any order of names, gives what fetchMember gives on
// the decoded payload, panics included.
func FuzzLazyFetch(f *testing.F) {
	for i, s := range lazyPayloads {
		f.Add([]byte(s), lazyNames[i%len(lazyNames)], lazyNames[(i+1)%len(lazyNames)])
	}
	keys := map[string]string{}
	f.Fuzz(func(t *testing.T, b []byte, n1, n2 string) {
		checkLazyFetches(t, b, keys, n1, n2, n1, n2)
		checkLazyFetches(t, b, nil, n2, n1)
	})
}

// lazyRules read the payload by member only, in every part of a rule; lazyRulesWhole
// adds a rule on the same topics that reads it whole (and never fires): its events are
// decoded in full, as before lazy payloads. Both must fire alike.
const lazyRules = `
rules:
  - name: hot
    on: sensors/+/temp
    if: payload.temp > 30
    do: [{publish: {topic: '"alerts/" + topic', payload: payload.temp}}]
  - name: zone
    on: sensors/#
    if: payload.zone.n >= 2 || payload.temp < 0
    do:
      - publish: {topic: '"zone"', payload: '{"n": payload.zone.n, "name": payload.zone.name}'}
  - name: per-dev
    on: sensors/+/temp
    key: payload.dev
    window: {count: 3, of: payload.temp}
    if: window.avg > 20 && payload.seq > 0
    do: [{publish: {topic: '"avg"', payload: 'string(window.avg) + "/" + string(payload.dev)'}}]
`

const lazyRulesWhole = lazyRules + `
  - name: whole
    on: sensors/#
    if: payload == "never"
    do: [{publish: {topic: '"never"'}}]
`

var lazyEvents = func() []*Event {
	var out []*Event
	bodies := []string{`{"temp":%d,"seq":%d,"dev":"d%d"}`, `{"temp":%d,"seq":%d,"dev":%d,"zone":{"n":2,"name":"n"}}`,
		` { "seq" : %[2]d , "temp" : %[1]d , "dev" : "d%[3]d" , "temp" : -1 } `, `{"temp":"%d","seq":%d,"dev":%d}`,
		`{"temp":%d,"seq":%d,"dev":"d%d","s":"\u00e9"}`, `not json %d %d %d`, `[%d,%d,%d]`, `{"temp":%d,"seq":%d,"dev":%d,"x":1e999}`}
	for i := range 400 {
		body := fmt.Sprintf(bodies[i%len(bodies)], 20+i%20, i, i%5)
		out = append(out, ev(fmt.Sprintf("sensors/s%d/temp", i%3), body, 0))
	}
	return out
}()

// TestLazyPayloadFiresAsDecoded: rules that read payload members fire as they did on
// decoded payloads (the same firings, actions and errors), on events of every shape,
// sequentially and on workers; a rule that reads the payload whole still has it decoded.
func TestLazyPayloadFiresAsDecoded(t *testing.T) {
	run := func(src string, workers int) (firingLog, []uint64) {
		set := compileSrc(t, src, Options{})
		log := firingLog{}
		if workers == 0 {
			e := set.NewEvaluator()
			for _, x := range lazyEvents {
				log.add(e.Eval(x, nil))
			}
		} else {
			w := set.NewWorkers(workers)
			events := make([]Event, len(lazyEvents))
			for i, x := range lazyEvents {
				events[i] = *x
			}
			for lo := 0; lo < len(events); lo += 100 {
				staged := w.Eval(events[lo : lo+100])
				for i := range staged {
					log.add(staged[i].Firings(nil))
				}
			}
		}
		var counts []uint64
		for _, r := range set.Rules[:3] {
			c := r.Counters()
			counts = append(counts, c.Matched.Load(), c.Fired.Load(), c.Errors.Load())
		}
		return log, counts
	}
	want, wantCounts := run(lazyRulesWhole, 0)
	if wantCounts[1] == 0 || wantCounts[2] == 0 || wantCounts[4] == 0 || wantCounts[7] == 0 {
		t.Fatalf("the events did not exercise the rules: %v", wantCounts)
	}
	for _, workers := range []int{0, 1, 3} {
		for _, src := range []string{lazyRules, lazyRulesWhole} {
			got, counts := run(src, workers)
			if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(counts, wantCounts) {
				t.Fatalf("%d workers: fired\n%v\n%v\nwant\n%v\n%v", workers, got, counts, want, wantCounts)
			}
		}
	}

	// Which form each set's events get.
	for _, c := range []struct {
		src  string
		lazy bool
	}{{lazyRules, true}, {lazyRulesWhole, false}} {
		e := compileSrc(t, c.src, Options{}).NewEvaluator()
		if _, ok := e.begin(ev("sensors/a/temp", `{"temp":31}`, 0), &e.parts, &e.lazy); !ok {
			t.Fatal("no match")
		}
		if _, lazy := e.env.Payload.(*lazyPayload); lazy != c.lazy {
			t.Errorf("payload %T, want lazy %v", e.env.Payload, c.lazy)
		}
	}
}

// Nothing of a lazy payload outlives its event: what the firings hold are decoded
// values, and the evaluator and the staged events let go of the bytes.
func TestLazyPayloadReleased(t *testing.T) {
	set := compileSrc(t, lazyRules, Options{})
	e := set.NewEvaluator()
	b := []byte(`{"temp":31,"seq":1,"dev":"d1","zone":{"n":2}}`)
	fs := e.Eval(&Event{Topic: "sensors/a/temp", Payload: b, Time: t0}, nil)
	if len(fs) != 3 || fs[0].Actions[0].Payload != 31.0 || e.lazy.b != nil {
		t.Fatalf("firings %+v, lazy bytes %q", fs, e.lazy.b)
	}
	for i := range b {
		b[i] = ' ' // the intake recycles the bytes
	}
	if p := fs[1].Actions[0].Payload.(map[string]any); p["n"] != 2.0 {
		t.Fatalf("zone payload %v", p)
	}
	w := set.NewWorkers(2)
	events := make([]Event, 4)
	for i := range events {
		events[i] = Event{Topic: "sensors/a/temp", Payload: []byte(fmt.Sprintf(`{"temp":%d,"seq":1,"dev":"d1"}`, 30+i)), Time: t0}
	}
	staged := w.Eval(events)
	for i := range staged {
		staged[i].Firings(nil)
		if staged[i].lazy.b != nil || staged[i].env.Payload != nil {
			t.Fatalf("staged %d keeps its payload", i)
		}
	}
	for _, e := range w.evals {
		if e.lazy.b != nil {
			t.Fatal("a worker keeps a payload")
		}
	}
}

// BenchmarkLazyFetch: an event's member reads from a lazy payload against decoding it in
// full and reading the decoded map (what an event cost before lazy payloads). The 4 KB
// payloads are the worst cases: ten members read out of 12 large ones (one scan, ten
// member decodes), and out of 120 small ones (more than the index: one scan, then the
// full decode).
func BenchmarkLazyFetch(b *testing.B) {
	big := func(members, size int) []byte {
		var sb strings.Builder
		sb.WriteString("{")
		for i := range members {
			if i > 0 {
				sb.WriteString(", ")
			}
			fmt.Fprintf(&sb, `"m%d": `, i)
			if size < 40 {
				fmt.Fprintf(&sb, `[%d.25, "some text, %04d"]`, i, i)
				continue
			}
			sb.WriteString(`{"list": [`)
			for j := 0; sb.Len() < (i+1)*size; j++ {
				fmt.Fprintf(&sb, `%d, "s%d", `, j, j)
			}
			sb.WriteString(`true], "ok": null}`)
		}
		sb.WriteString("}")
		return []byte(sb.String())
	}
	ten := make([]any, 10) // names as the programs hold them: boxed once
	for i := range ten {
		ten[i] = fmt.Sprintf("m%d", i)
	}
	for _, c := range []struct {
		name  string
		b     []byte
		names []any
	}{
		{"small/1", []byte(`{"temp":31,"seq":12345}`), []any{"temp"}},
		{"small/3", []byte(`{"temp":31,"seq":12345}`), []any{"temp", "temp", "seq"}},
		{"4KB-12/10", big(12, 340), ten},
		{"4KB-120/1", big(120, 0), ten[:1]},
		{"4KB-120/10", big(120, 0), ten},
	} {
		keys := map[string]string{}
		b.Run(fmt.Sprintf("%s/lazy/%dB", c.name, len(c.b)), func(b *testing.B) {
			var p lazyPayload
			b.ReportAllocs()
			for b.Loop() {
				p.reset(c.b, keys)
				for _, n := range c.names {
					fetchMember(&p, n)
				}
			}
		})
		b.Run(fmt.Sprintf("%s/full/%dB", c.name, len(c.b)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				v := decodePayload(c.b, keys)
				for _, n := range c.names {
					fetchMember(v, n)
				}
			}
		})
	}
}

// $env reads variables by names the uses analysis cannot see: what it reads must be filled
// in even when no other rule needs it (they read empty before).
func TestEnvSeesEveryVariable(t *testing.T) {
	for _, src := range []string{
		`$env.raw == '{"temp":31}'`,
		`$env["raw"] != ""`,
		`$env.topic_parts[1] == "gh1"`,
		`len($env["topic_parts"]) == 3`,
		`$env.payload.temp > 30`,
		`$env.topic == "sensors/gh1/t"`,
	} {
		set := compileSrc(t, "rules:\n  - name: r\n    on: sensors/#\n    if: '"+strings.ReplaceAll(src, "'", "''")+"'\n    do: [{publish: {topic: '\"out\"'}}]\n", Options{})
		e := set.NewEvaluator()
		if got := e.Eval(ev("sensors/gh1/t", `{"temp":31}`, 0), nil); len(got) != 1 {
			t.Errorf("%s: %d firings, want 1 (errors: %d)", src, len(got), set.Rules[0].Counters().Errors.Load())
		}
	}
}
