package broker

import (
	"fmt"
	"sync"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/google/go-cmp/cmp"
)

// A message the broker drops for a subscriber whose queue is full reaches OnDropped with
// the subscriber, the topic and the correlation data: the engine learns that an agent
// will never see an invocation instead of waiting for its timeout. Messages the queue
// took are not reported.
func TestOnDroppedReportsFullQueue(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.Limits.MaxQueued = 5
	srv, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []Dropped
	srv.OnDropped(func(d Dropped) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, d)
	})
	b := startServer(t, srv)
	addr := b.Addr(ListenerTCP)
	off := mustConnect(t, addr, connOpts{clientID: "agent-1", user: "root", persistent: true})
	off.mustSubscribe(t, "deviceless/agents/agent-1/invoke", 1)
	if err := off.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "agent-1 offline", func() bool {
		c, ok := b.Server.mqtt.Clients.Get("agent-1")
		return ok && c.Closed()
	})
	const n = 8
	for i := range n {
		if err := b.Publish(Message{Topic: "deviceless/agents/agent-1/invoke", Payload: []byte("{}"), QoS: 1,
			CorrelationData: []byte(fmt.Sprint("inv-", i))}); err != nil {
			t.Fatal(err)
		}
	}
	var want []Dropped
	for i := 5; i < n; i++ {
		want = append(want, Dropped{Client: "agent-1", Topic: "deviceless/agents/agent-1/invoke", CorrelationData: []byte(fmt.Sprint("inv-", i))})
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("dropped (-want +got):\n%s", diff)
	}
}
