package wasm

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/deviceless/deviceless/edgeagent/container"
)

// Benchmarks of one invocation as the agent runs it: a fresh instance of an already compiled
// module (instantiate, run _start with the invocation on stdin, close). The first, compiling
// invocation runs before the timer starts.
//
//	go test ./edgeagent/wasm -run '^$' -bench Wasm -cpu 2 -benchtime 2000x
//
// BenchmarkWasmC and BenchmarkWasmGo run invocations one after another and report the
// latency percentiles; BenchmarkWasmParallel/{c,go} run them from GOMAXPROCS goroutines
// (b.RunParallel) and report invocations per second.

func benchJob(b *testing.B, name string) (*Runtime, container.Job) {
	b.Helper()
	r := newRuntime(b, Config{})
	j := job(put(b, r, testModule(b, name)), invocation(b, "inv-bench", map[string]any{"greenhouse": "gh1"}))
	out, err := r.Run(context.Background(), j) // compiles
	if err != nil || out.ExitCode != 0 || len(out.Stdout) == 0 {
		b.Fatalf("%s: %+v, %v", name, out, err)
	}
	return r, j
}

func benchSequential(b *testing.B, name string) {
	r, j := benchJob(b, name)
	took := make([]time.Duration, 0, b.N)
	var start, run time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		out, err := r.Run(context.Background(), j)
		took = append(took, time.Since(t0))
		if err != nil || out.ExitCode != 0 || out.Cold {
			b.Fatalf("%+v, %v", out, err)
		}
		start += out.Start
		run += out.Run
	}
	b.StopTimer()
	slices.Sort(took)
	n := float64(len(took))
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[len(took)*99/100]), "p99-ms")
	b.ReportMetric(ms(start)/n, "start-ms")
	b.ReportMetric(ms(run)/n, "run-ms")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkWasmC: the C echo function (examples/wasm/c-echo, ≈ 30 KB) per invocation.
func BenchmarkWasmC(b *testing.B) { benchSequential(b, "example/c-echo") }

// BenchmarkWasmGo: the Go echo function (examples/wasm/go-echo, ≈ 3.3 MB) per invocation.
func BenchmarkWasmGo(b *testing.B) { benchSequential(b, "example/go-echo") }

// BenchmarkWasmParallel: invocations per second of one runtime from GOMAXPROCS goroutines.
func BenchmarkWasmParallel(b *testing.B) {
	for _, name := range []string{"c", "go"} {
		b.Run(name, func(b *testing.B) {
			r, j := benchJob(b, "example/"+name+"-echo")
			b.ReportAllocs()
			b.ResetTimer()
			t0 := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					out, err := r.Run(context.Background(), j)
					if err != nil || out.ExitCode != 0 {
						panic(fmt.Sprintf("%+v, %v", out, err))
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "inv/s")
		})
	}
}
