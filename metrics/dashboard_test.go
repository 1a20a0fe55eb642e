package metrics_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/metrics/influxtest"
	"github.com/deviceless/deviceless/protocol"
)

const (
	dashboardFile  = "../examples/monitoring/grafana/dashboards/deviceless.json"
	datasourceFile = "../examples/monitoring/grafana/provisioning/datasources/influxdb.yaml"
)

// buildErr turns the SDK's result into nil on success: its functions return a cog.BuildErrors
// (a non-nil error interface) that is empty when nothing is wrong.
func buildErr(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}

// loadDashboard parses and validates the dashboard strictly, with the options and field
// config of its panel types checked too.
//
// The SDK's PanelOrRowPanel.UnmarshalJSONStrict (v0.0.22) returns early on the empty,
// non-nil cog.BuildErrors of a valid panel and so leaves every panel out of the dashboard
// (and out of Validate): the panels are parsed and validated one by one here.
func loadDashboard(t *testing.T) dashboard.Dashboard {
	t.Helper()
	rt := cog.NewRuntime()
	rt.RegisterPanelcfgVariant(timeseries.VariantConfig())
	rt.RegisterPanelcfgVariant(stat.VariantConfig())
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard.Dashboard
	if err := buildErr(d.UnmarshalJSONStrict(raw)); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var top struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	d.Panels = nil
	for i, rp := range top.Panels {
		var kind struct{ Type string }
		if err := json.Unmarshal(rp, &kind); err != nil {
			t.Fatal(err)
		}
		if kind.Type == "row" {
			var row dashboard.RowPanel
			if err := buildErr(row.UnmarshalJSONStrict(rp)); err != nil {
				t.Fatalf("%s: panels[%d]: %v", dashboardFile, i, err)
			}
			d.Panels = append(d.Panels, dashboard.PanelOrRowPanel{RowPanel: &row})
			continue
		}
		var p dashboard.Panel
		if err := buildErr(p.UnmarshalJSONStrict(rp)); err != nil {
			t.Fatalf("%s: panels[%d]: %v", dashboardFile, i, err)
		}
		d.Panels = append(d.Panels, dashboard.PanelOrRowPanel{Panel: &p})
	}
	if len(d.Panels) != len(top.Panels) {
		t.Fatalf("%s: %d of %d panels parsed", dashboardFile, len(d.Panels), len(top.Panels))
	}
	if err := buildErr(d.Validate()); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// panelQuery is one query of a panel.
type panelQuery struct {
	panel, ref, query string
	kind              string // panel type: stat, timeseries
	datasource        string // uid
}

// name is how checks refer to the panel: its type and title ("stat Events/s"), as two
// panels of different types share a title.
func (q panelQuery) name() string { return q.kind + " " + q.panel }

// queries returns every panel's queries (rows included), failing on a target that is not
// a raw InfluxQL query of the expected datasource type.
func queries(t *testing.T, d dashboard.Dashboard) []panelQuery {
	t.Helper()
	var panels []dashboard.Panel
	for _, p := range d.Panels {
		switch {
		case p.Panel != nil:
			panels = append(panels, *p.Panel)
		case p.RowPanel != nil:
			panels = append(panels, p.RowPanel.Panels...)
		}
	}
	var out []panelQuery
	if len(panels) == 0 {
		t.Fatal("dashboard has no panels")
	}
	for _, p := range panels {
		title := ""
		if p.Title != nil {
			title = *p.Title
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", title)
		}
		for _, target := range p.Targets {
			q, ok := target.(variants.UnknownDataquery)
			if !ok {
				t.Fatalf("panel %q: target of type %T", title, target)
			}
			ds, _ := q["datasource"].(map[string]any)
			if ds["type"] != "influxdb" || q["rawQuery"] != true {
				t.Errorf("panel %q target %v: want a raw InfluxQL query on an influxdb datasource", title, q["refId"])
			}
			query, _ := q["query"].(string)
			uid, _ := ds["uid"].(string)
			out = append(out, panelQuery{panel: title, ref: fmt.Sprint(q["refId"]), query: query, kind: p.Type, datasource: uid})
		}
	}
	return out
}

func TestDashboardValid(t *testing.T) {
	d := loadDashboard(t)
	qs := queries(t, d)
	if len(qs) < 15 {
		t.Fatalf("only %d panel queries", len(qs))
	}
	// Panels and the provisioned datasource agree on its uid.
	raw, err := os.ReadFile(datasourceFile)
	if err != nil {
		t.Fatal(err)
	}
	var prov struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, UID, Type, Access, URL string
			IsDefault                    bool `yaml:"isDefault"`
			Editable                     bool
			JSONData                     map[string]any `yaml:"jsonData"`
		}
	}
	if err := yaml.UnmarshalWithOptions(raw, &prov, yaml.Strict()); err != nil {
		t.Fatalf("%s: %v", datasourceFile, err)
	}
	if len(prov.Datasources) != 1 || prov.Datasources[0].Type != "influxdb" || prov.Datasources[0].JSONData["dbName"] != "deviceless" {
		t.Fatalf("%s: want one influxdb datasource on database deviceless, got %+v", datasourceFile, prov.Datasources)
	}
	for _, q := range qs {
		if q.datasource != prov.Datasources[0].UID {
			t.Errorf("panel %q uses datasource %q, provisioned is %q", q.panel, q.datasource, prov.Datasources[0].UID)
		}
	}
	for _, v := range d.Templating.List {
		if v.Datasource == nil || v.Datasource.Uid == nil || *v.Datasource.Uid != prov.Datasources[0].UID {
			t.Errorf("variable %s does not use the provisioned datasource", v.Name)
		}
	}
}

// TestDashboardQueries writes a realistic hour of every measurement through the sink,
// then runs every dashboard query, with Grafana's macros and the template variables
// substituted as Grafana would, against the real InfluxDB and compares each panel with
// what was written (checkPanels).
func TestDashboardQueries(t *testing.T) {
	d := loadDashboard(t)
	srv := influxtest.Start(t)
	srv.CreateDatabase("deviceless")
	sink, stop := startSink(t, srv, "deviceless", nil)

	facts := writeRealisticHour(sink, time.Now())
	stop()
	if st := sink.Stats(); st.Written != uint64(facts.points) {
		t.Fatalf("wrote %d points, sink stats %+v", facts.points, st)
	}

	checkPanels(t, srv, d, "1h", time.Minute, facts)
}

// runFacts is what a run is known to have written. checkPanels derives every panel's
// expected result from it, without asking InfluxDB, and compares.
type runFacts struct {
	points int // points written

	// events: per engine, its counts at the end of the first interval of the view that
	// holds its samples (the baseline a derivative starts from) and its last counts. The
	// rate panels show the increase between the two.
	events map[string][2]metrics.EventCounts

	invocations []invocationFact
	actuations  []actuationFact // in the order they were written
	agents      []string        // agents that reported stats, all within the last minute

	// Sound bounds for the panels whose values are not counts: every stage of every
	// invocation took at most latencyMs; an agent's cpu, rss, running and queue lay in
	// these spans. A span marked reached must have its hi value in the panel (a max()
	// panel shows the largest sample exactly).
	latencyMs              float64
	cpu, rss, running, que span
}

type invocationFact struct {
	function, rule, status string
	cold                   bool
}

type actuationFact struct {
	agent, line string
	value       int
}

type span struct {
	lo, hi  float64
	reached bool
}

func (s *span) add(v float64) {
	if !s.reached {
		s.lo, s.hi, s.reached = v, v, true
		return
	}
	s.lo, s.hi = min(s.lo, v), max(s.hi, v)
}

// panelSeries is one series of a panel's result: its tags as a key ("k=v,k=v" sorted;
// "" without tags), value columns, and rows (NaN for null) at times (ns).
type panelSeries struct {
	key   string
	cols  []string
	times []int64
	rows  [][]float64
}

func (s panelSeries) col(name string) int {
	for i, c := range s.cols {
		if c == name {
			return i
		}
	}
	return -1
}

func seriesOf(t *testing.T, res []influxtest.Result) []panelSeries {
	t.Helper()
	var out []panelSeries
	for _, r := range res {
		for _, s := range r.Series {
			var kv []string
			for k, v := range s.Tags {
				kv = append(kv, k+"="+v)
			}
			sort.Strings(kv)
			ps := panelSeries{key: strings.Join(kv, ","), cols: s.Columns[1:]}
			for _, row := range s.Values {
				ts, err := row[0].(json.Number).Int64()
				if err != nil {
					t.Fatalf("series %s: time %v", ps.key, row[0])
				}
				vals := make([]float64, len(row)-1)
				for i, v := range row[1:] {
					vals[i] = math.NaN()
					if n, ok := v.(json.Number); ok {
						if f, err := n.Float64(); err == nil {
							vals[i] = f
						}
					}
				}
				ps.times = append(ps.times, ts)
				ps.rows = append(ps.rows, vals)
			}
			out = append(out, ps)
		}
	}
	return out
}

// sums adds up column col of each series: the total a count panel shows over the view.
func sums(series []panelSeries, col string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range series {
		c := s.col(col)
		for _, r := range s.rows {
			if c >= 0 && !math.IsNaN(r[c]) {
				out[s.key] += r[c]
			}
		}
	}
	return out
}

// increases integrates column col (a per-second rate) of each series over the view: the
// increase of the counter the rate was derived from. InfluxDB's derivative divides by the
// time since the previous non-null interval; the first row follows the view's first
// interval with data.
func increases(series []panelSeries, col string, interval time.Duration) map[string]float64 {
	out := map[string]float64{}
	for _, s := range series {
		c := s.col(col)
		for i, r := range s.rows {
			if c < 0 || math.IsNaN(r[c]) {
				continue
			}
			dt := interval
			if i > 0 {
				dt = time.Duration(s.times[i] - s.times[i-1])
			}
			out[s.key] += r[c] * dt.Seconds()
		}
	}
	return out
}

// sameCounts compares per-series totals; series whose total is 0 on either side are left
// out (InfluxDB returns no series for a count with nothing to count).
func sameCounts(got, want map[string]float64) error {
	for _, m := range []map[string]float64{got, want} {
		for k, v := range m {
			if math.Abs(v) < 1e-9 {
				delete(m, k)
			}
		}
	}
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	var diff []string
	for k := range keys {
		if g, w := got[k], want[k]; math.Abs(g-w) > 1e-6*max(1, math.Abs(w)) {
			diff = append(diff, fmt.Sprintf("series %q: %g, want %g", k, g, w))
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		return errors.New(strings.Join(diff, "; "))
	}
	return nil
}

func countBy[T any](items []T, key func(T) (string, bool)) map[string]float64 {
	out := map[string]float64{}
	for _, it := range items {
		if k, ok := key(it); ok {
			out[k]++
		}
	}
	return out
}

func keysOf(m map[string]float64) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}

func seriesKeys(series []panelSeries) string {
	var ks []string
	for _, s := range series {
		ks = append(ks, s.key)
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}

// within checks that every non-null value of the columns lies in [lo, hi].
func within(series []panelSeries, lo, hi float64, cols ...string) error {
	for _, s := range series {
		for _, col := range cols {
			c := s.col(col)
			if c < 0 {
				return fmt.Errorf("series %q has no column %q (%v)", s.key, col, s.cols)
			}
			for i, r := range s.rows {
				if v := r[c]; !math.IsNaN(v) && (v < lo || v > hi) {
					return fmt.Errorf("series %q %s at %s: %g outside [%g, %g]", s.key, col, time.Unix(0, s.times[i]).UTC().Format(time.TimeOnly), v, lo, hi)
				}
			}
		}
	}
	return nil
}

// ordered checks that in every row column a <= column b (both non-null).
func ordered(series []panelSeries, a, b string) error {
	for _, s := range series {
		ca, cb := s.col(a), s.col(b)
		if ca < 0 || cb < 0 {
			return fmt.Errorf("series %q lacks %q or %q (%v)", s.key, a, b, s.cols)
		}
		for i, r := range s.rows {
			if !math.IsNaN(r[ca]) && !math.IsNaN(r[cb]) && r[ca] > r[cb]+1e-9 {
				return fmt.Errorf("series %q at %s: %s %g > %s %g", s.key, time.Unix(0, s.times[i]).UTC().Format(time.TimeOnly), a, r[ca], b, r[cb])
			}
		}
	}
	return nil
}

// maxOf returns the largest non-null value of col over every series.
func maxOf(series []panelSeries, col string) float64 {
	m := math.Inf(-1)
	for _, s := range series {
		if c := s.col(col); c >= 0 {
			for _, r := range s.rows {
				if !math.IsNaN(r[c]) {
					m = max(m, r[c])
				}
			}
		}
	}
	return m
}

// expectPanel compares one panel's result with what the facts say it must show. Counts
// are compared exactly (the sum of each series over the view); values that are not
// counts get sound bounds. A panel the function does not know fails: every panel says
// what it must show.
func expectPanel(name string, series []panelSeries, f *runFacts, interval time.Duration) error {
	var errs []error
	check := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	keys := func(want string) {
		if got := seriesKeys(series); got != want {
			errs = append(errs, fmt.Errorf("series [%s], want [%s]", got, want))
		}
	}
	increase := func(field func(metrics.EventCounts) int64, perEngine bool) map[string]float64 {
		out := map[string]float64{}
		for e, c := range f.events {
			k := ""
			if perEngine {
				k = "engine=" + e
			}
			out[k] += float64(field(c[1]) - field(c[0]))
		}
		return out
	}
	all := func(inv invocationFact) (string, bool) { return "", true }
	measured := func(inv invocationFact) bool {
		return inv.status != protocol.StatusRejected && inv.status != protocol.StatusExpired
	}
	agents := map[string]float64{}
	for _, a := range f.agents {
		agents["agent="+a] = 1
	}
	lines := countBy(f.actuations, func(a actuationFact) (string, bool) { return "agent=" + a.agent + ",line=" + a.line, true })

	switch name {
	case "stat Events/s":
		// Received events over the view, summed over engines: the rate integrated.
		check("received", sameCounts(increases(series, "sum", interval), increase(func(c metrics.EventCounts) int64 { return c.Received }, false)))
	case "stat Agents online":
		check("agents", sameCounts(sums(series, "count"), map[string]float64{"": float64(len(f.agents))}))
	case "stat Invocations":
		check("invocations", sameCounts(sums(series, "count"), countBy(f.invocations, all)))
	case "stat Failed invocations":
		check("failed invocations", sameCounts(sums(series, "count"), countBy(f.invocations, func(inv invocationFact) (string, bool) {
			return "", inv.status != protocol.StatusOK
		})))
	case "timeseries Events/s":
		check("received", sameCounts(increases(series, "received", interval), increase(func(c metrics.EventCounts) int64 { return c.Received }, true)))
		check("matched", sameCounts(increases(series, "matched", interval), increase(func(c metrics.EventCounts) int64 { return c.Matched }, true)))
		check("dropped", sameCounts(increases(series, "dropped", interval), increase(func(c metrics.EventCounts) int64 { return c.Dropped }, true)))
	case "timeseries Rule firings/s":
		check("fired", sameCounts(increases(series, "fired", interval), increase(func(c metrics.EventCounts) int64 { return c.Fired }, true)))
	case "timeseries Invocations by status":
		check("by status", sameCounts(sums(series, "count"), countBy(f.invocations, func(inv invocationFact) (string, bool) { return "status=" + inv.status, true })))
	case "timeseries Invocations by rule":
		check("by rule", sameCounts(sums(series, "count"), countBy(f.invocations, func(inv invocationFact) (string, bool) { return "rule=" + inv.rule, true })))
	case "timeseries Cold vs warm invocations":
		check("cold/warm", sameCounts(sums(series, "count"), countBy(f.invocations, func(inv invocationFact) (string, bool) { return fmt.Sprintf("cold=%t", inv.cold), true })))
	case "timeseries Latency per stage (p50, p95)":
		// Percentiles of durations lie within the durations; p50 <= p95; and since every
		// invocation's total is at least each of its stages, so is each percentile of it.
		var cols []string
		for _, stage := range []string{"queue", "start", "run", "total"} {
			cols = append(cols, stage+" p50", stage+" p95")
			check(stage, ordered(series, stage+" p50", stage+" p95"))
		}
		check("bounds", within(series, 0, f.latencyMs, cols...))
		for _, stage := range []string{"queue", "start", "run"} {
			for _, p := range []string{" p50", " p95"} {
				check(stage+p+" <= total"+p, ordered(series, stage+p, "total"+p))
			}
		}
		if n := countBy(f.invocations, func(inv invocationFact) (string, bool) { return "", measured(inv) }); n[""] > 0 {
			keys("")
		}
	case "timeseries Start latency, cold vs warm (p50, p95)":
		keys(keysOf(countBy(f.invocations, func(inv invocationFact) (string, bool) { return fmt.Sprintf("cold=%t", inv.cold), measured(inv) })))
		check("p50 <= p95", ordered(series, "p50", "p95"))
		check("bounds", within(series, 0, f.latencyMs, "p50", "p95"))
	case "timeseries Agents online":
		// Each interval counts the agents that reported in it: all of them from the first
		// report to the last (they report several times per interval), none outside.
		n := float64(len(f.agents))
		check("bounds", within(series, 0, n, "count"))
		if len(series) != 1 {
			keys("")
			break
		}
		first, last, full := -1, -1, 0
		for i, r := range series[0].rows {
			switch v := r[0]; {
			case v == n:
				if first < 0 {
					first = i
				}
				last = i
				full++
			case v != 0:
				check("count", fmt.Errorf("%g agents online at %s, want 0 or %g", v, time.Unix(0, series[0].times[i]).UTC().Format(time.TimeOnly), n))
			}
		}
		if full == 0 || last-first+1 != full {
			check("count", fmt.Errorf("%d intervals with all %g agents online, from row %d to %d: want one unbroken run", full, n, first, last))
		}
	case "timeseries GB-s by function", "timeseries Run time by caller":
		// Usage is metered per invocation: run ms (a stage of the total) times the memory
		// limit for GB-s. Sound bounds: every series sums to at most what all invocations
		// could use (each at most latencyMs, at most 4 GiB for GB-s), and some run time was
		// metered; for GB-s by function, only the functions invoked appear.
		n := float64(len(f.invocations))
		limit := n * f.latencyMs / 1000
		if name == "timeseries GB-s by function" {
			limit *= 4
			fns := countBy(f.invocations, func(inv invocationFact) (string, bool) { return "function=" + inv.function, true })
			for k := range sums(series, "sum") {
				if _, ok := fns[k]; !ok {
					check("functions", fmt.Errorf("series %s: no such function was invoked", k))
				}
			}
		}
		total := 0.0
		for k, v := range sums(series, "sum") {
			if v < 0 || v > limit {
				check("bounds", fmt.Errorf("%s: %g, want 0 to %g", k, v, limit))
			}
			total += v
		}
		if n > 0 && total <= 0 {
			check("metered", fmt.Errorf("no usage metered for %g invocations", n))
		}
	case "timeseries Actuations":
		check("by agent and line", sameCounts(sums(series, "count"), lines))
	case "timeseries Output line values":
		// The last value of each line, carried forward: only values written to the line,
		// and the newest one at the end of the view.
		keys(keysOf(lines))
		written, lastValue := map[string]map[float64]bool{}, map[string]float64{}
		for _, a := range f.actuations {
			k := "agent=" + a.agent + ",line=" + a.line
			if written[k] == nil {
				written[k] = map[float64]bool{}
			}
			written[k][float64(a.value)] = true
			lastValue[k] = float64(a.value)
		}
		for _, s := range series {
			for i, r := range s.rows {
				if !math.IsNaN(r[0]) && !written[s.key][r[0]] {
					check("values", fmt.Errorf("series %q at %s: %g was never written", s.key, time.Unix(0, s.times[i]).UTC().Format(time.TimeOnly), r[0]))
				}
			}
			if n := len(s.rows); n == 0 || s.rows[n-1][0] != lastValue[s.key] {
				check("last value", fmt.Errorf("series %q ends with %v, want %g", s.key, s.rows[max(0, n-1):], lastValue[s.key]))
			}
		}
	case "timeseries Agent CPU":
		keys(keysOf(agents))
		check("cpu", within(series, f.cpu.lo, f.cpu.hi, "mean"))
	case "timeseries Agent RSS":
		keys(keysOf(agents))
		check("rss", within(series, f.rss.lo, f.rss.hi, "mean"))
	case "timeseries Agent invocations running and queued":
		keys(keysOf(agents))
		check("running", within(series, f.running.lo, f.running.hi, "running"))
		check("queued", within(series, f.que.lo, f.que.hi, "queued"))
		for col, s := range map[string]span{"running": f.running, "queued": f.que} {
			if m := maxOf(series, col); s.reached && m != s.hi {
				check(col, fmt.Errorf("largest %g, want %g", m, s.hi))
			}
		}
	default:
		return errors.New("no expectation for this panel: add one to expectPanel")
	}
	return errors.Join(errs...)
}

// checkPanels runs every dashboard query against srv, with Grafana's macros and the
// template variables substituted as Grafana would for a view of the last `last` (e.g.
// "1h") at `interval` resolution, and compares each panel's result with what the facts
// say it must show (expectPanel).
func checkPanels(t *testing.T, srv *influxtest.Server, d dashboard.Dashboard, last string, interval time.Duration, f runFacts) {
	t.Helper()
	// Template variables: run their queries; "All" becomes the regex of every value.
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		if v.Query == nil || v.Query.String == nil {
			t.Fatalf("variable %s has no query", v.Name)
		}
		res := srv.Query("deviceless", *v.Query.String)
		var values []string
		for _, s := range res[0].Series {
			for _, r := range s.Rows() {
				values = append(values, regexp.QuoteMeta(fmt.Sprint(r["value"])))
			}
		}
		if len(values) == 0 {
			t.Fatalf("variable %s: query %q returned no values", v.Name, *v.Query.String)
		}
		vars["$"+v.Name] = "(" + strings.Join(values, "|") + ")"
	}
	macros := []string{"$timeFilter", "time >= now() - " + last, "$__interval", fmt.Sprintf("%ds", int(interval.Seconds()))}
	for k, v := range vars {
		macros = append(macros, k, v)
	}
	expand := strings.NewReplacer(macros...)
	unexpanded := regexp.MustCompile(`\$\w`)

	seen := map[string]bool{}
	for _, q := range queries(t, d) {
		if seen[q.name()] {
			t.Errorf("two panels named %q: checks could not tell them apart", q.name())
		}
		seen[q.name()] = true
		query := expand.Replace(q.query)
		if unexpanded.MatchString(query) {
			t.Errorf("panel %q %s: unexpanded variable in %s", q.name(), q.ref, query)
			continue
		}
		res, err := srv.Exec("deviceless", query)
		if err != nil {
			t.Errorf("panel %q %s: %v", q.name(), q.ref, err)
			continue
		}
		series := seriesOf(t, res)
		if len(series) == 0 {
			t.Errorf("panel %q %s: no data from %s", q.name(), q.ref, query)
			continue
		}
		if err := expectPanel(q.name(), series, &f, interval); err != nil {
			t.Errorf("panel %q %s: %v\nquery: %s", q.name(), q.ref, err, query)
			continue
		}
		rows := 0
		for _, s := range series {
			rows += len(s.rows)
		}
		t.Logf("panel %q %s: as expected (%d series, %d rows)", q.name(), q.ref, len(series), rows)
	}
}

// writeRealisticHour writes about an hour ending at end of what two engines and three
// agents report: event counters and agent stats every 10 s, invocations of three
// functions with mixed statuses and cold/warm starts, and actuations. It returns what it
// wrote. The first sample is the last of its minute and the hour starts a minute inside
// the view of the last hour, so a view at 1m resolution holds every point and the rate
// panels start from the first sample.
func writeRealisticHour(sink metrics.Sink, end time.Time) runFacts {
	rng := rand.New(rand.NewPCG(1, 2))
	start := end.Truncate(time.Minute).Add(-59*time.Minute + 50*time.Second)
	f := runFacts{events: map[string][2]metrics.EventCounts{}}
	write := func(p metrics.Point, at time.Time) {
		p.Time = at
		sink.Write(p)
		f.points++
	}
	engines := []string{"engine-a", "engine-b"}
	agents := []string{"gh1-edge", "gh2-edge", "door-edge"}
	f.agents = agents
	functions := []string{"cool-down", "classify", "notify"}
	rules := []string{"hot-greenhouse", "door-open", ""}
	callers := []string{"rule:hot-greenhouse", "rule:door-open", "user:alice"}
	statuses := []string{protocol.StatusOK, protocol.StatusOK, protocol.StatusOK, protocol.StatusOK, protocol.StatusError, protocol.StatusTimeout, protocol.StatusRejected}
	counts := make([]metrics.EventCounts, len(engines))
	for at := start; !at.After(end); at = at.Add(10 * time.Second) {
		for i, e := range engines {
			c := &counts[i]
			recv := int64(200 + rng.IntN(100))
			c.Received += recv
			c.Matched += recv / 10
			c.Fired += recv/10 + int64(rng.IntN(3))
			c.Dropped += int64(rng.IntN(2))
			write(metrics.Events(e, *c), at)
			ec := f.events[e]
			if at.Equal(start) {
				ec[0] = *c
			}
			ec[1] = *c
			f.events[e] = ec
		}
		for i, a := range agents {
			s := metrics.AgentStats{
				CPU: 2 + 10*rng.Float64(), RSS: int64(30+i*5)<<20 + int64(rng.IntN(1<<20)),
				Running: rng.IntN(3), Queue: rng.IntN(2),
			}
			f.cpu.add(s.CPU)
			f.rss.add(float64(s.RSS))
			f.running.add(float64(s.Running))
			f.que.add(float64(s.Queue))
			write(metrics.Agent(a, s), at.Add(time.Duration(i)*time.Millisecond))
		}
		for k := range 3 {
			fn := rng.IntN(len(functions))
			status := statuses[rng.IntN(len(statuses))]
			cold := rng.IntN(4) == 0
			r := protocol.Result{
				Agent: agents[rng.IntN(len(agents))], Function: functions[fn], Rule: rules[fn],
				Status: status, Cold: cold,
				Timings: protocol.Timings{Queue: rng.Float64() * 5, Start: 5 + rng.Float64()*20, Run: 10 + rng.Float64()*100},
			}
			if cold {
				r.Timings.Start += 250
			}
			switch status {
			case protocol.StatusError:
				r.ExitCode = 1
			case protocol.StatusTimeout:
				r.ExitCode, r.Timings.Run = -1, 5000
			case protocol.StatusRejected:
				r.Agent, r.Timings = "", protocol.Timings{}
			}
			r.Timings.Total = r.Timings.Queue + r.Timings.Start + r.Timings.Run
			f.latencyMs = max(f.latencyMs, r.Timings.Total)
			f.invocations = append(f.invocations, invocationFact{function: r.Function, rule: r.Rule, status: r.Status, cold: r.Cold})
			write(metrics.Invocation(r), at.Add(time.Duration(100+k)*time.Millisecond))
			run := int64(math.Ceil(r.Timings.Run))
			write(metrics.Usage(metrics.UsageRecord{Function: r.Function, Version: fn, Agent: r.Agent, Rule: r.Rule,
				Caller: callers[fn], Status: r.Status, Cold: r.Cold, RunMS: run, MiBMS: 64 * run}), at.Add(time.Duration(100+k)*time.Millisecond))
		}
		if rng.IntN(3) == 0 {
			a := actuationFact{agent: agents[rng.IntN(2)], line: []string{"fan", "alarm"}[rng.IntN(2)], value: rng.IntN(2)}
			f.actuations = append(f.actuations, a)
			write(metrics.Actuation(a.agent, protocol.Actuation{Line: a.line, Value: a.value, For: protocol.Duration(30 * time.Second)}), at.Add(200*time.Millisecond))
		}
	}
	return f
}
