// Package metrics is the one metrics sink of the engine and the edge agent: points in the
// InfluxDB schema of docs/metrics.md go to a Sink, which either discards them (Nop, when the
// `influx` block of the configuration is absent) or batches them to InfluxDB in the
// background (Influx). Writing a point never blocks the caller: while InfluxDB is slow or
// down, points wait in a bounded buffer and, when it is full, the oldest are dropped and
// counted.
//
// Build points with the typed constructors (Events, Invocation, Actuation, Agent) so the
// engine and every agent write the same measurements, tags and field types.
package metrics

import (
	"math"
	"time"
)

// Sink receives points. Write must not block or noticeably slow the caller; it is safe
// for concurrent use.
type Sink interface {
	Write(Point)
}

// Nop is the Sink used when metrics are disabled: it discards every point.
type Nop struct{}

// Write discards p.
func (Nop) Write(Point) {}

// Point is one InfluxDB point. A zero Time is replaced by the time of Write.
// Tags with an empty value are left out when the point is encoded (line protocol has no
// empty tag values); a point needs at least one field.
type Point struct {
	Measurement string
	Tags        []Tag
	Fields      []Field
	Time        time.Time
}

// Tag is an indexed key=value pair of a point.
type Tag struct {
	Key, Value string
}

// Field is one value of a point; build it with Float, Int, Bool or String. A field's type
// must not change between points of a measurement (InfluxDB rejects the point otherwise).
type Field struct {
	Key  string
	kind fieldKind
	num  uint64 // int64 value, float64 bits, or bool as 0/1
	str  string
}

type fieldKind uint8

const (
	kindFloat fieldKind = iota
	kindInt
	kindBool
	kindString
)

// Float is a float field. NaN and infinities cannot be stored and are left out.
func Float(key string, v float64) Field {
	return Field{Key: key, kind: kindFloat, num: math.Float64bits(v)}
}

// Int is an integer field (written as 42i).
func Int(key string, v int64) Field { return Field{Key: key, kind: kindInt, num: uint64(v)} }

// Bool is a boolean field.
func Bool(key string, v bool) Field {
	f := Field{Key: key, kind: kindBool}
	if v {
		f.num = 1
	}
	return f
}

// String is a string field.
func String(key, v string) Field { return Field{Key: key, kind: kindString, str: v} }

// Value returns the field's value as float64, int64, bool or string.
func (f Field) Value() any {
	switch f.kind {
	case kindInt:
		return int64(f.num)
	case kindBool:
		return f.num == 1
	case kindString:
		return f.str
	default:
		return math.Float64frombits(f.num)
	}
}

// LineProtocol returns p as one line of InfluxDB line protocol (without a trailing
// newline), or "" when p cannot be encoded (no measurement or no storable field).
func (p Point) LineProtocol() string {
	b, ok := appendLine(nil, &p)
	if !ok {
		return ""
	}
	return string(b[:len(b)-1])
}
