package engine

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/deviceless/deviceless/protocol"
)

// An agent whose session is away keeps at most broker.limits.max_queued invocations in
// the broker; the broker drops the rest. The engine learns of each drop from the broker
// (OnDropped) and answers it `rejected` at once, with the reason, instead of waiting for
// its timeout, and counts it. The agent here is mosquitto_sub, a real client whose
// persistent session (MQTT 5, session expiry) stays after it exits, with the agent's
// retained status saying it is online.
func TestInvocationsDroppedForAFullAgentQueueAreRejected(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, echoRules)
	cfg := testConfig(t, dir)
	cfg.Broker.Limits.MaxQueued = 2
	e := startEngine(t, cfg)
	addr := e.BrokerAddr()
	awayAgent(t, addr, "a1", protocol.Topics{}.AgentInvoke("a1"))
	waitAgents(t, e, 1)

	const n = 6
	results := make([]protocol.Result, n)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code := postJSON(t, "http://"+e.HTTPAddr()+"/api/v1/invoke/echo", fmt.Sprintf(`{"args":{"n":%d},"target":{"agent":"a1"}}`, i), &results[i]); code != 200 {
				t.Errorf("invoke %d: HTTP %d", i, code)
			}
		}()
	}
	wg.Wait()
	var rejected, timedOut int
	for _, r := range results {
		switch {
		case r.Status == protocol.StatusRejected && strings.Contains(r.Error, "not delivered: the broker's queue for agent a1 is full"):
			rejected++
		case r.Status == protocol.StatusTimeout:
			timedOut++ // queued for the agent's session, never answered
		default:
			t.Errorf("result %+v: want rejected for a full queue, or a timeout for a queued one", r)
		}
	}
	if rejected != n-2 || timedOut != 2 {
		t.Errorf("%d rejected, %d timed out; want %d rejected (over max_queued = 2) and 2 timed out", rejected, timedOut, n-2)
	}
	if got := testutilValue(e, "deviceless_dispatch_dropped_total", ""); got != n-2 {
		t.Errorf("deviceless_dispatch_dropped_total = %v, want %d", got, n-2)
	}
}

// A rule's actuation the broker drops for an agent whose queue is full is dead-lettered
// with the rule, the action and the event, not lost: the agent (mosquitto_sub, away with
// its session kept) has room for max_queued = 2 actuations, the rule fires 4 times.
func TestActuationsDroppedForAFullAgentQueueAreDeadLettered(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, `
rules:
  - name: fan-on
    on: sensors/+/t
    do:
      - actuate: {target: {agent: a1}, line: fan, value: 1}
`)
	cfg := testConfig(t, dir)
	cfg.Broker.Limits.MaxQueued = 2
	e := startEngine(t, cfg)
	addr := e.BrokerAddr()
	awayAgent(t, addr, "a1", protocol.Topics{}.AgentActuate("a1"))
	waitAgents(t, e, 1)
	watcher := connect(t, addr, "ops", nil, nil)
	watcher.sub(t, "deviceless/deadletter")
	for i := range 4 {
		mosquittoPub(t, addr, "-t", "sensors/r1/t", "-q", "1", "-m", fmt.Sprintf(`{"c": %d}`, i))
	}
	for i := 2; i < 4; i++ {
		var dl DeadLetter
		if err := json.Unmarshal(watcher.next(t, "deviceless/deadletter").Payload, &dl); err != nil {
			t.Fatal(err)
		}
		if dl.Rule != "fan-on" || dl.Action == nil || dl.Event == nil || dl.Event.Topic != "sensors/r1/t" ||
			!strings.Contains(dl.Reason, "not delivered to agent a1: the broker's queue for it is full") {
			t.Fatalf("dead letter %d: %+v", i, dl)
		}
		if want := fmt.Sprintf(`{"c":%d}`, i); string(dl.Event.Payload) != want {
			t.Errorf("dead letter for event %s, want %s (the first two are queued)", dl.Event.Payload, want)
		}
	}
}

// awayAgent makes agent id an agent that is away with its session kept: mosquitto_sub
// subscribes to filter at QoS 1 with a persistent MQTT 5 session and exits, and the
// agent's retained status says it is online with an output line fan.
func awayAgent(t *testing.T, addr, id, filter string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	bin, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		t.Fatal("mosquitto_sub not found: run `go tool task setup` to install mosquitto-clients")
	}
	sub := exec.Command(bin, "-h", host, "-p", port, "-V", "mqttv5", "-u", id, "-P", "pw-"+id, "-i", id,
		"-c", "-x", "600", "-q", "1", "-t", filter, "-E")
	if out, err := sub.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_sub: %v: %s", err, out)
	}
	st, _ := json.Marshal(protocol.Status{Agent: id, Online: true, Runtimes: []string{"sh"},
		Lines: map[string]protocol.LineInfo{"fan": {Direction: "output"}}})
	mosquittoPubAs(t, addr, id, "-t", protocol.Topics{}.AgentStatus(id), "-r", "-q", "1", "-m", string(st))
}

// A rule's invocations beyond dispatch.max_in_flight for one agent wait for a slot
// instead of overflowing the agent's queue in the broker: with max_queued 4 (so
// max_in_flight 2) and an agent away, five firings make five invocations that all end in
// their timeouts, one slot after another, and the broker drops none of them.
func TestRuleInvocationsWaitForAnAgentSlot(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, `
functions:
  echo:
    runtime: sh
    code: cat
    timeout: 1s
rules:
  - name: hot
    on: sensors/+/t
    do:
      - invoke: echo
        target: {agent: a1}
`)
	cfg := testConfig(t, dir)
	cfg.Broker.Limits.MaxQueued = 4
	cfg.Dispatch.Attempts = 1
	e := startEngine(t, cfg)
	addr := e.BrokerAddr()
	awayAgent(t, addr, "a1", protocol.Topics{}.AgentInvoke("a1"))
	waitAgents(t, e, 1)
	watcher := connect(t, addr, "ops", nil, nil)
	watcher.sub(t, "deviceless/deadletter")
	const n = 5
	for i := range n {
		mosquittoPub(t, addr, "-t", "sensors/r1/t", "-q", "1", "-m", fmt.Sprintf(`{"c": %d}`, i))
	}
	for range n {
		var dl DeadLetter
		if err := json.Unmarshal(watcher.next(t, "deviceless/deadletter").Payload, &dl); err != nil {
			t.Fatal(err)
		}
		if dl.Invocation == nil || !strings.Contains(dl.Reason, "no result from agent a1") {
			t.Fatalf("dead letter %+v: want a timeout (a slot waited for, not a drop)", dl)
		}
	}
	if got := testutilValue(e, "deviceless_dispatch_dropped_total", ""); got != 0 {
		t.Errorf("deviceless_dispatch_dropped_total = %v, want 0", got)
	}
}
