package gpio

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		lines map[string]LineConfig
		err   string
	}{
		{"defaults", map[string]LineConfig{"fan": {Offset: 17}}, ""},
		{"input with edge", map[string]LineConfig{"button": {Offset: 4, Direction: Input, Edge: EdgeFalling, Publish: "buttons/1", Bias: BiasPullUp}}, ""},
		{"bad direction", map[string]LineConfig{"x": {Direction: "sideways"}}, "direction"},
		{"bad bias", map[string]LineConfig{"x": {Bias: "up"}}, "bias"},
		{"bad edge", map[string]LineConfig{"x": {Direction: Input, Edge: "up", Publish: "t"}}, "edge"},
		{"bad initial", map[string]LineConfig{"x": {Initial: 2}}, "initial"},
		{"shared offset", map[string]LineConfig{"a": {Offset: 1}, "b": {Offset: 1}}, "share offset"},
		{"negative offset", map[string]LineConfig{"a": {Offset: -1}}, "negative"},
		{"edge on output", map[string]LineConfig{"a": {Edge: EdgeBoth}}, "input lines"},
		{"edge without topic", map[string]LineConfig{"a": {Direction: Input, Edge: EdgeBoth}}, "publish topic"},
		{"topic without edge", map[string]LineConfig{"a": {Direction: Input, Publish: "t"}}, "needs an edge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.lines)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.err)
			}
		})
	}
	lines := map[string]LineConfig{"fan": {Offset: 17}}
	if err := Validate(lines); err != nil {
		t.Fatal(err)
	}
	if l := lines["fan"]; l.Direction != Output || l.Bias != BiasAsIs || l.Edge != EdgeNone {
		t.Fatalf("defaults not filled: %+v", l)
	}
}

func TestCheckReportsEveryProblem(t *testing.T) {
	err := Check(map[string]LineConfig{
		"":       {Offset: 2},
		"alarm":  {Offset: 1},
		"fan":    {Offset: 1, Direction: "sideways", Initial: 2},
		"button": {Offset: 4, Direction: Input, Edge: "up", Bias: "up", Debounce: -1},
		"ok":     {Offset: 5},
		"led":    {Offset: -1, Edge: EdgeBoth},
	})
	var lines []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var le *LineError
		if !errors.As(e, &le) {
			t.Errorf("%v is not a *LineError", e)
		}
		lines = append(lines, e.Error())
	}
	want := []string{
		"gpio: empty line name",
		`gpio: line button: bias "up": want as-is, disabled, pull-up or pull-down`,
		`gpio: line button: edge "up": want none, rising, falling or both`,
		"gpio: line button: edge up needs a publish topic",
		"gpio: line button: debounce is negative",
		"gpio: line fan: lines alarm and fan share offset 1",
		`gpio: line fan: direction "sideways": want output or input`,
		"gpio: line fan: initial: line value must be 0 or 1",
		"gpio: line led: offset -1 is negative",
		"gpio: line led: edge, publish and debounce are for input lines",
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if !errors.Is(err, ErrBadValue) {
		t.Errorf("%v does not wrap ErrBadValue", err)
	}
}

func TestWants(t *testing.T) {
	for _, tt := range []struct {
		edge  string
		value int
		want  bool
	}{{EdgeBoth, 0, true}, {EdgeBoth, 1, true}, {EdgeRising, 1, true}, {EdgeRising, 0, false},
		{EdgeFalling, 0, true}, {EdgeFalling, 1, false}, {EdgeNone, 1, false}} {
		if got := Wants(tt.edge, tt.value); got != tt.want {
			t.Errorf("Wants(%s, %d) = %v", tt.edge, tt.value, got)
		}
	}
}
