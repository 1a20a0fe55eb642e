package rules

import (
	"reflect"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/vm/runtime"
)

// Member access into decoded payloads without reflection.
//
// `payload.temp` compiles to expr's OpFetch, whose runtime.Fetch reaches a map through
// reflect: MapIndex copies the value out and Interface boxes it again, two allocations
// and most of a rule condition's time (issue 13's profile). The payload is decoded JSON:
// maps of string keys. A patch turns every `x.name` whose x has no static type (payload,
// prev, and what is reached through them) into a call of fetchMember, which indexes a
// map[string]any directly and hands anything else to runtime.Fetch, so results and
// errors stay expr's. fetchMember is a field of Env (Env.Fetch) rather than an
// expr.Function: a func(any, any) any variable is called by OpCallTyped, with no argument
// slice (an expr.Function's is made at every run).
const fetchName = "$fetch"

var fetchOptions = []expr.Option{expr.Patch(memberFetch{})}

func fetchMember(from, name any) any {
	if m, ok := from.(map[string]any); ok {
		if s, ok := name.(string); ok {
			return m[s] // a missing key is nil, as runtime.Fetch gives
		}
	}
	if p, ok := from.(*lazyPayload); ok {
		return p.fetch(name) // the payload not decoded yet (lazy.go)
	}
	return runtime.Fetch(from, name) // panics as OpFetch would, with its message
}

// memberFetch is the patch. It leaves optional chains (`?.`) to expr, whose jumps span the
// chain, and method calls.
type memberFetch struct{}

func (memberFetch) Visit(node *ast.Node) {
	m, ok := (*node).(*ast.MemberNode)
	if !ok || m.Optional || m.Method {
		return
	}
	name, ok := m.Property.(*ast.StringNode)
	if !ok {
		return
	}
	// Untyped: payload, prev, or a node this patch made (not checked yet).
	if t := m.Node.Type(); t != nil && t.Kind() != reflect.Interface {
		return
	}
	ast.Patch(node, &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: fetchName},
		Arguments: []ast.Node{m.Node, &ast.StringNode{Value: name.Value}},
	})
}

// fetchPatchable reports whether src may take the patch: not with an optional chain.
func fetchPatchable(src string) bool { return !strings.Contains(src, "?.") }
