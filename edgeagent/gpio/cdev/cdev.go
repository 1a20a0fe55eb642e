// Package cdev drives real GPIO lines through the Linux GPIO character device
// (/dev/gpiochipN) with github.com/warthog618/go-gpiocdev. See docs/agent.md for running it
// on a Raspberry Pi.
package cdev

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/warthog618/go-gpiocdev"

	"github.com/deviceless/deviceless/edgeagent/gpio"
)

// Consumer is the label the kernel shows for lines the agent holds (gpioinfo).
const Consumer = "deviceless"

// line is the part of *gpiocdev.Line the driver uses.
type line interface {
	Value() (int, error)
	SetValue(int) error
	Close() error
}

// Lines is a set of requested GPIO lines on one chip.
type Lines struct {
	mu     sync.Mutex
	cfg    map[string]gpio.LineConfig
	lines  map[string]line
	closed bool
}

var _ gpio.Lines = (*Lines)(nil)

// Open requests every declared line on chip ("gpiochip0" or a /dev path); onEdge receives
// edges of input lines with an edge kind. On error, lines already requested are released.
func Open(chip string, lines map[string]gpio.LineConfig, onEdge gpio.EdgeHandler) (*Lines, error) {
	return open(chip, lines, onEdge, func(chip string, offset int, opts ...gpiocdev.LineReqOption) (line, error) {
		return gpiocdev.RequestLine(chip, offset, opts...)
	})
}

type requestFunc func(chip string, offset int, opts ...gpiocdev.LineReqOption) (line, error)

func open(chip string, lines map[string]gpio.LineConfig, onEdge gpio.EdgeHandler, request requestFunc) (*Lines, error) {
	if chip == "" {
		return nil, errors.New("gpiocdev: chip is required (e.g. gpiochip0)")
	}
	cfg := make(map[string]gpio.LineConfig, len(lines))
	for k, v := range lines {
		cfg[k] = v
	}
	if err := gpio.Validate(cfg); err != nil {
		return nil, err
	}
	l := &Lines{cfg: cfg, lines: map[string]line{}}
	for name, lc := range cfg {
		opts, err := Options(name, lc, onEdge)
		if err != nil {
			_ = l.Close()
			return nil, err
		}
		req, err := request(chip, lc.Offset, opts...)
		if err != nil {
			_ = l.Close()
			return nil, fmt.Errorf("gpiocdev: request line %s (%s offset %d): %w", name, chip, lc.Offset, err)
		}
		l.lines[name] = req
	}
	return l, nil
}

// Options translates a validated line declaration into go-gpiocdev request options.
func Options(name string, lc gpio.LineConfig, onEdge gpio.EdgeHandler) ([]gpiocdev.LineReqOption, error) {
	opts := []gpiocdev.LineReqOption{gpiocdev.WithConsumer(Consumer)}
	if lc.ActiveLow {
		opts = append(opts, gpiocdev.AsActiveLow)
	}
	switch lc.Bias {
	case gpio.BiasAsIs, "":
	case gpio.BiasDisabled:
		opts = append(opts, gpiocdev.WithBiasDisabled)
	case gpio.BiasPullUp:
		opts = append(opts, gpiocdev.WithPullUp)
	case gpio.BiasPullDown:
		opts = append(opts, gpiocdev.WithPullDown)
	default:
		return nil, fmt.Errorf("gpiocdev: line %s: bias %q", name, lc.Bias)
	}
	if lc.Direction == gpio.Input {
		opts = append(opts, gpiocdev.AsInput)
		switch lc.Edge {
		case gpio.EdgeNone, "":
			return opts, nil
		case gpio.EdgeRising:
			opts = append(opts, gpiocdev.WithRisingEdge)
		case gpio.EdgeFalling:
			opts = append(opts, gpiocdev.WithFallingEdge)
		case gpio.EdgeBoth:
			opts = append(opts, gpiocdev.WithBothEdges)
		default:
			return nil, fmt.Errorf("gpiocdev: line %s: edge %q", name, lc.Edge)
		}
		if lc.Debounce > 0 {
			opts = append(opts, gpiocdev.WithDebounce(lc.Debounce))
		}
		opts = append(opts, gpiocdev.WithEventHandler(eventHandler(name, onEdge)))
		return opts, nil
	}
	return append(opts, gpiocdev.AsOutput(lc.Initial)), nil
}

// eventHandler turns kernel line events into gpio edges.
func eventHandler(name string, onEdge gpio.EdgeHandler) gpiocdev.EventHandler {
	return func(ev gpiocdev.LineEvent) {
		if onEdge == nil {
			return
		}
		v := 0
		if ev.Type == gpiocdev.LineEventRisingEdge {
			v = 1
		}
		onEdge(gpio.Edge{Line: name, Value: v, Time: time.Now()})
	}
}

// Set drives an output line.
func (l *Lines) Set(name string, value int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := gpio.CheckOutput(l.cfg, name, value); err != nil {
		return fmt.Errorf("gpiocdev: %w", err)
	}
	if l.closed {
		return fmt.Errorf("gpiocdev: %s: lines closed", name)
	}
	if err := l.lines[name].SetValue(value); err != nil {
		return fmt.Errorf("gpiocdev: set %s: %w", name, err)
	}
	return nil
}

// Get reads a line.
func (l *Lines) Get(name string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln, ok := l.lines[name]
	if !ok {
		return 0, fmt.Errorf("gpiocdev: %w %q", gpio.ErrUnknownLine, name)
	}
	v, err := ln.Value()
	if err != nil {
		return 0, fmt.Errorf("gpiocdev: read %s: %w", name, err)
	}
	return v, nil
}

// Close returns outputs to their initial value and releases every line.
func (l *Lines) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	var errs []error
	for name, ln := range l.lines {
		if lc := l.cfg[name]; lc.Direction == gpio.Output {
			if err := ln.SetValue(lc.Initial); err != nil {
				errs = append(errs, fmt.Errorf("gpiocdev: reset %s: %w", name, err))
			}
		}
		if err := ln.Close(); err != nil {
			errs = append(errs, fmt.Errorf("gpiocdev: release %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
