package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deviceless/deviceless/edgeagent"
	"github.com/deviceless/deviceless/edgeagent/container"
	"github.com/deviceless/deviceless/edgeagent/gpio"
	"github.com/deviceless/deviceless/edgeagent/gpio/sim"
	"github.com/deviceless/deviceless/edgeagent/podman"
	"github.com/deviceless/deviceless/protocol"
	"github.com/deviceless/deviceless/rules"
)

// loopAgent is a greenhouse's agent in simulated time: its lines, and the reverts its
// actuations' `for` schedule (as edgeagent's reverter does: a new command on a line
// cancels the pending revert, and the revert restores the value before the first one).
type loopAgent struct {
	id      string
	labels  map[string]string
	lines   gpio.Lines
	reverts map[string]revertAt
}

type revertAt struct {
	at   time.Time
	base int
}

func (a *loopAgent) set(line string, value int, d time.Duration, now time.Time) error {
	r, pending := a.reverts[line]
	base := r.base
	if pending {
		delete(a.reverts, line)
	} else if d > 0 {
		v, err := a.lines.Get(line)
		if err != nil {
			return err
		}
		base = v
	}
	if err := a.lines.Set(line, value); err != nil {
		return err
	}
	if d > 0 {
		a.reverts[line] = revertAt{now.Add(d), base}
	}
	return nil
}

func (a *loopAgent) due(now time.Time) {
	for line, r := range a.reverts {
		if !now.Before(r.at) {
			delete(a.reverts, line)
			_ = a.lines.Set(line, r.base)
		}
	}
}

// The greenhouse example's rules and the demo's physics form control loops: after the
// loops settle, no greenhouse stays outside its band longer than its loop's delays allow,
// every actuator keeps switching on and off (a loop, not an actuator stuck on with a wide
// band), and none switches faster than its hysteresis allows (no flapping). The clock is
// simulated (one reading per greenhouse per simulated second, as the demo publishes them),
// the rules are the example's own, evaluated as the engine does, and the functions are
// the example's code run in podman.
func TestGreenhouseLoopsHoldTheirBands(t *testing.T) {
	socket := edgeagent.DefaultPodmanSocket()
	if err := checkPodman(socket); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := writeEmbedded(dir); err != nil {
		t.Fatal(err)
	}
	set, err := rules.Load([]string{dir}, rules.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := podman.New(podman.Config{Socket: socket, Agent: "demo-looptest", User: "65534:65534", CodeDir: t.TempDir(),
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(context.Background())

	agents := map[string]*loopAgent{}
	for _, a := range demoAgents {
		lines, err := sim.Open(agentLines(a.line), nil)
		if err != nil {
			t.Fatal(err)
		}
		agents[a.id] = &loopAgent{id: a.id, labels: map[string]string{"site": "greenhouse", "zone": a.zone}, lines: lines, reverts: map[string]revertAt{}}
	}
	pick := func(tg protocol.Target) []*loopAgent {
		var out []*loopAgent
		for _, id := range slices.Sorted(maps.Keys(agents)) {
			a := agents[id]
			if (tg.Agent == "" || tg.Agent == id) && labelsMatch(a.labels, tg.Labels) {
				out = append(out, a)
			}
		}
		if tg.Pick != protocol.PickAll && len(out) > 1 {
			out = out[:1]
		}
		return out
	}
	lineMap := map[string]gpio.Lines{}
	for id, a := range agents {
		lineMap[id] = a.lines
	}
	s := newSimulation(lineMap, nil)
	ev := set.NewEvaluator()
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()

	// invoke runs a function's code in podman as the agent would (warm, so the test takes
	// seconds, not minutes; a function's answer is the same cold or warm) and applies its
	// actuations at the moment of the reading.
	invocations := map[string]int{}
	invoke := func(a rules.Action, ag *loopAgent, r, topic string, payload []byte, now time.Time) {
		spec := a.Function.Spec.WithDefaults()
		stdin, _ := json.Marshal(protocol.Invocation{ID: fmt.Sprintf("loop-%d", len(invocations)), Function: a.Function.Name, Rule: r,
			Event: &protocol.Event{Topic: topic, Payload: payload, ReceivedAt: now}, Args: a.Args})
		warm := protocol.Warm{}
		if spec.Warm != nil {
			warm = *spec.Warm
		}
		warm.Idle = protocol.Duration(time.Minute)
		out, err := rt.Run(ctx, container.Job{ID: "loop", Function: a.Function.Name, Image: edgeagent.DefaultRuntimes[spec.Runtime],
			Command: []string{spec.Runtime, container.CodePath}, Code: spec.Code, Stdin: append(stdin, '\n'),
			Timeout: spec.Timeout.D(), Memory: int64(spec.Memory), Warm: &warm})
		if err != nil || out.ExitCode != 0 {
			t.Fatalf("%s: %v (exit %d, stderr %s)", a.Function.Name, err, out.ExitCode, out.Stderr)
		}
		var res protocol.Output
		if err := json.Unmarshal(out.Stdout, &res); err != nil {
			t.Fatalf("%s: output %q: %v", a.Function.Name, out.Stdout, err)
		}
		invocations[a.Function.Name]++
		for _, act := range res.Actuate {
			if err := ag.set(act.Line, act.Value, act.For.D(), now); err != nil {
				t.Fatalf("%s on %s: %v", a.Function.Name, ag.id, err)
			}
		}
	}

	const seconds = 1800 // half an hour of simulated time
	type record struct {
		outside, longest int     // seconds outside the band: now, longest stretch
		lo, hi           float64 // extremes once settled
		switches         []int   // seconds at which the actuator changed
		last             int     // the actuator, as last seen
	}
	recs := map[string]*record{}
	alerts := map[string]int{}
	var firings []rules.Firing
	for tick := 1; tick <= seconds; tick++ {
		now := start.Add(time.Duration(tick) * time.Second)
		for _, a := range agents {
			a.due(now)
		}
		s.readLines()
		s.step()
		for _, m := range s.messages() {
			firings = ev.Eval(&rules.Event{Topic: m.topic, Payload: []byte(m.payload), QoS: 1, Time: now}, firings[:0])
			for _, f := range firings {
				for _, a := range f.Actions {
					switch a.Kind {
					case rules.Actuate:
						for _, ag := range pick(a.Target) {
							if err := ag.set(a.Line, toInt(t, a.Value), a.For, now); err != nil {
								t.Fatalf("%s on %s: %v", f.Rule, ag.id, err)
							}
						}
					case rules.Invoke:
						targets := pick(a.Target)
						if len(targets) == 0 {
							t.Fatalf("%s: no agent for %s", f.Rule, a.Target)
						}
						invoke(a, targets[0], f.Rule, m.topic, []byte(m.payload), now)
					case rules.Publish:
						alerts[a.Topic]++
					}
				}
			}
		}
		s.mu.Lock()
		for _, g := range s.ghs {
			if g.band == (band{}) {
				continue
			}
			r := recs[g.name]
			if r == nil {
				r = &record{lo: g.band.hi, hi: g.band.lo}
				recs[g.name] = r
			}
			if g.on != r.last {
				r.switches = append(r.switches, tick)
				r.last = g.on
			}
			if tick <= settleTicks {
				continue
			}
			r.lo, r.hi = min(r.lo, g.value), max(r.hi, g.value)
			if g.value < g.band.lo || g.value > g.band.hi {
				r.outside++
				r.longest = max(r.longest, r.outside)
			} else {
				r.outside = 0
			}
		}
		s.mu.Unlock()
	}

	var report strings.Builder
	for _, g := range s.ghs {
		r := recs[g.name]
		if r == nil {
			continue
		}
		gaps := []int{}
		for i := 1; i < len(r.switches); i++ {
			gaps = append(gaps, r.switches[i]-r.switches[i-1])
		}
		fmt.Fprintf(&report, "%s %s band %s %s: %.2f to %.2f after %d s, longest outside %d s, %s switched %d times, shortest gap %d s\n",
			g.name, g.what, g.band, g.unit, r.lo, r.hi, settleTicks, r.longest, g.line, len(r.switches), slices.Min(append(gaps, seconds)))
		// Every loop's design answers within seconds once past a threshold; a greenhouse
		// outside its band longer than that is a loop that does not regulate.
		if r.longest > maxOutside {
			t.Errorf("%s stayed outside its band %s for %d s (at most %d)", g.name, g.band, r.longest, maxOutside)
		}
		// A loop that cycles switches its actuator on and off again and again in half an
		// hour; one stuck on (or off) is not regulating, it is saturated.
		if len(r.switches) < 10 {
			t.Errorf("%s: %s switched %d times in %d s: not a loop", g.name, g.line, len(r.switches), seconds)
		}
		// Hysteresis: between a switch and the next the variable must cross the band.
		if m := slices.Min(append(gaps, seconds)); m < minGap {
			t.Errorf("%s: %s switched twice within %d s: flapping", g.name, g.line, m)
		}
	}
	t.Logf("after %d simulated seconds (functions run: %v, alerts: %v):\n%s", seconds, invocations, alerts, report.String())
	if alerts["alerts/greenhouse/gh2"] != 1 {
		t.Errorf("frost alerts for gh2: %d, want the one at the start (2.5 °C), then none: the heater holds it above 3 °C", alerts["alerts/greenhouse/gh2"])
	}
}

const (
	maxOutside = 5  // seconds a settled greenhouse may spend outside its band in one stretch
	minGap     = 10 // seconds between two switches of an actuator, at least
)

func labelsMatch(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func toInt(t *testing.T, v any) int {
	switch v := v.(type) {
	case int:
		return v
	case float64:
		return int(v)
	case bool:
		if v {
			return 1
		}
		return 0
	}
	t.Fatalf("actuation value %v (%T)", v, v)
	return 0
}
