package rules

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
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
		return &Error{Pos: p, Msg: cleanYAMLMessage(ye.GetMessage())}
	}
	return &Error{Pos: Pos{File: file, Line: 1, Col: 1}, Msg: err.Error()}
}

func cleanYAMLMessage(m string) string {
	// The library says `unknown field "x"`; name it the way rule authors think of it.
	m = strings.Replace(m, "unknown field", "unknown key", 1)
	return m
}

func decodeStrict(n ast.Node, v any) error {
	return yaml.NodeToValue(n, v, yaml.Strict())
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
	if s == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return errorf(nodePos(n), "bad duration %q: expected a number with a unit such as 500ms, 30s, 5m, 1h", s)
	}
	if v < 0 {
		return errorf(nodePos(n), "negative duration %q", s)
	}
	*d = Duration(v)
	return nil
}

// Size is a number of bytes written as 32Mi, 512Ki, 1Gi, 64M or a plain number.
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30},
	{"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"B", 1},
}

// ParseSize parses a size such as 32Mi.
func ParseSize(s string) (Size, error) {
	num, mult := s, int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q: expected a number with an optional unit such as 32Mi, 512Ki, 1Gi", s)
	}
	return Size(v * mult), nil
}

// UnmarshalYAML reads a size.
func (sz *Size) UnmarshalYAML(n ast.Node) error {
	s, ok := scalarText(n)
	if !ok {
		return errorf(nodePos(n), "expected a size such as 32Mi")
	}
	v, err := ParseSize(s)
	if err != nil {
		return errorf(nodePos(n), "%v", err)
	}
	*sz = v
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
