package rules

import (
	"encoding/json"
	"reflect"
	"testing"
)

// referencePayload is DecodePayload as encoding/json alone gives it.
func referencePayload(b []byte) any {
	if len(b) == 0 {
		return ""
	}
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	return v
}

var payloadSeeds = []string{
	`{"temp":40,"seq":1}`, ` {"a": [1, 2.5, -3e2, true, false, null, "x"], "b": {}} `, `[]`, `[[[]]]`,
	`"plain"`, `"esc\"aped"`, `"\u00e9"`, `"é"`, "\"\xff\"", `{"a":1,"a":2}`, `-0`, `0.0`, `1e400`,
	`01`, `1.`, `.5`, `-`, `1e`, `1e+`, `{"a":1,}`, `[1,]`, `{"a" 1}`, `{1:2}`, `tru`, `nul`, `truex`,
	`{"a":1} x`, `not json`, "\t\n\r 7 ", `{"deep":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
	"\"tab\there\"", `{"":""}`, `123456789012345678901234567890`, `5e-324`, `1.7976931348623157e309`,
}

func TestDecodePayloadEqualsEncodingJSON(t *testing.T) {
	for _, s := range payloadSeeds {
		if got, want := DecodePayload([]byte(s)), referencePayload([]byte(s)); !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %#v, encoding/json %#v", s, got, want)
		}
	}
}

// FuzzDecodePayload: the fast decoder never disagrees with encoding/json.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range payloadSeeds {
		f.Add([]byte(s))
	}
	keys := map[string]string{}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := DecodePayload(b), referencePayload(b); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %#v, encoding/json %#v", b, got, want)
		}
		if got, want := decodePayload(b, keys), referencePayload(b); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q with interned keys: got %#v, encoding/json %#v", b, got, want)
		}
	})
}

func BenchmarkDecodePayload(b *testing.B) {
	p := []byte(`{"temp":40,"seq":123456}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		keys := map[string]string{}
		for b.Loop() {
			decodePayload(p, keys)
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			referencePayload(p)
		}
	})
}
