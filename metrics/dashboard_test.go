package metrics_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
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
	datasource        string // uid
}

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
			out = append(out, panelQuery{panel: title, ref: fmt.Sprint(q["refId"]), query: query, datasource: uid})
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
// substituted as Grafana would, against the real InfluxDB and requires values back.
func TestDashboardQueries(t *testing.T) {
	d := loadDashboard(t)
	srv := influxtest.Start(t)
	srv.CreateDatabase("deviceless")
	sink, stop := startSink(t, srv, "deviceless", nil)

	n := writeRealisticHour(sink, time.Now())
	stop()
	if st := sink.Stats(); st.Written != uint64(n) {
		t.Fatalf("wrote %d points, sink stats %+v", n, st)
	}

	checkPanels(t, srv, d, "1h", "1m")
}

// checkPanels runs every dashboard query against srv, with Grafana's macros and the
// template variables substituted as Grafana would for a view of the last `last` (e.g.
// "1h") at `interval` resolution, and requires values back.
func checkPanels(t *testing.T, srv *influxtest.Server, d dashboard.Dashboard, last, interval string) {
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
	macros := []string{"$timeFilter", "time >= now() - " + last, "$__interval", interval}
	for k, v := range vars {
		macros = append(macros, k, v)
	}
	expand := strings.NewReplacer(macros...)
	unexpanded := regexp.MustCompile(`\$\w`)

	for _, q := range queries(t, d) {
		query := expand.Replace(q.query)
		if unexpanded.MatchString(query) {
			t.Errorf("panel %q %s: unexpanded variable in %s", q.panel, q.ref, query)
			continue
		}
		res, err := srv.Exec("deviceless", query)
		if err != nil {
			t.Errorf("panel %q %s: %v", q.panel, q.ref, err)
			continue
		}
		series, values := 0, 0
		for _, r := range res {
			for _, s := range r.Series {
				series++
				for _, row := range s.Values {
					for _, v := range row[1:] {
						if v != nil && fmt.Sprint(v) != "0" {
							values++
						}
					}
				}
			}
		}
		if series == 0 || values == 0 {
			t.Errorf("panel %q %s: no data (%d series, %d values) from %s", q.panel, q.ref, series, values, query)
			continue
		}
		t.Logf("panel %q %s: %d series, %d values", q.panel, q.ref, series, values)
	}
}

// writeRealisticHour writes an hour ending at end of what two engines and three agents
// report: event counters and agent stats every 10 s, invocations of three functions with
// mixed statuses and cold/warm starts, and actuations. It returns the number of points.
func writeRealisticHour(sink metrics.Sink, end time.Time) int {
	rng := rand.New(rand.NewPCG(1, 2))
	start := end.Add(-time.Hour)
	n := 0
	write := func(p metrics.Point, at time.Time) {
		p.Time = at
		sink.Write(p)
		n++
	}
	engines := []string{"engine-a", "engine-b"}
	agents := []string{"gh1-edge", "gh2-edge", "door-edge"}
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
		}
		for i, a := range agents {
			write(metrics.Agent(a, metrics.AgentStats{
				CPU: 2 + 10*rng.Float64(), RSS: int64(30+i*5)<<20 + int64(rng.IntN(1<<20)),
				Running: rng.IntN(3), Queue: rng.IntN(2),
			}), at.Add(time.Duration(i)*time.Millisecond))
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
			write(metrics.Invocation(r), at.Add(time.Duration(100+k)*time.Millisecond))
			run := int64(math.Ceil(r.Timings.Run))
			write(metrics.Usage(metrics.UsageRecord{Function: r.Function, Version: fn, Agent: r.Agent, Rule: r.Rule,
				Caller: callers[fn], Status: r.Status, Cold: r.Cold, RunMS: run, MiBMS: 64 * run}), at.Add(time.Duration(100+k)*time.Millisecond))
		}
		if rng.IntN(3) == 0 {
			line := []string{"fan", "alarm"}[rng.IntN(2)]
			write(metrics.Actuation(agents[rng.IntN(2)], protocol.Actuation{Line: line, Value: rng.IntN(2), For: protocol.Duration(30 * time.Second)}), at.Add(200*time.Millisecond))
		}
	}
	return n
}
