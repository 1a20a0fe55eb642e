package edgeagent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/deviceless/deviceless/protocol"
)

// interpret reads a function's stdout: one JSON value. An object with an actuate or a
// publish member is the function asking the agent to act; its result (or, without one, the
// whole value) is the output. Anything else is the output as it is. The stdout is
// validated once, and only an object's actuate and publish members are decoded.
func interpret(stdout []byte) (json.RawMessage, *protocol.Output, error) {
	stdout = bytes.TrimSpace(stdout)
	if len(stdout) == 0 {
		return nil, nil, nil
	}
	if !json.Valid(stdout) {
		return nil, nil, fmt.Errorf("function output is not one JSON value: %q", truncate(string(stdout), 200))
	}
	if stdout[0] != '{' {
		return json.RawMessage(stdout), nil, nil
	}
	obj := readObject(stdout)
	if !obj.acts {
		return json.RawMessage(stdout), nil, nil
	}
	out, err := obj.decode()
	if err != nil {
		return nil, nil, fmt.Errorf("function output: actuate/publish: %w", err)
	}
	if obj.result != nil {
		return bytes.Clone(obj.result), out, nil
	}
	return json.RawMessage(stdout), out, nil
}

// stdoutObject is what interpret needs of a function's stdout object.
type stdoutObject struct {
	acts    bool            // it has an "actuate" or a "publish" member
	result  json.RawMessage // its last "result" member; nil without one
	members []member        // the members protocol.Output has fields for, in order
}

// member is a member of an object whose key matches a field of protocol.Output as
// encoding/json matches keys: case-insensitively.
type member struct {
	field string // actuate, publish or result
	value json.RawMessage
}

var outputFields = [...]string{"actuate", "publish", "result"}

// readObject splits a valid JSON object into its members.
func readObject(data []byte) stdoutObject {
	var obj stdoutObject
	for i := 1; ; {
		i = skipSpace(data, i)
		switch data[i] {
		case '}':
			return obj
		case ',':
			i = skipSpace(data, i+1)
		}
		end := stringEnd(data, i)
		key := objectKey(data[i:end])
		i = skipSpace(data, skipSpace(data, end)+1) // past the colon
		end = valueEnd(data, i)
		value := json.RawMessage(data[i:end])
		i = end
		for _, f := range outputFields {
			if bytes.EqualFold(key, []byte(f)) {
				obj.members = append(obj.members, member{f, value})
			}
		}
		switch string(key) {
		case "actuate", "publish":
			obj.acts = true
		case "result":
			obj.result = value
		}
	}
}

// decode fills a protocol.Output from the members as json.Unmarshal of the whole object
// fills it: a later member overwrites an earlier one, an error from a field's own decoder
// stops it, and otherwise the first type error, named by its path from the object, is
// the error.
func (obj stdoutObject) decode() (*protocol.Output, error) {
	var out protocol.Output
	var typeErr error
	for _, m := range obj.members {
		var err error
		switch m.field {
		case "actuate":
			err = json.Unmarshal(m.value, &out.Actuate)
		case "publish":
			err = json.Unmarshal(m.value, &out.Publish)
		default:
			out.Result = m.value
		}
		var typ *json.UnmarshalTypeError
		switch {
		case err == nil:
		case errors.As(err, &typ):
			if typ.Struct == "" && typ.Field == "" {
				typ.Struct, typ.Field = "Output", m.field
			} else {
				typ.Field = m.field + "." + typ.Field
			}
			if typeErr == nil {
				typeErr = typ
			}
		default:
			return nil, err
		}
	}
	if typeErr != nil {
		return nil, typeErr
	}
	return &out, nil
}

// The scanning helpers below walk valid JSON only (interpret checks it first).

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string that starts at data[i].
func stringEnd(data []byte, i int) int {
	for i++; data[i] != '"'; i++ {
		if data[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// valueEnd returns the index after the value that starts at data[i].
func valueEnd(data []byte, i int) int {
	switch data[i] {
	case '"':
		return stringEnd(data, i)
	case '{', '[':
		for depth := 0; ; i++ {
			switch data[i] {
			case '"':
				i = stringEnd(data, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for i < len(data) && bytes.IndexByte([]byte(" \t\r\n,}]"), data[i]) < 0 { // a number or literal
		i++
	}
	return i
}

// objectKey returns the text of a quoted key.
func objectKey(quoted []byte) []byte {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return quoted[1 : len(quoted)-1]
	}
	var s string
	_ = json.Unmarshal(quoted, &s) // valid: interpret checked it
	return []byte(s)
}
