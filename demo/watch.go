package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/edgeagent/gpio"
	"github.com/deviceless/deviceless/protocol"
)

// agentLines is the output line of a greenhouse's agent in the demo.
func agentLines(line string) map[string]gpio.LineConfig {
	offsets := map[string]int{"fan": 17, "heater": 27, "valve": 22}
	return map[string]gpio.LineConfig{line: {Offset: offsets[line], Direction: gpio.Output}}
}

// greenhouseOf names the greenhouse of an agent of the demo (gh1-edge → gh1).
func greenhouseOf(agent string) string { return strings.TrimSuffix(agent, "-edge") }

// watcher prints the loops as they close, from what a real MQTT client sees.
type watcher struct {
	out    io.Writer
	now    func() time.Time
	topics protocol.Topics // the demo's engine uses the default prefix
	client *paho.Client
	online chan string

	mu         sync.Mutex
	lastEvent  map[string]time.Time // greenhouse → when its last sensor event was published
	invoked    map[string]time.Time // invocation id → when the reading that caused it was published
	results    map[string]int       // status → count
	cold, warm int
	latencies  []float64 // event → result, ms
	direct     []float64 // event → actuation message, ms
	actuated   int
	alerts     int
}

func newWatcher(out io.Writer) *watcher {
	return &watcher{out: out, now: time.Now, online: make(chan string, 8), lastEvent: map[string]time.Time{}, invoked: map[string]time.Time{}, results: map[string]int{}}
}

func (w *watcher) connect(ctx context.Context, addr, user, password string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return fmt.Errorf("demo watcher: %w", err)
	}
	w.client = paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			w.receive(pr.Packet)
			return true, nil
		}},
	})
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := w.client.Connect(cctx, &paho.Connect{ClientID: "demo-watch", KeepAlive: 30, CleanStart: true,
		Username: user, UsernameFlag: true, Password: []byte(password), PasswordFlag: true}); err != nil {
		return fmt.Errorf("demo watcher: connect: %w", err)
	}
	t := w.topics
	_, err = w.client.Subscribe(cctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: t.AllStatus(), QoS: 1}, {Topic: t.ResultsTree(), QoS: 1}, {Topic: t.AllActuate(), QoS: 1},
		{Topic: t.AgentInvoke("+"), QoS: 0},
		{Topic: "alerts/#", QoS: 1}, {Topic: t.DeadLetter(), QoS: 1},
	}})
	if err != nil {
		return fmt.Errorf("demo watcher: subscribe: %w", err)
	}
	return nil
}

func (w *watcher) close() {
	if w.client != nil {
		_ = w.client.Disconnect(&paho.Disconnect{})
	}
}

func (w *watcher) waitAgents(ctx context.Context, ids ...string) error {
	timeout := time.After(30 * time.Second)
	waiting := map[string]bool{}
	for _, id := range ids {
		waiting[id] = true
	}
	for len(waiting) > 0 {
		select {
		case got := <-w.online:
			delete(waiting, got)
		case <-timeout:
			var late []string
			for id := range waiting {
				late = append(late, id)
			}
			slices.Sort(late)
			return fmt.Errorf("agents %s did not come online within 30s", strings.Join(late, ", "))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// published records a sensor event of a greenhouse.
func (w *watcher) published(greenhouse string, at time.Time) {
	w.mu.Lock()
	w.lastEvent[greenhouse] = at
	w.mu.Unlock()
}

func stamp(t time.Time) string { return t.Format("15:04:05.000") }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (w *watcher) receive(p *paho.Publish) {
	now := w.now()
	route, _ := w.topics.Parse(p.Topic)
	switch {
	case route.Kind == protocol.AgentStatus:
		var st protocol.Status
		if json.Unmarshal(p.Payload, &st) == nil && st.Online {
			select {
			case w.online <- st.Agent:
			default:
			}
		}
	case route.Kind == protocol.Results:
		var r protocol.Result
		if json.Unmarshal(p.Payload, &r) != nil {
			return
		}
		var out struct {
			Greenhouse string `json:"greenhouse"`
		}
		_ = json.Unmarshal(r.Output, &out)
		if out.Greenhouse == "" {
			out.Greenhouse = greenhouseOf(r.Agent)
		}
		mode := "cold"
		if !r.Cold {
			mode = "warm"
		}
		w.mu.Lock()
		w.results[r.Status]++
		if r.Status == protocol.StatusOK {
			if r.Cold {
				w.cold++
			} else {
				w.warm++
			}
		}
		loop := ""
		if t, ok := w.invoked[r.ID]; ok {
			delete(w.invoked, r.ID)
			d := ms(now.Sub(t))
			w.latencies = append(w.latencies, d)
			loop = fmt.Sprintf("  event→result %.0f ms", d)
		}
		w.mu.Unlock()
		rule := r.Rule
		if rule == "" {
			rule = "(external invoke)"
		}
		detail := string(r.Output)
		if r.Status != protocol.StatusOK {
			detail = r.Error
		}
		fmt.Fprintf(w.out, "%s  %-4s %-16s → %s on %s  %s %-6s queue %.0f ms, start %.0f ms, run %.0f ms, total %.0f ms%s  %s\n",
			stamp(now), out.Greenhouse, rule, r.Function, r.Agent, mode, r.Status, r.Timings.Queue, r.Timings.Start, r.Timings.Run, r.Timings.Total, loop, detail)
	case route.Kind == protocol.AgentInvoke:
		// The invocation a reading caused leaves within a millisecond of it, while a
		// result can come back after the next reading: remember the reading's time by
		// the invocation's id (a retry keeps the first).
		var inv protocol.Invocation
		if json.Unmarshal(p.Payload, &inv) != nil || inv.Event == nil {
			return
		}
		parts := strings.Split(inv.Event.Topic, "/")
		w.mu.Lock()
		if t, ok := w.lastEvent[parts[min(1, len(parts)-1)]]; ok {
			if _, seen := w.invoked[inv.ID]; !seen {
				w.invoked[inv.ID] = t
			}
		}
		for id, t := range w.invoked { // results that never came
			if now.Sub(t) > 5*time.Minute {
				delete(w.invoked, id)
			}
		}
		w.mu.Unlock()
	case route.Kind == protocol.AgentActuate:
		var a protocol.Actuation
		if json.Unmarshal(p.Payload, &a) != nil {
			return
		}
		gh := greenhouseOf(route.Agent)
		w.mu.Lock()
		loop := ""
		if t, ok := w.lastEvent[gh]; ok {
			d := ms(now.Sub(t))
			w.direct = append(w.direct, d)
			loop = fmt.Sprintf("  event→actuation %.1f ms", d)
		}
		w.mu.Unlock()
		until := ""
		if a.For > 0 {
			until = fmt.Sprintf(" for %v", a.For.D())
		}
		fmt.Fprintf(w.out, "%s  %-4s direct actuation → %s=%d%s%s\n", stamp(now), gh, a.Line, a.Value, until, loop)
	case strings.HasPrefix(p.Topic, "alerts/"):
		w.mu.Lock()
		w.alerts++
		w.mu.Unlock()
		fmt.Fprintf(w.out, "%s  alert on %s: %s\n", stamp(now), p.Topic, p.Payload)
	case route.Kind == protocol.DeadLetter:
		fmt.Fprintf(w.out, "%s  dead letter: %s\n", stamp(now), p.Payload)
	}
}

// lineChanged prints an actuator change an agent made (from the engine or a function).
func (w *watcher) lineChanged(greenhouse, agent, line string, from, to int) {
	w.mu.Lock()
	w.actuated++
	w.mu.Unlock()
	fmt.Fprintf(w.out, "%s  %-4s %s %d → %d (GPIO line on %s)\n", stamp(w.now()), greenhouse, line, from, to, agent)
}

func (w *watcher) summaries(ctx context.Context, every time.Duration, sim *simulation) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		w.mu.Lock()
		lat := slices.Clone(w.latencies)
		dir := slices.Clone(w.direct)
		line := fmt.Sprintf("-- %ds simulated, %d events, invocations ok %d error %d timeout %d (cold %d, warm %d), event→result p50 %s, event→actuation p50 %s, line changes %d, alerts %d",
			sim.seconds(), sim.events(), w.results[protocol.StatusOK], w.results[protocol.StatusError], w.results[protocol.StatusTimeout], w.cold, w.warm, p50(lat), p50(dir), w.actuated, w.alerts)
		w.mu.Unlock()
		fmt.Fprintf(w.out, "%s\n   %s\n", line, sim.state())
	}
}

func p50(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	slices.Sort(v)
	return fmt.Sprintf("%.1f ms", v[len(v)/2])
}
