package rules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/deviceless/deviceless/protocol"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const okAction = "    do:\n      - publish: {topic: '\"t\"'}\n"

// Each bad rule file must be rejected with the exact position of the problem.
func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  string // "file:line:col: message fragment"
	}{
		{"unknown key", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x/y\n    iff: payload.v > 1\n" + okAction},
			`r.yaml:4:5: unknown key "iff"`},
		{"unknown top-level key", map[string]string{"r.yaml": "rulez: []\n"},
			`r.yaml:1:1: unknown key "rulez"`},
		{"bad duration", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x/y\n    throttle: 30 seconds\n" + okAction},
			`r.yaml:4:15: bad duration "30 seconds"`},
		{"bad window duration", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x/y\n    window: {over: 5mins, of: payload.v}\n" + okAction},
			`r.yaml:4:20: bad duration "5mins"`},
		{"bad size", map[string]string{"r.yaml": "functions:\n  f:\n    runtime: sh\n    code: echo\n    memory: 32 megs\n"},
			`r.yaml:5:13: bad size "32 megs"`},
		{"unknown function", map[string]string{"r.yaml": "functions:\n  cool-down: {runtime: sh, code: echo}\nrules:\n  - name: a\n    on: x/y\n    do:\n      - invoke: cool-dwn\n"},
			`r.yaml:7:17: unknown function "cool-dwn"`},
		{"non-boolean if", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x/y\n    if: payload.v + 1\n" + okAction},
			"r.yaml:4:9: `if` must be a boolean expression"},
		{"if of a known non-boolean type", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x/y\n    if: topic + \"x\"\n" + okAction},
			"r.yaml:4:9: `if` must be a boolean expression, but it is string"},
		{"undefined variable", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x/y\n    if: payload.v > 1 && temperature > 3\n" + okAction},
			"r.yaml:4:26: unknown name temperature"},
		{"undefined variable in quoted expression", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x/y\n    if: 'qos > 0 && nope'\n" + okAction},
			"r.yaml:4:21: unknown name nope"},
		{"undefined variable in block expression", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x/y\n    if: |\n      payload.v > 1 &&\n        nosuch\n" + okAction},
			"r.yaml:6:9: unknown name nosuch"},
		{"undefined variable in args", map[string]string{"r.yaml": "functions:\n  f: {runtime: sh, code: echo}\nrules:\n  - name: a\n    on: x/y\n    do:\n      - invoke: f\n        args: {x: celsius}\n"},
			"r.yaml:8:19: unknown name celsius"},
		{"expression syntax error", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x/y\n    if: payload.v >\n" + okAction},
			"r.yaml:4:"},
		{"actuation expiry of zero", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x/y\n    do:\n      - actuate: {target: {agent: e}, line: fan, value: 1, expire: 0s}\n"},
			"r.yaml:5:9: actuate expire 0s: at least 1s"},
		{"actuation expiry below a second", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x/y\n    do:\n      - actuate: {target: {agent: e}, line: fan, value: 1, expire: 500ms}\n"},
			"r.yaml:5:9: actuate expire 500ms: at least 1s"},
		{"invalid topic filter", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: [x/y, a/#/b]\n" + okAction},
			`r.yaml:3:15: invalid topic filter "a/#/b"`},
		{"invalid plus filter", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: a+/b\n" + okAction},
			`r.yaml:3:9: invalid topic filter "a+/b"`},
		{"duplicate rule across files", map[string]string{
			"a.yaml": "rules:\n  - name: same\n    on: x/y\n" + okAction,
			"b.yaml": "rules:\n  - name: same\n    on: x/z\n" + okAction},
			`b.yaml:2:11: duplicate rule name "same" (first defined at `},
		{"duplicate function across files", map[string]string{
			"a.yaml": "functions:\n  f: {runtime: sh, code: echo}\n",
			"b.yaml": "\nfunctions:\n  f: {runtime: sh, code: echo}\n"},
			`b.yaml:3:3: duplicate function name "f"`},
		{"yaml syntax error", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x/y\n   do:\n"},
			"r.yaml:4:4: "},
		{"unquoted flow expression", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x/y\n    do:\n      - publish: {topic: topic_parts[1]}\n"},
			"r.yaml:5:37: ',' or '}' must be specified; an expression with '[', ']', '{', '}' or ',' inside a flow mapping {...} must be quoted: topic: 'topic_parts[1]'"},
		// Issue 16's rule, as a new user wrote it.
		{"unquoted flow expression in args", map[string]string{"r.yaml": "functions:\n  f: {runtime: sh, code: echo}\nrules:\n  - name: a\n    on: weather/+/pressure\n    do:\n      - invoke: f\n        args: {bar: payload.bar, site: topic_parts[1]}\n"},
			"r.yaml:8:51: ',' or '}' must be specified; an expression with '[', ']', '{', '}' or ',' inside a flow mapping {...} must be quoted: site: 'topic_parts[1]'"},
		{"unquoted flow expression with spaces", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x/y\n    do:\n      - publish: {topic: '\"t\"', payload: raw[0:2] + raw[3], qos: 1}\n"},
			"r.yaml:5:45: ',' or '}' must be specified; an expression with '[', ']', '{', '}' or ',' inside a flow mapping {...} must be quoted: payload: 'raw[0:2] + raw[3]'"},
		{"publish to an unquoted topic", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x/y\n    do:\n      - publish: {topic: alerts/x}\n"},
			`r.yaml:5:26: unknown name alerts (variables: topic, topic_parts, payload, raw, client, qos, retain, now, window, prev, agents, schedule); a fixed topic is a string: '"alerts/x"'`},
		{"missing on", map[string]string{"r.yaml": "rules:\n  - name: a\n" + okAction},
			"r.yaml:2:11: rule \"a\" needs `on`"},
		{"missing name", map[string]string{"r.yaml": "rules:\n  - on: x\n" + okAction},
			"r.yaml:2:5: a rule needs a `name`"},
		{"two kinds in one action", map[string]string{"r.yaml": "functions:\n  f: {runtime: sh, code: echo}\nrules:\n  - name: a\n    on: x\n    do:\n      - invoke: f\n        publish: {topic: '\"t\"'}\n"},
			"r.yaml:7:9: an action takes exactly one of"},
		{"bad pick", map[string]string{"r.yaml": "functions:\n  f: {runtime: sh, code: echo}\nrules:\n  - name: a\n    on: x\n    do:\n      - invoke: f\n        target: {pick: some}\n"},
			`r.yaml:7:9: target pick "some"`},
		{"window without of", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x\n    window: {count: 3}\n" + okAction},
			"r.yaml:2:11: rule \"a\": window needs `of`"},
		{"window used without window", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x\n    if: window.avg > 1\n" + okAction},
			"r.yaml:2:11: rule \"a\" uses `window` but defines no window"},
		{"function with runtime and image", map[string]string{"r.yaml": "functions:\n  f: {runtime: sh, image: busybox, code: echo}\n"},
			"r.yaml:2:3: function \"f\": has both `runtime` and `image`"},
		{"function as a string", map[string]string{"r.yaml": "functions:\n  f: echo hi\n"},
			"r.yaml:2:6: function \"f\" must be a mapping"},
		{"publish qos", map[string]string{"r.yaml": "rules:\n  - name: a\n    on: x\n    do:\n      - publish: {topic: '\"t\"', qos: 3}\n"},
			"r.yaml:5:9: publish qos 3"},
		{"rules not a list", map[string]string{"r.yaml": "rules: {name: a}\n"},
			"r.yaml:1:8: rules must be a list"},
		{"two documents", map[string]string{"r.yaml": "rules: []\n---\nrules: []\n"},
			"r.yaml:3:"},
		{"an empty second document", map[string]string{"r.yaml": "00\n---"},
			"r.yaml:2:1: a rule file holds one YAML document"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeFiles(t, c.files)
			_, err := Load([]string{dir}, Options{})
			if err == nil {
				t.Fatalf("Load accepted the files; want %q", c.want)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %v is not Errors", err)
			}
			for _, e := range es {
				msg := strings.TrimPrefix(e.Error(), dir+string(filepath.Separator))
				if strings.HasPrefix(msg, c.want) {
					return
				}
			}
			t.Fatalf("got errors:\n%v\nwant one starting with %q", err, c.want)
		})
	}
}

func TestLoadMergesFilesAndFolders(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"fns.yaml":               "functions:\n  f: {runtime: sh, code: echo}\n",
		"sub/rules.yml":          "rules:\n  - name: a\n    on: x/y\n    do:\n      - invoke: f\n",
		"sub/rules_test.yaml":    "this is a test file: [not loaded as rules\n",
		"deviceless.yaml":        "broker: {listen: 127.0.0.1:1883}\nrules: [rules/]\n",
		"agent.yaml":             "id: gh1\nbroker: mqtt://x\n",
		".hidden/broken.yaml":    "rules: [\n",
		"notes.txt":              "not yaml",
		"grafana/datasource.yml": "apiVersion: 1\ndatasources: []\n",
	})
	set, err := Load([]string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Rules) != 1 || set.Functions["f"] == nil || len(set.Files()) != 2 {
		t.Fatalf("got %d rules, functions %v, files %v", len(set.Rules), set.Functions, set.Files())
	}
	// A file named explicitly is always loaded, whatever its content.
	if _, err := Load([]string{filepath.Join(dir, "agent.yaml")}, Options{}); err == nil {
		t.Fatal("an agent config named explicitly must be rejected as a rule file")
	}
	if _, err := Load([]string{filepath.Join(dir, "missing.yaml")}, Options{}); err == nil {
		t.Fatal("a missing file must be an error")
	}
}

func TestParseEmptyAndDefaults(t *testing.T) {
	for _, src := range []string{"", "# only a comment\n", "rules: []\nfunctions: {}\n", "rules:\nfunctions:\n"} {
		def, err := Parse("e.yaml", []byte(src))
		if err != nil || len(def.Rules) != 0 {
			t.Errorf("Parse(%q) = %v, %v", src, def, err)
		}
	}
	set, err := Compile(mustParse(t, "functions:\n  f: {image: busybox, command: [sh, -c, 'echo {}']}\n  g: {runtime: python3, code: 'print(1)', timeout: 1s, memory: 8Mi, warm: {max_uses: 10}}\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]protocol.FunctionSpec{
		"f": {Image: "busybox", Command: protocol.Command{"sh", "-c", "echo {}"},
			Timeout: protocol.Duration(protocol.DefaultTimeout), Memory: protocol.DefaultMemory},
		"g": {Runtime: "python3", Code: "print(1)", Timeout: protocol.Duration(time.Second), Memory: 8 << 20,
			Warm: &protocol.Warm{Idle: protocol.Duration(protocol.DefaultWarmIdle), MaxUses: 10}},
	}
	for name, w := range want {
		if diff := cmp.Diff(w, set.Functions[name].Spec); diff != "" {
			t.Errorf("function %s (-want +got):\n%s", name, diff)
		}
	}
}

// Issue 12: an actuation expires (MQTT message expiry and expires_at): after `expire`, or
// DefaultActuationExpiry.
func TestActuationExpiry(t *testing.T) {
	set, err := Compile(mustParse(t, `
rules:
  - name: r
    on: x/y
    do:
      - actuate: {target: {agent: e}, line: fan, value: 1, for: 5m}
      - actuate: {target: {agent: e}, line: heater, value: 1, expire: 30s}
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	firings := set.NewEvaluator().Eval(&Event{Topic: "x/y", Payload: []byte("{}"), Time: time.Now()}, nil)
	if len(firings) != 1 || len(firings[0].Actions) != 2 {
		t.Fatalf("firings %+v", firings)
	}
	if got := firings[0].Actions[0].Expire; got != DefaultActuationExpiry || DefaultActuationExpiry != time.Minute {
		t.Errorf("default expiry %v, want %v (1m)", got, DefaultActuationExpiry)
	}
	if got := firings[0].Actions[1].Expire; got != 30*time.Second {
		t.Errorf("expire: 30s gave %v", got)
	}
}

func mustParse(t testing.TB, src string) []*FileDef {
	t.Helper()
	def, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return []*FileDef{def}
}

// A rule may invoke a function deployed through the engine (Options.Deployed): a
// reference resolved at each invocation, listed by Invokes. A rule file's function comes
// first; an unknown reference is still an error.
func TestDeployedFunctions(t *testing.T) {
	dir := writeFiles(t, map[string]string{"r.yaml": "functions:\n  f: {runtime: sh, code: echo}\nrules:\n  - name: a\n    on: x/y\n    do:\n      - invoke: alice.fan@2\n      - invoke: f\n      - invoke: alice.fan\n"})
	deployed := func(ref string) bool { return ref == "alice.fan" || ref == "alice.fan@2" }
	set, err := Load([]string{dir}, Options{Deployed: deployed})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, fn := range set.Rules[0].Invokes() {
		got = append(got, fmt.Sprintf("%s:%v", fn.Name, fn.Deployed))
	}
	if want := []string{"alice.fan@2:true", "f:false", "alice.fan:true"}; !slices.Equal(got, want) {
		t.Errorf("Invokes() = %v, want %v", got, want)
	}
	if _, ok := set.Functions["alice.fan"]; ok {
		t.Error("a deployed function is listed among the rule files' functions")
	}
	_, err = Load([]string{dir}, Options{Deployed: func(ref string) bool { return ref == "alice.fan" }})
	if err == nil || !strings.Contains(err.Error(), `r.yaml:7:17: unknown function "alice.fan@2"`) {
		t.Errorf("unknown version: %v", err)
	}
}
