// Package gpio is the agent's boundary to hardware lines: named output and input lines
// declared in the agent config, driven by a driver. Drivers: cdev (the Linux GPIO
// character device through go-gpiocdev) and sim (in memory, with injectable input edges).
package gpio

import (
	"errors"
	"fmt"
	"time"
)

// Directions.
const (
	Output = "output"
	Input  = "input"
)

// Edges an input line can report.
const (
	EdgeNone    = "none"
	EdgeRising  = "rising"
	EdgeFalling = "falling"
	EdgeBoth    = "both"
)

// Biases.
const (
	BiasAsIs     = "as-is"
	BiasDisabled = "disabled"
	BiasPullUp   = "pull-up"
	BiasPullDown = "pull-down"
)

// Errors drivers return.
var (
	ErrUnknownLine = errors.New("unknown line")
	ErrNotOutput   = errors.New("line is not an output")
	ErrBadValue    = errors.New("line value must be 0 or 1")
)

// LineConfig declares one line.
type LineConfig struct {
	Offset    int           `yaml:"offset"`
	Direction string        `yaml:"direction"` // output (default) or input
	Initial   int           `yaml:"initial"`   // output value at start (and on close)
	ActiveLow bool          `yaml:"active_low"`
	Bias      string        `yaml:"bias"`     // as-is (default), disabled, pull-up, pull-down
	Edge      string        `yaml:"edge"`     // input: none (default), rising, falling, both
	Publish   string        `yaml:"publish"`  // input: topic the agent publishes edges to
	Debounce  time.Duration `yaml:"debounce"` // input: debounce period
}

// Edge is a change of an input line.
type Edge struct {
	Line  string
	Value int // the line's value after the edge
	Time  time.Time
}

// EdgeHandler receives input edges. Drivers call it from their own goroutine; it must not block.
type EdgeHandler func(Edge)

// Lines drives the declared lines.
type Lines interface {
	// Set drives an output line to 0 or 1 (logical: active-low is applied by the driver).
	Set(name string, value int) error
	// Get reads a line's logical value.
	Get(name string) (int, error)
	// Close releases the lines.
	Close() error
}

// CheckOutput reports why value cannot be written to the line called name, or nil: the
// line must be declared, an output, and the value 0 or 1. Drivers and the agent share it.
func CheckOutput(lines map[string]LineConfig, name string, value int) error {
	l, ok := lines[name]
	switch {
	case !ok:
		return fmt.Errorf("%w %q", ErrUnknownLine, name)
	case l.Direction != Output:
		return fmt.Errorf("line %s: %w", name, ErrNotOutput)
	case value != 0 && value != 1:
		return fmt.Errorf("line %s: %w", name, ErrBadValue)
	}
	return nil
}

// Validate checks line declarations and fills defaults in place.
func Validate(lines map[string]LineConfig) error {
	offsets := map[int]string{}
	for name, l := range lines {
		if name == "" {
			return errors.New("gpio: empty line name")
		}
		if l.Offset < 0 {
			return fmt.Errorf("gpio: line %s: offset %d is negative", name, l.Offset)
		}
		if other, dup := offsets[l.Offset]; dup {
			return fmt.Errorf("gpio: lines %s and %s share offset %d", other, name, l.Offset)
		}
		offsets[l.Offset] = name
		switch l.Direction {
		case "":
			l.Direction = Output
		case Output, Input:
		default:
			return fmt.Errorf("gpio: line %s: direction %q: want output or input", name, l.Direction)
		}
		switch l.Bias {
		case "":
			l.Bias = BiasAsIs
		case BiasAsIs, BiasDisabled, BiasPullUp, BiasPullDown:
		default:
			return fmt.Errorf("gpio: line %s: bias %q: want as-is, disabled, pull-up or pull-down", name, l.Bias)
		}
		switch l.Edge {
		case "":
			l.Edge = EdgeNone
		case EdgeNone, EdgeRising, EdgeFalling, EdgeBoth:
		default:
			return fmt.Errorf("gpio: line %s: edge %q: want none, rising, falling or both", name, l.Edge)
		}
		if l.Initial != 0 && l.Initial != 1 {
			return fmt.Errorf("gpio: line %s: initial: %w", name, ErrBadValue)
		}
		if l.Direction == Output && (l.Edge != EdgeNone || l.Publish != "" || l.Debounce != 0) {
			return fmt.Errorf("gpio: line %s: edge, publish and debounce are for input lines", name)
		}
		if l.Direction == Input && l.Edge != EdgeNone && l.Publish == "" {
			return fmt.Errorf("gpio: line %s: edge %s needs a publish topic", name, l.Edge)
		}
		if l.Direction == Input && l.Publish != "" && l.Edge == EdgeNone {
			return fmt.Errorf("gpio: line %s: publish needs an edge (rising, falling or both)", name)
		}
		if l.Debounce < 0 {
			return fmt.Errorf("gpio: line %s: debounce is negative", name)
		}
		lines[name] = l
	}
	return nil
}

// Wants reports whether an edge to value matches the configured edge kind.
func Wants(edge string, value int) bool {
	switch edge {
	case EdgeBoth:
		return true
	case EdgeRising:
		return value == 1
	case EdgeFalling:
		return value == 0
	}
	return false
}
