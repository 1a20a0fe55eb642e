package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/deviceless/deviceless/protocol"
	"github.com/deviceless/deviceless/topic"
)

// Rule test files (name_test.yaml) feed timestamped events to rule files and state the
// firings expected, in the spirit of `promtool test rules`. The format is documented in
// docs/rules.md#testing-rules.

// TestFile is one rule test file.
type TestFile struct {
	RuleFiles []string   `yaml:"rule_files"`
	Start     string     `yaml:"start"`
	Tests     []TestCase `yaml:"tests"`
}

// TestCase is one scenario: events in, firings out. State starts empty in every case.
type TestCase struct {
	Name         string         `yaml:"name"`
	Agents       []TestAgent    `yaml:"agents"`
	Events       []TestEvent    `yaml:"events"`
	Expect       []TestFiring   `yaml:"expect"`
	ExpectErrors map[string]int `yaml:"expect_errors"`
	// LastRun gives scheduled rules a last run before the start (RFC 3339 times), as if
	// the engine restarted at the start: rules with `catch_up: true` that missed a run
	// since then run once at 0s.
	LastRun map[string]string `yaml:"last_run"`
	Pos     Pos               `yaml:"-"`
}

// TestAgent is an agent of the registry the expressions see as `agents`.
type TestAgent struct {
	ID       string            `yaml:"id"`
	Online   *bool             `yaml:"online"`
	Labels   map[string]string `yaml:"labels"`
	Lines    []string          `yaml:"lines"`
	InFlight int               `yaml:"in_flight"`
}

// TestEvent is an event sent `at` an offset from the start, optionally repeated. Without
// a topic it is a clock step: the clock moves to `at`, running the schedules due until
// then, and nothing is sent.
type TestEvent struct {
	At      Duration `yaml:"at"`
	Topic   string   `yaml:"topic"`
	Payload any      `yaml:"payload"`
	Client  string   `yaml:"client"`
	QoS     int      `yaml:"qos"`
	Retain  bool     `yaml:"retain"`
	Repeat  int      `yaml:"repeat"`
	Every   Duration `yaml:"every"`
}

// TestFiring is an expected firing. Key and Actions are compared only when given; an
// action is compared on the fields it gives.
type TestFiring struct {
	At      Duration     `yaml:"at"`
	Rule    string       `yaml:"rule"`
	CatchUp bool         `yaml:"catch_up"` // the run that stands for those missed (last_run)
	Key     *string      `yaml:"key"`
	Actions []TestAction `yaml:"actions"`
}

// TestAction is an expected action.
type TestAction struct {
	Invoke  string           `yaml:"invoke"`
	Target  *protocol.Target `yaml:"target"`
	Args    map[string]any   `yaml:"args"`
	Actuate *TestActuate     `yaml:"actuate"`
	Publish *TestPublish     `yaml:"publish"`
}

// TestActuate is an expected actuation.
type TestActuate struct {
	Target *protocol.Target `yaml:"target"`
	Line   string           `yaml:"line"`
	Value  any              `yaml:"value"`
	For    *Duration        `yaml:"for"`
}

// TestPublish is an expected publication.
type TestPublish struct {
	Topic   string `yaml:"topic"`
	Payload any    `yaml:"payload"`
	QoS     *int   `yaml:"qos"`
	Retain  *bool  `yaml:"retain"`
}

// ParseTestFile decodes a rule test file.
func ParseTestFile(file string, data []byte) (*TestFile, error) {
	if len(data) > MaxFileSize {
		return nil, Errors{errorf(Pos{File: file, Line: 1, Col: 1}, "file larger than %d bytes", MaxFileSize)}
	}
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, Errors{yamlError(file, err)}
	}
	tf := &TestFile{}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil || f.Docs[0].Body.Type() == ast.NullType {
		return nil, Errors{errorf(Pos{File: file, Line: 1, Col: 1}, "empty test file: expected `tests`")}
	}
	body, ok := f.Docs[0].Body.(*ast.MappingNode)
	if !ok {
		return nil, Errors{errorf(nodePos(f.Docs[0].Body), "a test file is a mapping with `rule_files` and `tests`").withFile(file)}
	}
	if err := decodeStrict(body, tf); err != nil {
		return nil, Errors{yamlError(file, err)}
	}
	// Remember where each test case starts, for failure reports.
	for _, kv := range body.Values {
		if kv.Key.String() != "tests" {
			continue
		}
		if seq, ok := kv.Value.(*ast.SequenceNode); ok {
			for i, item := range seq.Values {
				if i < len(tf.Tests) {
					tf.Tests[i].Pos = nodePos(item)
					tf.Tests[i].Pos.File = file
				}
			}
		}
	}
	var errs Errors
	if len(tf.Tests) == 0 {
		errs = append(errs, errorf(Pos{File: file, Line: 1, Col: 1}, "no tests in file"))
	}
	if tf.Start != "" {
		if _, err := time.Parse(time.RFC3339, tf.Start); err != nil {
			errs = append(errs, errorf(Pos{File: file, Line: 1, Col: 1}, "start %q: expected RFC 3339 time such as 2026-06-01T12:00:00Z", tf.Start))
		}
	}
	for _, tc := range tf.Tests {
		for _, name := range slices.Sorted(maps.Keys(tc.LastRun)) {
			if at := tc.LastRun[name]; !validTime(at) {
				errs = append(errs, errorf(tc.Pos, "test %q: last_run of %s %q: expected RFC 3339 time such as 2026-06-01T12:00:00Z", tc.Name, name, at))
			}
		}
		for _, ev := range tc.Events {
			if ev.Topic == "" {
				if ev.Payload != nil || ev.Client != "" || ev.QoS != 0 || ev.Retain || ev.Repeat != 0 || ev.Every != 0 {
					errs = append(errs, errorf(tc.Pos, "test %q: an event without a topic is a clock step and takes only `at`", tc.Name))
				}
				continue
			}
			if err := topic.ValidateTopic(ev.Topic); err != nil {
				errs = append(errs, errorf(tc.Pos, "test %q: event topic %q: %v", tc.Name, ev.Topic, err))
			}
			if ev.Repeat < 0 || ev.Repeat > 1e6 || (ev.Repeat > 1 && ev.Every == 0) {
				errs = append(errs, errorf(tc.Pos, "test %q: repeat needs 1..1000000 and `every`", tc.Name))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return tf, nil
}

func validTime(s string) bool {
	_, err := time.Parse(time.RFC3339, s)
	return err == nil
}

// TestResult is the outcome of one test case.
type TestResult struct {
	File string
	Name string
	Pos  Pos
	Err  error  // the test could not run (bad rule files)
	Diff string // empty when the test passed
}

// Passed reports whether the case ran and matched.
func (r TestResult) Passed() bool { return r.Err == nil && r.Diff == "" }

// RunTestFile runs every case of a test file. Rule files are relative to the test file;
// without `rule_files`, the rule files of the test file's folder are used.
func RunTestFile(file string) ([]TestResult, error) {
	data, err := readFile(file)
	if err != nil {
		return nil, err
	}
	tf, err := ParseTestFile(file, data)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(file)
	paths := []string{dir}
	if len(tf.RuleFiles) > 0 {
		paths = paths[:0]
		for _, rf := range tf.RuleFiles {
			if !filepath.IsAbs(rf) {
				rf = filepath.Join(dir, rf)
			}
			paths = append(paths, rf)
		}
	}
	_, defs, err := parseAll(paths)
	if err != nil {
		return nil, err
	}
	start := tf.startTime()
	var out []TestResult
	for _, tc := range tf.Tests {
		res := TestResult{File: file, Name: tc.Name, Pos: tc.Pos}
		// Compile per case so every case starts with empty state.
		set, err := Compile(defs, Options{})
		if err != nil {
			res.Err = err
		} else {
			res.Diff, res.Err = runCase(set, start, tc)
		}
		out = append(out, res)
	}
	return out, nil
}

// startTime is when the file's clock starts: `start`, else 2026-01-01T00:00:00Z.
func (tf *TestFile) startTime() time.Time {
	if tf.Start != "" {
		if t, err := time.Parse(time.RFC3339, tf.Start); err == nil {
			return t
		}
	}
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
}

type timedEvent struct {
	at    time.Duration
	ev    Event
	clock bool // a clock step: no event
}

// maxTestRuns bounds the scheduled runs of one test case, so that a clock step far ahead
// of a short interval fails instead of running for ever.
const maxTestRuns = 100000

func runCase(set *Set, start time.Time, tc TestCase) (string, error) {
	if len(tc.Agents) > 0 {
		agents := make([]Agent, len(tc.Agents))
		for i, a := range tc.Agents {
			agents[i] = Agent{ID: a.ID, Online: a.Online == nil || *a.Online, Labels: a.Labels, Lines: a.Lines, InFlight: a.InFlight}
		}
		set.SetAgents(agents)
	}
	var events []timedEvent
	for _, te := range tc.Events {
		if te.Topic == "" {
			events = append(events, timedEvent{at: te.At.D(), ev: Event{Time: start.Add(te.At.D())}, clock: true})
			continue
		}
		payload, err := testPayload(te.Payload)
		if err != nil {
			return "", fmt.Errorf("event on %s: %w", te.Topic, err)
		}
		n := max(te.Repeat, 1)
		for i := 0; i < n; i++ {
			at := te.At.D() + time.Duration(i)*te.Every.D()
			events = append(events, timedEvent{at: at, ev: Event{
				Topic: te.Topic, Payload: payload, Client: te.Client, QoS: byte(te.QoS), Retain: te.Retain, Time: start.Add(at),
			}})
		}
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].at < events[j].at })
	ev := set.NewEvaluator()
	var got []Firing
	if len(tc.LastRun) > 0 {
		last := map[string]time.Time{}
		for name, at := range tc.LastRun {
			if r := set.Rule(name); r == nil || r.Schedule == nil {
				return "", fmt.Errorf("last_run: no scheduled rule %q", name)
			}
			last[name], _ = time.Parse(time.RFC3339, at)
		}
		got = ev.CatchUp(last, start, got)
	}
	// Schedules run strictly after the start, and before an event at the same time.
	set.Arm(start)
	runs := 0
	for i := range events {
		to := events[i].ev.Time
		for t := set.NextRun(); !t.IsZero() && !t.After(to); t = set.NextRun() {
			if runs++; runs > maxTestRuns {
				return "", fmt.Errorf("more than %d scheduled runs: move the clock less far", maxTestRuns)
			}
			got = ev.Tick(t, got)
		}
		if !events[i].clock {
			got = ev.Eval(&events[i].ev, got)
		}
	}
	var want, have []string
	for i, f := range got {
		var exp *TestFiring
		if i < len(tc.Expect) {
			exp = &tc.Expect[i]
		}
		have = append(have, renderFiring(f, start, exp)...)
	}
	for i := range tc.Expect {
		want = append(want, renderExpected(&tc.Expect[i])...)
	}
	if len(tc.ExpectErrors) > 0 {
		names := make([]string, 0, len(tc.ExpectErrors))
		for n := range tc.ExpectErrors {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			want = append(want, fmt.Sprintf("errors %s: %d", n, tc.ExpectErrors[n]))
			var count uint64
			if r := set.Rule(n); r != nil {
				count = r.counters.Errors.Load()
			}
			have = append(have, fmt.Sprintf("errors %s: %d", n, count))
		}
	}
	return lineDiff(want, have), nil
}

func testPayload(v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []byte(v), nil
	}
	return json.Marshal(normalize(v))
}

// normalize turns YAML-decoded values into what encoding/json can marshal.
func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = normalize(x)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[fmt.Sprint(k)] = normalize(x)
		}
		return m
	case []any:
		for i, x := range v {
			v[i] = normalize(x)
		}
		return v
	}
	return v
}

func jsonText(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(normalize(v)); err != nil {
		return fmt.Sprintf("%v", v)
	}
	return strings.TrimSpace(buf.String())
}

func targetText(t protocol.Target) string {
	if t.Pick == "" {
		t.Pick = protocol.PickOne
	}
	return jsonText(t)
}

// renderFiring renders a firing as diffable lines, showing only what exp asks about.
func renderFiring(f Firing, start time.Time, exp *TestFiring) []string {
	head := fmt.Sprintf("at %s: %s", f.Time.Sub(start), f.Rule)
	if f.Schedule != nil && f.Schedule.CatchUp {
		head += " (catch-up)"
	}
	if exp == nil || exp.Key != nil {
		head += " key=" + f.Key
	}
	lines := []string{head}
	if exp != nil && exp.Actions == nil {
		return lines
	}
	for i, a := range f.Actions {
		var ea *TestAction
		if exp != nil && i < len(exp.Actions) {
			ea = &exp.Actions[i]
		}
		lines = append(lines, "  "+renderAction(a, ea))
	}
	return lines
}

func renderAction(a Action, ea *TestAction) string {
	parts := []string{a.Kind.String()}
	switch a.Kind {
	case Invoke:
		name := ""
		if a.Function != nil {
			name = a.Function.Name
		}
		parts = append(parts, name)
		if ea == nil || ea.Target != nil {
			parts = append(parts, "target="+targetText(a.Target))
		}
		if ea == nil || ea.Args != nil {
			parts = append(parts, "args="+jsonText(orEmpty(a.Args)))
		}
	case Actuate:
		parts = append(parts, a.Line+"="+jsonText(a.Value))
		var ex *TestActuate
		if ea != nil {
			ex = ea.Actuate
		}
		if ex == nil || ex.For != nil {
			parts = append(parts, "for="+a.For.String())
		}
		if ex == nil || ex.Target != nil {
			parts = append(parts, "target="+targetText(a.Target))
		}
	case Publish:
		parts = append(parts, a.Topic)
		var ex *TestPublish
		if ea != nil {
			ex = ea.Publish
		}
		if ex == nil || ex.QoS != nil {
			parts = append(parts, fmt.Sprintf("qos=%d", a.QoS))
		}
		if ex == nil || ex.Retain != nil {
			parts = append(parts, fmt.Sprintf("retain=%v", a.Retain))
		}
		if ex == nil || ex.Payload != nil {
			parts = append(parts, "payload="+jsonText(a.Payload))
		}
	}
	return strings.Join(parts, " ")
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func renderExpected(f *TestFiring) []string {
	head := fmt.Sprintf("at %s: %s", f.At.D(), f.Rule)
	if f.CatchUp {
		head += " (catch-up)"
	}
	if f.Key != nil {
		head += " key=" + *f.Key
	}
	lines := []string{head}
	for _, a := range f.Actions {
		var parts []string
		switch {
		case a.Actuate != nil:
			x := a.Actuate
			parts = append(parts, "actuate", x.Line+"="+jsonText(x.Value))
			if x.For != nil {
				parts = append(parts, "for="+x.For.String())
			}
			if x.Target != nil {
				parts = append(parts, "target="+targetText(*x.Target))
			}
		case a.Publish != nil:
			x := a.Publish
			parts = append(parts, "publish", x.Topic)
			if x.QoS != nil {
				parts = append(parts, fmt.Sprintf("qos=%d", *x.QoS))
			}
			if x.Retain != nil {
				parts = append(parts, fmt.Sprintf("retain=%v", *x.Retain))
			}
			if x.Payload != nil {
				parts = append(parts, "payload="+jsonText(x.Payload))
			}
		default:
			parts = append(parts, "invoke", a.Invoke)
			if a.Target != nil {
				parts = append(parts, "target="+targetText(*a.Target))
			}
			if a.Args != nil {
				parts = append(parts, "args="+jsonText(a.Args))
			}
		}
		lines = append(lines, "  "+strings.Join(parts, " "))
	}
	return lines
}

// lineDiff returns a unified-style diff of want and got, or "" when they are equal.
func lineDiff(want, got []string) string {
	if strings.Join(want, "\n") == strings.Join(got, "\n") {
		return ""
	}
	// Longest common subsequence, fine for the tens of lines a test case produces.
	n, m := len(want), len(got)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if want[i] == got[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var b strings.Builder
	b.WriteString("--- expected\n+++ got\n")
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && want[i] == got[j]:
			b.WriteString("  " + want[i] + "\n")
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			b.WriteString("- " + want[i] + "\n")
			i++
		default:
			b.WriteString("+ " + got[j] + "\n")
			j++
		}
	}
	return b.String()
}

// RunTests runs every test file named by paths (files, or folders searched for
// *_test.yaml). It fails only when a file cannot be read at all.
func RunTests(paths []string) ([]TestResult, error) {
	files, err := ExpandTests(paths)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("rules: no test files (*_test.yaml) in %s", strings.Join(paths, ", "))
	}
	var out []TestResult
	for _, f := range files {
		res, err := RunTestFile(f)
		if err != nil {
			out = append(out, TestResult{File: f, Err: err})
			continue
		}
		out = append(out, res...)
	}
	return out, nil
}
