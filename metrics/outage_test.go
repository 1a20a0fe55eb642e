package metrics_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/metrics/influxtest"
)

// TestInfluxOutage stops InfluxDB (connection refused), then freezes it (a hung server that
// accepts connections and never answers): in both cases 100,000 writes from 4 goroutines
// complete while it is unavailable, the oldest points are dropped and counted, and when it
// is back the buffered (newest) points and new ones are written. Every point is accounted
// for: InfluxDB holds exactly Stats.Written points.
func TestInfluxOutage(t *testing.T) {
	const (
		bufferLimit = 10_000
		batchSize   = 500
		outage      = 100_000
		writers     = 4
	)
	srv := influxtest.Start(t)
	srv.CreateDatabase("outage")
	sink, _ := startSink(t, srv, "outage", func(c *metrics.Config) {
		c.BufferLimit = bufferLimit
		c.BatchSize = batchSize
		c.Timeout = time.Second
	})

	base := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	seq := 0 // points given to the sink so far; each gets its own timestamp
	// write gives n points from 4 goroutines; writer w tags its points agent-w and counts
	// them in field queue (0, 1, 2, ... per writer).
	write := func(agent string, n int) {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				tag := fmt.Sprintf("%s-%d", agent, w)
				for i := range n / writers {
					p := metrics.Agent(tag, metrics.AgentStats{CPU: 1, Queue: i})
					p.Time = base.Add(time.Duration(seq+i*writers+w) * time.Microsecond)
					sink.Write(p)
				}
			})
		}
		wg.Wait()
		seq += n
	}
	countIn := func(agent string) int64 {
		return count(t, srv, "outage", `SELECT count(cpu) FROM deviceless_agent WHERE agent =~ /^`+agent+`-/`)
	}
	countAll := func() uint64 {
		return uint64(count(t, srv, "outage", `SELECT count(cpu) FROM deviceless_agent`))
	}
	accounted := func() {
		t.Helper()
		st := sink.Stats()
		if st.Written+st.Dropped+uint64(st.Buffered) != uint64(seq) {
			t.Fatalf("%+v: written+dropped+buffered != %d points given", st, seq)
		}
	}

	write("before", 1000)
	waitFor(t, "first points written", func() bool { return sink.Stats().Written == 1000 })

	for _, phase := range []struct {
		name     string
		down, up func()
	}{
		{"stopped", srv.Stop, srv.Restart},
		{"hung", srv.Pause, srv.Resume},
	} {
		t.Run(phase.name, func(t *testing.T) {
			during, after := "outage-"+phase.name, "after-"+phase.name
			before := sink.Stats()
			phase.down()
			write(during, outage)
			// Every write returned while InfluxDB was unavailable; the buffer kept the newest.
			waitFor(t, "a failed write request", func() bool { return sink.Stats().WriteErrors > before.WriteErrors })
			st := sink.Stats()
			accounted()
			if st.Written != before.Written {
				t.Fatalf("written changed while InfluxDB was %s: %+v -> %+v", phase.name, before, st)
			}
			if minDropped := uint64(outage - bufferLimit - batchSize); st.Dropped-before.Dropped < minDropped {
				t.Fatalf("dropped %d during the outage, want at least %d: %+v", st.Dropped-before.Dropped, minDropped, st)
			}
			if st.Buffered > bufferLimit+batchSize {
				t.Fatalf("buffered %d > limit %d + one batch", st.Buffered, bufferLimit)
			}
			t.Logf("while %s: %+v", phase.name, st)

			phase.up()
			// A request that fails from here on timed out against a live server (a
			// restarted InfluxDB can be slow on a busy machine): its outcome is unknown,
			// as against the hung server.
			errsAtUp := sink.Stats().WriteErrors
			write(after, 1000)
			waitFor(t, "new points in InfluxDB", func() bool { return countIn(after) == 1000 })
			waitFor(t, "buffer drained", func() bool { return sink.Stats().Buffered == 0 })
			accounted()
			st = sink.Stats()
			t.Logf("after %s: %+v", phase.name, st)

			// The outage points that survived are each writer's newest, without gaps (the
			// 1,000 new points evicted the oldest of the full buffer once more). Not so
			// against the hung server: the first batch, whose request timed out, may also
			// have been stored when the server resumed, although the sink evicted it.
			exact := phase.name == "stopped" && st.WriteErrors == errsAtUp
			if phase.name == "stopped" && !exact {
				t.Logf("%d write requests timed out after the restart: checking as for a hung server", st.WriteErrors-errsAtUp)
			}
			kept := countIn(during)
			if kept < bufferLimit-1000-batchSize || kept > bufferLimit+batchSize {
				t.Fatalf("%d outage points in InfluxDB, want about the buffer limit %d", kept, bufferLimit)
			}
			res := srv.Query("outage", `SELECT count(queue), min(queue), max(queue) FROM deviceless_agent WHERE agent =~ /^`+during+`-/ GROUP BY agent`)
			for _, s := range res[0].Series {
				r := s.Rows()[0]
				n, _ := r["count"].(json.Number).Int64()
				lo, _ := r["min"].(json.Number).Int64()
				hi, _ := r["max"].(json.Number).Int64()
				if exact && (hi != outage/writers-1 || lo != hi-n+1) {
					t.Errorf("writer %s: kept %d points, queue %d..%d, want its newest: %d..%d", s.Tags["agent"], n, lo, hi, outage/writers-n, outage/writers-1)
				}
			}

			// InfluxDB holds the points the sink counts as written. A request that timed
			// out (hung server) has an unknown outcome: the server may store it later while
			// the sink retries or, once evicted, counts those points as dropped.
			total := countAll()
			switch {
			case exact && total != st.Written:
				t.Fatalf("InfluxDB holds %d points, sink counts %d written (%+v)", total, st.Written, st)
			case total < st.Written || total > st.Written+batchSize*(st.WriteErrors-before.WriteErrors):
				t.Fatalf("InfluxDB holds %d points, sink counts %d written and %d timed-out requests", total, st.Written, st.WriteErrors-before.WriteErrors)
			}
		})
	}
}
