package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/edgeagent/gpio"
	"github.com/deviceless/deviceless/edgeagent/gpio/sim"
	"github.com/deviceless/deviceless/protocol"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock               { return &fakeClock{t: time.Date(2026, 12, 1, 22, 0, 0, 0, time.UTC)} }

// The first direct actuation's event→actuation figure is the loop's own time, also when the
// actuation reaches the watcher before the sensor's publish returns: the broker hands a QoS 1
// message on while its PUBACK travels back, so the loop (rule, actuation, delivery) can beat
// the acknowledgement. The watcher used to take the reading's time after Publish returned,
// and measured such a loop from the previous reading: one sensor period (issue 16's
// "event→actuation 1000.0 ms" on the first frost).
func TestFirstActuationFigureIsTheLoops(t *testing.T) {
	lines, err := sim.Open(agentLines("heater"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	clock := newFakeClock()
	w := newWatcher(&out)
	w.now = clock.now
	s := newSimulation(map[string]gpio.Lines{"gh2-edge": lines}, w)
	const period = time.Second
	frostSeen := false
	// A broker that delivers the frost rule's heater actuation 0.7 ms after the reading,
	// then the reading's PUBACK 0.3 ms later.
	publish := func(_ context.Context, topic string, payload []byte) error {
		var p struct{ Celsius *float64 }
		_ = json.Unmarshal(payload, &p)
		if topic == "greenhouse/gh2/climate" && p.Celsius != nil && *p.Celsius < 3 && !frostSeen {
			frostSeen = true
			clock.advance(700 * time.Microsecond)
			a, _ := json.Marshal(protocol.Actuation{ID: "a1", Line: "heater", Value: 1, For: protocol.Duration(15 * time.Minute)})
			w.receive(&paho.Publish{Topic: "deviceless/agents/gh2-edge/actuate", Payload: a})
		}
		clock.advance(300 * time.Microsecond)
		return nil
	}
	for i := 0; i < 20 && !frostSeen; i++ {
		clock.advance(period)
		if err := s.publishAll(context.Background(), publish); err != nil {
			t.Fatal(err)
		}
	}
	if !frostSeen {
		t.Fatalf("gh2 never froze:\n%s", out.String())
	}
	line := ""
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "direct actuation → heater=1") {
			line = l
			break
		}
	}
	if !strings.HasSuffix(line, "event→actuation 0.7 ms") {
		t.Fatalf("first direct actuation: %q, want it to end in event→actuation 0.7 ms\n%s", line, out.String())
	}
}
