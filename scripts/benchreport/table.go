package main

// The table of BENCHMARKS.md's "Latest run", one row per figure, with its target.
//
// Adding a row: append a row{} below, next to the rows of the same package; add its
// benchmark to the Taskfile's `bench` task if it is new, and its result lines (from your
// run) to testdata/bench.txt, which TestRowsMatchARun checks the table against.
//   - what says what was measured, in words a reader of BENCHMARKS.md understands;
//   - figure is the cell: strings are printed as they are, fig{bench, unit} prints one
//     figure of the run (bench without the -N suffix, unit as the benchmark reports it),
//     ratio{num, den} prints num/den as "0.75×";
//   - target says the target in words and where it comes from (the issue); checks are the
//     same target as numbers: every check must hold for PASS. A row without a target has
//     neither.
//
// A ratio divides two figures of the same `go test` run (benchreport refuses others), made
// with the same work on both sides: the same publisher and file into Deviceless and into
// mosquitto, the same function through the agent and through `podman run`, seconds apart,
// so that machine load weighs on both alike.

const (
	closedLoop = "BenchmarkClosedLoop/"
	fullRate   = "BenchmarkFullRate/"
	paced      = "BenchmarkPacedCPU/"
	agentSlim  = "BenchmarkAgentResources/binary=deviceless-agent/"
	agentFull  = "BenchmarkAgentResources/binary=deviceless/"
	roundTrip  = "BenchmarkInvocationRoundTrip/"
	firing16   = "BenchmarkRulesFireQoS1Publishers16/"
)

func p50p95(bench string) []any {
	return []any{fig{bench, "p50-ms"}, " / ", fig{bench, "p95-ms"}}
}

var rows = []row{
	// rules (go test ./rules)
	{what: "simple rule evaluations per second on one core, condition false (`RuleEvaluation/outcome=false`)",
		figure: []any{fig{"BenchmarkRuleEvaluation/outcome=false", "evals/s"}},
		target: "≥ 1,000,000 (issue 2)", checks: []check{atLeast(fig{"BenchmarkRuleEvaluation/outcome=false", "evals/s"}, 1e6)}},
	{what: "same rule, condition true: the firing with its publish and invoke actions evaluated (evals/s)",
		figure: []any{fig{"BenchmarkRuleEvaluation/outcome=true", "evals/s"}}},
	{what: "allocations for an event matching no rule, 1,000 rules loaded",
		figure: []any{fig{"BenchmarkEventNoMatch/rules=1000", "allocs/op"}},
		target: "≤ 2 (issue 2)", checks: []check{atMost(fig{"BenchmarkEventNoMatch/rules=1000", "allocs/op"}, 2)}},
	{what: "topic match among 20 vs 20,000 other filters (ns, ratio)",
		figure: []any{fig{"BenchmarkMatchFlat/others=10", "ns/op"}, " vs ", fig{"BenchmarkMatchFlat/others=10000", "ns/op"}, " (", ratio{fig{"BenchmarkMatchFlat/others=10000", "ns/op"}, fig{"BenchmarkMatchFlat/others=10", "ns/op"}}, ")"},
		target: "flat: ≤ 1.5× (issue 2)", checks: []check{atMost(ratio{fig{"BenchmarkMatchFlat/others=10000", "ns/op"}, fig{"BenchmarkMatchFlat/others=10", "ns/op"}}, 1.5)}},
	{what: "decoded events through 1 rule that matches, never fires / half fire with publish + invoke (events/s)",
		figure: []any{fig{"BenchmarkEventMatchNoFire/rules=1", "events/s"}, " / ", fig{"BenchmarkEventFire/rules=1", "events/s"}}},
	{what: "same, 1,000 rules loaded, 10 match each event (events/s, firings per event)",
		figure: []any{fig{"BenchmarkEventMatchNoFire/rules=1000", "events/s"}, " / ", fig{"BenchmarkEventFire/rules=1000", "events/s"}, " (", fig{"BenchmarkEventFire/rules=1000", "firings/event"}, " firings/event)"}},
	{what: "stateful rule (window, `for`, throttle) over 100 keys, half of them hot (events/s, firings per 1,000 events)",
		figure: []any{fig{"BenchmarkStatefulRule", "events/s"}, " (", fig{"BenchmarkStatefulRule", "firings/1000-events"}, ")"}},

	// broker (go test ./broker)
	{what: "pub → sub forwarding, same load clients: our broker vs mosquitto 2.0.11 (msgs/s)",
		figure: []any{fig{"BenchmarkForwardQoS0/broker=deviceless", "msgs/s"}, " vs ", fig{"BenchmarkForwardQoS0/broker=mosquitto", "msgs/s"}, " (", ratio{fig{"BenchmarkForwardQoS0/broker=deviceless", "msgs/s"}, fig{"BenchmarkForwardQoS0/broker=mosquitto", "msgs/s"}}, ")"},
		target: "≥ 1× (issue 3)", checks: []check{atLeast(ratio{fig{"BenchmarkForwardQoS0/broker=deviceless", "msgs/s"}, fig{"BenchmarkForwardQoS0/broker=mosquitto", "msgs/s"}}, 1)}},
	{what: "same publisher into the in-process intake vs through mosquitto to its subscriber (msgs/s)",
		figure: []any{fig{"BenchmarkIntakeQoS0", "msgs/s"}, " vs ", fig{"BenchmarkForwardQoS0/broker=mosquitto", "msgs/s"}, " (", ratio{fig{"BenchmarkIntakeQoS0", "msgs/s"}, fig{"BenchmarkForwardQoS0/broker=mosquitto", "msgs/s"}}, ")"},
		target: "≥ 2× (issue 3)", checks: []check{atLeast(ratio{fig{"BenchmarkIntakeQoS0", "msgs/s"}, fig{"BenchmarkForwardQoS0/broker=mosquitto", "msgs/s"}}, 2)}},
	{what: "`mosquitto_pub -l` → broker → `mosquitto_sub`: ours (default max_pending) vs mosquitto (msgs/s, % lost)",
		figure: []any{fig{"BenchmarkForwardQoS0Tools/broker=deviceless/max_pending=0", "msgs/s"}, " (", fig{"BenchmarkForwardQoS0Tools/broker=deviceless/max_pending=0", "lost_%"}, " %) vs ", fig{"BenchmarkForwardQoS0Tools/broker=mosquitto", "msgs/s"}, " (", fig{"BenchmarkForwardQoS0Tools/broker=mosquitto", "lost_%"}, " %)"}},

	// engine (go test ./engine)
	{what: "full rate: one `mosquitto_pub -l`, QoS 0, into 1 rule firing on half the events with a publish action vs through mosquitto to one `mosquitto_sub` (events/s; lost, shed)",
		figure: []any{fig{fullRate + "deviceless/overflow=backpressure", "events/s"}, " vs ", fig{fullRate + "mosquitto-forwarding", "events/s"}, " (", ratio{fig{fullRate + "deviceless/overflow=backpressure", "events/s"}, fig{fullRate + "mosquitto-forwarding", "events/s"}}, "); ", fig{fullRate + "deviceless/overflow=backpressure", "lost"}, " lost, ", fig{fullRate + "deviceless/overflow=backpressure", "shed"}, " shed"},
		target: "≥ 2×, 0 lost, 0 shed (issue 13)", checks: []check{
			atLeast(ratio{fig{fullRate + "deviceless/overflow=backpressure", "events/s"}, fig{fullRate + "mosquitto-forwarding", "events/s"}}, 2),
			atMost(fig{fullRate + "deviceless/overflow=backpressure", "lost"}, 0),
			atMost(fig{fullRate + "deviceless/overflow=backpressure", "shed"}, 0)}},
	{what: "same, `intake.overflow: shed` (events/s; shed)",
		figure: []any{fig{fullRate + "deviceless/overflow=shed", "events/s"}, "; ", fig{fullRate + "deviceless/overflow=shed", "shed"}, " shed"}},
	{what: "paced 10,000 events/s, 1 rule with a publish action: the engine's CPU per event (`--procs auto`, `--heap-floor 16`: the defaults) vs mosquitto forwarding the same stream to one `mosquitto_sub` (µs; ratio)",
		figure: []any{fig{paced + "deviceless/procs=auto", "µs-cpu/event"}, " vs ", fig{paced + "mosquitto-forwarding", "µs-cpu/event"}, " (", ratio{fig{paced + "deviceless/procs=auto", "µs-cpu/event"}, fig{paced + "mosquitto-forwarding", "µs-cpu/event"}}, ")"},
		target: "≤ 1×: no more CPU than mosquitto (issue 13)", checks: []check{
			atMost(ratio{fig{paced + "deviceless/procs=auto", "µs-cpu/event"}, fig{paced + "mosquitto-forwarding", "µs-cpu/event"}}, 1)}},
	{what: "same, every P kept (`--procs 0`, as go test sets GOMAXPROCS) vs mosquitto (µs; ratio)",
		figure: []any{fig{paced + "deviceless/procs=fixed", "µs-cpu/event"}, " vs ", fig{paced + "mosquitto-forwarding", "µs-cpu/event"}, " (", ratio{fig{paced + "deviceless/procs=fixed", "µs-cpu/event"}, fig{paced + "mosquitto-forwarding", "µs-cpu/event"}}, ")"}},
	{what: "one `mosquitto_pub -l`, QoS 0, into 1 rule firing on half the events vs the same publisher into mosquitto, no subscriber (events/s; lost)",
		figure: []any{fig{"BenchmarkMosquittoPubIntoRules/rules=1", "events/s"}, " vs ", fig{"BenchmarkMosquittoPubIntoRules/baseline=mosquitto", "events/s"}, " (", ratio{fig{"BenchmarkMosquittoPubIntoRules/rules=1", "events/s"}, fig{"BenchmarkMosquittoPubIntoRules/baseline=mosquitto", "events/s"}}, "); ", fig{"BenchmarkMosquittoPubIntoRules/rules=1", "lost"}, " lost"},
		target: "keep up with the publisher: ≥ 1×, 0 lost (issue 4)", checks: []check{
			atLeast(ratio{fig{"BenchmarkMosquittoPubIntoRules/rules=1", "events/s"}, fig{"BenchmarkMosquittoPubIntoRules/baseline=mosquitto", "events/s"}}, 1),
			atMost(fig{"BenchmarkMosquittoPubIntoRules/rules=1", "lost"}, 0)}},
	{what: "same, 100 rules, 10 match each event and fire on half (events/s; lost)",
		figure: []any{fig{"BenchmarkMosquittoPubIntoRules/rules=100", "events/s"}, "; ", fig{"BenchmarkMosquittoPubIntoRules/rules=100", "lost"}, " lost"}},
	{what: "16 `mosquitto_pub -q 1 -l` into the durable intake (store_sync on) vs into mosquitto (no fsync) (events/s)",
		figure: []any{fig{"BenchmarkQoS1Publishers16/deviceless/durable", "events/s"}, " vs ", fig{"BenchmarkQoS1Publishers16/mosquitto", "events/s"}, " (", ratio{fig{"BenchmarkQoS1Publishers16/deviceless/durable", "events/s"}, fig{"BenchmarkQoS1Publishers16/mosquitto", "events/s"}}, ")"},
		target: "≥ 20,000 (issue 13)", checks: []check{atLeast(fig{"BenchmarkQoS1Publishers16/deviceless/durable", "events/s"}, 20000)}},
	{what: "same 16 publishers, 1 rule firing on half the events with a publish and an invoke action, every invocation answered by an agent client, store_sync on (events/s; invocations unanswered, events lost)",
		figure: []any{fig{firing16 + "store_sync=true", "events/s"}, "; ", fig{firing16 + "store_sync=true", "unanswered"}, " of ", fig{firing16 + "store_sync=true", "fired"}, " unanswered, ", fig{firing16 + "store_sync=true", "lost"}, " lost"},
		target: "nothing lost: 0 lost, 0 unanswered", checks: []check{
			atMost(fig{firing16 + "store_sync=true", "lost"}, 0),
			atMost(fig{firing16 + "store_sync=true", "unanswered"}, 0)}},
	{what: "same, store_sync off (events/s; invocations unanswered, of them dropped by the broker; events lost)",
		figure: []any{fig{firing16 + "store_sync=false", "events/s"}, "; ", fig{firing16 + "store_sync=false", "unanswered"}, " unanswered (", fig{firing16 + "store_sync=false", "dropped"}, " dropped), ", fig{firing16 + "store_sync=false", "lost"}, " lost"},
		target: "nothing lost: 0 lost, 0 unanswered", checks: []check{
			atMost(fig{firing16 + "store_sync=false", "lost"}, 0),
			atMost(fig{firing16 + "store_sync=false", "unanswered"}, 0)}},
	{what: "one `mosquitto_pub -q 1 -l` into the durable intake, store_sync on / off (events/s)",
		figure: []any{fig{"BenchmarkDurableIntakeQoS1/store_sync=true", "events/s"}, " / ", fig{"BenchmarkDurableIntakeQoS1/store_sync=false", "events/s"}}},
	{what: "invocation round trips to an answering agent client, ≤ 100 outstanding (invocations/s; round trip p50 / p95 ms)",
		figure: append([]any{fig{roundTrip + "outstanding=100", "invocations/s"}, "; "}, p50p95(roundTrip+"outstanding=100")...),
		target: "≥ 10,000/s (issue 4)", checks: []check{atLeast(fig{roundTrip + "outstanding=100", "invocations/s"}, 10000)}},
	{what: "same, one at a time (invocations/s; round trip p50 / p95 ms)",
		figure: append([]any{fig{roundTrip + "outstanding=1", "invocations/s"}, "; "}, p50p95(roundTrip+"outstanding=1")...)},

	// edge agent on podman (go test ./edgeagent)
	{what: "agent, prepared container (created by the previous call; 500 ms apart): p50 / p95 (ms)",
		figure: p50p95("BenchmarkColdInvocation/spaced/prepare=on"),
		target: "p50 ≤ 250, below `podman run` (issue 5)", checks: []check{
			atMost(fig{"BenchmarkColdInvocation/spaced/prepare=on", "p50-ms"}, 250),
			atMost(ratio{fig{"BenchmarkColdInvocation/spaced/prepare=on", "p50-ms"}, fig{"BenchmarkPodmanRunBaseline", "p50-ms"}}, 1)}},
	{what: "agent, cold on demand (`podman.prepare: false`; 500 ms apart): p50 / p95 (ms)",
		figure: p50p95("BenchmarkColdInvocation/spaced/prepare=off"),
		target: "p50 ≤ 250, below `podman run` (issue 5)", checks: []check{
			atMost(fig{"BenchmarkColdInvocation/spaced/prepare=off", "p50-ms"}, 250),
			atMost(ratio{fig{"BenchmarkColdInvocation/spaced/prepare=off", "p50-ms"}, fig{"BenchmarkPodmanRunBaseline", "p50-ms"}}, 1)}},
	{what: "agent, cold back to back (default: each call waits for the preparation the previous one started): p50 / p95 (ms)",
		figure: p50p95("BenchmarkColdInvocation/back-to-back/prepare=on"),
		target: "p50 ≤ 250, below `podman run` (issue 5)", checks: []check{
			atMost(fig{"BenchmarkColdInvocation/back-to-back/prepare=on", "p50-ms"}, 250),
			atMost(ratio{fig{"BenchmarkColdInvocation/back-to-back/prepare=on", "p50-ms"}, fig{"BenchmarkPodmanRunBaseline", "p50-ms"}}, 1)}},
	{what: "agent, cold back to back, on demand: p50 / p95 (ms)",
		figure: p50p95("BenchmarkColdInvocation/back-to-back/prepare=off")},
	{what: "agent, warm (long-lived runner): p50 / p95 (ms)",
		figure: p50p95("BenchmarkWarmInvocation"),
		target: "p50 ≤ 20 (issue 5)", checks: []check{atMost(fig{"BenchmarkWarmInvocation", "p50-ms"}, 20)}},
	{what: "agent, python3 `run` p50 (ms): warm interpreter / warm container starting python3 per call (before) / cold, prepared",
		figure: []any{fig{"BenchmarkPython/warm", "run-p50-ms"}, " / ", fig{"BenchmarkPython/warm-process", "run-p50-ms"}, " / ", fig{"BenchmarkPython/cold", "run-p50-ms"}},
		target: "warm ≤ 10 (issue 17)", checks: []check{atMost(fig{"BenchmarkPython/warm", "run-p50-ms"}, 10)}},
	{what: "`podman run --rm` of the same function, 500 ms apart: p50 / p95 (ms)",
		figure: p50p95("BenchmarkPodmanRunBaseline")},
	{what: "agent RSS idle, bin/deviceless-agent (MB; anonymous MB)",
		figure: []any{fig{agentSlim + "warm", "rss-idle-MB"}, " (", fig{agentSlim + "warm", "rss-anon-idle-MB"}, ")"},
		target: "≤ 15 MB", checks: []check{atMost(fig{agentSlim + "warm", "rss-idle-MB"}, 15)}},
	{what: "agent RSS idle, full bin/deviceless (MB; anonymous MB)",
		figure: []any{fig{agentFull + "warm", "rss-idle-MB"}, " (", fig{agentFull + "warm", "rss-anon-idle-MB"}, ")"}},
	{what: "agent CPU at 10 invocations/s, cold / warm (% of a core)",
		figure: []any{fig{agentSlim + "cold", "cpu-%-at-10/s"}, " / ", fig{agentSlim + "warm", "cpu-%-at-10/s"}}},
	{what: "agent RSS idle, bin/deviceless-agent with podman off, after serving a C wasm module at 10/s (MB; anonymous MB)",
		figure: []any{fig{agentSlim + "wasm", "rss-idle-MB"}, " (", fig{agentSlim + "wasm", "rss-anon-idle-MB"}, ")"}},
	{what: "wasm instantiate + run in the agent's runtime, no MQTT: C / Go example p50 (ms)",
		figure: []any{fig{"BenchmarkWasmC", "p50-ms"}, " / ", fig{"BenchmarkWasmGo", "p50-ms"}}},
	{what: "wasm invocations/s on one agent through MQTT, each applying its actuation: C (concurrency 32) / Go (4)",
		figure: []any{fig{"BenchmarkWasmThroughput/module=c/concurrency=32", "inv/s"}, " / ", fig{"BenchmarkWasmThroughput/module=go/concurrency=4", "inv/s"}},
		target: "C ≥ 1,000 (issue 17)", checks: []check{atLeast(fig{"BenchmarkWasmThroughput/module=c/concurrency=32", "inv/s"}, 1000)}},

	// closed loop: publish → rules → agent → GPIO line (go test ./demo)
	{what: "closed loop, direct actuation (no function): p50 / p95 (ms)",
		figure: p50p95(closedLoop + "direct"),
		target: "p50 ≤ 2", checks: []check{atMost(fig{closedLoop + "direct", "p50-ms"}, 2)}},
	{what: "closed loop, warm function: p50 / p95 (ms)",
		figure: p50p95(closedLoop + "warm"),
		target: "p50 ≤ 20", checks: []check{atMost(fig{closedLoop + "warm", "p50-ms"}, 20)}},
	{what: "closed loop, cold function back to back (the container is made while the event waits): p50 / p95 (ms)",
		figure: p50p95(closedLoop + "cold"),
		target: "p50 ≤ 250", checks: []check{atMost(fig{closedLoop + "cold", "p50-ms"}, 250)}},
	{what: "closed loop, prepared container (events 500 ms apart): p50 / p95 (ms)",
		figure: p50p95(closedLoop + "prepared"),
		target: "p50 ≤ 250", checks: []check{atMost(fig{closedLoop + "prepared", "p50-ms"}, 250)}},
	{what: "closed loop, wasm function, C module (fresh instance per event): p50 / p95 (ms); prepared container's p50 over it",
		figure: append(p50p95(closedLoop+"wasm-c"), "; ", ratio{fig{closedLoop + "prepared", "p50-ms"}, fig{closedLoop + "wasm-c", "p50-ms"}}),
		target: "p50 ≤ 5, ≥ 10× faster than prepared (issue 17)", checks: []check{
			atMost(fig{closedLoop + "wasm-c", "p50-ms"}, 5),
			atLeast(ratio{fig{closedLoop + "prepared", "p50-ms"}, fig{closedLoop + "wasm-c", "p50-ms"}}, 10)}},
	{what: "closed loop, wasm function, Go module: p50 / p95 (ms)",
		figure: p50p95(closedLoop + "wasm-go")},

	// metrics (go test ./metrics)
	{what: "metrics `Write` on the caller's path, InfluxDB up / down (ns)",
		figure: []any{fig{"BenchmarkWrite/sink=influx/up", "ns/op"}, " / ", fig{"BenchmarkWrite/sink=influx/down", "ns/op"}},
		target: "never blocks: ≤ 1 µs either way", checks: []check{
			atMost(fig{"BenchmarkWrite/sink=influx/up", "ns/op"}, 1000),
			atMost(fig{"BenchmarkWrite/sink=influx/down", "ns/op"}, 1000)}},
	{what: "points delivered to InfluxDB 1.8 on the same cores (points/s)",
		figure: []any{fig{"BenchmarkThroughput", "points/s"}}},
}
