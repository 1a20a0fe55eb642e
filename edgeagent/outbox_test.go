package edgeagent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho/queue"
	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/protocol"
)

// While the broker is away the agent's results wait in its outbox; it keeps at most
// limits.outbox messages (and limits.outbox_bytes), dropping the oldest with a count and a
// log line, instead of growing without bound. Sixteen invocations finish during an outage
// with room for five: five results arrive when the broker is back, eleven are counted as
// dropped.
func TestOutboxBoundedDuringOutage(t *testing.T) {
	broker := startBroker(t)
	px := newProxy(t, "tcp", "127.0.0.1:0", broker)
	cl := newClient(t, broker, "deviceless/agents/+/status", "deviceless/agents/+/result")
	cfg := testConfig(t, px.addr())
	cfg.Concurrency = 8
	cfg.Queue = 64
	cfg.Limits.Outbox = 5
	a := startAgent(t, cfg, cl)
	topics := protocol.Topics{}
	payload, _ := json.Marshal(shInvocation("online-0", "echo 0"))
	cl.publish(topics.AgentInvoke(cfg.ID), payload, nil)
	cl.await(topics.AgentResult(cfg.ID), nil) // subscribed

	const n = 16
	for i := range n {
		payload, _ := json.Marshal(shInvocation(fmt.Sprintf("outage-%d", i), fmt.Sprintf("sleep 4; echo %d", i)))
		cl.publish(topics.AgentInvoke(cfg.ID), payload, nil)
	}
	waitFor(t, "every invocation to be taken", func() bool { return a.metrics.running.Load()+int64(len(a.queue)) == n })
	px.setUp(false)
	cl.status(cfg.ID, func(s protocol.Status) bool { return !s.Online })
	finished := func() float64 { return counterValue(t, a.metrics.results, "deviceless_agent_invocations_total") }
	waitFor(t, "every invocation to finish", func() bool { return finished() == n+1 })
	if got := a.outbox.len(); got > 5 {
		t.Fatalf("outbox holds %d messages, limit 5", got)
	}
	px.setUp(true)
	got := map[string]bool{}
	collect := func() int {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		for _, m := range cl.msgs[topics.AgentResult(cfg.ID)] {
			var r protocol.Result
			if json.Unmarshal(m.Payload, &r) == nil && r.ID != "online-0" {
				got[r.ID] = true
			}
		}
		return len(got)
	}
	// The agent reconnects within its backoff (up to 10 s) and sends the outbox at once;
	// then a moment for strays.
	waitFor(t, "results after the outage", func() bool { return collect() >= 5 })
	time.Sleep(time.Second)
	collect()
	dropped := counterValue(t, a.metrics.drops, "deviceless_agent_publish_dropped_total")
	if len(got) != 5 || dropped != n-5 {
		t.Fatalf("%d results arrived (%v) and %v were dropped, want 5 and %d", len(got), got, dropped, n-5)
	}
}

func packet(t *testing.T, topic string, size int) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := (&paho.Publish{Topic: topic, QoS: 1, Payload: make([]byte, size)}).Packet().WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func peekTopic(t *testing.T, q *outbox) string {
	t.Helper()
	e, err := q.Peek()
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.Reader()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	return packetTopic(b)
}

// The outbox drops its oldest messages beyond its count and byte bounds, never the one
// being sent, and drops at sending time a message the broker's maximum no longer admits.
func TestOutboxBounds(t *testing.T) {
	var drops []string
	limit := 1 << 20
	q := newOutbox(3, 1000, func() int { return limit }, func(reason, topic string) { drops = append(drops, reason+" "+topic) })
	select {
	case <-q.Wait():
		t.Fatal("an empty outbox is ready")
	default:
	}
	for i := range 5 {
		if err := q.Enqueue(bytes.NewReader(packet(t, fmt.Sprintf("t/%d", i), 10))); err != nil {
			t.Fatal(err)
		}
	}
	if q.len() != 3 || fmt.Sprint(drops) != "[outbox_full t/0 outbox_full t/1]" {
		t.Fatalf("len %d, drops %v", q.len(), drops)
	}
	<-q.Wait()
	if got := peekTopic(t, q); got != "t/2" {
		t.Fatalf("oldest %s, want t/2", got)
	}
	// t/2 is being sent: a new message drops the next oldest instead.
	_ = q.Enqueue(bytes.NewReader(packet(t, "t/5", 10)))
	if fmt.Sprint(drops[2:]) != "[outbox_full t/3]" {
		t.Fatalf("drops %v", drops)
	}
	e, _ := q.Peek()
	if err := e.Remove(); err != nil {
		t.Fatal(err)
	}
	// Bytes: two packets of ~600 bytes do not fit in 1000.
	drops = nil
	_ = q.Enqueue(bytes.NewReader(packet(t, "big/1", 600)))
	_ = q.Enqueue(bytes.NewReader(packet(t, "big/2", 600)))
	if fmt.Sprint(drops) != "[outbox_full t/4 outbox_full t/5 outbox_full big/1]" || q.len() != 1 {
		t.Fatalf("len %d, drops %v", q.len(), drops)
	}
	// Larger than the outbox: dropped at once.
	_ = q.Enqueue(bytes.NewReader(packet(t, "huge", 2000)))
	if drops[len(drops)-1] != "outbox_full huge" || q.len() != 1 {
		t.Fatalf("len %d, drops %v", q.len(), drops)
	}
	// The broker now takes less than big/2.
	limit = 100
	if _, err := q.Peek(); err != queue.ErrEmpty || drops[len(drops)-1] != "too_large big/2" {
		t.Fatalf("peek %v, drops %v", err, drops)
	}
}
