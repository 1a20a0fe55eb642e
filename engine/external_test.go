package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"sync"
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
		cfg.API.Tokens = []APIToken{{Name: "app", Hash: HashAPIToken(appToken), Role: broker.RoleClient}}
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

	// An external invoke request is answered once, by one engine of the group, in the
	// response space of the API token it carries.
	app := connect(t, addr, "app", nil, nil)
	reply := "deviceless/responses/app/r"
	app.sub(t, reply)
	app.pub(t, &paho.Publish{Topic: "deviceless/invoke/echo", QoS: 1, Payload: []byte(`{"args":{"x":1}}`),
		Properties: &paho.PublishProperties{ResponseTopic: reply, CorrelationData: []byte("r1"),
			User: paho.UserProperties{{Key: tokenProperty, Value: appToken}}}})
	m := app.next(t, reply)
	if string(m.Properties.CorrelationData) != "r1" {
		t.Fatalf("reply %+v", m)
	}
	select {
	case extra := <-app.msgs:
		t.Fatalf("a second reply arrived: %s", extra.Payload)
	case <-time.After(300 * time.Millisecond):
	}
}

// appToken is the API token of the client "app" of the external engines.
const appToken = "dl_token-of-app"

// Issue 12: an external broker does not tell the engine who published a request, and the
// engine used to answer on any response topic: one request with the response topic of an
// agent's status marked that agent offline. Now a request that wants an answer must carry
// an API token (user property deviceless-token) of role client or admin, and its response
// topic must lie in that token's response space, {prefix}/responses/{token name}/...;
// other requests are not run. The requests are mosquitto_pub's, as anyone on the broker.
func TestExternalInvokeAnswersOnlyInTheTokensSpace(t *testing.T) {
	addr := startMosquitto(t)
	dir := t.TempDir()
	writeRules(t, dir, "functions:\n  echo: {runtime: sh, code: cat, timeout: 2s}\n")
	cfg := Config{HTTP: "off", Rules: []string{dir}}
	cfg.API.Tokens = []APIToken{
		{Name: "app", Hash: HashAPIToken(appToken), Role: broker.RoleClient},
		{Name: "grafana", Hash: HashAPIToken("dl_token-of-grafana"), Role: RoleViewer},
	}
	cfg.Broker.External = "mqtt://" + addr
	e := startEngine(t, cfg)
	agent := startAgent(t, addr, "ext1", nil, ok(`"ran"`))
	eventually(t, "the agent online", func() bool { return e.registry.online() == 1 })
	watch := connect(t, addr, "watch", nil, nil)
	watch.sub(t, "#")
	request := func(responseTopic, token, correlation string) {
		t.Helper()
		args := []string{"-t", "deviceless/invoke/echo", "-q", "1", "-m", `{"args":{"n":1}}`,
			"-D", "publish", "response-topic", responseTopic, "-D", "publish", "correlation-data", correlation}
		if token != "" {
			args = append(args, "-D", "publish", "user-property", tokenProperty, token)
		}
		mosquittoPubAnon(t, addr, args...)
	}
	request("deviceless/agents/ext1/status", "", "bad-1")                     // marked ext1 offline
	request("deviceless/agents/ext1/status", appToken, "bad-2")               // a token does not make it a response space
	request("deviceless/responses/app/r", "", "bad-3")                        // no token
	request("deviceless/responses/app/r", "dl_wrong", "bad-4")                // an unknown token
	request("deviceless/responses/other/r", appToken, "bad-5")                // another's space
	request("app/r", appToken, "bad-6")                                       // outside the prefix
	request("deviceless/responses/grafana/r", "dl_token-of-grafana", "bad-7") // a viewer invokes nothing
	request("deviceless/responses/app/r", appToken, "good")
	for {
		m := watch.next(t, "deviceless/")
		if m.Properties == nil || strings.HasPrefix(m.Topic, "deviceless/invoke/") ||
			(string(m.Properties.CorrelationData) != "good" && !strings.HasPrefix(string(m.Properties.CorrelationData), "bad-")) {
			continue
		}
		if m.Topic != "deviceless/responses/app/r" || string(m.Properties.CorrelationData) != "good" {
			t.Fatalf("answered on %s (correlation %q): %s", m.Topic, m.Properties.CorrelationData, m.Payload)
		}
		break
	}
	if e.registry.online() != 1 {
		t.Fatal("a request's answer marked the agent offline")
	}
	if n := len(agent.invocations()); n != 1 {
		t.Fatalf("the agent ran %d invocations, want 1 (refused requests are not run)", n)
	}
	if a, b := testutilValue(e, "deviceless_invoke_refused_total", "response_topic"), testutilValue(e, "deviceless_invoke_refused_total", "token"); a != 4 || b != 3 {
		t.Fatalf("refusals counted: response_topic %v, token %v; want 4 and 3", a, b)
	}
	// A request that wants no answer needs no token (the broker's ACL decides who may send it).
	mosquittoPubAnon(t, addr, "-t", "deviceless/invoke/echo", "-q", "1", "-m", `{}`)
	eventually(t, "the request without an answer run", func() bool { return len(agent.invocations()) == 2 })
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
func TestExternalStopThenRestartLosesNoEvent(t *testing.T) {
	// mosquitto drops QoS 1 messages beyond max_queued_messages (1000) for a client that
	// is offline or slow to acknowledge; the engine's session must not lose any.
	addr := startMosquittoConf(t, "max_queued_messages 0\n")
	dir := t.TempDir()
	writeRules(t, dir, "rules:\n  - {name: r, on: 'sensors/#', do: [{publish: {topic: '\"seen\"'}}]}\n")
	cfg := Config{HTTP: "off", Rules: []string{dir}}
	cfg.Broker.External = "mqtt://" + addr
	cfg.Broker.ClientID = "engine-stop"
	var recs [2]*recordingSource // per run: the event IDs by payload, as the event loop took them
	runs := 0
	run := func() (*Engine, func()) {
		e, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		rec := &recordingSource{eventSource: e.events, topic: "sensors/a", ids: map[string]string{}}
		e.events, recs[runs] = rec, rec
		runs++
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
	// A last event behind the stream: the session's events (those delivered again among
	// them) come before it, so once it is evaluated, every repeat would have been.
	mosquittoPubAnon(t, addr, "-t", "sensors/a", "-m", `{"seq": -1}`, "-q", "1")
	eventually(t, "the last event evaluated", func() bool {
		_, seen := recs[1].snapshot()[`{"seq": -1}`]
		return seen && once+matched(second) >= n+1
	})
	again := matched(second) - 1
	t.Logf("the first engine evaluated %d events before it stopped, the second %d", once, again)
	// Exactly once across the stop: the first engine acknowledges what it evaluated before
	// it disconnects (TestExternalAcknowledgesCommittedEvents), and waits for mosquitto to
	// close the connection (the paho fork's patch 2: closing with mosquitto's messages
	// unread reset the connection and dropped the last acknowledgements, 181 of 3,000
	// evaluated twice in a CI run). The acknowledgements an event's written actions release
	// reach paho before the stop sees the write (sentQueue.done; handed on after it, 18 to
	// 118 of 3,000 came again in 4 of 11 runs).
	if once+again < n {
		t.Fatalf("%d + %d events evaluated, want %d: %d lost", once, again, n, n-once-again)
	}
	if once+again > n {
		t.Errorf("%d events evaluated twice across the stop", once+again-n)
	}
	// Were one evaluated twice, it must be harmless at the agents: an event delivered to
	// both runs has the same ID in both (the delivery's, engine/external_ids.go), so its
	// invocations and actuations carry the same ids, which agents answer from memory.
	both := 0
	ids0, ids1 := recs[0].snapshot(), recs[1].snapshot()
	for payload, id := range ids1 {
		if first, ok := ids0[payload]; ok {
			both++
			if id != first || id == "" {
				t.Fatalf("event %s: ID %q in the first run, %q in the second", payload, first, id)
			}
		}
	}
	if twice := int(once+again) - n; both < twice {
		t.Fatalf("%d events evaluated twice, but only %d were delivered to both runs", twice, both)
	}
	t.Logf("%d events delivered to both runs, each with the same ID", both)
}

// recordingSource records the ID of every event on topic the event loop takes, by payload.
type recordingSource struct {
	eventSource
	topic string
	mu    sync.Mutex
	ids   map[string]string
}

func (r *recordingSource) Next(ctx context.Context) (eventBatch, error) {
	b, err := r.eventSource.Next(ctx)
	r.mu.Lock()
	for _, ev := range b.Events {
		if ev.Topic == r.topic {
			r.ids[string(ev.Payload)] = ev.ID
		}
	}
	r.mu.Unlock()
	return b, err
}

func (r *recordingSource) snapshot() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.ids)
}

// TestExternalFloodStaysBounded: with an external broker (mosquitto 2.0.11 with an
// in-flight limit of its own above the engine's, and room to queue), a QoS 1 flood
// reaches the engine only about as fast as it commits — the engine announces a Receive
// Maximum of intake_buffer and acknowledges at commit (mosquitto overshoots it by a few
// once acknowledgements flow; beyond the queue's bound such events wait) — and nothing is
// lost; a QoS 0 flood, which MQTT gives no flow
// control, is shed beyond intake_buffer and counted; a message over max_packet_size (the
// CONNECT's Maximum Packet Size) is not sent to the engine at all. The queue never holds
// more than intake_buffer QoS 1 events plus intake_buffer QoS 0 ones.
func TestExternalFloodStaysBounded(t *testing.T) {
	addr := startMosquittoConf(t, "max_inflight_messages 1000\nmax_queued_messages 100000\n")
	dir := t.TempDir()
	writeRules(t, dir, "rules:\n  - {name: r, on: 'sensors/#', do: [{publish: {topic: '\"seen\"'}}]}\n")
	cfg := Config{HTTP: "off", Rules: []string{dir}}
	cfg.Broker.External = "mqtt://" + addr
	cfg.Broker.ClientID = "engine-flood"
	const buffer = 100
	cfg.Broker.Limits.IntakeBuffer = buffer
	cfg.Broker.Limits.MaxPacketSize = 1024
	e, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := e.t.(*external)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-tr.Ready():
	case <-time.After(deadline):
		t.Fatal("external transport not ready")
	}
	lines := func(n int, qos string) {
		t.Helper()
		host, port, _ := net.SplitHostPort(addr)
		var sb strings.Builder
		for i := range n {
			fmt.Fprintf(&sb, `{"n": %d}`+"\n", i)
		}
		pub := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-V", "mqttv5", "-t", "sensors/flood", "-q", qos, "-l")
		pub.Stdin = strings.NewReader(sb.String())
		if out, err := pub.CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub: %v: %s (run go tool task setup)", err, out)
		}
	}

	// QoS 1: 1000 events, taken and committed a batch at a time.
	const n = 1000
	lines(n, "1")
	taken, over := 0, 0 // over: the most events the broker sent beyond the Receive Maximum
	for taken < n {
		eventually(t, "the broker sending more", func() bool { return tr.events.stats().Backlog > 0 })
		b, err := tr.Events().Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		over = max(over, len(b.Events)-buffer)
		taken += len(b.Events)
		if err := b.Commit(len(b.Events)); err != nil {
			t.Fatal(err)
		}
	}
	if taken != n || tr.events.stats().Dropped != 0 {
		t.Fatalf("%d of %d QoS 1 events, %d dropped", taken, n, tr.events.stats().Dropped)
	}

	// QoS 0: nobody takes them; the queue sheds beyond its buffer.
	lines(n, "0")
	eventually(t, "every QoS 0 event received or shed", func() bool {
		s := tr.events.stats()
		return s.Received+s.Dropped == n+n
	})
	if s := tr.events.stats(); s.Backlog != buffer || s.Dropped != n-buffer {
		t.Fatalf("QoS 0 flood: %d queued, %d shed; want %d and %d", s.Backlog, s.Dropped, buffer, n-buffer)
	}
	tr.events.Queued()

	// Over max_packet_size: not sent; the probe after it is.
	host, port, _ := net.SplitHostPort(addr)
	for _, m := range []string{strings.Repeat("x", 2048), "probe"} {
		if out, err := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-V", "mqttv5", "-t", "sensors/big", "-q", "1", "-m", m).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub: %v: %s", err, out)
		}
	}
	b, err := tr.Events().Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events) != 1 || string(b.Events[0].Payload) != "probe" {
		t.Fatalf("after a 2 KiB message and a probe, with max_packet_size 1024: %d events, the first %.20q", len(b.Events), b.Events[0].Payload)
	}
	tr.events.mu.Lock()
	peak := tr.events.peak
	tr.events.mu.Unlock()
	if peak > 2*buffer {
		t.Fatalf("the queue held %d events at most, more than %d", peak, 2*buffer)
	}
	t.Logf("queue peak %d events (buffer %d); the broker sent up to %d QoS 1 events over the Receive Maximum", peak, buffer, over)
}

// TestExternalReceiveWaitsOutsideTheAckLock: with the event queue full, the MQTT
// client's receive waits for room without holding the acknowledgement lock, so the event
// loop's commit of the batch it holds (which it does before taking the next, what makes
// the room) goes through. Receive used to wait inside push under that lock: a full
// queue then stopped both for good (TestExternalFloodStaysBounded hung on it).
func TestExternalReceiveWaitsOutsideTheAckLock(t *testing.T) {
	cfg := Config{HTTP: "off"}
	cfg.Broker.External = "mqtt://127.0.0.1:1" // never dialled: Run is not called
	cfg.Broker.ClientID = "engine-wait"
	e, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := e.t.(*external)
	tr.events.hard = 1
	tr.receive(nil, &paho.Publish{Topic: "sensors/a", QoS: 1, PacketID: 1, Payload: []byte(`{"n":1}`)})
	received := make(chan struct{})
	go func() {
		defer close(received)
		tr.receive(nil, &paho.Publish{Topic: "sensors/a", QoS: 1, PacketID: 2, Payload: []byte(`{"n":2}`)})
	}()
	eventually(t, "the second receive waiting for room", func() bool {
		buf := make([]byte, 1<<20)
		return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "(*queue).waitRoom")
	})
	committed := make(chan error, 1)
	go func() { committed <- externalEvents{tr}.commit(0) }()
	select {
	case err := <-committed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(deadline):
		t.Fatal("commit blocked while receive waits for room: the two are deadlocked")
	}
	src := tr.Events()
	for want := range 2 {
		b, err := src.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Events) != 1 || string(b.Events[0].Payload) != fmt.Sprintf(`{"n":%d}`, want+1) || b.Events[0].Seq != uint64(want+1) {
			t.Fatalf("batch %d: %+v, want the event {\"n\":%d} alone, seq %d", want, b.Events, want+1, want+1)
		}
		if want == 0 {
			<-received
		}
	}
	tr.amu.Lock()
	defer tr.amu.Unlock()
	if len(tr.unacked) != 2 {
		t.Fatalf("%d events waiting for their acknowledgement, want both", len(tr.unacked))
	}
}
