package engine

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/internal/heapfloor"
	"github.com/deviceless/deviceless/internal/procs"
	"github.com/deviceless/deviceless/rules"
)

// benchRules writes n rules on sensors/{i%10}/t; the benchmark stream publishes on
// sensors/0/t, so n/10 of them match each event (all of them for n=1). Each fires on half
// the events (the stream's c runs over 0.5 … 39.5) and publishes an alert.
func benchRules(b *testing.B, n int) string {
	dir := b.TempDir()
	var sb strings.Builder
	sb.WriteString("rules:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&sb, "  - name: r%d\n    on: sensors/%d/t\n    if: payload.c > 20\n    do: [{publish: {topic: '\"alerts/%d\"', payload: payload.c}}]\n", i, i%10, i)
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.yaml"), []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return dir
}

func benchEngine(b *testing.B, rulesDir string, opts ...func(*Config)) (*Engine, func()) {
	return benchEngineProcs(b, rulesDir, true, opts...)
}

// benchEngineProcs is benchEngine; auto runs the GOMAXPROCS controller and the heap floor
// as `deviceless engine` does by default (--procs auto, --heap-floor 16), else GOMAXPROCS
// and GOGC stay as go test set them.
func benchEngineProcs(b *testing.B, rulesDir string, auto bool, opts ...func(*Config)) (*Engine, func()) {
	stopProcs := func() {}
	if auto {
		c, err := procs.New(procs.Config{})
		if err != nil {
			b.Fatal(err)
		}
		stop := c.Start(context.Background())
		// --heap-floor 16, the binary's default too (GOGC in the environment wins).
		f, err := heapfloor.New(heapfloor.Config{Floor: 16 << 20})
		if err != nil {
			b.Fatal(err)
		}
		stopFloor := f.Start(context.Background())
		stopProcs = func() {
			stopFloor()
			if err := stop(); err != nil {
				b.Error(err)
			}
		}
	}
	cfg := Config{HTTP: "off", Rules: []string{rulesDir}}
	cfg.Broker.Listen = "127.0.0.1:0"
	cfg.Broker.AllowAnonymous = true
	cfg.Broker.AnonymousRole = "admin"
	for _, o := range opts {
		o(&cfg)
	}
	e, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	<-e.Ready()
	return e, func() { cancel(); <-done; stopProcs() }
}

// BenchmarkMosquittoPubIntoRules drives the engine with an external QoS 0 publisher,
// `mosquitto_pub -l` reading JSON lines, through the embedded broker into the rules.
// events/s is measured from the publisher's start to the last event evaluated; lost
// counts events the rules never saw; fired the first rule's firings (half the events).
func BenchmarkMosquittoPubIntoRules(b *testing.B) {
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		b.Fatal("mosquitto_pub not found: run `go tool task setup`")
	}
	// The baseline: how fast the same publisher sends the same lines to mosquitto 2.0.11.
	b.Run("baseline=mosquitto", func(b *testing.B) {
		start := publishLines(b, bin, startMosquitto(b), "0")
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	})
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			e, stop := benchEngine(b, benchRules(b, n))
			defer stop()
			r0 := e.ruleSet().Rules[0]
			start := publishLines(b, bin, e.BrokerAddr(), "0")
			waitMatched(r0, uint64(b.N))
			elapsed := time.Since(start)
			b.StopTimer()
			got := r0.Counters().Matched.Load()
			b.ReportMetric(float64(got)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(uint64(b.N)-got), "lost")
			b.ReportMetric(float64(e.events.Stats().Dropped), "shed")
			b.ReportMetric(float64(r0.Counters().Fired.Load()), "fired")
		})
	}
}

// BenchmarkDurableIntakeQoS1 drives an engine with a store (so its event intake is
// durable: every QoS 1 event is journaled before its PUBACK) with `mosquitto_pub -q 1 -l`,
// one publisher, with store_sync on (an fsync per acknowledgement, shared by concurrent
// publishers) and off (a write(2): survives a SIGKILL, not a power cut).
func BenchmarkDurableIntakeQoS1(b *testing.B) {
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		b.Fatal("mosquitto_pub not found: run `go tool task setup`")
	}
	for _, sync := range []bool{true, false} {
		b.Run(fmt.Sprintf("store_sync=%v", sync), func(b *testing.B) {
			store := filepath.Join(b.TempDir(), "store")
			e, stop := benchEngine(b, benchRules(b, 1), func(c *Config) {
				c.Broker.Store, c.Broker.StoreSync = store, &sync
			})
			defer stop()
			r0 := e.ruleSet().Rules[0]
			start := publishLines(b, bin, e.BrokerAddr(), "1")
			for r0.Counters().Matched.Load() < uint64(b.N) {
				if time.Since(start) > 5*time.Minute {
					b.Fatalf("matched %d of %d", r0.Counters().Matched.Load(), b.N)
				}
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// publishLines has `mosquitto_pub -l` publish b.N JSON events to sensors/0/t at addr with
// qos, resetting the timer first; it returns when the publisher exits, with its start time.
func publishLines(b *testing.B, bin, addr, qos string) time.Time {
	lines := writeLines(b)
	host, port, _ := net.SplitHostPort(addr)
	in, err := os.Open(lines)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	cmd := exec.Command(bin, "-h", host, "-p", port, "-t", "sensors/0/t", "-q", qos, "-l")
	cmd.Stdin = in
	b.ResetTimer()
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	return start
}

// writeLines writes b.N JSON events, one per line, for mosquitto_pub -l.
func writeLines(b *testing.B) string {
	lines := filepath.Join(b.TempDir(), "lines")
	f, err := os.Create(lines)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := 0; i < b.N; i++ {
		fmt.Fprintf(w, "{\"c\": %d.5, \"seq\": %d}\n", i%40, i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	return lines
}

// startMosquitto runs mosquitto on a free loopback port for the duration of b.
func startMosquitto(b testing.TB) string { return startMosquittoConf(b, "") }

// startMosquittoConf starts mosquitto with more lines of configuration.
func startMosquittoConf(b testing.TB, extra string) string {
	bin := "/usr/sbin/mosquitto"
	if _, err := os.Stat(bin); err != nil {
		b.Fatal("mosquitto not found: run `go tool task setup`")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(b.TempDir(), "mosquitto.conf")
	os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n"+extra), 0o644)
	cmd := exec.Command(bin, "-c", conf)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if i > 500 {
			b.Fatalf("mosquitto did not listen on %s", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkFullRate is issue 13's workload: b.N QoS 0 JSON events {"temp":N,"seq":i}, half
// above the threshold, from one `mosquitto_pub -l` as fast as it goes, into one rule
// `if: payload.temp > 30` with a publish action — side by side with mosquitto 2.0.11
// forwarding the same stream to one subscriber (`mosquitto_sub`), in the same run.
// events/s counts from the publisher's start to the last event evaluated (delivered, for
// mosquitto); lost are events never evaluated (delivered); shed are the ones the intake
// dropped (overflow: shed only).
func BenchmarkFullRate(b *testing.B) {
	pubBin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		b.Fatal("mosquitto_pub not found: run `go tool task setup`")
	}
	subBin, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		b.Fatal("mosquitto_sub not found: run `go tool task setup`")
	}
	b.Run("mosquitto-forwarding", func(b *testing.B) {
		addr := startMosquitto(b)
		got := subscribeCount(b, pubBin, subBin, addr, "sensors/0/t", b.N)
		start := publishTempLines(b, pubBin, addr)
		n := <-got
		elapsed := time.Since(start)
		b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(b.N-n), "lost")
	})
	// workers 0 is the default (GOMAXPROCS); 1 the sequential event loop, for comparison.
	for _, v := range []struct {
		overflow string
		workers  int
	}{{"backpressure", 0}, {"backpressure", 1}, {"shed", 0}} {
		overflow, name := v.overflow, "deviceless/overflow="+v.overflow
		if v.workers != 0 {
			name += fmt.Sprintf("/workers=%d", v.workers)
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			rule := "rules:\n  - name: hot\n    on: sensors/+/t\n    if: payload.temp > 30\n    do: [{publish: {topic: '\"alerts/hot\"'}}]\n"
			if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(rule), 0o644); err != nil {
				b.Fatal(err)
			}
			e, stop := benchEngine(b, dir, func(c *Config) { c.Intake.Overflow, c.Workers = broker.Overflow(overflow), v.workers })
			defer stop()
			r := e.ruleSet().Rules[0]
			start := publishTempLines(b, pubBin, e.BrokerAddr())
			waitMatched(r, uint64(b.N))
			elapsed := time.Since(start)
			b.StopTimer()
			got := r.Counters().Matched.Load()
			b.ReportMetric(float64(got)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(uint64(b.N)-got), "lost")
			b.ReportMetric(float64(e.events.Stats().Dropped), "shed")
			b.ReportMetric(float64(r.Counters().Fired.Load()), "fired")
		})
	}
}

// publishTempLines publishes b.N lines {"temp":N,"seq":i} (half above 30) with
// mosquitto_pub -l at QoS 0 and returns when it started.
func publishTempLines(b *testing.B, bin, addr string) time.Time {
	path := filepath.Join(b.TempDir(), "temps")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := 0; i < b.N; i++ {
		fmt.Fprintf(w, "{\"temp\":%d,\"seq\":%d}\n", 20+(i%2)*20, i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	in, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "-h", host, "-p", port, "-t", "sensors/0/t", "-q", "0", "-l")
	cmd.Stdin = in
	b.ResetTimer()
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	return start
}

// waitSubscribed publishes a probe until the subscriber has printed one.
func waitSubscribed(b *testing.B, pubBin, host, port string, ready <-chan struct{}) {
	for {
		if out, err := exec.Command(pubBin, "-h", host, "-p", port, "-t", "probe", "-m", "probe", "-q", "1").CombinedOutput(); err != nil {
			b.Fatalf("probe: %v: %s", err, out)
		}
		select {
		case <-ready:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// BenchmarkQoS1Publishers16 is the durable intake (store_sync on: every acknowledged
// event is on disk) under 16 concurrent `mosquitto_pub -q 1 -l` publishers, beside
// mosquitto 2.0.11's QoS 1 (no fsync) with the same publishers, in the same run.
// Group commit lets the publishers waiting at one moment share one fsync.
func BenchmarkQoS1Publishers16(b *testing.B) {
	const publishers = 16
	publishAll := func(b *testing.B, addr string) time.Time { return publishQoS1(b, addr, publishers) }
	b.Run("mosquitto", func(b *testing.B) {
		start := publishAll(b, startMosquitto(b))
		b.ReportMetric(float64(b.N/publishers*publishers)/time.Since(start).Seconds(), "events/s")
	})
	b.Run("deviceless/durable", func(b *testing.B) {
		store := filepath.Join(b.TempDir(), "store")
		sync := true
		e, stop := benchEngine(b, benchRules(b, 1), func(c *Config) { c.Broker.Store, c.Broker.StoreSync = store, &sync })
		defer stop()
		r0 := e.ruleSet().Rules[0]
		start := publishAll(b, e.BrokerAddr())
		want := uint64(b.N / publishers * publishers)
		for r0.Counters().Matched.Load() < want {
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("matched %d of %d", r0.Counters().Matched.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
		b.ReportMetric(float64(want)/time.Since(start).Seconds(), "events/s")
	})
}

// waitMatched waits for rule r to see n events, or for its count to stop moving for a
// second (the rest were lost).
func waitMatched(r *rules.Rule, n uint64) {
	last, lastChange := uint64(0), time.Now()
	for {
		got := r.Counters().Matched.Load()
		if got >= n {
			return
		}
		if got != last {
			last, lastChange = got, time.Now()
		} else if time.Since(lastChange) > time.Second {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkExternalQoS1 measures one engine on an external mosquitto 2.0.11 with a
// persistent session: b.N QoS 1 events from one `mosquitto_pub -l`, one rule with a publish
// action; events/s from the first publish until every event was evaluated. (The
// acknowledgement window and the 2 ms ack ticker bound it; docs/scale.md.)
func BenchmarkExternalQoS1(b *testing.B) {
	addr := startMosquittoConf(b, "max_queued_messages 0\n")
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte("rules:\n  - {name: r, on: 'sensors/#', do: [{publish: {topic: '\"seen\"', qos: 1}}]}\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg := Config{HTTP: "off", Rules: []string{dir}}
	cfg.Broker.External = "mqtt://" + addr
	cfg.Broker.ClientID = "engine-bench"
	e, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-e.Ready()
	lines := make([]string, b.N)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"seq": %d}`, i)
	}
	host, port, _ := net.SplitHostPort(addr)
	pub := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-V", "mqttv5", "-t", "sensors/a", "-q", "1", "-l")
	pub.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	b.ResetTimer()
	start := time.Now()
	if out, err := pub.CombinedOutput(); err != nil {
		b.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	for e.ruleSet().Rule("r").Counters().Matched.Load() < uint64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
