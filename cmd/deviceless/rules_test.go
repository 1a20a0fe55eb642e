//go:build !agentonly

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestRulesCheckAcceptsExamples(t *testing.T) {
	code, out, errs := runCLI(t, "rules", "check", "../../examples/")
	if code != 0 || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
}

func TestRulesCheckReportsPositions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad.yaml", "rules:\n  - name: a\n    on: x/y\n    if: payload.v > 1 && temperature > 3\n    throttle: 30 seconds\n    do:\n      - invoke: nope\n")
	code, out, errs := runCLI(t, "rules", "check", bad)
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q; want 1 and nothing on stdout", code, out)
	}
	// The decoder stops at the first structural problem (the duration) ...
	if !strings.HasPrefix(errs, bad+":5:15: bad duration \"30 seconds\"") {
		t.Fatalf("stderr:\n%s", errs)
	}
	// ... and once that is fixed, every semantic problem is reported together.
	write("bad.yaml", "rules:\n  - name: a\n    on: x/y\n    if: payload.v > 1 && temperature > 3\n    do:\n      - invoke: nope\n")
	_, _, errs = runCLI(t, "rules", "check", bad)
	for _, want := range []string{bad + ":4:26: unknown name temperature", bad + ":6:17: unknown function \"nope\"", "2 problem(s) found"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if code, _, _ := runCLI(t, "rules", "check"); code != 2 {
		t.Errorf("no paths: exit %d, want 2 (usage)", code)
	}
	if code, _, _ := runCLI(t, "rules", "check", filepath.Join(dir, "missing.yaml")); code != 1 {
		t.Errorf("missing file: exit %d, want 1", code)
	}
}

func TestRulesTest(t *testing.T) {
	code, out, _ := runCLI(t, "rules", "test", "../../examples/")
	if code != 0 || !strings.Contains(out, "tests passed") {
		t.Fatalf("examples: exit %d\n%s", code, out)
	}
	// A broken expectation fails with a diff naming both sides.
	dir := t.TempDir()
	rulesSrc, err := os.ReadFile("../../examples/door-alarm/rules/door-alarm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "door.yaml"), rulesSrc, 0o644)
	os.WriteFile(filepath.Join(dir, "door_test.yaml"), []byte(`
tests:
  - name: wrong time
    events:
      - {at: 0s, topic: home/hall/door, payload: {state: open, armed: true}}
    expect:
      - {at: 5s, rule: door-opened-while-armed}
`), 0o644)
	code, out, _ = runCLI(t, "rules", "test", dir)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	for _, want := range []string{"FAIL " + filepath.Join(dir, "door_test.yaml") + ":3:5: wrong time", "--- expected", "+++ got", "- at 5s: door-opened-while-armed", "+ at 0s: door-opened-while-armed", "1 of 1 tests failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
