package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// results holds the figures of one `go tool task bench` output: for each benchmark (its
// name without the -GOMAXPROCS suffix) the values per unit, and which `go test` run (one
// per package invocation, counted by its "pkg:" header) printed it.
type results struct {
	figures map[string]map[string][]float64
	run     map[string]int
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// parse reads `go test -bench` output. Lines other than benchmark results are skipped; a
// benchmark printed more than once in one run (-count N) keeps every value, and figures
// use the median. The same benchmark in two runs is an error: its ratios would mix runs.
func parse(in io.Reader) (results, error) {
	r := results{figures: map[string]map[string][]float64{}, run: map[string]int{}}
	run := 0
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.HasPrefix(text, "pkg: ") {
			run++
			continue
		}
		fields := strings.Fields(text)
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(fields[1]); err != nil {
			continue // a benchmark's own log line, not a result
		}
		name := procSuffix.ReplaceAllString(fields[0], "")
		if prev, ok := r.run[name]; ok && prev != run {
			return results{}, fmt.Errorf("line %d: %s appears in two runs", line, name)
		}
		r.run[name] = run
		units := r.figures[name]
		if units == nil {
			units = map[string][]float64{}
			r.figures[name] = units
		}
		// After the iteration count: value unit pairs.
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return results{}, fmt.Errorf("line %d: %s: value %q: %w", line, name, fields[i], err)
			}
			units[fields[i+1]] = append(units[fields[i+1]], v)
		}
	}
	if err := sc.Err(); err != nil {
		return results{}, err
	}
	return r, nil
}

// get returns the median of a benchmark's values in unit.
func (r results) get(bench, unit string) (float64, bool) {
	vs := r.figures[bench][unit]
	if len(vs) == 0 {
		return 0, false
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}
