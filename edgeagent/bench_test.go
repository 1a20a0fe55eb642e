package edgeagent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/edgeagent/internal/testenv"
	"github.com/deviceless/deviceless/protocol"
)

// The benchmarks time whole invocations as the engine sees them: publish on the agent's
// invoke topic with a response topic, until the result arrives. Run them with a fixed
// count, e.g. -benchtime 30x; p50/p95 are reported in milliseconds.

const benchCode = `read -r inv; echo '{"ok":true}'`

func reportPercentiles(b *testing.B, d []time.Duration) {
	b.Helper()
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	pct := func(p float64) float64 {
		i := int(float64(len(d)-1) * p)
		return float64(d[i].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.95), "p95-ms")
	b.ReportMetric(0, "ns/op") // the mean of a few slow container starts says little
}

type benchMode struct {
	warm    bool
	prepare bool          // podman.prepare: the next container is created ahead of time
	gap     time.Duration // pause between invocations (not timed); 0 = back to back
}

func benchInvocations(b *testing.B, mode benchMode) {
	broker := startBroker(b)
	cl := newClient(b, broker, "deviceless/agents/+/status", "test/replies/#")
	cfg := testConfig(b, broker)
	cfg.Concurrency = 1
	cfg.Podman.Prepare = &mode.prepare
	fn := protocol.FunctionSpec{Runtime: "sh", Code: benchCode}
	if mode.warm {
		fn.Warm = &protocol.Warm{Idle: protocol.Duration(time.Minute), MaxUses: 100000}
	}
	cfg.Functions = map[string]protocol.FunctionSpec{"bench": fn}
	startAgent(b, cfg, cl)
	// One invocation outside the measurement: image in page cache, runner started when warm.
	if r := cl.invoke(cfg.ID, protocol.Invocation{ID: "bench-warmup", Function: "bench"}); r.Status != protocol.StatusOK {
		b.Fatalf("warm-up: %+v", r)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		if mode.gap > 0 {
			b.StopTimer()
			time.Sleep(mode.gap)
			b.StartTimer()
		}
		start := time.Now()
		r := cl.invoke(cfg.ID, protocol.Invocation{ID: fmt.Sprintf("bench-%d", i), Function: "bench"})
		lat = append(lat, time.Since(start))
		if r.Status != protocol.StatusOK || r.Cold == mode.warm {
			b.Fatalf("invocation %d: %+v", i, r)
		}
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkColdInvocation: a new container per invocation (create, attach, start, exit,
// inspect; removal after the reply), through MQTT and the agent. back-to-back sends the
// next invocation as soon as the result arrives; spaced waits 500 ms in between (an event
// stream below saturation). prepare=on is the default: the container for the next
// invocation is created and attached ahead of time, so an invocation only starts it.
func BenchmarkColdInvocation(b *testing.B) {
	b.Run("spaced/prepare=on", func(b *testing.B) { benchInvocations(b, benchMode{prepare: true, gap: 500 * time.Millisecond}) })
	b.Run("spaced/prepare=off", func(b *testing.B) { benchInvocations(b, benchMode{gap: 500 * time.Millisecond}) })
	b.Run("back-to-back/prepare=on", func(b *testing.B) { benchInvocations(b, benchMode{prepare: true}) })
	b.Run("back-to-back/prepare=off", func(b *testing.B) { benchInvocations(b, benchMode{}) })
}

// BenchmarkWarmInvocation: the same function in warm mode (one long-lived runner).
func BenchmarkWarmInvocation(b *testing.B) { benchInvocations(b, benchMode{warm: true}) }

// BenchmarkPodmanRunBaseline: `podman run --rm -i` of the same image and code, with the same
// isolation flags, as a user would without the agent.
func BenchmarkPodmanRunBaseline(b *testing.B) {
	testenv.PodmanSocket(b) // the service's containers.conf is the one we use here too
	conf, err := filepath.Abs("../test/podman/containers.conf")
	if err != nil {
		b.Fatal(err)
	}
	run := func() {
		cmd := exec.Command("podman", "run", "--rm", "-i", "--network", "none", "--read-only", "--cap-drop", "all",
			"--security-opt", "no-new-privileges", "--memory", "128m", "--pids-limit", "64",
			"localhost/deviceless/sh", "sh", "-c", benchCode)
		cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+conf)
		cmd.Stdin = strings.NewReader(`{"id":"x"}` + "\n")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte(`"ok"`)) {
			b.Fatalf("podman run: %v: %s", err, out)
		}
	}
	run()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		time.Sleep(500 * time.Millisecond) // as the spaced cold benchmark
		b.StartTimer()
		start := time.Now()
		run()
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkAgentResources builds the real binary (CGO_ENABLED=0 go build ./cmd/deviceless,
// as `go tool task build` does), runs `deviceless agent -c agent.yaml` as a child process and
// reports its resident memory when idle (after one invocation and 2 s of quiet) and its CPU
// use while serving 10 invocations per second. b.N is ignored beyond the first round: use
// -benchtime 1x.
//
// Modes: cold and warm run a sh function in podman (the agent's wasm runtime on, as by
// default, unused); wasm runs examples/wasm/c-fan with podman disabled (the idle RSS then
// includes the compiled module and wazero's runtime).
//
// Two builds: bin/deviceless-agent (`go tool task build:agent`, tag agentonly: the agent
// alone, what a device runs) and the full bin/deviceless (engine, broker, rules, demo too).
func BenchmarkAgentResources(b *testing.B) {
	for _, build := range []struct{ name, tag string }{{"deviceless-agent", "agentonly"}, {"deviceless", ""}} {
		exe := buildAgentBinary(b, build.tag)
		b.Run("binary="+build.name+"/cold", func(b *testing.B) { benchResources(b, exe, "cold") })
		b.Run("binary="+build.name+"/warm", func(b *testing.B) { benchResources(b, exe, "warm") })
		b.Run("binary="+build.name+"/wasm", func(b *testing.B) { benchResources(b, exe, "wasm") })
	}
}

// buildAgentBinary builds ./cmd/deviceless, with tag added to the build tags of GOFLAGS,
// into a temporary folder and returns its path.
func buildAgentBinary(b *testing.B, tag string) string {
	b.Helper()
	exe := filepath.Join(b.TempDir(), "deviceless")
	args := []string{"build", "-o", exe}
	if tag != "" {
		tags := tag
		for _, f := range strings.Fields(os.Getenv("GOFLAGS")) {
			if t, ok := strings.CutPrefix(f, "-tags="); ok {
				tags = t + "," + tag
			}
		}
		args = append(args, "-tags="+tags)
	}
	cmd := exec.Command("go", append(args, "./cmd/deviceless")...)
	cmd.Dir = ".." // the module root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build ./cmd/deviceless: %v\n%s", err, out)
	}
	if fi, err := os.Stat(exe); err == nil {
		b.Logf("binary %s: %.1f MB", exe, float64(fi.Size())/(1<<20))
	}
	return exe
}

// agentYAML is the agent.yaml of BenchmarkAgentResources; module is the wasm mode's.
func agentYAML(cfg Config, mode, module string) string {
	fn := fmt.Sprintf("    runtime: sh\n    code: %q\n", benchCode)
	podman := fmt.Sprintf("{socket: %q, runtime: runc}", cfg.Podman.Socket)
	switch mode {
	case "warm":
		fn += "    warm: {idle: 1m}\n"
	case "wasm":
		fn = fmt.Sprintf("    runtime: wasm\n    module: %q\ngpio: {driver: sim, lines: {fan: {offset: 17}}}\n", module)
		podman = "{enabled: false}"
	}
	return fmt.Sprintf(`id: %s
broker: %s
podman: %s
state: %q
concurrency: 4
queue: 100
functions:
  bench:
%s`, cfg.ID, cfg.Broker, podman, cfg.State, fn)
}

func benchResources(b *testing.B, exe string, mode string) {
	broker := startBroker(b)
	cl := newClient(b, broker, "deviceless/agents/+/status", "test/replies/#")
	cfg := testConfig(b, broker)
	conf := filepath.Join(b.TempDir(), "agent.yaml")
	module := ""
	if mode == "wasm" {
		module = filepath.Join(testenv.WasmExamples(b), "c-fan.wasm")
	}
	if err := os.WriteFile(conf, []byte(agentYAML(cfg, mode, module)), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "agent", "-c", conf, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	pid := cmd.Process.Pid
	cl.status(cfg.ID, func(s protocol.Status) bool { return s.Online })
	if r := cl.invoke(cfg.ID, protocol.Invocation{ID: "res-warmup", Function: "bench"}); r.Status != protocol.StatusOK {
		b.Fatalf("warm-up: %+v", r)
	}
	time.Sleep(2 * time.Second) // let the agent settle before reading its idle RSS
	rssIdle := rssKB(b, pid)
	anonIdle := procStatusKB(b, pid, "RssAnon:")
	fileIdle := procStatusKB(b, pid, "RssFile:")

	const rate, seconds = 10, 5
	cpu0, t0 := cpuTicks(b, pid), time.Now()
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	type timed struct {
		r protocol.Result
		d time.Duration
	}
	results := make(chan timed, rate*seconds)
	for i := range rate * seconds {
		<-tick.C
		inv, _ := json.Marshal(protocol.Invocation{ID: fmt.Sprintf("res-%d", i), Function: "bench"})
		start := time.Now()
		corr := cl.send(cfg.ID, inv)
		go func() {
			m, ok := cl.wait(corr)
			var r protocol.Result
			if ok {
				_ = json.Unmarshal(m.Payload, &r)
			}
			results <- timed{r, time.Since(start)}
		}()
	}
	var lat []time.Duration
	for range rate * seconds {
		t := <-results
		if t.r.Status != protocol.StatusOK {
			b.Fatalf("invocation: %+v", t.r)
		}
		lat = append(lat, t.d)
	}
	cpu1, elapsed := cpuTicks(b, pid), time.Since(t0)
	rssBusy := rssKB(b, pid)
	reportPercentiles(b, lat)
	const clockTicks = 100 // USER_HZ on Linux
	b.ReportMetric(float64(rssIdle)/1024, "rss-idle-MB")
	b.ReportMetric(float64(anonIdle)/1024, "rss-anon-idle-MB")
	b.ReportMetric(float64(fileIdle)/1024, "rss-file-idle-MB")
	b.ReportMetric(float64(rssBusy)/1024, "rss-busy-MB")
	b.ReportMetric(100*float64(cpu1-cpu0)/clockTicks/elapsed.Seconds(), "cpu-%-at-10/s")
	b.ReportMetric(0, "ns/op")
}

func rssKB(b *testing.B, pid int) int64 { return procStatusKB(b, pid, "VmRSS:") }

func procStatusKB(b *testing.B, pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	b.Fatal("no " + field)
	return 0
}

func cpuTicks(b *testing.B, pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start at state.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return utime + stime
}

// BenchmarkWasmThroughput: wasm invocations per second on one agent through MQTT, on the
// machine's 2 cores: 64 invocations in flight at a time, each a fresh instance of
// examples/wasm/c-fan (C) or go-echo (Go), its actuation applied (and recorded on disk
// first, as every function's actuations are) and its result published. concurrency 32 for
// the C module: an instance of it costs microseconds and 128 KiB, so the workers mostly
// wait for the disk (one fsync serves all that wait together) and the broker; 4 for the Go
// one (≈ 5 ms of CPU and megabytes per instance). Run with a fixed count, e.g.
// -benchtime 5000x.
func BenchmarkWasmThroughput(b *testing.B) {
	examples := testenv.WasmExamples(b)
	for _, m := range []struct {
		name, file  string
		concurrency int
	}{{"c", "c-fan.wasm", 32}, {"go", "go-echo.wasm", 4}} {
		b.Run(fmt.Sprintf("module=%s/concurrency=%d", m.name, m.concurrency), func(b *testing.B) {
			broker := startBroker(b)
			cl := newClient(b, broker, "deviceless/agents/+/status")
			cfg := testConfig(b, broker)
			cfg.Podman.Enabled = new(false)
			cfg.Queue, cfg.Concurrency = 128, m.concurrency
			cfg.Functions = map[string]protocol.FunctionSpec{"fan": {Runtime: protocol.RuntimeWasm, Module: filepath.Join(examples, m.file)}}
			startAgent(b, cfg, cl)
			rc := newReplyClient(b, broker)
			const window = 64
			call := func(i int) error {
				inv, _ := json.Marshal(protocol.Invocation{ID: fmt.Sprintf("wasm-%d", i), Function: "fan", Args: map[string]any{"value": i & 1}})
				r, err := rc.call(cfg.ID, inv)
				if err == nil && r.Status != protocol.StatusOK {
					err = fmt.Errorf("invocation %d: %s %q", i, r.Status, r.Error)
				}
				return err
			}
			if err := call(-1); err != nil { // fetch and compile outside the measurement
				b.Fatal(err)
			}
			sem := make(chan struct{}, window)
			errs := make(chan error, 1)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				sem <- struct{}{}
				go func() {
					defer func() { <-sem }()
					if err := call(i); err != nil {
						select {
						case errs <- err:
						default:
						}
					}
				}()
			}
			for range window {
				sem <- struct{}{}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			select {
			case err := <-errs:
				b.Fatal(err)
			default:
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "inv/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// replyClient sends invocations as the engine does and hands each result to its caller by
// correlation data (the harness's client keeps every message, for tests that look back).
type replyClient struct {
	c       *paho.Client
	mu      sync.Mutex
	waiting map[string]chan *paho.Publish
	seq     atomic.Int64
}

func newReplyClient(b *testing.B, addr string) *replyClient {
	b.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	rc := &replyClient{waiting: map[string]chan *paho.Publish{}}
	rc.c = paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			if pr.Packet.Properties != nil {
				rc.mu.Lock()
				ch := rc.waiting[string(pr.Packet.Properties.CorrelationData)]
				delete(rc.waiting, string(pr.Packet.Properties.CorrelationData))
				rc.mu.Unlock()
				if ch != nil {
					ch <- pr.Packet
				}
			}
			return true, nil
		}}})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := rc.c.Connect(ctx, &paho.Connect{KeepAlive: 30, ClientID: fmt.Sprintf("replies-%p", rc), CleanStart: true}); err != nil {
		b.Fatal(err)
	}
	if _, err := rc.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "bench/replies", QoS: 1}}}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rc.c.Disconnect(&paho.Disconnect{}) })
	return rc
}

func (rc *replyClient) call(agent string, inv []byte) (protocol.Result, error) {
	corr := strconv.FormatInt(rc.seq.Add(1), 10)
	ch := make(chan *paho.Publish, 1)
	rc.mu.Lock()
	rc.waiting[corr] = ch
	rc.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := rc.c.Publish(ctx, &paho.Publish{Topic: protocol.Topics{}.AgentInvoke(agent), QoS: 1, Payload: inv,
		Properties: &paho.PublishProperties{ResponseTopic: "bench/replies", CorrelationData: []byte(corr)}}); err != nil {
		return protocol.Result{}, err
	}
	var r protocol.Result
	select {
	case m := <-ch:
		return r, json.Unmarshal(m.Payload, &r)
	case <-ctx.Done():
		return r, fmt.Errorf("no result within %s", wait)
	}
}
