package rules

import (
	"fmt"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/google/go-cmp/cmp"
)

// TestFetchPatchKeepsExprSemantics evaluates expressions with and without the member
// access patch (fetch.go) over the same payloads: the same values and the same errors.
func TestFetchPatchKeepsExprSemantics(t *testing.T) {
	payloads := []string{
		`{"temp": 31.5, "zone": {"name": "north", "n": 2}, "list": [1, {"x": 3}], "s": "text"}`,
		`{"temp": null, "zone": "flat"}`,
		`[1, 2, 3]`,
		`"a string"`,
		`42`,
		`not json`,
	}
	exprs := []string{
		`payload.temp`, `payload.temp > 30`, `payload.zone.name`, `payload.zone.n + 1`,
		`payload.missing`, `payload.missing == nil`, `payload.missing.deeper`,
		`payload["zone"]["name"]`, `payload.list[1].x`, `payload.list[0]`, `payload.s.x`,
		`payload?.zone?.name`, `prev.temp`, `payload.temp ?? 0`, `len(payload.list)`,
		`all(payload.list, {# != nil})`, `payload.zone.name + "!"`, `raw`, `window.avg`,
		`topic_parts[1]`, `{"t": payload.temp}.t`,
	}
	run := func(p *vm.Program, env *Env) (any, error) {
		var m vm.VM
		return m.Run(p, env)
	}
	for _, src := range exprs {
		plain, err := expr.Compile(src, expr.Env(envType))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		patched, err := expr.Compile(src, append([]expr.Option{expr.Env(envType)}, fetchOptions...)...)
		if err != nil {
			t.Fatalf("%s patched: %v", src, err)
		}
		for _, pl := range payloads {
			v := DecodePayload([]byte(pl))
			env := Env{Payload: v, Prev: v, Raw: pl, TopicParts: []string{"a", "b"}, Fetch: fetchMember}
			want, werr := run(plain, &env)
			got, gerr := run(patched, &env)
			if fmt.Sprint(werr) != fmt.Sprint(gerr) {
				t.Errorf("%s over %s: error %v, want %v", src, pl, gerr, werr)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s over %s (-want +got):\n%s", src, pl, diff)
			}
		}
	}
}

// The patch applies where it should: a condition on the payload makes no allocation.
func TestFetchPatchApplied(t *testing.T) {
	p, err := expr.Compile(`payload.zone.n > 1`, append([]expr.Option{expr.Env(envType)}, fetchOptions...)...)
	if err != nil {
		t.Fatal(err)
	}
	env := Env{Payload: DecodePayload([]byte(`{"zone": {"n": 2}}`)), Fetch: fetchMember}
	var m vm.VM
	if n := testing.AllocsPerRun(100, func() { _, _ = m.Run(p, &env) }); n != 0 {
		t.Errorf("%v allocations per run, want 0", n)
	}
}

// TestVariablesLoadByFieldIndex: a rule's variables compile to field loads by index, not
// to expr's by-name lookup (OpLoadConst), which expr emits for a pointer environment
// (compile.go, envType).
func TestVariablesLoadByFieldIndex(t *testing.T) {
	f, err := Parse("r.yaml", []byte("rules:\n  - name: hot\n    on: sensors/+/t\n    if: payload.temp > 30 && topic != \"\" && window.count >= 0\n    window: {over: 1m, of: payload.temp}\n    do: [{publish: {topic: '\"alerts/\" + topic_parts[1]', payload: 'payload.temp'}}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Compile([]*FileDef{f}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := s.Rules[0]
	for name, p := range map[string]*vm.Program{"if": r.cond, "topic": r.actions[0].topic, "payload": r.actions[0].payload} {
		if d := p.Disassemble(); !strings.Contains(d, "OpLoadField") || strings.Contains(d, "OpLoadConst") {
			t.Errorf("%s compiles to by-name loads, want field loads:\n%s", name, d)
		}
	}
}
