package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/protocol"
)

// benchAgent is an agent-protocol client that answers every invocation at once: an MQTT
// v5 client authenticated as an agent, which announces itself with a retained status (as
// the edge agent does, so the engine's registry learns of it from the broker) and
// publishes an ok result for each invocation on the request's response topic with its
// correlation data. It measures the engine's side of a round trip, without a runtime.
type benchAgent struct {
	id       string
	client   *paho.Client
	answered atomic.Int64
	failed   atomic.Int64 // results the broker refused
}

const benchAgentPassword = "bench-secret"

// benchAgentUser is the broker user of agent id, for Config.Broker.Users.
func benchAgentUser(b *testing.B, id string) broker.User {
	hash, err := broker.HashPassword(benchAgentPassword)
	if err != nil {
		b.Fatal(err)
	}
	return broker.User{Username: id, PasswordHash: hash, Role: broker.RoleAgent}
}

// startBenchAgent connects agent id to e's broker and waits until e's registry has it.
func startBenchAgent(b *testing.B, e *Engine, id string) *benchAgent {
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := net.Dial("tcp", e.BrokerAddr())
	if err != nil {
		b.Fatal(err)
	}
	a := &benchAgent{id: id}
	var wg sync.WaitGroup
	a.client = paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) {
			p := pr.Packet
			if p.Properties == nil || p.Properties.ResponseTopic == "" {
				return true, nil
			}
			// Answer from another goroutine: a QoS 1 publish waits for its PUBACK, which
			// this callback's goroutine reads.
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.answer(ctx, p)
			}()
			return true, nil
		},
	}})
	st, _ := json.Marshal(protocol.Status{Agent: id, Online: true, Healthy: true, Runtimes: []string{"sh"}})
	topics := protocol.Topics{}
	if _, err := a.client.Connect(ctx, &paho.Connect{ClientID: id, Username: id, UsernameFlag: true, Password: []byte(benchAgentPassword), PasswordFlag: true,
		KeepAlive: 30, CleanStart: true, WillMessage: &paho.WillMessage{Topic: topics.AgentStatus(id), Retain: true, QoS: 1, Payload: []byte(`{"agent":"` + id + `","online":false}`)}}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cancel()
		_ = a.client.Disconnect(&paho.Disconnect{})
		wg.Wait()
	})
	if _, err := a.client.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topics.AgentInvoke(id), QoS: 1}}}); err != nil {
		b.Fatal(err)
	}
	if _, err := a.client.Publish(ctx, &paho.Publish{Topic: topics.AgentStatus(id), QoS: 1, Retain: true, Payload: st}); err != nil {
		b.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); len(e.registry.selectAgents(protocol.Target{Agent: id}, "", nil)) == 0; {
		if time.Now().After(deadline) {
			b.Fatalf("the engine never registered agent %s", id)
		}
		time.Sleep(time.Millisecond)
	}
	return a
}

func (a *benchAgent) answer(ctx context.Context, p *paho.Publish) {
	var inv protocol.Invocation
	res := protocol.Result{Agent: a.id, Status: protocol.StatusOK, Output: json.RawMessage(`{"ok":true}`)}
	if err := json.Unmarshal(p.Payload, &inv); err != nil {
		res.Status, res.Error = protocol.StatusError, "malformed invocation: "+err.Error()
	}
	res.ID, res.Function, res.Rule = inv.ID, inv.Function, inv.Rule
	out, _ := json.Marshal(&res)
	if _, err := a.client.Publish(ctx, &paho.Publish{Topic: p.Properties.ResponseTopic, QoS: 1, Payload: out,
		Properties: &paho.PublishProperties{CorrelationData: p.Properties.CorrelationData, ContentType: "application/json"}}); err != nil {
		a.failed.Add(1)
		return
	}
	a.answered.Add(1)
}

// BenchmarkInvocationRoundTrip measures invocations from Engine.Invoke to their result:
// the invocation goes out as an MQTT v5 request (QoS 1, response topic, correlation data,
// message expiry) through the embedded broker over TCP to a benchAgent, whose result
// comes back the same way and completes the invocation (history, metrics, reply). At
// most `outstanding` invocations are in flight, as an agent's concurrency and queue bound
// them; outstanding=1 is the latency of one round trip on an idle engine. Reports
// invocations/s and the round trip's p50/p95 in ms.
func BenchmarkInvocationRoundTrip(b *testing.B) {
	for _, window := range []int{1, 100} {
		b.Run(fmt.Sprintf("outstanding=%d", window), func(b *testing.B) {
			dir := b.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "f.yaml"), []byte("functions:\n  f: {runtime: sh, code: cat, timeout: 60s}\n"), 0o644); err != nil {
				b.Fatal(err)
			}
			e, stop := benchEngine(b, dir, func(c *Config) { c.Broker.Users = []broker.User{benchAgentUser(b, "bench")} })
			defer stop()
			agent := startBenchAgent(b, e, "bench")
			slots := make(chan struct{}, window)
			lat := make([]time.Duration, b.N)
			var notOK atomic.Int64
			var done sync.WaitGroup
			done.Add(b.N)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				slots <- struct{}{}
				t0 := time.Now()
				err := e.Invoke("f", protocol.InvokeRequest{Args: map[string]any{"i": i}}, func(r protocol.Result) {
					lat[i] = time.Since(t0)
					if r.Status != protocol.StatusOK {
						notOK.Add(1)
					}
					<-slots
					done.Done()
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			done.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if n := notOK.Load(); n > 0 {
				b.Fatalf("%d of %d invocations did not end ok (agent answered %d, failed %d)", n, b.N, agent.answered.Load(), agent.failed.Load())
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "invocations/s")
			slices.Sort(lat)
			b.ReportMetric(float64(lat[b.N/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[min(b.N-1, b.N*95/100)].Microseconds())/1000, "p95-ms")
		})
	}
}

// BenchmarkRulesFireQoS1Publishers16 is a rule set at work under many QoS 1 publishers:
// 16 concurrent `mosquitto_pub -q 1 -l` into the durable intake, one rule matching every
// event and firing on half of them ({"c": 0.5 … 39.5}, `payload.c > 20`) with a publish
// action and an invoke action, every invocation answered by a benchAgent; with store_sync
// on (the default: every acknowledged event and every message stored for the agent is
// fsynced) and off. events/s counts from the publishers' start to the last event
// evaluated; lost are events never evaluated; unanswered are firings whose invocation the
// agent had not answered when answers stopped coming for 5 s; dropped are messages the
// broker dropped for a client too far behind (deviceless_broker_messages_dropped_total).
func BenchmarkRulesFireQoS1Publishers16(b *testing.B) {
	for _, sync := range []bool{true, false} {
		b.Run(fmt.Sprintf("store_sync=%v", sync), func(b *testing.B) {
			const publishers = 16
			dir := b.TempDir()
			rule := `functions:
  cool: {runtime: sh, code: cat, timeout: 60s}
rules:
  - name: hot
    on: sensors/+/t
    if: payload.c > 20
    do:
      - publish: {topic: '"alerts/" + topic', payload: 'payload.c'}
      - invoke: cool
        args: {c: payload.c, seq: payload.seq}
`
			if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(rule), 0o644); err != nil {
				b.Fatal(err)
			}
			store := filepath.Join(b.TempDir(), "store")
			e, stop := benchEngine(b, dir, func(c *Config) {
				c.Broker.Store, c.Broker.StoreSync = store, &sync
				c.Broker.Users = []broker.User{benchAgentUser(b, "bench")}
			})
			defer stop()
			agent := startBenchAgent(b, e, "bench")
			r := e.ruleSet().Rules[0]
			want := uint64(b.N / publishers * publishers)
			start := publishQoS1(b, e.BrokerAddr(), publishers)
			waitMatched(r, want)
			elapsed := time.Since(start)
			fired := r.Counters().Fired.Load()
			if got := r.Counters().Matched.Load(); got == want && fired != want/2 {
				b.Fatalf("%d firings for %d events, want half", fired, want)
			}
			// The answers trail the evaluation: wait for them, or for their count to stop moving.
			for last, lastChange := int64(-1), time.Now(); agent.answered.Load() < int64(fired) && time.Since(lastChange) < 5*time.Second; time.Sleep(time.Millisecond) {
				if n := agent.answered.Load(); n != last {
					last, lastChange = n, time.Now()
				}
			}
			b.StopTimer()
			got := r.Counters().Matched.Load()
			b.ReportMetric(float64(got)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(want-got), "lost")
			b.ReportMetric(float64(fired), "fired")
			b.ReportMetric(float64(agent.answered.Load()), "answered")
			b.ReportMetric(float64(int64(fired)-agent.answered.Load()), "unanswered")
			b.ReportMetric(brokerDropped(b, e), "dropped")
		})
	}
}

// brokerDropped reads deviceless_broker_messages_dropped_total (all reasons) from e's
// metrics, as /metrics would show it.
func brokerDropped(b *testing.B, e *Engine) float64 {
	mfs, err := e.metrics.reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "deviceless_broker_messages_dropped_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// publishQoS1 runs n concurrent `mosquitto_pub -q 1 -l`, each publishing b.N/n lines
// {"c": 0.5 … 39.5, "seq": i}, every other one above 20, to sensors/0/t at addr, resetting the timer first; it
// returns when all have exited, with their start time.
func publishQoS1(b *testing.B, addr string, n int) time.Time {
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		b.Fatal("mosquitto_pub not found: run `go tool task setup`")
	}
	host, port, _ := net.SplitHostPort(addr)
	per := b.N / n
	paths := make([]string, n)
	for p := range paths {
		paths[p] = filepath.Join(b.TempDir(), fmt.Sprint("lines", p))
		var sb strings.Builder
		for i := 0; i < per; i++ {
			// Odd lines above 20, even ones below: half fire however few there are.
			fmt.Fprintf(&sb, "{\"c\": %d.5, \"seq\": %d}\n", (i%2)*20+(i/2)%20, i)
		}
		if err := os.WriteFile(paths[p], []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	errs := make(chan error, n)
	for p := range paths {
		go func() {
			in, err := os.Open(paths[p])
			if err != nil {
				errs <- err
				return
			}
			defer in.Close()
			cmd := exec.Command(bin, "-h", host, "-p", port, "-i", fmt.Sprint("pub", p), "-t", "sensors/0/t", "-q", "1", "-l")
			cmd.Stdin = in
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("mosquitto_pub: %v: %s", err, out)
				return
			}
			errs <- nil
		}()
	}
	for range paths {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	return start
}
