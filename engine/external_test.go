package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/protocol"
)

// Two engines share the events of a real mosquitto 2.0.11 through an MQTT v5 shared
// subscription: every event is handled exactly once between them.
func TestTwoEnginesShareAnExternalBroker(t *testing.T) {
	addr := startMosquitto(t)
	dir := t.TempDir()
	writeRules(t, dir, `
functions:
  echo: {runtime: sh, code: cat, timeout: 2s}
rules:
  - name: count
    on: sensors/+/t
    do: [{publish: {topic: '"seen/" + topic_parts[1]'}}]
  - name: call
    on: calls/+
    do: [{invoke: echo, args: {n: payload.n}}]
`)
	var engines []*running
	for i := 0; i < 2; i++ {
		cfg := Config{HTTP: "off", Rules: []string{dir}}
		cfg.Broker.External = "mqtt://" + addr
		cfg.Broker.SharedGroup = "deviceless"
		cfg.Broker.ClientID = fmt.Sprintf("engine-%d", i)
		engines = append(engines, startEngine(t, cfg))
	}

	const n = 2000
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"seq": %d}`, i)
	}
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-V", "mqttv5", "-t", "sensors/a/t", "-q", "1", "-l")
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	matched := func(e *running) uint64 { return e.ruleSet().Rule("count").Counters().Matched.Load() }
	eventually(t, fmt.Sprintf("%d events handled", n), func() bool { return matched(engines[0])+matched(engines[1]) >= n })
	time.Sleep(200 * time.Millisecond) // duplicates, if any, would arrive now
	a, b := matched(engines[0]), matched(engines[1])
	if a+b != n || a == 0 || b == 0 {
		t.Fatalf("engines handled %d + %d events, want %d in total and some each", a, b, n)
	}

	// An agent on the external broker: invocations from either engine reach it, and each
	// result goes back to the engine that dispatched it.
	agent := startAgent(t, addr, "ext1", nil, func(inv protocol.Invocation) *protocol.Result {
		out, _ := json.Marshal(inv.Args)
		return &protocol.Result{Status: "ok", Output: out}
	})
	eventually(t, "both engines see the agent", func() bool {
		return engines[0].registry.online() == 1 && engines[1].registry.online() == 1
	})
	for i := 0; i < 20; i++ {
		mosquittoPubAnon(t, addr, "-t", fmt.Sprintf("calls/%d", i), "-m", fmt.Sprintf(`{"n": %d}`, i), "-q", "1")
	}
	eventually(t, "20 results", func() bool {
		return len(engines[0].history.list(0))+len(engines[1].history.list(0)) == 20
	})
	for _, e := range engines {
		for _, r := range e.history.list(0) {
			if r.Status != "ok" || r.Agent != "ext1" {
				t.Fatalf("result %+v", r)
			}
		}
	}
	if len(agent.invocations()) != 20 {
		t.Fatalf("agent ran %d invocations, want 20", len(agent.invocations()))
	}

	// An external invoke request is answered once, by one engine of the group.
	app := connect(t, addr, "app", nil, nil)
	app.sub(t, "replies/app")
	app.pub(t, &paho.Publish{Topic: "deviceless/invoke/echo", QoS: 1, Payload: []byte(`{"args":{"x":1}}`),
		Properties: &paho.PublishProperties{ResponseTopic: "replies/app", CorrelationData: []byte("r1")}})
	m := app.next(t, "replies/app")
	if string(m.Properties.CorrelationData) != "r1" {
		t.Fatalf("reply %+v", m)
	}
	select {
	case extra := <-app.msgs:
		t.Fatalf("a second reply arrived: %s", extra.Payload)
	case <-time.After(300 * time.Millisecond):
	}
}

func mosquittoPubAnon(t *testing.T, addr string, args ...string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command("mosquitto_pub", append([]string{"-h", host, "-p", port, "-V", "mqttv5"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub %v: %v: %s", args, err, out)
	}
}

// With an external broker an event is acknowledged only once the engine has committed it:
// events received but not committed when the engine goes away come again to its
// persistent session; committed ones do not, even when the engine stops right after the
// commit (paho sent manual acknowledgements only from its 2 ms ack ticker, and Disconnect
// dropped the ones not sent yet: the fork in third_party/paho.golang sends them first;
// without it, this test got event 1 again 5 times out of 5).
func TestExternalAcknowledgesCommittedEvents(t *testing.T) {
	addr := startMosquitto(t)
	dir := t.TempDir()
	writeRules(t, dir, "rules:\n  - {name: r, on: 'sensors/#', do: [{publish: {topic: '\"seen\"'}}]}\n")
	cfg := Config{HTTP: "off", Rules: []string{dir}}
	cfg.Broker.External = "mqtt://" + addr
	cfg.Broker.ClientID = "engine-acks"
	run := func() (*external, func()) {
		e, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		tr := e.t.(*external)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- tr.Run(ctx) }()
		select {
		case <-tr.Ready():
		case <-time.After(deadline):
			t.Fatal("external transport not ready")
		}
		return tr, func() { cancel(); <-done }
	}
	take := func(tr *external, n int) []broker.Event {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		var got []broker.Event
		for len(got) < n {
			batch, err := tr.Events().Next(ctx)
			if err != nil {
				t.Fatalf("%d of %d events: %v", len(got), n, err)
			}
			got = append(got, batch.Events...)
		}
		return got
	}

	tr, stop := run()
	for i := 1; i <= 3; i++ {
		mosquittoPubAnon(t, addr, "-t", "sensors/x", "-m", fmt.Sprintf(`{"n": %d}`, i), "-q", "1")
	}
	evs := take(tr, 3)
	if err := (externalEvents{tr}).commit(evs[0].Seq); err != nil { // the first only
		t.Fatal(err)
	}
	stop() // at once: paho sends the acknowledgement before it disconnects

	tr2, stop2 := run()
	defer stop2()
	again := take(tr2, 2)
	if string(again[0].Payload) != `{"n": 2}` || string(again[1].Payload) != `{"n": 3}` {
		t.Fatalf("after the restart: %q, %q; want events 2 and 3 again", again[0].Payload, again[1].Payload)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if extra, err := tr2.Events().Next(ctx); err == nil {
		t.Fatalf("more events came again: %+v", extra.Events)
	}
}

// SIGTERM (Run's context ends) in the middle of a QoS 1 stream from an external broker,
// then a restart with the same persistent session: every event is evaluated exactly once
// between the two runs. The events the first run committed are acknowledged before it
// disconnects, the ones it did not evaluate (its drain budget ran out) come again.
// (TestExternalAcknowledgesCommittedEvents stops right after a commit, which this test
// rarely does: it is the one that failed without the paho fork's patch 1.)
func TestExternalStopThenRestartEvaluatesEachEventOnce(t *testing.T) {
	// mosquitto drops QoS 1 messages beyond max_queued_messages (1000) for a client that
	// is offline or slow to acknowledge; the engine's session must not lose any.
	addr := startMosquittoConf(t, "max_queued_messages 0\n")
	dir := t.TempDir()
	writeRules(t, dir, "rules:\n  - {name: r, on: 'sensors/#', do: [{publish: {topic: '\"seen\"'}}]}\n")
	cfg := Config{HTTP: "off", Rules: []string{dir}}
	cfg.Broker.External = "mqtt://" + addr
	cfg.Broker.ClientID = "engine-stop"
	run := func() (*Engine, func()) {
		e, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		select {
		case <-e.Ready():
		case err := <-done:
			t.Fatalf("engine stopped: %v", err)
		case <-time.After(deadline):
			t.Fatal("engine not ready")
		}
		return e, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	matched := func(e *Engine) uint64 { return e.ruleSet().Rule("r").Counters().Matched.Load() }

	const n = 3000
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"seq": %d}`, i)
	}
	first, stop := run()
	host, port, _ := net.SplitHostPort(addr)
	pub := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-V", "mqttv5", "-t", "sensors/a", "-q", "1", "-l")
	pub.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	published := make(chan error, 1)
	go func() {
		out, err := pub.CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
		published <- err
	}()
	eventually(t, "the stream reaching the first engine", func() bool { return matched(first) >= 200 })
	stop() // in the middle of the stream
	once := matched(first)
	if err := <-published; err != nil { // every event is with the broker now
		t.Fatalf("mosquitto_pub: %v", err)
	}

	second, stop2 := run()
	defer stop2()
	eventually(t, fmt.Sprintf("%d events evaluated by the two engines", n), func() bool { return once+matched(second) >= n })
	time.Sleep(500 * time.Millisecond) // events delivered again, if any, would arrive now
	again := matched(second)
	t.Logf("the first engine evaluated %d events before it stopped, the second %d", once, again)
	if once+again != n {
		t.Fatalf("%d + %d events evaluated, want %d: %d evaluated twice", once, again, n, once+again-n)
	}
}
