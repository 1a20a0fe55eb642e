package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestScan(t *testing.T) {
	out := `fuzz: elapsed: 0s, gathering baseline coverage: 0/5 completed
fuzz: elapsed: 0s, gathering baseline coverage: 5/5 completed, now fuzzing with 2 workers
fuzz: elapsed: 3s, execs: 5756 (1918/sec), new interesting: 43 (total: 48)
fuzz: elapsed: 5s, execs: 12584 (3094/sec), new interesting: 77 (total: 82)
PASS
ok  	github.com/deviceless/deviceless/rules	5.270s
`
	var echo strings.Builder
	p := scan(strings.NewReader(out), &echo)
	if p != (progress{execs: 12584, interesting: 77, baseline: 5, fuzzing: true}) {
		t.Errorf("scan: %+v, want the last figures (12584 execs, 77 new interesting) after a baseline of 5", p)
	}
	if echo.String() != out {
		t.Errorf("scan did not pass the output on:\n%s", echo.String())
	}
	if p := scan(strings.NewReader("PASS\n"), &echo); p != (progress{}) {
		t.Errorf("scan without progress lines: %+v, want zeros", p)
	}
	stalled := "fuzz: elapsed: 0s, gathering baseline coverage: 0/120 completed\nfuzz: elapsed: 3s, execs: 120 (0/sec), new interesting: 0 (total: 120)\n"
	if p := scan(strings.NewReader(stalled), &echo); p != (progress{execs: 120, baseline: 120}) {
		t.Errorf("scan of a run that never fuzzed: %+v, want 120 execs replaying 120 entries, not fuzzing", p)
	}
}

func TestMinExecs(t *testing.T) {
	for _, c := range []struct {
		fuzztime string
		perSec   float64
		want     int64
		err      bool
	}{
		{"5s", 100, 500, false},
		{"1m30s", 10, 900, false},
		{"500ms", 100, 50, false},
		{"500x", 100, 0, false},
		{"x", 100, 0, true},
		{"5", 100, 0, true},
		{"-5s", 100, 0, true},
	} {
		got, err := minExecs(c.fuzztime, c.perSec)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("minExecs(%q, %g) = %d, %v; want %d, error %v", c.fuzztime, c.perSec, got, err, c.want, c.err)
		}
	}
}

func TestTrim(t *testing.T) {
	dir := t.TempDir()
	base := time.Now().Add(-time.Hour)
	for i := range 5 {
		p := filepath.Join(dir, fmt.Sprintf("in%d", i))
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		mod := base.Add(time.Duration(i) * time.Minute) // in4 is the newest
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	n, err := trim(dir, 2)
	if err != nil || n != 3 {
		t.Fatalf("trim = %d, %v; want 3 removed", n, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if diff := cmp.Diff([]string{"in3", "in4"}, left); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	if n, err := trim(filepath.Join(dir, "missing"), 2); n != 0 || err != nil {
		t.Errorf("trim(missing) = %d, %v; want 0, nil", n, err)
	}
}

// TestScanDeadlineRace: the output of CI's FuzzTopicFilter run that failed with Go 1.26's
// coordinator race is recognised; a real failure after fuzzing began is not.
func TestScanDeadlineRace(t *testing.T) {
	head := `fuzz: elapsed: 0s, gathering baseline coverage: 110/110 completed, now fuzzing with 2 workers
fuzz: elapsed: 3s, execs: 191228 (63742/sec), new interesting: 32 (total: 142)
fuzz: elapsed: 5s, execs: 350243 (76045/sec), new interesting: 38 (total: 148)
`
	race := head + `--- FAIL: FuzzTopicFilter (5.11s)
    context deadline exceeded
FAIL
exit status 1
FAIL	github.com/deviceless/deviceless/topic	5.109s
`
	var echo strings.Builder
	if p := scan(strings.NewReader(race), &echo); !p.raceOnly() || p.execs != 350243 {
		t.Errorf("CI's race output: %+v, want the race alone recognised after 350243 execs", p)
	}
	for name, out := range map[string]string{
		"a failing input": head + `--- FAIL: FuzzTopicFilter (0.12s)
    --- FAIL: FuzzTopicFilter (0.00s)
        topic_test.go:88: "a/#/b": matches "a/x/b", the reference does not

    Failing input written to testdata/fuzz/FuzzTopicFilter/5d0a6c5
    To re-run:
    go test -run=FuzzTopicFilter/5d0a6c5
FAIL
exit status 1
FAIL	github.com/deviceless/deviceless/topic	0.130s
`,
		"a target's own deadline error": head + `--- FAIL: FuzzTopicFilter (0.12s)
    --- FAIL: FuzzTopicFilter (0.00s)
        topic_test.go:88: context deadline exceeded
    context deadline exceeded
FAIL
`,
		"the race's text before fuzzing began": `fuzz: elapsed: 5s, gathering baseline coverage: 3/110 completed
--- FAIL: FuzzTopicFilter (5.11s)
    context deadline exceeded
FAIL
`,
		"a panic": head + `--- FAIL: FuzzTopicFilter (5.11s)
    context deadline exceeded
panic: runtime error: index out of range [3] with length 3
FAIL
`,
	} {
		if p := scan(strings.NewReader(out), &echo); p.raceOnly() {
			t.Errorf("%s taken for the deadline race: %+v", name, p)
		}
	}
}
