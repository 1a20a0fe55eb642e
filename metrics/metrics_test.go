package metrics_test

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/protocol"
)

func TestLineProtocol(t *testing.T) {
	at := time.Unix(1_764_244_800, 5)
	cases := []struct {
		name string
		p    metrics.Point
		want string
	}{
		{"events", metrics.Events("engine-1", metrics.EventCounts{Received: 10, Matched: 4, Dropped: 1, Fired: 5}),
			`deviceless_events,engine=engine-1 received=10i,matched=4i,dropped=1i,fired=5i 1764244800000000005`},
		{"invocation", metrics.Invocation(protocol.Result{Agent: "gh1-edge", Function: "cool-down", Rule: "hot", Status: "ok", Cold: true,
			Timings: protocol.Timings{Queue: 0.5, Start: 180, Run: 42.25, Total: 222.75}}),
			`deviceless_invocations,agent=gh1-edge,cold=true,function=cool-down,rule=hot,status=ok queue_ms=0.5,start_ms=180,run_ms=42.25,total_ms=222.75,exit_code=0i 1764244800000000005`},
		{"empty tags left out", metrics.Invocation(protocol.Result{Function: "f", Status: "expired", ExitCode: -1}),
			`deviceless_invocations,cold=false,function=f,status=expired queue_ms=0,start_ms=0,run_ms=0,total_ms=0,exit_code=-1i 1764244800000000005`},
		{"actuation", metrics.Actuation("gh1-edge", protocol.Actuation{Line: "fan", Value: 1, For: protocol.Duration(1500 * time.Microsecond)}),
			`deviceless_actuations,agent=gh1-edge,line=fan value=1i,for_ms=1.5 1764244800000000005`},
		{"agent", metrics.Agent("gh1-edge", metrics.AgentStats{CPU: 3.25, RSS: 1 << 20, Running: 1, Queue: 0}),
			`deviceless_agent,agent=gh1-edge cpu=3.25,rss=1048576i,running=1i,queue=0i 1764244800000000005`},
		{"escaping", metrics.Point{Measurement: "m x,y", Tags: []metrics.Tag{{"k=1", "a b,c=d"}, {"nl", "x\ny"}},
			Fields: []metrics.Field{metrics.String("s", `say "hi" \o/`), metrics.Bool("ok", true), metrics.Float("nan", math.NaN())}, Time: at},
			`m\ x\,y,k\=1=a\ b\,c\=d,nl=x\ y s="say \"hi\" \\o/",ok=true 1764244800000000005`},
		{"no storable field", metrics.Point{Measurement: "m", Fields: []metrics.Field{metrics.Float("inf", math.Inf(1))}, Time: at}, ``},
		{"no measurement", metrics.Point{Fields: []metrics.Field{metrics.Int("x", 1)}, Time: at}, ``},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.p.Time.IsZero() {
				c.p.Time = at
			}
			if got := c.p.LineProtocol(); got != c.want {
				t.Errorf("\ngot  %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	var cfg metrics.Config
	src := "url: http://127.0.0.1:8086\ntoken: \"\"\norg: \"\"\nbucket: deviceless\nbatch_size: 500\nflush_interval: 2s\nbuffer_limit: 10000\n"
	if err := yaml.UnmarshalWithOptions([]byte(src), &cfg, yaml.Strict()); err != nil {
		t.Fatal(err)
	}
	if cfg.BatchSize != 500 || cfg.FlushInterval != 2*time.Second || cfg.BufferLimit != 10000 || cfg.Bucket != "deviceless" {
		t.Fatalf("decoded %+v", cfg)
	}
	if _, err := metrics.New(cfg, nil); err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalWithOptions([]byte("url: http://x\nbuket: y\n"), &cfg, yaml.Strict()); err == nil {
		t.Error("unknown key accepted by strict decoding")
	}

	bad := []struct {
		cfg  metrics.Config
		want string
	}{
		{metrics.Config{Bucket: "b"}, "url is required"},
		{metrics.Config{URL: "127.0.0.1:8086", Bucket: "b"}, "url: parse"},
		{metrics.Config{URL: "ftp://h", Bucket: "b"}, "scheme must be http or https"},
		{metrics.Config{URL: "http://", Bucket: "b"}, "no host"},
		{metrics.Config{URL: "http://h"}, "bucket is required"},
		{metrics.Config{URL: "http://h", Bucket: "b", BatchSize: -1}, "batch_size -1"},
		{metrics.Config{URL: "http://h", Bucket: "b", BatchSize: 100, BufferLimit: 10}, "buffer_limit 10: must be at least batch_size 100"},
		{metrics.Config{URL: "http://h", Bucket: "b", FlushInterval: time.Microsecond}, "flush_interval 1µs"},
		{metrics.Config{URL: "http://h", Bucket: "b", Timeout: -time.Second}, "timeout -1s"},
		{metrics.Config{URL: "http://h", Bucket: "b", RetryInterval: time.Minute}, "max_retry_interval 30s is below retry_interval 1m0s"},
	}
	for _, c := range bad {
		_, err := metrics.New(c.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error containing %q", c.cfg, err, c.want)
		}
	}
}

// Nop is what callers get when the influx block is absent; it must satisfy Sink.
func TestNop(t *testing.T) {
	var s metrics.Sink = metrics.Nop{}
	s.Write(metrics.Agent("a", metrics.AgentStats{}))
}

func TestPrometheusCollector(t *testing.T) {
	sink, err := metrics.New(metrics.Config{URL: "http://127.0.0.1:1", Bucket: "b", BatchSize: 2, BufferLimit: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		sink.Write(metrics.Agent("a", metrics.AgentStats{}))
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(sink)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		m := f.GetMetric()[0]
		got[f.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	want := map[string]float64{
		"deviceless_metrics_points_written_total": 0,
		"deviceless_metrics_points_dropped_total": 1,
		"deviceless_metrics_write_errors_total":   0,
		"deviceless_metrics_points_buffered":      2,
	}
	if len(got) != len(want) {
		t.Fatalf("gathered %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
}

// The example line of each measurement in docs/metrics.md is what the constructors write.
func TestDocsExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1_764_244_800, 0)
	for _, p := range []metrics.Point{
		metrics.Events("engine-1", metrics.EventCounts{Received: 15230, Matched: 1520, Dropped: 3, Fired: 1604}),
		metrics.Invocation(protocol.Result{Agent: "gh1-edge", Function: "cool-down", Rule: "hot-greenhouse", Status: "ok", Cold: true,
			Timings: protocol.Timings{Queue: 1.5, Start: 180.25, Run: 42, Total: 223.75}}),
		metrics.Actuation("gh1-edge", protocol.Actuation{Line: "fan", Value: 1, For: protocol.Duration(30 * time.Second)}),
		metrics.Agent("gh1-edge", metrics.AgentStats{CPU: 12.5, RSS: 48 << 20, Running: 2, Queue: 1}),
	} {
		p.Time = at
		line := p.LineProtocol()
		if !strings.Contains(string(doc), "\n"+line+"\n") {
			t.Errorf("docs/metrics.md lacks the example line\n%s", line)
		}
	}
}
