package rules

import "strconv"

// decodeJSON decodes the common shape of a device's payload — objects, arrays, numbers,
// plain ASCII strings, booleans, null — as encoding/json decodes it into an `any`, at a
// fraction of its cost (issue 13: json.Unmarshal was most of an event's evaluation). It
// reports false for anything else (string escapes, non-ASCII, numbers out of range, deep
// nesting, invalid JSON): the caller then asks encoding/json, so the result is always
// encoding/json's (FuzzDecodePayload checks it).
//
// keys, when not nil, interns object keys (an evaluator's payloads repeat theirs): at most
// maxInterned, then it starts afresh.
func decodeJSON(b []byte, keys map[string]string) (any, bool) {
	d := jsonDecoder{b: b, keys: keys}
	v, ok := d.value(0)
	if !ok {
		return nil, false
	}
	d.space()
	return v, d.i == len(d.b)
}

type jsonDecoder struct {
	b    []byte
	i    int
	keys map[string]string
}

// maxInterned bounds an evaluator's interned keys.
const maxInterned = 1024

// maxJSONDepth bounds the fast path's recursion; deeper documents go to encoding/json.
const maxJSONDepth = 32

func (d *jsonDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonDecoder) value(depth int) (any, bool) {
	d.space()
	if d.i >= len(d.b) || depth > maxJSONDepth {
		return nil, false
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '"':
		s, ok := d.str()
		return s, ok
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	}
	return nil, false
}

// skip reads a value as value(depth) does, accepting exactly what it accepts, without
// building it: the lazy payload's scan (lazy.go). A number is parsed only when it might
// be out of range.
func (d *jsonDecoder) skip(depth int) bool {
	d.space()
	if d.i >= len(d.b) || depth > maxJSONDepth {
		return false
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.skipObject(depth, nil, "")
	case c == '[':
		return d.skipArray(depth)
	case c == '"':
		_, ok := d.rawStr()
		return ok
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		start, big, ok := d.numberSpan()
		if ok && big {
			_, err := strconv.ParseFloat(string(d.b[start:d.i]), 64)
			ok = err == nil
		}
		return ok
	}
	return false
}

// skipObject is object(depth) for skip. With p, the object is the payload itself: each
// member goes to p's index (lazyPayload.add, name being the member fetched first).
func (d *jsonDecoder) skipObject(depth int, p *lazyPayload, name string) bool {
	d.i++ // {
	d.space()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return true
	}
	for {
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return false
		}
		k0 := d.i + 1
		if _, ok := d.rawStr(); !ok {
			return false
		}
		k1 := d.i - 1
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return false
		}
		d.i++
		v := d.i
		if !d.skip(depth + 1) {
			return false
		}
		if p != nil {
			p.add(int32(k0), int32(k1), int32(v), name)
		}
		if more, ok := d.next('}'); !ok {
			return false
		} else if !more {
			return true
		}
	}
}

// skipArray is array(depth) for skip.
func (d *jsonDecoder) skipArray(depth int) bool {
	d.i++ // [
	d.space()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return true
	}
	for {
		if !d.skip(depth + 1) {
			return false
		}
		if more, ok := d.next(']'); !ok {
			return false
		} else if !more {
			return true
		}
	}
}

// next steps over what follows a member or an element: a comma (more: true) or close
// (more: false); anything else is not JSON.
func (d *jsonDecoder) next(close byte) (more, ok bool) {
	d.space()
	if d.i >= len(d.b) {
		return false, false
	}
	switch d.b[d.i] {
	case ',':
		d.i++
		return true, true
	case close:
		d.i++
		return false, true
	}
	return false, false
}

func (d *jsonDecoder) literal(s string) bool {
	if len(d.b)-d.i < len(s) || string(d.b[d.i:d.i+len(s)]) != s {
		return false
	}
	d.i += len(s)
	return true
}

func (d *jsonDecoder) object(depth int) (any, bool) {
	d.i++ // {
	m := make(map[string]any)
	d.space()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return m, true
	}
	for {
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return nil, false
		}
		k, ok := d.key()
		if !ok {
			return nil, false
		}
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return nil, false
		}
		d.i++
		v, ok := d.value(depth + 1)
		if !ok {
			return nil, false
		}
		m[k] = v // a repeated key: the last one, as encoding/json
		if more, ok := d.next('}'); !ok {
			return nil, false
		} else if !more {
			return m, true
		}
	}
}

func (d *jsonDecoder) array(depth int) (any, bool) {
	d.i++ // [
	a := []any{}
	d.space()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return a, true
	}
	for {
		v, ok := d.value(depth + 1)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		if more, ok := d.next(']'); !ok {
			return nil, false
		} else if !more {
			return a, true
		}
	}
}

// str reads a string of printable ASCII without escapes.
func (d *jsonDecoder) str() (string, bool) {
	raw, ok := d.rawStr()
	return string(raw), ok
}

// key reads an object key, interned.
func (d *jsonDecoder) key() (string, bool) {
	raw, ok := d.rawStr()
	if !ok || d.keys == nil {
		return string(raw), ok
	}
	if k, found := d.keys[string(raw)]; found {
		return k, true
	}
	if len(d.keys) >= maxInterned {
		clear(d.keys)
	}
	k := string(raw)
	d.keys[k] = k
	return k, true
}

// rawStr reads a string of printable ASCII without escapes and returns its bytes.
func (d *jsonDecoder) rawStr() ([]byte, bool) {
	d.i++ // "
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			raw := d.b[start:d.i]
			d.i++
			return raw, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
		d.i++
	}
	return nil, false
}

// number reads a JSON number (RFC 8259's grammar) as float64.
func (d *jsonDecoder) number() (any, bool) {
	start, _, ok := d.numberSpan()
	if !ok {
		return nil, false
	}
	f, err := strconv.ParseFloat(string(d.b[start:d.i]), 64)
	if err != nil {
		return nil, false // out of range: encoding/json's error, through the slow path
	}
	return f, true
}

// numberSpan reads a JSON number (RFC 8259's grammar) and returns where it starts. big
// is false for a number without an exponent whose integer part has at most 308 digits:
// below 1e308, it is in float64's range and ParseFloat cannot fail on it.
func (d *jsonDecoder) numberSpan() (start int, big, ok bool) {
	start = d.i
	if d.b[d.i] == '-' {
		d.i++
	}
	switch {
	case d.i < len(d.b) && d.b[d.i] == '0':
		d.i++
	case d.i < len(d.b) && d.b[d.i] >= '1' && d.b[d.i] <= '9':
		d.digits()
	default:
		return start, false, false
	}
	big = d.i-start > 308
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if !d.digits() {
			return start, false, false
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		big = true
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if !d.digits() {
			return start, false, false
		}
	}
	return start, big, true
}

func (d *jsonDecoder) digits() bool {
	start := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i > start
}
