// Package sim is an in-memory GPIO driver: outputs remember their value, inputs change when
// a test or the demo injects an edge. For machines without GPIO (CI, laptops).
package sim

import (
	"fmt"
	"sync"
	"time"

	"github.com/deviceless/deviceless/edgeagent/gpio"
)

// Lines is a simulated set of lines.
type Lines struct {
	mu      sync.Mutex
	cfg     map[string]gpio.LineConfig
	values  map[string]int
	history map[string][]int
	onEdge  gpio.EdgeHandler
	closed  bool
}

var _ gpio.Lines = (*Lines)(nil)

// Open simulates lines (validated with gpio.Validate); onEdge may be nil.
func Open(lines map[string]gpio.LineConfig, onEdge gpio.EdgeHandler) (*Lines, error) {
	cfg := make(map[string]gpio.LineConfig, len(lines))
	for k, v := range lines {
		cfg[k] = v
	}
	if err := gpio.Validate(cfg); err != nil {
		return nil, err
	}
	s := &Lines{cfg: cfg, values: map[string]int{}, history: map[string][]int{}, onEdge: onEdge}
	for name, l := range cfg {
		s.values[name] = l.Initial
	}
	return s, nil
}

// Set drives an output line.
func (s *Lines) Set(name string, value int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := gpio.CheckOutput(s.cfg, name, value); err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if s.closed {
		return fmt.Errorf("sim: %s: lines closed", name)
	}
	s.values[name] = value
	s.history[name] = append(s.history[name], value)
	return nil
}

// Get reads a line.
func (s *Lines) Get(name string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.values[name]
	if !ok {
		return 0, fmt.Errorf("sim: %w %q", gpio.ErrUnknownLine, name)
	}
	return v, nil
}

// History returns every value Set wrote to a line, oldest first.
func (s *Lines) History(name string) []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.history[name]...)
}

// Inject changes an input line, as a button or sensor would, and reports the edge when the
// line's configured edge kind matches. Injecting the current value is not an edge.
func (s *Lines) Inject(name string, value int) error {
	s.mu.Lock()
	l, ok := s.cfg[name]
	switch {
	case !ok:
		s.mu.Unlock()
		return fmt.Errorf("sim: %w %q", gpio.ErrUnknownLine, name)
	case l.Direction != gpio.Input:
		s.mu.Unlock()
		return fmt.Errorf("sim: %s is not an input", name)
	case value != 0 && value != 1:
		s.mu.Unlock()
		return fmt.Errorf("sim: %s: %w", name, gpio.ErrBadValue)
	}
	changed := s.values[name] != value
	s.values[name] = value
	onEdge := s.onEdge
	closed := s.closed
	s.mu.Unlock()
	if changed && !closed && onEdge != nil && gpio.Wants(l.Edge, value) {
		onEdge(gpio.Edge{Line: name, Value: value, Time: time.Now()})
	}
	return nil
}

// Close stops edge reports.
func (s *Lines) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
