// Command benchreport turns the output of `go tool task bench` into the "Latest run"
// section of BENCHMARKS.md, so that the headline figures always come from one run: a
// table of figures, each with its target and PASS or FAIL (rows and targets: table.go).
//
//	go run ./scripts/benchreport -in .state/bench.out -md BENCHMARKS.md
//
// It exits non-zero, after writing the table, when a figure the table names is missing
// from the run (a benchmark renamed or not run) or a ratio would mix two runs; a missed
// target is reported as FAIL in the table, not as an error.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

const (
	startMark = "<!-- latest-run:start -->"
	endMark   = "<!-- latest-run:end -->"
)

func main() {
	in := flag.String("in", ".state/bench.out", "output of the benchmarks")
	md := flag.String("md", "BENCHMARKS.md", "file whose latest-run section is replaced")
	flag.Parse()
	if err := run(*in, *md); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

// run writes the table of the benchmark output in into md's latest-run section. The
// table is dated by in's modification time: when the run ended, not when it was reported.
func run(in, md string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	r, err := parse(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	if len(r.figures) == 0 {
		return fmt.Errorf("no benchmark lines in %s", in)
	}
	doc, err := os.ReadFile(md)
	if err != nil {
		return err
	}
	table, problems := render(r, rows, st.ModTime())
	s, err := replaceSection(string(doc), table)
	if err != nil {
		return fmt.Errorf("%s: %w", md, err)
	}
	if err := os.WriteFile(md, []byte(s), 0o644); err != nil {
		return err
	}
	fmt.Print(table)
	return errors.Join(problems...)
}

// replaceSection puts table between the latest-run markers of doc.
func replaceSection(doc, table string) (string, error) {
	i, j := strings.Index(doc, startMark), strings.Index(doc, endMark)
	if i < 0 || j < i {
		return "", fmt.Errorf("lacks the %s / %s markers", startMark, endMark)
	}
	return doc[:i+len(startMark)] + "\n" + table + doc[j:], nil
}
