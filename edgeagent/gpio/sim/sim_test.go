package sim

import (
	"errors"
	"slices"
	"testing"

	"github.com/deviceless/deviceless/edgeagent/gpio"
)

func TestSim(t *testing.T) {
	var edges []gpio.Edge
	s, err := Open(map[string]gpio.LineConfig{
		"fan":    {Offset: 1, Initial: 1},
		"button": {Offset: 2, Direction: gpio.Input, Edge: gpio.EdgeRising, Publish: "b"},
	}, func(e gpio.Edge) { edges = append(edges, e) })
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get("fan"); v != 1 {
		t.Fatalf("initial = %d", v)
	}
	if err := s.Set("fan", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("nope", 1); !errors.Is(err, gpio.ErrUnknownLine) {
		t.Fatalf("unknown line: %v", err)
	}
	if err := s.Set("button", 1); !errors.Is(err, gpio.ErrNotOutput) {
		t.Fatalf("input as output: %v", err)
	}
	if err := s.Set("fan", 7); !errors.Is(err, gpio.ErrBadValue) {
		t.Fatalf("bad value: %v", err)
	}
	if err := s.Inject("fan", 1); err == nil {
		t.Fatal("injected into an output")
	}
	for _, v := range []int{1, 1, 0, 1} {
		if err := s.Inject("button", v); err != nil {
			t.Fatal(err)
		}
	}
	if len(edges) != 2 || edges[0].Line != "button" || edges[0].Value != 1 {
		t.Fatalf("edges = %+v (want two rising)", edges)
	}
	if h := s.History("fan"); !slices.Equal(h, []int{0}) {
		t.Fatalf("history %v", h)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("fan", 1); err == nil {
		t.Fatal("set after close")
	}
}
