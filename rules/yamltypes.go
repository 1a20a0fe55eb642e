package rules

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"

	"github.com/deviceless/deviceless/protocol"
)

// Pos is a position in a rule file. Line and Col start at 1.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	if p.File == "" {
		return fmt.Sprintf("%d:%d", p.Line, p.Col)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Error is one problem in a rule file, printed as file:line:col: message.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Errors is every problem found while loading; Error() prints one per line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func errorf(p Pos, format string, args ...any) *Error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, args...)}
}

func tokenPos(t *token.Token) Pos {
	if t == nil || t.Position == nil {
		return Pos{Line: 1, Col: 1}
	}
	return Pos{Line: t.Position.Line, Col: t.Position.Column}
}

func nodePos(n ast.Node) Pos {
	if n == nil {
		return Pos{Line: 1, Col: 1}
	}
	// A mapping's own token is its first ':'; people think of it as starting at its first key.
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 && !m.IsFlowStyle {
		return tokenPos(m.Values[0].Key.GetToken())
	}
	if m, ok := n.(*ast.MappingValueNode); ok {
		return tokenPos(m.Key.GetToken())
	}
	// A document is where its body is; an empty one (a last `---`) has only its `---`.
	if d, ok := n.(*ast.DocumentNode); ok {
		if d.Body == nil {
			return tokenPos(d.Start)
		}
		return nodePos(d.Body)
	}
	return tokenPos(n.GetToken())
}

// yamlError turns an error from the YAML library into an *Error with a position in file.
func yamlError(file string, err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		e := *pe
		e.Pos.File = file
		return &e
	}
	var ye yaml.Error
	if errors.As(err, &ye) {
		p := tokenPos(ye.GetToken())
		p.File = file
		return &Error{Pos: p, Msg: flowHint(cleanYAMLMessage(ye.GetMessage()), ye.GetToken())}
	}
	return &Error{Pos: Pos{File: file, Line: 1, Col: 1}, Msg: err.Error()}
}

func cleanYAMLMessage(m string) string {
	// The library says `unknown field "x"`; name it the way rule authors think of it.
	m = strings.Replace(m, "unknown field", "unknown key", 1)
	return m
}

// flowHint adds the likely fix to a syntax error inside a flow mapping ({...}), where '[',
// ']', '{', '}' and ',' are YAML's own: `args: {site: topic_parts[1]}` is an unquoted
// expression, not a broken mapping.
func flowHint(msg string, t *token.Token) string {
	if t == nil || !strings.Contains(msg, "'}'") {
		return msg
	}
	example := "site: 'topic_parts[1]'"
	if key, value := flowEntry(t); key != "" && value != "" {
		example = key + ": '" + strings.ReplaceAll(value, "'", "''") + "'"
	}
	return msg + "; an expression with '[', ']', '{', '}' or ',' inside a flow mapping {...} must be quoted: " + example
}

// flowEntry returns the key and the source text of the value of the flow-mapping entry
// holding t, or "" when the tokens around t do not show one.
func flowEntry(t *token.Token) (key, value string) {
	start := t
	for ; start.Prev != nil && start.Prev.Type != token.MappingValueType; start = start.Prev {
		if start.Prev.Type == token.CollectEntryType || start.Prev.Type == token.MappingStartType {
			return "", ""
		}
	}
	if start.Prev == nil || start.Prev.Prev == nil {
		return "", ""
	}
	var b strings.Builder
	depth := 0
	for p := start; p != nil; p = p.Next {
		switch p.Type {
		case token.SequenceStartType, token.MappingStartType:
			depth++
		case token.SequenceEndType, token.MappingEndType, token.CollectEntryType:
			if depth == 0 {
				return start.Prev.Prev.Value, strings.TrimSpace(b.String())
			}
			if p.Type != token.CollectEntryType {
				depth--
			}
		}
		b.WriteString(p.Origin)
	}
	return "", ""
}

func decodeStrict(n ast.Node, v any) error {
	return yaml.NodeToValue(n, v, yaml.Strict())
}

// decodeFields decodes a mapping into the struct v points to key by key, so that an error
// from a field's own parser (a size, a duration) is reported at that field's value.
func decodeFields(m *ast.MappingNode, v any) error {
	rv := reflect.ValueOf(v).Elem()
	fields := map[string]reflect.Value{}
	var keys []string
	for i := 0; i < rv.NumField(); i++ {
		tag, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("yaml"), ",")
		if tag != "" && tag != "-" {
			fields[tag] = rv.Field(i)
			keys = append(keys, tag)
		}
	}
	for _, kv := range m.Values {
		key, _ := scalarText(kv.Key)
		f, ok := fields[key]
		if !ok {
			return errorf(nodePos(kv.Key), "unknown key %q (keys: %s)", key, strings.Join(keys, ", "))
		}
		target, alloc := f.Addr(), f.Kind() == reflect.Pointer && kv.Value.Type() != ast.NullType
		if alloc {
			// goccy leaves a nil pointer field nil when decoding into its address.
			target = reflect.New(f.Type().Elem())
		}
		if err := decodeStrict(kv.Value, target.Interface()); err != nil {
			var ye yaml.Error
			var pe *Error
			if errors.As(err, &ye) || errors.As(err, &pe) {
				return err
			}
			return errorf(nodePos(kv.Value), "%v", err)
		}
		if alloc {
			f.Set(target)
		}
	}
	return nil
}

func scalarText(n ast.Node) (string, bool) {
	switch n := n.(type) {
	case *ast.StringNode:
		return n.Value, true
	case *ast.LiteralNode:
		return n.Value.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return n.GetToken().Value, true
	}
	return "", false
}

// Duration is a time.Duration written as "30s", "5m", "1h30m" (0 for none).
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n ast.Node) error {
	s, ok := scalarText(n)
	if !ok {
		return errorf(nodePos(n), "expected a duration such as 30s or 5m")
	}
	v, err := protocol.ParseDuration(s)
	if err != nil {
		return errorf(nodePos(n), "%v", err)
	}
	*d = Duration(v)
	return nil
}

// Name is a string that remembers where it was written.
type Name struct {
	Value string
	Pos   Pos
}

// UnmarshalYAML reads a scalar.
func (nm *Name) UnmarshalYAML(n ast.Node) error {
	s, ok := scalarText(n)
	if !ok {
		return errorf(nodePos(n), "expected a string")
	}
	*nm = Name{Value: s, Pos: nodePos(n)}
	return nil
}

// Expr is the source of an expr-lang expression and where it starts in its file.
type Expr struct {
	Src string
	Pos Pos
	// how the source maps back to the file: quote width, or block indentation
	quote  int
	block  bool
	indent int
}

// IsSet reports whether the expression was written.
func (e Expr) IsSet() bool { return e.Src != "" }

// UnmarshalYAML reads a scalar; numbers and booleans are expressions too.
func (e *Expr) UnmarshalYAML(n ast.Node) error {
	p := nodePos(n)
	switch v := n.(type) {
	case *ast.StringNode:
		x := Expr{Src: v.Value, Pos: p}
		if t := v.GetToken(); t.Type == token.SingleQuoteType || t.Type == token.DoubleQuoteType {
			x.quote = 1
		}
		*e = x
	case *ast.LiteralNode:
		origin := v.Value.GetToken().Origin
		indent := len(origin) - len(strings.TrimLeft(origin, " \n"))
		if i := strings.LastIndexByte(origin[:indent], '\n'); i >= 0 {
			indent -= i + 1
		}
		*e = Expr{Src: strings.TrimRight(v.Value.Value, "\n"), Pos: p, block: true, indent: indent}
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		*e = Expr{Src: v.GetToken().Value, Pos: p}
	case *ast.NullNode:
		return errorf(p, "missing expression")
	default:
		return errorf(p, "expected an expression; write it as a string (quote it if it holds ':', '{' or '[')")
	}
	if strings.TrimSpace(e.Src) == "" {
		return errorf(p, "empty expression")
	}
	return nil
}

// At maps a 1-based line and 0-based column inside the expression to the file.
func (e Expr) At(line, col int) Pos {
	if e.block {
		return Pos{File: e.Pos.File, Line: e.Pos.Line + line, Col: e.indent + col + 1}
	}
	if line <= 1 {
		return Pos{File: e.Pos.File, Line: e.Pos.Line, Col: e.Pos.Col + e.quote + col}
	}
	return Pos{File: e.Pos.File, Line: e.Pos.Line + line - 1, Col: col + 1}
}
