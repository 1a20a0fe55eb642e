package edgeagent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/deviceless/deviceless/protocol"
)

func TestInterpret(t *testing.T) {
	tests := []struct {
		stdout, output, err string
		actions             bool
	}{
		{"", "", "", false},
		{"42\n", "42", "", false},
		{`{"a":1}`, `{"a":1}`, "", false},
		{`{"result":{"x":1},"actuate":[{"line":"fan","value":1,"for":"30s"}]}`, `{"x":1}`, "", true},
		{`{"publish":[{"topic":"a","payload":1}],"other":2}`, `{"publish":[{"topic":"a","payload":1}],"other":2}`, "", true},
		{`{"result":5}`, `{"result":5}`, "", false},
		{"nope", "", "not one JSON value", false},
		{`{"actuate":[{"line":1}]}`, "", "actuate/publish", false},
	}
	for _, tt := range tests {
		out, acts, err := interpret([]byte(tt.stdout))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err %v", tt.stdout, err)
			}
			continue
		}
		if err != nil || string(out) != tt.output || (acts != nil) != tt.actions {
			t.Errorf("%s: %s %v %v", tt.stdout, out, acts, err)
		}
	}
}

// interpretCases are stdouts with what interpret makes of them; FuzzInterpret starts from them.
var interpretCases = []struct {
	name, stdout string
	output       string           // the result's output
	acts         *protocol.Output // what the function asks for
	err          string           // the error, exactly
}{
	{name: "nested object", stdout: ` {"a":{"b":{"c":[1,{"d":null}]}}} ` + "\n",
		output: `{"a":{"b":{"c":[1,{"d":null}]}}}`},
	{name: "array", stdout: `[1, "two", {"actuate":[]}]`, output: `[1, "two", {"actuate":[]}]`},
	{name: "string", stdout: `"fan on"`, output: `"fan on"`},
	{name: "literal", stdout: "true", output: "true"},
	{name: "result alone", stdout: `{"result":{"x":1}}`, output: `{"result":{"x":1}}`},
	{name: "nested actuate is data", stdout: `{"data":{"actuate":[{"line":"fan","value":1}]}}`,
		output: `{"data":{"actuate":[{"line":"fan","value":1}]}}`},
	{name: "actuate with result", stdout: "{\n  \"actuate\": [{\"line\": \"fan\", \"value\": 1, \"for\": \"30s\"}],\n  \"result\": [1, 2]\n}",
		output: `[1, 2]`, acts: &protocol.Output{
			Actuate: []protocol.Actuation{{Line: "fan", Value: 1, For: protocol.Duration(30 * time.Second)}},
			Result:  json.RawMessage(`[1, 2]`)}},
	{name: "publish without result", stdout: `{"publish":[{"topic":"a/b","payload":"on","qos":1}]}`,
		output: `{"publish":[{"topic":"a/b","payload":"on","qos":1}]}`,
		acts:   &protocol.Output{Publish: []protocol.Publish{{Topic: "a/b", Payload: json.RawMessage(`"on"`), QoS: 1}}}},
	{name: "null lists", stdout: `{"actuate":null,"publish":null,"result":null}`, output: `null`,
		acts: &protocol.Output{Result: json.RawMessage(`null`)}},
	{name: "last member wins", stdout: `{"result":1,"actuate":[],"result":2}`, output: `2`,
		acts: &protocol.Output{Actuate: []protocol.Actuation{}, Result: json.RawMessage(`2`)}},
	// encoding/json matches struct fields case-insensitively: only the exact keys make an
	// object a request, but once it is one, "Publish" fills the publish list.
	{name: "other case is data", stdout: `{"Actuate":[{"line":"fan","value":1}]}`,
		output: `{"Actuate":[{"line":"fan","value":1}]}`},
	{name: "other case fills a request", stdout: `{"actuate":[],"Publish":[{"topic":"t"}],"RESULT":3}`,
		output: `{"actuate":[],"Publish":[{"topic":"t"}],"RESULT":3}`,
		acts:   &protocol.Output{Actuate: []protocol.Actuation{}, Publish: []protocol.Publish{{Topic: "t"}}, Result: json.RawMessage(`3`)}},
	{name: "huge number as output", stdout: `1e400`, output: `1e400`},
	{name: "huge number in data", stdout: `{"n":123456789012345678901234567890}`, output: `{"n":123456789012345678901234567890}`},
	{name: "huge number as a value", stdout: `{"actuate":[{"line":"fan","value":1e400}]}`,
		err: "function output: actuate/publish: json: cannot unmarshal number 1e400 into Go struct field Actuation.actuate.value of type int"},
	{name: "actuate not a list", stdout: `{"actuate":"fan"}`,
		err: "function output: actuate/publish: json: cannot unmarshal string into Go struct field Output.actuate of type []protocol.Actuation"},
	{name: "actuation not an object", stdout: `{"actuate":[{"line":"fan"},5]}`,
		err: "function output: actuate/publish: json: cannot unmarshal number into Go struct field Output.actuate of type protocol.Actuation"},
	{name: "publish topic not a string", stdout: `{"publish":[{"topic":2}]}`,
		err: "function output: actuate/publish: json: cannot unmarshal number into Go struct field Publish.publish.topic of type string"},
	{name: "qos out of range", stdout: `{"publish":[{"topic":"t","qos":300}]}`,
		err: "function output: actuate/publish: json: cannot unmarshal number 300 into Go struct field Publish.publish.qos of type uint8"},
	{name: "bad duration", stdout: `{"actuate":[{"line":"fan","value":"1"}],"publish":[{"topic":"t"}],"actuate":[{"for":"soon"}]}`,
		err: `function output: actuate/publish: duration "soon": time: invalid duration "soon"`},
	{name: "wrong type in data only", stdout: `{"Actuate":5,"x":1}`, output: `{"Actuate":5,"x":1}`},
	{name: "trailing garbage", stdout: `{"result":1} x`, err: `function output is not one JSON value: "{\"result\":1} x"`},
	{name: "two values", stdout: `{"a":1}{"b":2}`, err: `function output is not one JSON value: "{\"a\":1}{\"b\":2}"`},
	{name: "two numbers", stdout: `1 2`, err: `function output is not one JSON value: "1 2"`},
	{name: "trailing comma", stdout: `{"a":1,}`, err: `function output is not one JSON value: "{\"a\":1,}"`},
	{name: "missing comma", stdout: `{"a":1 "b":2}`, err: `function output is not one JSON value: "{\"a\":1 \"b\":2}"`},
	{name: "unterminated", stdout: `{"actuate":[`, err: `function output is not one JSON value: "{\"actuate\":["`},
	{name: "garbage after a request", stdout: `{"actuate":[]}]`, err: `function output is not one JSON value: "{\"actuate\":[]}]"`},
	{name: "long garbage", stdout: "{" + strings.Repeat("x", 300),
		err: fmt.Sprintf("function output is not one JSON value: %q", "{"+strings.Repeat("x", 199)+"…")},
}

func TestInterpretCases(t *testing.T) {
	for _, tt := range interpretCases {
		t.Run(tt.name, func(t *testing.T) {
			out, acts, err := interpret([]byte(tt.stdout))
			if got := errString(err); got != tt.err {
				t.Fatalf("error %q, want %q", got, tt.err)
			}
			if string(out) != tt.output {
				t.Errorf("output %s, want %s", out, tt.output)
			}
			if diff := cmp.Diff(tt.acts, acts); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzInterpret compares interpret with interpretThreePass, the implementation it replaced.
func FuzzInterpret(f *testing.F) {
	for _, tt := range interpretCases {
		f.Add([]byte(tt.stdout))
	}
	// Keys spelled with escapes, folding to a field's name (ſ is s), or not UTF-8.
	for _, s := range []string{`{"act\u0075ate":[],"result":1}`, `{"publiſh":[{"topic":"t"}],"actuate":[]}`,
		`{"actuate":[],"reſult":2,"result":3}`, "{\"actuate\xff\":[],\"\xffresult\":1}", "\x0b{\"a\":1}\u00a0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, stdout []byte) {
		wantOut, wantActs, wantErr := interpretThreePass(bytes.Clone(stdout))
		out, acts, err := interpret(stdout)
		if got, want := errString(err), errString(wantErr); got != want {
			t.Fatalf("%q: error %q, want %q", stdout, got, want)
		}
		if !bytes.Equal(out, wantOut) || (out == nil) != (wantOut == nil) {
			t.Fatalf("%q: output %q, want %q", stdout, out, wantOut)
		}
		if diff := cmp.Diff(wantActs, acts); diff != "" {
			t.Fatalf("%q: actions (-want +got):\n%s", stdout, diff)
		}
	})
}

// interpretThreePass is interpret as it was: validate, decode the keys, decode the request.
func interpretThreePass(stdout []byte) (json.RawMessage, *protocol.Output, error) {
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
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(stdout, &keys); err != nil {
		return nil, nil, fmt.Errorf("function output: %w", err)
	}
	_, hasActuate := keys["actuate"]
	_, hasPublish := keys["publish"]
	if !hasActuate && !hasPublish {
		return json.RawMessage(stdout), nil, nil
	}
	var out protocol.Output
	if err := json.Unmarshal(stdout, &out); err != nil {
		return nil, nil, fmt.Errorf("function output: actuate/publish: %w", err)
	}
	if r, ok := keys["result"]; ok {
		return r, &out, nil
	}
	return json.RawMessage(stdout), &out, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// BenchmarkInterpret compares interpret with the three-pass implementation it replaced.
func BenchmarkInterpret(b *testing.B) {
	inputs := map[string][]byte{
		"object": []byte(`{"celsius":31.5,"zone":"north","readings":[30.1,30.9,31.5],"ok":true}`),
		"request": []byte(`{"actuate":[{"line":"fan","value":1,"for":"30s"}],` +
			`"publish":[{"topic":"alerts/gh1","payload":{"celsius":31.5}}],"result":"fan on"}`),
		"large": []byte(`{"rows":[` + strings.TrimSuffix(strings.Repeat(`{"t":"2024-01-01T00:00:00Z","v":[1,2,3]},`, 2000), ",") + `]}`),
	}
	impls := []struct {
		name string
		fn   func([]byte) (json.RawMessage, *protocol.Output, error)
	}{{"one-pass", interpret}, {"three-pass", interpretThreePass}}
	for _, in := range []string{"object", "request", "large"} {
		for _, impl := range impls {
			b.Run(in+"/"+impl.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(inputs[in])))
				for b.Loop() {
					if _, _, err := impl.fn(inputs[in]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
