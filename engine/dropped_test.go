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
	host, port, _ := net.SplitHostPort(addr)
	bin, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		t.Fatal("mosquitto_sub not found: run `go tool task setup` to install mosquitto-clients")
	}
	topics := protocol.Topics{}
	sub := exec.Command(bin, "-h", host, "-p", port, "-V", "mqttv5", "-u", "a1", "-P", "pw-a1", "-i", "a1",
		"-c", "-x", "600", "-q", "1", "-t", topics.AgentInvoke("a1"), "-E")
	if out, err := sub.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_sub: %v: %s", err, out)
	}
	st, _ := json.Marshal(protocol.Status{Agent: "a1", Online: true, Runtimes: []string{"sh"}})
	mosquittoPubAs(t, addr, "a1", "-t", topics.AgentStatus("a1"), "-r", "-q", "1", "-m", string(st))
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
