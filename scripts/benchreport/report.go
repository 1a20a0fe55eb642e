package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// row is one line of the table (see table.go).
type row struct {
	what   string
	figure []any // string, fig or ratio
	target string
	checks []check
}

// measure is a number taken from the run.
type measure interface {
	value(results) (float64, error)
	format(float64) string
}

// fig is one figure of the run: a benchmark (without its -N suffix) and a unit.
type fig struct{ bench, unit string }

// errMissing marks a figure the run does not have: a benchmark renamed or not run.
var errMissing = errors.New("missing")

func (f fig) value(r results) (float64, error) {
	v, ok := r.get(f.bench, f.unit)
	if !ok {
		return 0, fmt.Errorf("%w: %s %s", errMissing, f.bench, f.unit)
	}
	return v, nil
}

func (f fig) format(v float64) string { return number(v) }

// ratio is num/den, two figures of the same `go test` run.
type ratio struct{ num, den fig }

func (q ratio) value(r results) (float64, error) {
	a, err := q.num.value(r)
	if err != nil {
		return 0, err
	}
	b, err := q.den.value(r)
	if err != nil {
		return 0, err
	}
	if r.run[q.num.bench] != r.run[q.den.bench] {
		return 0, fmt.Errorf("ratio of %s and %s: not from the same run", q.num.bench, q.den.bench)
	}
	if b == 0 {
		return 0, fmt.Errorf("ratio of %s and %s: %s is 0", q.num.bench, q.den.bench, q.den.unit)
	}
	return a / b, nil
}

func (q ratio) format(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) + "×" }

// check is one number a target asks for.
type check struct {
	m     measure
	most  bool // limit is a maximum, else a minimum
	limit float64
}

func atLeast(m measure, limit float64) check { return check{m: m, limit: limit} }
func atMost(m measure, limit float64) check  { return check{m: m, most: true, limit: limit} }

// verdict evaluates c: "" when met, else why not, e.g. "0.75× < 2.00×".
func (c check) verdict(r results) (string, error) {
	v, err := c.m.value(r)
	if err != nil {
		return "", err
	}
	switch {
	case c.most && v > c.limit:
		return c.m.format(v) + " > " + c.m.format(c.limit), nil
	case !c.most && v < c.limit:
		return c.m.format(v) + " < " + c.m.format(c.limit), nil
	}
	return "", nil
}

// number prints a figure with as many digits as it is worth: thousands separated from
// 1,000 on, one decimal from 10, two below.
func number(v float64) string {
	// Each case looks at the value as the next one would print it, so 99.96 prints "100".
	switch a := math.Abs(v); {
	case math.Round(a) >= 1000:
		s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		if neg {
			return "-" + b.String()
		}
		return b.String()
	case math.Round(a) >= 100 || v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Round(a*10) >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}

// render returns the table for r and the problems found: figures the run lacks and
// ratios across runs. A missed target is not a problem of the report: it says FAIL.
func render(r results, rows []row, now time.Time) (string, []error) {
	var b strings.Builder
	var problems []error
	cell := func(parts []any) string {
		var s strings.Builder
		for _, p := range parts {
			var m measure
			switch p := p.(type) {
			case string:
				s.WriteString(p)
				continue
			case fig:
				m = p
			case ratio:
				m = p
			default:
				panic(fmt.Sprintf("benchreport: figure part %T", p))
			}
			v, err := m.value(r)
			if err != nil {
				problems = append(problems, err)
				s.WriteString("n/a")
				continue
			}
			s.WriteString(m.format(v))
		}
		return s.String()
	}
	passed, failed := 0, 0
	lines := make([]string, 0, len(rows))
	for _, w := range rows {
		result := ""
		if len(w.checks) > 0 {
			var why []string
			incomplete := false
			for _, c := range w.checks {
				v, err := c.verdict(r)
				if err != nil {
					problems = append(problems, err)
					incomplete = true
				} else if v != "" {
					why = append(why, v)
				}
			}
			switch {
			case len(why) > 0:
				result = "**FAIL** (" + strings.Join(why, "; ") + ")"
				failed++
			case incomplete:
				result = "n/a"
				failed++
			default:
				result = "PASS"
				passed++
			}
		}
		lines = append(lines, "| "+strings.Join([]string{w.what, cell(w.figure), w.target, result}, " | ")+" |\n")
	}
	fmt.Fprintf(&b, "Written by `go tool task bench` from one run that ended %s; every ratio divides two figures of the same `go test` run. %d of %d targets met.\n\n",
		now.UTC().Format("2006-01-02 15:04 MST"), passed, passed+failed)
	b.WriteString("| what | figure | target | result |\n| --- | --- | --- | --- |\n")
	for _, l := range lines {
		b.WriteString(l)
	}
	return b.String(), dedupe(problems)
}

// dedupe drops repeated problems: a figure shown and checked is missing once.
func dedupe(errs []error) []error {
	seen := map[string]bool{}
	var out []error
	for _, e := range errs {
		if !seen[e.Error()] {
			seen[e.Error()] = true
			out = append(out, e)
		}
	}
	return out
}
