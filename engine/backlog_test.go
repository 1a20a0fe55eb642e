package engine

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/protocol"
)

// The control messages queued when the engine starts (the agents' retained statuses) are
// handled before the first event: events delivered again after a crash find their agents.
// controlBacklog asks the control intake for what is queued with a context that has
// already ended, and the intake answers a consumer whose context has ended with the
// context's error, queued events or not: it handled nothing, and an event evaluated before
// the control loop caught up saw no agent ("no online agent matches", an actuation lost).
func TestControlBacklogTakesWhatIsQueued(t *testing.T) {
	e, err := New(testConfig(t, t.TempDir()), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.t.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-e.t.Ready()
	st, _ := json.Marshal(protocol.Status{Agent: "a1", Online: true, Runtimes: []string{"sh"}})
	if err := e.t.Publish(broker.Message{Topic: e.topics.AgentStatus("a1"), Payload: st, QoS: 1, Retain: true}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the status queued", func() bool { return e.t.(*embedded).control.Stats().Backlog == 1 })
	start := time.Now()
	e.controlBacklog()
	if e.registry.online() != 1 {
		t.Fatalf("after controlBacklog: %d agents online, want 1", e.registry.online())
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("controlBacklog took %v: it must not wait", d)
	}
}
