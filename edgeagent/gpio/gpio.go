// Package gpio is the agent's boundary to hardware lines: named output and input lines
// declared in the agent config, driven by a driver. Drivers: cdev (the Linux GPIO
// character device through go-gpiocdev) and sim (in memory, with injectable input edges).
package gpio

import (
	"errors"
	"fmt"
	"maps"
	"slices"
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

// WithDefaults returns l with the default direction (output), bias (as-is) and edge (none).
func (l LineConfig) WithDefaults() LineConfig {
	if l.Direction == "" {
		l.Direction = Output
	}
	if l.Bias == "" {
		l.Bias = BiasAsIs
	}
	if l.Edge == "" {
		l.Edge = EdgeNone
	}
	return l
}

// Validate reports every problem of a line declaration, each naming its key; empty
// direction, bias and edge mean the defaults.
func (l LineConfig) Validate() error {
	l = l.WithDefaults()
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if l.Offset < 0 {
		add("offset %d is negative", l.Offset)
	}
	switch l.Direction {
	case Output, Input:
	default:
		add("direction %q: want output or input", l.Direction)
	}
	switch l.Bias {
	case BiasAsIs, BiasDisabled, BiasPullUp, BiasPullDown:
	default:
		add("bias %q: want as-is, disabled, pull-up or pull-down", l.Bias)
	}
	switch l.Edge {
	case EdgeNone, EdgeRising, EdgeFalling, EdgeBoth:
	default:
		add("edge %q: want none, rising, falling or both", l.Edge)
	}
	if l.Initial != 0 && l.Initial != 1 {
		add("initial: %w", ErrBadValue)
	}
	if l.Direction == Output && (l.Edge != EdgeNone || l.Publish != "" || l.Debounce != 0) {
		add("edge, publish and debounce are for input lines")
	}
	if l.Direction == Input && l.Edge != EdgeNone && l.Publish == "" {
		add("edge %s needs a publish topic", l.Edge)
	}
	if l.Direction == Input && l.Publish != "" && l.Edge == EdgeNone {
		add("publish needs an edge (rising, falling or both)")
	}
	if l.Debounce < 0 {
		add("debounce is negative")
	}
	return errors.Join(errs...)
}

// A LineError is one problem of the declaration of one line.
type LineError struct {
	Line string // "" for a line declared without a name
	Err  error
}

func (e *LineError) Error() string {
	if e.Line == "" {
		return "gpio: " + e.Err.Error()
	}
	return "gpio: line " + e.Line + ": " + e.Err.Error()
}

func (e *LineError) Unwrap() error { return e.Err }

// Check reports every problem of line declarations, each a *LineError, lines in name
// order: each line's (LineConfig.Validate), an empty name, lines sharing an offset.
func Check(lines map[string]LineConfig) error {
	var errs []error
	offsets := map[int]string{}
	for _, name := range slices.Sorted(maps.Keys(lines)) {
		l := lines[name]
		if name == "" {
			errs = append(errs, &LineError{Err: errors.New("empty line name")})
		}
		if other, dup := offsets[l.Offset]; dup {
			errs = append(errs, &LineError{name, fmt.Errorf("lines %s and %s share offset %d", other, name, l.Offset)})
		} else {
			offsets[l.Offset] = name
		}
		err := l.Validate()
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				errs = append(errs, &LineError{name, e})
			}
		} else if err != nil {
			errs = append(errs, &LineError{name, err})
		}
	}
	return errors.Join(errs...)
}

// Validate fills the lines' defaults in place (LineConfig.WithDefaults) and reports every
// problem of their declarations (Check).
func Validate(lines map[string]LineConfig) error {
	for name, l := range lines {
		lines[name] = l.WithDefaults()
	}
	return Check(lines)
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
