// Command benchreport turns the output of `go tool task bench` into the "Latest run"
// section of BENCHMARKS.md, so that the headline figures always come from one run.
//
//	go run ./scripts/benchreport -in .state/bench.out -md BENCHMARKS.md
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const (
	startMark = "<!-- latest-run:start -->"
	endMark   = "<!-- latest-run:end -->"
)

// results maps "BenchmarkName/sub" (without the -N suffix) to unit → value.
type results map[string]map[string]float64

var suffix = regexp.MustCompile(`-\d+$`)

func parse(path string) (results, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := results{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := suffix.ReplaceAllString(fields[0], "")
		m := map[string]float64{}
		// fields[1] is the iteration count; then value unit pairs.
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				break
			}
			m[fields[i+1]] = v
		}
		out[name] = m
	}
	return out, sc.Err()
}

func (r results) get(name, unit string) (float64, bool) {
	v, ok := r[name][unit]
	return v, ok
}

func (r results) fmt(name, unit, format string) string {
	v, ok := r.get(name, unit)
	if !ok {
		return "n/a"
	}
	return fmt.Sprintf(format, v)
}

func (r results) ratio(a, ua, b, ub string) string {
	x, ok1 := r.get(a, ua)
	y, ok2 := r.get(b, ub)
	if !ok1 || !ok2 || y == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f×", x/y)
}

func report(r results) string {
	var b strings.Builder
	row := func(cells ...string) { b.WriteString("| " + strings.Join(cells, " | ") + " |\n") }
	fmt.Fprintf(&b, "Written by `go tool task bench` on %s from one run; the sections below explain each figure.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	row("what", "figure", "target")
	row("---", "---", "---")
	row("rule evaluations per second, one core (`rules` RuleEvaluation)", r.fmt("BenchmarkRuleEvaluation", "evals/s", "%.0f"), "≥ 1,000,000")
	row("allocations for an event matching no rule, 1,000 rules loaded", r.fmt("BenchmarkEventNoMatch/rules=1000", "allocs/op", "%.0f"), "≤ 2")
	row("topic match, 20 vs 20,000 other filters (ns)", r.fmt("BenchmarkMatchFlat/others=10", "ns/op", "%.0f")+" vs "+r.fmt("BenchmarkMatchFlat/others=10000", "ns/op", "%.0f"), "flat")
	row("`mosquitto_pub -l` into the rules, 1 rule (events/s, lost)", r.fmt("BenchmarkMosquittoPubIntoRules/rules=1", "events/s", "%.0f")+", "+r.fmt("BenchmarkMosquittoPubIntoRules/rules=1", "lost", "%.0f")+" lost", "keep up with the publisher, zero loss")
	row("`mosquitto_pub -l` into the rules, 100 rules (events/s)", r.fmt("BenchmarkMosquittoPubIntoRules/rules=100", "events/s", "%.0f"), "")
	row("same publisher into mosquitto 2.0.11, no subscriber (events/s)", r.fmt("BenchmarkMosquittoPubIntoRules/baseline=mosquitto", "events/s", "%.0f"), "")
	row("pub → sub forwarding, our broker vs mosquitto (msgs/s)", r.fmt("BenchmarkForwardQoS0/broker=deviceless", "msgs/s", "%.0f")+" vs "+r.fmt("BenchmarkForwardQoS0/broker=mosquitto", "msgs/s", "%.0f")+" ("+r.ratio("BenchmarkForwardQoS0/broker=deviceless", "msgs/s", "BenchmarkForwardQoS0/broker=mosquitto", "msgs/s")+")", "≥ 1×")
	row("in-process intake vs mosquitto forwarding", r.fmt("BenchmarkIntakeQoS0", "msgs/s", "%.0f")+" msgs/s ("+r.ratio("BenchmarkIntakeQoS0", "msgs/s", "BenchmarkForwardQoS0/broker=mosquitto", "msgs/s")+")", "≥ 2×")
	row("engine (1 rule) vs mosquitto forwarding the same kind of stream", r.ratio("BenchmarkMosquittoPubIntoRules/rules=1", "events/s", "BenchmarkForwardQoS0/broker=mosquitto", "msgs/s"), "≥ 2×")
	row("QoS 1 invocations dispatched per second", r.fmt("BenchmarkDispatchQoS1", "invocations/s", "%.0f"), "≥ 10,000")
	row("one `mosquitto_pub -q 1 -l` into the durable intake, store_sync on / off (events/s)", r.fmt("BenchmarkDurableIntakeQoS1/store_sync=true", "events/s", "%.0f")+" / "+r.fmt("BenchmarkDurableIntakeQoS1/store_sync=false", "events/s", "%.0f"), "")
	row("agent: cold invocation p50 / p95 (ms), spaced / back to back", r.fmt("BenchmarkColdInvocation/spaced/prepare=on", "p50-ms", "%.0f")+" / "+r.fmt("BenchmarkColdInvocation/spaced/prepare=on", "p95-ms", "%.0f")+", "+r.fmt("BenchmarkColdInvocation/back-to-back/prepare=on", "p50-ms", "%.0f")+" / "+r.fmt("BenchmarkColdInvocation/back-to-back/prepare=on", "p95-ms", "%.0f"), "p50 ≤ 250, below `podman run`")
	row("agent: warm invocation p50 / p95 (ms)", r.fmt("BenchmarkWarmInvocation", "p50-ms", "%.1f")+" / "+r.fmt("BenchmarkWarmInvocation", "p95-ms", "%.1f"), "p50 ≤ 20")
	row("`podman run --rm` of the same function p50 / p95 (ms)", r.fmt("BenchmarkPodmanRunBaseline", "p50-ms", "%.0f")+" / "+r.fmt("BenchmarkPodmanRunBaseline", "p95-ms", "%.0f"), "")
	const slim, full = "BenchmarkAgentResources/binary=deviceless-agent/", "BenchmarkAgentResources/binary=deviceless/"
	row("agent RSS idle, bin/deviceless-agent (MB, anonymous MB)", r.fmt(slim+"warm", "rss-idle-MB", "%.1f")+" ("+r.fmt(slim+"warm", "rss-anon-idle-MB", "%.1f")+")", "≤ 15")
	row("agent RSS idle, full bin/deviceless (MB, anonymous MB)", r.fmt(full+"warm", "rss-idle-MB", "%.1f")+" ("+r.fmt(full+"warm", "rss-anon-idle-MB", "%.1f")+")", "")
	row("agent CPU at 10 invocations/s, cold / warm (% of a core)", r.fmt(slim+"cold", "cpu-%-at-10/s", "%.1f")+" / "+r.fmt(slim+"warm", "cpu-%-at-10/s", "%.1f"), "")
	row("agent RSS idle, bin/deviceless-agent, wasm only, after running a C module (MB, anonymous MB)", r.fmt(slim+"wasm", "rss-idle-MB", "%.1f")+" ("+r.fmt(slim+"wasm", "rss-anon-idle-MB", "%.1f")+")", "")
	row("wasm instantiate + run in the agent's runtime, C / Go example p50 (ms)", r.fmt("BenchmarkWasmC", "p50-ms", "%.3f")+" / "+r.fmt("BenchmarkWasmGo", "p50-ms", "%.2f"), "")
	row("wasm invocations/s on one agent through MQTT, C (concurrency 32) / Go (4)", r.fmt("BenchmarkWasmThroughput/module=c/concurrency=32", "inv/s", "%.0f")+" / "+r.fmt("BenchmarkWasmThroughput/module=go/concurrency=4", "inv/s", "%.0f"), "C ≥ 1,000")
	for _, k := range []string{"cold", "cold-spaced", "warm", "wasm-c", "wasm-go", "direct"} {
		target := map[string]string{"cold": "p50 ≤ 250", "cold-spaced": "p50 ≤ 250", "warm": "p50 ≤ 20", "wasm-c": "p50 ≤ 5", "direct": "p50 ≤ 2"}[k]
		row("closed loop (publish → rules → agent → GPIO line), "+k+" p50 / p95 (ms)",
			r.fmt("BenchmarkClosedLoop/"+k, "p50-ms", "%.2f")+" / "+r.fmt("BenchmarkClosedLoop/"+k, "p95-ms", "%.2f"), target)
	}
	row("closed loop, prepared cold container (cold-spaced) / wasm C function, p50", r.ratio("BenchmarkClosedLoop/cold-spaced", "p50-ms", "BenchmarkClosedLoop/wasm-c", "p50-ms"), "≥ 10×")
	row("metrics sink `Write` on the caller's path (ns)", r.fmt("BenchmarkWrite/sink=influx/up", "ns/op", "%.0f"), "never blocks")
	return b.String()
}

func main() {
	in := flag.String("in", ".state/bench.out", "output of the benchmarks")
	md := flag.String("md", "BENCHMARKS.md", "file whose latest-run section is replaced")
	flag.Parse()
	r, err := parse(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	if len(r) == 0 {
		fmt.Fprintln(os.Stderr, "benchreport: no benchmark lines in", *in)
		os.Exit(1)
	}
	doc, err := os.ReadFile(*md)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	s := string(doc)
	i, j := strings.Index(s, startMark), strings.Index(s, endMark)
	if i < 0 || j < i {
		fmt.Fprintf(os.Stderr, "benchreport: %s lacks the %s / %s markers\n", *md, startMark, endMark)
		os.Exit(1)
	}
	s = s[:i+len(startMark)] + "\n" + report(r) + s[j:]
	if err := os.WriteFile(*md, []byte(s), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
	fmt.Print(report(r))
}
