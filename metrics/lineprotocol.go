package metrics

import (
	"math"
	"strconv"
)

// appendLine appends p as one line of line protocol (with the trailing newline) to b.
// It reports false, leaving b unchanged, when p has no measurement or no storable field.
func appendLine(b []byte, p *Point) ([]byte, bool) {
	if p.Measurement == "" {
		return b, false
	}
	start := len(b)
	b = appendEscaped(b, p.Measurement, false)
	for _, t := range p.Tags {
		if t.Key == "" || t.Value == "" {
			continue
		}
		b = append(b, ',')
		b = appendEscaped(b, t.Key, true)
		b = append(b, '=')
		b = appendEscaped(b, t.Value, true)
	}
	sep := byte(' ')
	n := 0
	for i := range p.Fields {
		f := &p.Fields[i]
		if f.Key == "" {
			continue
		}
		if f.kind == kindFloat {
			v := math.Float64frombits(f.num)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
		}
		b = append(b, sep)
		sep = ','
		n++
		b = appendEscaped(b, f.Key, true)
		b = append(b, '=')
		switch f.kind {
		case kindFloat:
			b = strconv.AppendFloat(b, math.Float64frombits(f.num), 'g', -1, 64)
		case kindInt:
			b = strconv.AppendInt(b, int64(f.num), 10)
			b = append(b, 'i')
		case kindBool:
			b = strconv.AppendBool(b, f.num == 1)
		case kindString:
			b = append(b, '"')
			for i := 0; i < len(f.str); i++ {
				c := f.str[i]
				if c == '"' || c == '\\' {
					b = append(b, '\\')
				}
				b = append(b, c)
			}
			b = append(b, '"')
		}
	}
	if n == 0 {
		return b[:start], false
	}
	if !p.Time.IsZero() {
		b = append(b, ' ')
		b = strconv.AppendInt(b, p.Time.UnixNano(), 10)
	}
	return append(b, '\n'), true
}

// appendEscaped escapes a measurement (commas, spaces) or a tag key, tag value or field key
// (also equals signs). Line protocol cannot carry newlines: they become escaped spaces.
func appendEscaped(b []byte, s string, equals bool) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n' || c == '\r':
			b = append(b, '\\', ' ')
			continue
		case c == ',' || c == ' ' || (equals && c == '='):
			b = append(b, '\\')
		}
		b = append(b, c)
	}
	return b
}
