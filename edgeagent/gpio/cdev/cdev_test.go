package cdev

import (
	"errors"
	"strings"
	"testing"

	"github.com/warthog618/go-gpiocdev"

	"github.com/deviceless/deviceless/edgeagent/gpio"
)

type fakeLine struct {
	value  int
	closed bool
	opts   []gpiocdev.LineReqOption
}

func (f *fakeLine) Value() (int, error)  { return f.value, nil }
func (f *fakeLine) SetValue(v int) error { f.value = v; return nil }
func (f *fakeLine) Close() error         { f.closed = true; return nil }

func TestOpenMissingChip(t *testing.T) {
	_, err := Open("gpiochip-does-not-exist", map[string]gpio.LineConfig{"fan": {Offset: 1}}, nil)
	if err == nil || !strings.Contains(err.Error(), "request line fan") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Open("", nil, nil); err == nil {
		t.Fatal("no chip accepted")
	}
}

func TestLinesWithFakeChip(t *testing.T) {
	fakes := map[int]*fakeLine{}
	request := func(chip string, offset int, opts ...gpiocdev.LineReqOption) (line, error) {
		if chip != "gpiochip0" {
			t.Errorf("chip %q", chip)
		}
		if offset == 99 {
			return nil, errors.New("busy")
		}
		f := &fakeLine{opts: opts}
		fakes[offset] = f
		return f, nil
	}
	l, err := open("gpiochip0", map[string]gpio.LineConfig{
		"fan":    {Offset: 17, Initial: 0, ActiveLow: true},
		"button": {Offset: 4, Direction: gpio.Input, Edge: gpio.EdgeBoth, Publish: "b", Bias: gpio.BiasPullUp, Debounce: 5e6},
	}, nil, request)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Set("fan", 1); err != nil || fakes[17].value != 1 {
		t.Fatalf("set: %v value %d", err, fakes[17].value)
	}
	if err := l.Set("button", 1); !errors.Is(err, gpio.ErrNotOutput) {
		t.Fatalf("set input: %v", err)
	}
	if err := l.Set("ghost", 1); !errors.Is(err, gpio.ErrUnknownLine) {
		t.Fatalf("set unknown: %v", err)
	}
	if v, err := l.Get("fan"); err != nil || v != 1 {
		t.Fatalf("get: %d %v", v, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !fakes[17].closed || !fakes[4].closed || fakes[17].value != 0 {
		t.Fatalf("close did not reset and release: %+v %+v", fakes[17], fakes[4])
	}
	// A failed request releases the lines already taken.
	_, err = open("gpiochip0", map[string]gpio.LineConfig{"a": {Offset: 1}, "b": {Offset: 99}}, nil, request)
	if err == nil || !strings.Contains(err.Error(), "busy") {
		t.Fatalf("err = %v", err)
	}
	if f := fakes[1]; f != nil && !f.closed {
		t.Fatal("line a leaked")
	}
}

func TestOptions(t *testing.T) {
	out, err := Options("fan", gpio.LineConfig{Direction: gpio.Output, Initial: 1, ActiveLow: true, Bias: gpio.BiasPullDown}, nil)
	if err != nil || len(out) != 4 {
		t.Fatalf("output options: %d %v", len(out), err)
	}
	in, err := Options("b", gpio.LineConfig{Direction: gpio.Input, Edge: gpio.EdgeFalling, Debounce: 1e6}, nil)
	if err != nil || len(in) != 5 { // consumer, input, edge, debounce, handler
		t.Fatalf("input options: %d %v", len(in), err)
	}
	if _, err := Options("x", gpio.LineConfig{Bias: "sideways"}, nil); err == nil {
		t.Fatal("bad bias accepted")
	}
}

func TestEventHandler(t *testing.T) {
	var got []gpio.Edge
	h := eventHandler("button", func(e gpio.Edge) { got = append(got, e) })
	h(gpiocdev.LineEvent{Offset: 4, Type: gpiocdev.LineEventRisingEdge})
	h(gpiocdev.LineEvent{Offset: 4, Type: gpiocdev.LineEventFallingEdge})
	if len(got) != 2 || got[0].Value != 1 || got[1].Value != 0 || got[0].Line != "button" {
		t.Fatalf("edges %+v", got)
	}
	eventHandler("x", nil)(gpiocdev.LineEvent{})
}
