package podman

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/deviceless/deviceless/edgeagent/container"
)

// fanSpeed is the greenhouse example's python3 function (examples/greenhouse).
const fanSpeed = `import json, sys
inv = json.load(sys.stdin)
a = inv["args"]
avg, hum = float(a["avg"]), float(a.get("humidity") or 50)
speed = 0 if avg < 28 else 1 if avg < 32 and hum < 80 else 2
print(json.dumps({
    "actuate": [{"line": "fan", "value": 1 if speed else 0, "for": "10m"}],
    "result": {"greenhouse": a["greenhouse"], "speed": speed, "avg": round(avg, 1)},
}))
`

// BenchmarkPython runs one python3 invocation through the Runtime (no MQTT) three ways, side
// by side in one run, and reports the p50/p95 of the outcome's `run` (what the agent reports
// as run: from the hand-over to the reply) and the p50 of start + run:
//
//   - warm: the warm runner's one interpreter (runner.py);
//   - warm-process: a warm container whose shell loop starts python3 for every invocation
//     (what warm mode did for python3 before runner.py; the command `/usr/bin/env python3
//     SCRIPT` keeps that path);
//   - cold: a new container per invocation, prepared ahead (the agent's default for runtime
//     functions), 500 ms apart as an event stream below saturation (not timed).
//
// Run with a fixed count: -benchtime 30x.
func BenchmarkPython(b *testing.B) {
	base := pyJob(fanSpeed)
	base.Stdin = []byte(`{"id":"x","args":{"greenhouse":"gh1","avg":30.5,"humidity":60}}` + "\n")
	for _, mode := range []struct {
		name    string
		warm    bool
		command []string
		gap     time.Duration
	}{
		{name: "warm", warm: true},
		{name: "warm-process", warm: true, command: []string{"/usr/bin/env", "python3", container.CodePath}},
		{name: "cold", gap: 500 * time.Millisecond},
	} {
		b.Run(mode.name, func(b *testing.B) {
			rt := newRuntime(b)
			rt.cfg.Prepare = true
			job := base
			job.Function = "bench-" + mode.name
			job.Prepare = true
			if mode.warm {
				job = warm(job, 0)
			}
			if mode.command != nil {
				job.Command = mode.command
			}
			check := func(out container.Outcome) {
				if out.ExitCode != 0 || out.Cold == mode.warm || string(out.Stdout) == "" {
					b.Fatalf("%s: %+v", mode.name, out)
				}
			}
			// Not timed: the image in the page cache, the runner started when warm.
			if out := run(b, rt, job); out.ExitCode != 0 {
				b.Fatalf("warm-up: %+v", out)
			}
			runs := make([]time.Duration, 0, b.N)
			totals := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				if mode.gap > 0 {
					b.StopTimer()
					time.Sleep(mode.gap)
					b.StartTimer()
				}
				job.ID = fmt.Sprintf("bench-%d", i)
				out := run(b, rt, job)
				check(out)
				runs = append(runs, out.Run)
				totals = append(totals, out.Start+out.Run)
			}
			b.StopTimer()
			b.ReportMetric(percentile(runs, 0.50), "run-p50-ms")
			b.ReportMetric(percentile(runs, 0.95), "run-p95-ms")
			b.ReportMetric(percentile(totals, 0.50), "total-p50-ms")
			b.ReportMetric(0, "ns/op") // the mean of a few container starts says little
		})
	}
}

func percentile(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[int(float64(len(s)-1)*p)].Microseconds()) / 1000
}
