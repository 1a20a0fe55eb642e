package edgeagent

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/deviceless/deviceless/protocol"
)

// The function label of the agent's invocation metrics comes from the invocations it is
// sent, so it is bounded to what the agent knows: its own functions and at most
// maxFunctionLabels functions it tried to run; anything else (unknown names, malformed
// invocations, names beyond the bound) counts as "other".
func TestMetricLabelsBounded(t *testing.T) {
	broker := startBroker(t)
	cl := newClient(t, broker, "deviceless/agents/+/status", "test/replies/#")
	cfg := testConfig(t, broker)
	cfg.Concurrency = 4
	cfg.Queue = 256 // nothing rejected: every spec is tried
	cfg.Functions = map[string]protocol.FunctionSpec{"blink": {Runtime: "sh", Code: "echo 1"}}
	a := startAgent(t, cfg, cl)

	var wg sync.WaitGroup
	send := func(inv protocol.Invocation) {
		wg.Go(func() {
			if _, ok := cl.wait(cl.send(cfg.ID, mustJSON(t, inv))); !ok {
				t.Errorf("no result for %s", inv.ID)
			}
		})
	}
	for i := range 100 { // names the agent does not know, no spec
		send(protocol.Invocation{ID: fmt.Sprintf("unknown-%d", i), Function: fmt.Sprintf("nope-%d", i)})
	}
	for i := range maxFunctionLabels + 20 { // specs it tries to run (a missing image: quick)
		send(protocol.Invocation{ID: fmt.Sprintf("spec-%d", i), Function: fmt.Sprintf("f-%d", i),
			Spec: protocol.FunctionSpec{Image: "localhost/deviceless/no-such-image", Command: []string{"true"}}})
	}
	send(protocol.Invocation{ID: "long", Function: strings.Repeat("x", 300),
		Spec: protocol.FunctionSpec{Image: "localhost/deviceless/no-such-image", Command: []string{"true"}}})
	send(protocol.Invocation{ID: "own", Function: "blink"})
	wg.Wait()

	families, err := a.Metrics().Gather()
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]bool{}
	for _, f := range families {
		if f.GetName() != "deviceless_agent_invocations_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "function" {
					labels[l.GetValue()] = true
				}
			}
		}
	}
	if !labels["blink"] || !labels["other"] || labels["nope-0"] || labels[strings.Repeat("x", 300)] || len(labels) > maxFunctionLabels+2 {
		t.Fatalf("%d function labels, want at most %d (blink, other and the first specs): %v", len(labels), maxFunctionLabels+2, labels)
	}
}
