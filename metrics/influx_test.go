package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/metrics/influxtest"
	"github.com/deviceless/deviceless/protocol"
)

// startSink starts an Influx sink writing to db on srv; it is stopped (and flushed) when
// the test ends, or earlier with the returned stop function.
func startSink(t *testing.T, srv *influxtest.Server, db string, tune func(*metrics.Config)) (*metrics.Influx, func()) {
	t.Helper()
	cfg := metrics.Config{
		URL:              srv.URL,
		Bucket:           db,
		FlushInterval:    50 * time.Millisecond,
		RetryInterval:    50 * time.Millisecond,
		MaxRetryInterval: 500 * time.Millisecond,
		Timeout:          2 * time.Second,
	}
	if tune != nil {
		tune(&cfg)
	}
	sink, err := metrics.New(cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := sink.Run(ctx); err != nil {
			t.Error(err)
		}
	})
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return sink, stop
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// waitFor polls cond until it holds; the test's own timeout bounds it.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 2*time.Minute {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func count(t *testing.T, srv *influxtest.Server, db, q string) int64 {
	t.Helper()
	res := srv.Query(db, q)
	if len(res) == 0 || len(res[0].Series) == 0 {
		return 0
	}
	n, err := res[0].Series[0].Values[0][1].(json.Number).Int64()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestInfluxReadBack(t *testing.T) {
	srv := influxtest.Start(t)
	srv.CreateDatabase("readback")
	sink, stop := startSink(t, srv, "readback", nil)

	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	points := []metrics.Point{
		metrics.Events("engine-1", metrics.EventCounts{Received: 1000, Matched: 120, Dropped: 3, Fired: 130}),
		metrics.Invocation(protocol.Result{
			ID: "inv-1", Agent: "gh1-edge", Function: "cool-down", Rule: "hot-greenhouse",
			Status: protocol.StatusOK, ExitCode: 0, Cold: true,
			Timings: protocol.Timings{Queue: 1.5, Start: 180.25, Run: 42, Total: 224},
		}),
		metrics.Invocation(protocol.Result{
			ID: "inv-2", Function: "cool-down", Status: protocol.StatusExpired, ExitCode: -1,
		}),
		metrics.Actuation("gh1-edge", protocol.Actuation{Line: "fan", Value: 1, For: protocol.Duration(30 * time.Second)}),
		metrics.Agent("gh1-edge", metrics.AgentStats{CPU: 12.5, RSS: 48 << 20, Running: 2, Queue: 1}),
	}
	for i := range points {
		points[i].Time = at.Add(time.Duration(i) * time.Millisecond)
		sink.Write(points[i])
	}
	waitFor(t, "5 points written", func() bool { return sink.Stats().Written == 5 })

	type row = map[string]any
	cases := []struct {
		q    string
		tags []map[string]string
		rows []row
	}{
		{
			q:    `SELECT received, matched, dropped, fired FROM deviceless_events GROUP BY *`,
			tags: []map[string]string{{"engine": "engine-1"}},
			rows: []row{{"received": "1000", "matched": "120", "dropped": "3", "fired": "130"}},
		},
		{
			q: `SELECT queue_ms, start_ms, run_ms, total_ms, exit_code FROM deviceless_invocations GROUP BY *`,
			tags: []map[string]string{
				{"agent": "", "cold": "false", "function": "cool-down", "rule": "", "status": "expired"},
				{"agent": "gh1-edge", "cold": "true", "function": "cool-down", "rule": "hot-greenhouse", "status": "ok"},
			},
			rows: []row{
				{"queue_ms": "0", "start_ms": "0", "run_ms": "0", "total_ms": "0", "exit_code": "-1"},
				{"queue_ms": "1.5", "start_ms": "180.25", "run_ms": "42", "total_ms": "224", "exit_code": "0"},
			},
		},
		{
			q:    `SELECT value, for_ms FROM deviceless_actuations GROUP BY *`,
			tags: []map[string]string{{"agent": "gh1-edge", "line": "fan"}},
			rows: []row{{"value": "1", "for_ms": "30000"}},
		},
		{
			q:    `SELECT cpu, rss, running, queue FROM deviceless_agent GROUP BY *`,
			tags: []map[string]string{{"agent": "gh1-edge"}},
			rows: []row{{"cpu": "12.5", "rss": fmt.Sprint(48 << 20), "running": "2", "queue": "1"}},
		},
	}
	for _, c := range cases {
		res := srv.Query("readback", c.q)
		if len(res) != 1 || len(res[0].Series) != len(c.tags) {
			t.Fatalf("%s: got %+v, want %d series", c.q, res, len(c.tags))
		}
		for i, s := range res[0].Series {
			for k, v := range c.tags[i] {
				if s.Tags[k] != v {
					t.Errorf("%s: series %d tag %s = %q, want %q", c.q, i, k, s.Tags[k], v)
				}
			}
			rows := s.Rows()
			if len(rows) != 1 {
				t.Fatalf("%s: series %d has %d rows, want 1", c.q, i, len(rows))
			}
			for k, v := range c.rows[i] {
				if got := fmt.Sprint(rows[0][k]); got != v {
					t.Errorf("%s: series %d field %s = %s, want %s", c.q, i, k, got, v)
				}
			}
		}
	}

	// Field types are part of the schema: integers stay integers.
	res := srv.Query("readback", `SHOW FIELD KEYS`)
	types := map[string]string{}
	for _, s := range res[0].Series {
		for _, r := range s.Rows() {
			types[s.Name+"."+r["fieldKey"].(string)] = r["fieldType"].(string)
		}
	}
	for k, want := range map[string]string{
		"deviceless_events.received": "integer", "deviceless_events.fired": "integer",
		"deviceless_invocations.total_ms": "float", "deviceless_invocations.exit_code": "integer",
		"deviceless_actuations.value": "integer", "deviceless_actuations.for_ms": "float",
		"deviceless_agent.cpu": "float", "deviceless_agent.rss": "integer", "deviceless_agent.queue": "integer",
	} {
		if types[k] != want {
			t.Errorf("field %s has type %q, want %q", k, types[k], want)
		}
	}

	// A point written just before shutdown is flushed by Run's return.
	sink.Write(metrics.Agent("late", metrics.AgentStats{CPU: 1}))
	stop()
	if st := sink.Stats(); st.Written != 6 || st.Dropped != 0 || st.Buffered != 0 {
		t.Fatalf("after shutdown: %+v, want 6 written, nothing dropped or buffered", st)
	}
	if n := count(t, srv, "readback", `SELECT count(cpu) FROM deviceless_agent WHERE agent = 'late'`); n != 1 {
		t.Fatalf("late point: count %d, want 1", n)
	}
	// After Run: dropped, counted, never blocking.
	sink.Write(metrics.Agent("after", metrics.AgentStats{}))
	if st := sink.Stats(); st.Dropped != 1 {
		t.Fatalf("write after shutdown: %+v, want 1 dropped", st)
	}
}
