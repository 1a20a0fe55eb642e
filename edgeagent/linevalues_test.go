package edgeagent

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/edgeagent/gpio/sim"
	"github.com/deviceless/deviceless/protocol"
)

// The status carries each line's value and is published again when one changes: an
// actuation from the engine and its revert, a function's actuation, an input edge.
func TestStatusCarriesLineValues(t *testing.T) {
	broker := startBroker(t)
	cl := newClient(t, broker, "deviceless/agents/+/status", "test/replies/#", "sensors/#")
	cfg := testConfig(t, broker)
	a := startAgent(t, cfg, cl)
	lines := a.Lines().(*sim.Lines)
	topic := protocol.Topics{}.AgentStatus(cfg.ID)

	value := func(s protocol.Status, line string) int {
		if v := s.Lines[line].Value; v != nil {
			return *v
		}
		return -1
	}
	// published returns the statuses received so far; next waits for a later one.
	published := func() map[*paho.Publish]bool {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		seen := map[*paho.Publish]bool{}
		for _, p := range cl.msgs[topic] {
			seen[p] = true
		}
		return seen
	}
	next := func(before map[*paho.Publish]bool, accept func(protocol.Status) bool) {
		t.Helper()
		cl.await(topic, func(p *paho.Publish) bool {
			var s protocol.Status
			return !before[p] && json.Unmarshal(p.Payload, &s) == nil && s.Online && accept(s)
		})
	}

	st := cl.status(cfg.ID, func(s protocol.Status) bool { return s.Online })
	if value(st, "fan") != 0 || value(st, "alarm") != 0 || value(st, "button") != 0 {
		t.Fatalf("first status' lines %+v", st.Lines)
	}

	before := published()
	act, _ := json.Marshal(protocol.Actuation{ID: "v1", Line: "fan", Value: 1, For: protocol.Duration(300 * time.Millisecond)})
	cl.publish(protocol.Topics{}.AgentActuate(cfg.ID), act, nil)
	next(before, func(s protocol.Status) bool { return value(s, "fan") == 1 })
	before = published()
	next(before, func(s protocol.Status) bool { return value(s, "fan") == 0 }) // reverted after `for`

	before = published()
	res := cl.invoke(cfg.ID, shInvocation("alarm-on", `read -r ev; echo '{"actuate":[{"line":"alarm","value":1}]}'`))
	if res.Status != protocol.StatusOK {
		t.Fatalf("function: %+v", res)
	}
	next(before, func(s protocol.Status) bool { return value(s, "alarm") == 1 }) // a function's actuation

	before = published()
	if err := lines.Inject("button", 1); err != nil {
		t.Fatal(err)
	}
	next(before, func(s protocol.Status) bool { return value(s, "button") == 1 }) // an input edge

	// Nothing changed: no status.
	n := len(published())
	time.Sleep(3 * statusEvery)
	if m := len(published()); m != n {
		t.Fatalf("%d statuses without a change", m-n)
	}
}
