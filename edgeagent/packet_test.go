package edgeagent

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/deviceless/deviceless/protocol"
)

// counterValue sums the samples of the counter or gauge name that c collects.
func counterValue(t *testing.T, c prometheus.Collector, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// A result too large for one MQTT packet used to be published anyway: the broker (1 MiB
// packets) disconnected the agent, and the agent sent the same packet again on every
// reconnect, so nothing behind it ever arrived. Now the agent learns the broker's maximum
// packet size from the CONNACK and never publishes more: such an output is left out of the
// result, which says so, and a function's publish that cannot fit is refused. Against the
// project's own broker, with one worker so the results come in order.
func TestLargeOutputFitsAPacket(t *testing.T) {
	cfg := testConfig(t, "")
	srv := startDevicelessBroker(t, &cfg)
	cl := newClient(t, strings.TrimPrefix(cfg.Broker, "mqtt://"), "deviceless/agents/+/status", "test/replies/#", "big/#")
	cfg.Concurrency = 1
	cfg.Limits.Output = 2 << 20 // the broker's 1 MiB is the tighter limit
	a := startAgent(t, cfg, cl)

	const n = 1 << 20
	// A JSON string of 1 MiB of '<' (json.Marshal writes each as the six bytes \u003c).
	big := cl.send(cfg.ID, mustJSON(t, shInvocation("big-output", fmt.Sprintf(`printf '"'; head -c %d /dev/zero | tr '\0' '<'; printf '"'`, n))))
	bigPublish := cl.send(cfg.ID, mustJSON(t, shInvocation("big-publish", fmt.Sprintf(
		`printf '{"actuate":[{"line":"fan","value":1}],"publish":[{"topic":"big/x","payload":"'; head -c %d /dev/zero | tr '\0' x; printf '"}]}'`, n+n/2))))
	behind := cl.send(cfg.ID, mustJSON(t, shInvocation("behind", `echo 3`)))

	results := map[string]protocol.Result{}
	for name, p := range map[string]pendingReply{"big-output": big, "big-publish": bigPublish, "behind": behind} {
		m, ok := cl.wait(p)
		if !ok {
			t.Fatalf("no result for %s (broker disconnects for oversized packets: %v)", name,
				counterValue(t, srv.Collector(), "deviceless_broker_oversized_packets_total"))
		}
		var r protocol.Result
		if err := json.Unmarshal(m.Payload, &r); err != nil {
			t.Fatal(err)
		}
		results[name] = r
	}
	if r := results["big-output"]; r.Status != protocol.StatusError || r.Output != nil ||
		!strings.Contains(r.Error, fmt.Sprintf("output of %d bytes exceeds the", n+2)) || !strings.Contains(r.Error, "byte limit of a result") {
		t.Errorf("big output: %s %q (%d output bytes)", r.Status, r.Error, len(r.Output))
	}
	if r := results["big-publish"]; r.Status != protocol.StatusError || !strings.Contains(r.Error, "publish big/x:") ||
		!strings.Contains(r.Error, "maximum packet size of 1048576") {
		t.Errorf("big publish: %s %q", r.Status, r.Error)
	}
	if r := results["behind"]; r.Status != protocol.StatusOK || string(r.Output) != "3" {
		t.Errorf("the result behind them: %+v", r)
	}
	if v := counterValue(t, srv.Collector(), "deviceless_broker_oversized_packets_total"); v != 0 {
		t.Errorf("the broker disconnected %v clients for oversized packets", v)
	}
	cl.mu.Lock()
	published := len(cl.msgs["big/x"])
	cl.mu.Unlock()
	if published != 0 {
		t.Error("the oversized publish went out")
	}
	if v, _ := a.Lines().Get("fan"); v != 0 {
		t.Error("fan actuated although the function's publish was refused")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The maximum is the CONNACK's Maximum Packet Size capped by limits.max_packet_size, or
// that alone when the broker sends none; a result over it loses its output and says so,
// in a packet within the maximum.
func TestFitResultToMaxPacket(t *testing.T) {
	cfg := Config{Limits: Limits{MaxPacketSize: 64 << 10}}
	a := &Agent{cfg: cfg, log: quietLogger()}
	var err error
	if a.metrics, err = newAgentMetrics(a); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ack  *paho.Connack
		want int
	}{
		{&paho.Connack{}, 64 << 10},
		{&paho.Connack{Properties: &paho.ConnackProperties{MaximumPacketSize: new(uint32(4096))}}, 4096},
		{&paho.Connack{Properties: &paho.ConnackProperties{MaximumPacketSize: new(uint32(1 << 20))}}, 64 << 10},
	} {
		a.setMaxPacket(tc.ack)
		if got := a.maxPacket(); got != tc.want {
			t.Errorf("max packet %d, want %d", got, tc.want)
		}
	}
	a.setMaxPacket(&paho.Connack{Properties: &paho.ConnackProperties{MaximumPacketSize: new(uint32(4096))}})
	to := replyTo{topic: "deviceless/agents/a/result", correlation: []byte("c1")}
	small := a.encode(protocol.Result{ID: "1", Status: protocol.StatusOK, Output: json.RawMessage(`"<>"`)})
	if p := a.fit(to, small); p == nil || string(p.Payload) != string(small) || !strings.Contains(string(small), `"<>"`) {
		t.Fatalf("a result that fits: %v", p)
	}
	big := a.encode(protocol.Result{ID: "2", Status: protocol.StatusOK, Output: json.RawMessage(`"` + strings.Repeat("<", 5000) + `"`)})
	p := a.fit(to, big)
	if p == nil || packetSize(p) > 4096 {
		t.Fatalf("cut result %v", p)
	}
	var r protocol.Result
	if err := json.Unmarshal(p.Payload, &r); err != nil {
		t.Fatal(err)
	}
	// The room for an output is the maximum less the rest of the packet.
	room := 4096 - packetSize(replyPacket(to, a.encode(protocol.Result{ID: "2", Status: protocol.StatusError}))) - len(`,"output":`)
	want := fmt.Sprintf("output of 5002 bytes exceeds the %d byte limit of a result (the broker's maximum packet size is 4096)", room)
	if r.Status != protocol.StatusError || r.Output != nil || r.Error != want {
		t.Fatalf("cut result %s %q, want error %q", r.Status, r.Error, want)
	}
	if p := a.fit(replyTo{topic: strings.Repeat("t", 5000)}, small); p != nil {
		t.Fatalf("a reply whose topic alone is over the maximum: %d bytes", packetSize(p))
	}
}
