package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Two `go test` runs as the Taskfile prints them, with a -count 3 benchmark, a log line
// that looks like a benchmark, and metrics in several units.
const twoRuns = `goos: linux
goarch: amd64
pkg: example.com/a
cpu: AMD EPYC
BenchmarkFwd/broker=ours-2      	  200000	      5042 ns/op	  19.24 MB/s	    150000 msgs/s
BenchmarkFwd/broker=mosquitto-2 	  200000	      5042 ns/op	    100000 msgs/s
BenchmarkFwd/broker=mosquitto-2 	  200000	      5042 ns/op	     50000 msgs/s
BenchmarkFwd/broker=mosquitto-2 	  200000	      5042 ns/op	     80000 msgs/s
BenchmarkLoop/cold   this is a log line, not a result
PASS
ok  	example.com/a	14.681s
goos: linux
goarch: amd64
pkg: example.com/b
cpu: AMD EPYC
BenchmarkRate-2   	   50000	    166262 ns/op	     19334 invocations/s	         0 lost
ok  	example.com/b	13.368s
`

func mustParseString(t *testing.T, s string) results {
	t.Helper()
	r, err := parse(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParse(t *testing.T) {
	r := mustParseString(t, twoRuns)
	for _, c := range []struct {
		bench, unit string
		want        float64
	}{
		{"BenchmarkFwd/broker=ours", "msgs/s", 150000},
		{"BenchmarkFwd/broker=ours", "MB/s", 19.24},
		{"BenchmarkFwd/broker=mosquitto", "msgs/s", 80000}, // median of three
		{"BenchmarkRate", "invocations/s", 19334},
		{"BenchmarkRate", "lost", 0},
	} {
		if got, ok := r.get(c.bench, c.unit); !ok || got != c.want {
			t.Errorf("%s %s = %v, %v; want %v", c.bench, c.unit, got, ok, c.want)
		}
	}
	if _, ok := r.get("BenchmarkLoop/cold", "this"); ok {
		t.Error("a log line was parsed as a result")
	}
	if r.run["BenchmarkFwd/broker=ours"] == r.run["BenchmarkRate"] {
		t.Error("two runs got one run number")
	}
}

func TestParseRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"one benchmark in two runs": "pkg: a\nBenchmarkX-2 10 5 ns/op\npkg: b\nBenchmarkX-2 10 5 ns/op\n",
		"a value that is no number": "pkg: a\nBenchmarkX-2 10 5 ns/op 7x msgs/s\n",
	} {
		if _, err := parse(strings.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestNumber(t *testing.T) {
	for v, want := range map[float64]string{
		4219772: "4,219,772", 1000: "1,000", -12345.6: "-12,346", 265.4: "265", 17.41: "17.4",
		0.83: "0.83", 0: "0", 2: "2", 999.5: "1,000", 99.96: "100", 9.996: "10.0",
	} {
		if got := number(v); got != want {
			t.Errorf("number(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestChecks(t *testing.T) {
	r := mustParseString(t, twoRuns)
	ours, theirs := fig{"BenchmarkFwd/broker=ours", "msgs/s"}, fig{"BenchmarkFwd/broker=mosquitto", "msgs/s"}
	for _, c := range []struct {
		name  string
		check check
		want  string // "" = met
	}{
		{"ratio met", atLeast(ratio{ours, theirs}, 1.5), ""},
		{"ratio missed", atLeast(ratio{ours, theirs}, 2), "1.88× < 2.00×"},
		{"maximum met", atMost(fig{"BenchmarkRate", "lost"}, 0), ""},
		{"maximum missed", atMost(ours, 100000), "150,000 > 100,000"},
		{"minimum missed", atLeast(fig{"BenchmarkRate", "invocations/s"}, 20000), "19,334 < 20,000"},
	} {
		got, err := c.check.verdict(r)
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	if _, err := atLeast(fig{"BenchmarkNope", "msgs/s"}, 1).verdict(r); !errors.Is(err, errMissing) {
		t.Errorf("missing figure: %v", err)
	}
	if _, err := atLeast(ratio{ours, fig{"BenchmarkRate", "invocations/s"}}, 1).verdict(r); err == nil || !strings.Contains(err.Error(), "not from the same run") {
		t.Errorf("ratio across runs: %v", err)
	}
	zero := mustParseString(t, "pkg: a\nBenchmarkA-2 1 5 x\nBenchmarkB-2 1 0 x\n")
	if _, err := (ratio{fig{"BenchmarkA", "x"}, fig{"BenchmarkB", "x"}}).value(zero); err == nil {
		t.Error("division by zero: no error")
	}
}

func TestRender(t *testing.T) {
	r := mustParseString(t, twoRuns)
	ours, theirs := fig{"BenchmarkFwd/broker=ours", "msgs/s"}, fig{"BenchmarkFwd/broker=mosquitto", "msgs/s"}
	table := []row{
		{what: "forwarding", figure: []any{ours, " vs ", theirs, " (", ratio{ours, theirs}, ")"},
			target: "≥ 1×", checks: []check{atLeast(ratio{ours, theirs}, 1)}},
		{what: "invocations", figure: []any{fig{"BenchmarkRate", "invocations/s"}, "; ", fig{"BenchmarkRate", "lost"}, " lost"},
			target: "≥ 20,000, 0 lost", checks: []check{atLeast(fig{"BenchmarkRate", "invocations/s"}, 20000), atMost(fig{"BenchmarkRate", "lost"}, 0)}},
		{what: "no target", figure: []any{fig{"BenchmarkFwd/broker=ours", "MB/s"}}},
		{what: "renamed", figure: []any{fig{"BenchmarkGone", "p50-ms"}}, target: "p50 ≤ 5", checks: []check{atMost(fig{"BenchmarkGone", "p50-ms"}, 5)}},
	}
	got, problems := render(r, table, time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC))
	want := "Written by `go tool task bench` from one run that ended 2026-12-02 01:00 UTC; every ratio divides two figures of the same `go test` run. 1 of 3 targets met.\n\n" +
		"| what | figure | target | result |\n| --- | --- | --- | --- |\n" +
		"| forwarding | 150,000 vs 80,000 (1.88×) | ≥ 1× | PASS |\n" +
		"| invocations | 19,334; 0 lost | ≥ 20,000, 0 lost | **FAIL** (19,334 < 20,000) |\n" +
		"| no target | 19.2 |  |  |\n" +
		"| renamed | n/a | p50 ≤ 5 | n/a |\n"
	if got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	if len(problems) != 1 || !errors.Is(problems[0], errMissing) {
		t.Errorf("problems = %v, want the one missing figure once", problems)
	}
}

// The table of table.go against a whole `go tool task bench` output (testdata/bench.txt,
// a run of this tree): every figure it names is there, every ratio is within one run,
// and a row has a target in words exactly when it has checks. A benchmark renamed without
// its row, or a row added without its benchmark in the output, fails here.
func TestRowsMatchARun(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "bench.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, problems := render(r, rows, time.Now()); len(problems) > 0 {
		t.Errorf("the table does not match testdata/bench.txt:\n%v", errors.Join(problems...))
	}
	for _, w := range rows {
		if (w.target == "") != (len(w.checks) == 0) {
			t.Errorf("row %q: a target in words needs its checks and the other way round", w.what)
		}
		if strings.Contains(w.what, "|") {
			t.Errorf("row %q: a | breaks the markdown table", w.what)
		}
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	in, md := filepath.Join(dir, "bench.out"), filepath.Join(dir, "BENCHMARKS.md")
	doc := "# Benchmarks\n\n" + startMark + "\nold table\n" + endMark + "\n\n## Rules\n"
	if err := os.WriteFile(md, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(in, []byte(twoRuns), 0o644); err != nil {
		t.Fatal(err)
	}
	// The figures of twoRuns are not those of the table: the section is written and the
	// missing figures are an error.
	err := run(in, md)
	if !errors.Is(err, errMissing) {
		t.Fatalf("run: %v, want missing figures", err)
	}
	out, _ := os.ReadFile(md)
	s := string(out)
	if strings.Contains(s, "old table") || !strings.Contains(s, "| what | figure | target | result |") ||
		!strings.HasPrefix(s, "# Benchmarks\n\n"+startMark+"\n") || !strings.HasSuffix(s, endMark+"\n\n## Rules\n") {
		t.Errorf("BENCHMARKS.md after run:\n%s", s)
	}
	if err := os.WriteFile(md, []byte("no markers"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(in, md); err == nil || !strings.Contains(err.Error(), "markers") {
		t.Errorf("no markers: %v", err)
	}
	if err := os.WriteFile(in, []byte("PASS\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(in, md); err == nil || !strings.Contains(err.Error(), "no benchmark lines") {
		t.Errorf("empty output: %v", err)
	}
}
