package edgeagent

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/edgeagent/gpio/sim"
	"github.com/deviceless/deviceless/protocol"
)

// Actuations queued for an agent that is away and stale when it comes back are not
// applied: each is answered (with a response topic) with status expired, logged and
// counted; one still fresh is applied. The broker keeps them because they carry no MQTT
// message expiry here: the agent's own check of expires_at is what is tested.
func TestActuationsExpire(t *testing.T) {
	broker := startBroker(t)
	px := newProxy(t, "tcp", "127.0.0.1:0", broker)
	cl := newClient(t, broker, "deviceless/agents/+/status", "test/replies/#", "deviceless/agents/+/result")
	cfg := testConfig(t, px.addr())
	a := startAgent(t, cfg, cl)
	lines := a.Lines().(*sim.Lines)
	topics := protocol.Topics{}
	payload, _ := json.Marshal(shInvocation("online-0", "echo 0"))
	cl.publish(topics.AgentInvoke(cfg.ID), payload, nil)
	cl.await(topics.AgentResult(cfg.ID), nil) // subscribed

	px.setUp(false)
	cl.status(cfg.ID, func(s protocol.Status) bool { return !s.Online })
	soon, later := time.Now().Add(time.Second), time.Now().Add(time.Hour)
	for _, act := range []protocol.Actuation{
		{ID: "stale-1", Line: "fan", Value: 1, For: protocol.Duration(time.Minute), ExpiresAt: soon},
		{ID: "stale-2", Line: "fan", Value: 1, ExpiresAt: soon},
		{ID: "fresh-1", Line: "alarm", Value: 1, ExpiresAt: later},
	} {
		b, _ := json.Marshal(act)
		cl.publish(topics.AgentActuate(cfg.ID), b, &paho.PublishProperties{ResponseTopic: "test/replies/" + act.ID, CorrelationData: []byte(act.ID)})
	}
	time.Sleep(time.Until(soon) + 100*time.Millisecond)
	px.setUp(true)

	for id, want := range map[string]string{"stale-1": protocol.StatusExpired, "stale-2": protocol.StatusExpired, "fresh-1": protocol.StatusOK} {
		var r protocol.Result
		if err := json.Unmarshal(cl.await("test/replies/"+id, nil).Payload, &r); err != nil {
			t.Fatal(err)
		}
		if r.Status != want || (want == protocol.StatusExpired && !strings.Contains(r.Error, "expired at")) {
			t.Errorf("%s: %s %q, want %s", id, r.Status, r.Error, want)
		}
	}
	if h := lines.History("fan"); len(h) != 0 {
		t.Errorf("fan %v: stale actuations applied", h)
	}
	if h := lines.History("alarm"); len(h) != 1 {
		t.Errorf("alarm %v: the fresh actuation not applied", h)
	}
	if n := counterValue(t, a.metrics.expired, "deviceless_agent_actuations_expired_total"); n != 2 {
		t.Errorf("%v expired actuations counted, want 2", n)
	}
}

// A function's actuations stale when it finishes (their expires_at, else the invocation's
// deadline) are dropped and listed in the result's expired; the function's actuations are
// applied all at once or not at all, so a fresh one beside a stale one is not applied
// either, nor are its publishes sent.
func TestFunctionActuationsExpire(t *testing.T) {
	broker := startBroker(t)
	cl := newClient(t, broker, "deviceless/agents/+/status", "test/replies/#", "alerts/#")
	cfg := testConfig(t, broker)
	a := startAgent(t, cfg, cl)
	lines := a.Lines().(*sim.Lines)
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
	res := cl.invoke(cfg.ID, shInvocation("stale-output", fmt.Sprintf(
		`read -r inv; echo '{"actuate":[{"line":"alarm","value":1,"expires_at":"%s"},{"line":"fan","value":1,"expires_at":"%s"}],"publish":[{"topic":"alerts/x","payload":1}],"result":"done"}'`, future, past)))
	if res.Status != protocol.StatusExpired || len(res.Expired) != 1 || res.Expired[0].Line != "fan" || string(res.Output) != `"done"` ||
		!strings.Contains(res.Error, "none of the function's 2 actuations applied") {
		t.Fatalf("result %+v", res)
	}
	if h, h2 := lines.History("alarm"), lines.History("fan"); len(h) != 0 || len(h2) != 0 {
		t.Fatalf("applied: alarm %v, fan %v", h, h2)
	}
	// All fresh: applied, and the publish sent.
	fresh := cl.invoke(cfg.ID, shInvocation("fresh-output", fmt.Sprintf(
		`read -r inv; echo '{"actuate":[{"line":"alarm","value":1,"expires_at":"%s"}],"publish":[{"topic":"alerts/x","payload":1}]}'`, future)))
	if fresh.Status != protocol.StatusOK || len(fresh.Expired) != 0 {
		t.Fatalf("fresh: %+v", fresh)
	}
	if m := cl.await("alerts/x", nil); string(m.Payload) != "1" {
		t.Fatalf("published %s", m.Payload)
	}
	cl.mu.Lock()
	published := len(cl.msgs["alerts/x"])
	cl.mu.Unlock()
	if published != 1 {
		t.Fatalf("%d publishes on alerts/x, want the fresh function's alone", published)
	}
}

// An actuation goes stale at its expires_at, or without one at the deadline it is given
// (a function's: its invocation's); with neither, never.
func TestStale(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		expires, deadline time.Time
		stale             bool
	}{
		{time.Time{}, time.Time{}, false},
		{now.Add(time.Second), time.Time{}, false},
		{now, time.Time{}, true},
		{now.Add(-time.Second), now.Add(time.Hour), true},  // its own expiry counts
		{now.Add(time.Hour), now.Add(-time.Second), false}, // even when later than the deadline
		{time.Time{}, now.Add(-time.Second), true},
		{time.Time{}, now.Add(time.Second), false},
	} {
		if _, got := stale(protocol.Actuation{ExpiresAt: tc.expires}, tc.deadline, now); got != tc.stale {
			t.Errorf("expires %v, deadline %v: stale %v, want %v", tc.expires, tc.deadline, got, tc.stale)
		}
	}
}
