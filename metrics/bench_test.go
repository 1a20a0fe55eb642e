package metrics_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/metrics/influxtest"
	"github.com/deviceless/deviceless/protocol"
)

var benchResult = protocol.Result{
	ID: "inv-1", Agent: "gh1-edge", Function: "cool-down", Rule: "hot-greenhouse",
	Status: protocol.StatusOK, Cold: true,
	Timings: protocol.Timings{Queue: 1.5, Start: 180.25, Run: 42, Total: 223.75},
}

// runSink starts a sink's Run for the benchmark and stops it at the end.
func runSink(b *testing.B, cfg metrics.Config) *metrics.Influx {
	b.Helper()
	sink, err := metrics.New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sink.Run(ctx) })
	b.Cleanup(func() { cancel(); wg.Wait() })
	return sink
}

// report adds the cost per write and what became of the points.
func report(b *testing.B, sink *metrics.Influx) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/write")
	if sink != nil {
		st := sink.Stats()
		b.ReportMetric(float64(st.Dropped)/float64(b.N), "dropped/write")
	}
}

// BenchmarkWrite measures Write on the caller's path: the point is built once, Write stamps
// the time and queues it.
func BenchmarkWrite(b *testing.B) {
	p := metrics.Invocation(benchResult)

	b.Run("sink=nop", func(b *testing.B) {
		var s metrics.Sink = metrics.Nop{}
		b.ReportAllocs()
		for b.Loop() {
			s.Write(p)
		}
		report(b, nil)
	})

	b.Run("sink=influx/up", func(b *testing.B) {
		srv := influxtest.Start(b)
		srv.CreateDatabase("bench")
		sink := runSink(b, metrics.Config{URL: srv.URL, Bucket: "bench", BatchSize: 5000, BufferLimit: 100_000})
		var s metrics.Sink = sink
		b.ReportAllocs()
		for b.Loop() {
			s.Write(p)
		}
		report(b, sink)
	})

	b.Run("sink=influx/down", func(b *testing.B) {
		sink := runSink(b, metrics.Config{URL: "http://" + closedAddr(b), Bucket: "bench", BufferLimit: 10_000, Timeout: time.Second})
		var s metrics.Sink = sink
		b.ReportAllocs()
		for b.Loop() {
			s.Write(p)
		}
		report(b, sink)
	})

	b.Run("sink=influx/down/parallel", func(b *testing.B) {
		sink := runSink(b, metrics.Config{URL: "http://" + closedAddr(b), Bucket: "bench", BufferLimit: 10_000, Timeout: time.Second})
		var s metrics.Sink = sink
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.Write(p)
			}
		})
		report(b, sink)
	})
}

// BenchmarkInvocationPoint is building the point of a finished invocation and writing it,
// what the engine does per result.
func BenchmarkInvocationPoint(b *testing.B) {
	sink := runSink(b, metrics.Config{URL: "http://" + closedAddr(b), Bucket: "bench", BufferLimit: 10_000, Timeout: time.Second})
	var s metrics.Sink = sink
	b.ReportAllocs()
	for b.Loop() {
		s.Write(metrics.Invocation(benchResult))
	}
	report(b, sink)
}

// BenchmarkThroughput is the rate a sink delivers to a real InfluxDB 1.8 on this machine
// (which also runs the server): the benchmark waits whenever half the buffer is queued,
// so nothing is dropped, and until everything is written.
func BenchmarkThroughput(b *testing.B) {
	srv := influxtest.Start(b)
	srv.CreateDatabase("bench")
	const limit = 100_000
	sink := runSink(b, metrics.Config{URL: srv.URL, Bucket: "bench", BatchSize: 5000, BufferLimit: limit})
	p := metrics.Invocation(benchResult)
	b.ReportAllocs()
	i := 0
	t0 := time.Now()
	for b.Loop() {
		sink.Write(p)
		if i++; i%1000 == 0 {
			for sink.Stats().Buffered > limit/2 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	for sink.Stats().Buffered > 0 {
		time.Sleep(time.Millisecond)
	}
	st := sink.Stats()
	if st.Dropped > 0 || st.Written != uint64(b.N) {
		b.Fatalf("%+v after %d writes", st, b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "points/s")
}

// closedAddr is a loopback address nothing listens on: InfluxDB down.
func closedAddr(b *testing.B) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
