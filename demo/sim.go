package demo

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/edgeagent/gpio"
)

// simulation is four greenhouses whose sensors publish every period and whose climate
// follows the agent's actuators: the fan cools gh1, the heater warms gh2, the valve waters
// gh3; gh4's humidity jumps once.
type simulation struct {
	lines gpio.Lines
	w     *watcher
	n     atomic.Int64

	mu                 sync.Mutex
	gh1Temp, gh2Temp   float64
	gh3Soil, gh4Humid  float64
	fan, heater, valve int
	tick               int
}

func newSimulation(lines gpio.Lines, w *watcher) *simulation {
	return &simulation{lines: lines, w: w, gh1Temp: 29.5, gh2Temp: 4.5, gh3Soil: 25, gh4Humid: 50}
}

func (s *simulation) events() int64 { return s.n.Load() }

func (s *simulation) state() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	onOff := func(v int) string {
		if v == 1 {
			return "on"
		}
		return "off"
	}
	return fmt.Sprintf("gh1 %.1f°C fan %s | gh2 %.1f°C heater %s | gh3 soil %.0f%% valve %s | gh4 humidity %.0f%%",
		s.gh1Temp, onOff(s.fan), s.gh2Temp, onOff(s.heater), s.gh3Soil, onOff(s.valve), s.gh4Humid)
}

// publisher sends one sensor reading (QoS 1) and returns once the broker acknowledged it.
type publisher func(ctx context.Context, topic string, payload []byte) error

// connectSensors connects the simulated sensors to the broker.
func connectSensors(ctx context.Context, addr, user, password string) (publisher, func(), error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	c := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn)})
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = c.Connect(cctx, &paho.Connect{ClientID: "demo-sensors", KeepAlive: 30, CleanStart: true,
		Username: user, UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
	cancel()
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	pub := func(ctx context.Context, topic string, payload []byte) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := c.Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: 1})
		return err
	}
	return pub, func() { _ = c.Disconnect(&paho.Disconnect{}) }, nil
}

// run publishes the sensors' readings every period until ctx ends.
func (s *simulation) run(ctx context.Context, publish publisher, every time.Duration) error {
	// Actuator changes are watched faster than sensors publish, to print them promptly.
	watch := time.NewTicker(20 * time.Millisecond)
	defer watch.Stop()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-watch.C:
			s.readLines()
		case <-tick.C:
			if err := s.publishAll(ctx, publish); err != nil {
				return err
			}
		}
	}
}

// publishAll advances the physics by one period and publishes every sensor's reading.
func (s *simulation) publishAll(ctx context.Context, publish publisher) error {
	s.step()
	for _, m := range s.messages() {
		// The reading's time is taken, and handed to the watcher, before it is sent: the
		// broker passes a QoS 1 message on to the engine while its PUBACK is on the way
		// back, so the whole loop (rule, actuation, delivery to the watcher) can finish
		// before Publish returns. Recorded after Publish, the watcher then measured that
		// loop from the previous reading, one sensor period earlier (issue 16's 1000 ms).
		s.w.published(m.greenhouse, s.w.now())
		if err := publish(ctx, m.topic, []byte(m.payload)); err != nil {
			return fmt.Errorf("publish %s: %w", m.topic, err)
		}
		s.n.Add(1)
	}
	return nil
}

func (s *simulation) readLines() {
	for _, l := range []string{"fan", "heater", "valve"} {
		v, err := s.lines.Get(l)
		if err != nil {
			continue
		}
		s.mu.Lock()
		p := map[string]*int{"fan": &s.fan, "heater": &s.heater, "valve": &s.valve}[l]
		old := *p
		*p = v
		s.mu.Unlock()
		if old != v {
			s.w.lineChanged(l, old, v)
		}
	}
}

// step advances the physics by one period.
func (s *simulation) step() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick++
	if s.fan == 1 {
		s.gh1Temp -= 0.4
	} else {
		s.gh1Temp += 0.1
	}
	if s.heater == 1 {
		s.gh2Temp += 0.3
	} else {
		s.gh2Temp -= 0.4
	}
	if s.valve == 1 {
		s.gh3Soil += 4
	} else {
		s.gh3Soil -= 1.5
	}
	s.gh1Temp = clamp(s.gh1Temp, 18, 40)
	s.gh2Temp = clamp(s.gh2Temp, -5, 25)
	s.gh3Soil = clamp(s.gh3Soil, 5, 60)
	if s.tick%45 == 20 { // a mister left open: humidity jumps
		s.gh4Humid = 78
	} else if s.gh4Humid > 52 {
		s.gh4Humid -= 2
	}
}

type message struct{ greenhouse, topic, payload string }

func (s *simulation) messages() []message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return []message{
		{"gh1", "greenhouse/gh1/climate", fmt.Sprintf(`{"celsius": %.2f, "humidity": 62}`, s.gh1Temp)},
		{"gh2", "greenhouse/gh2/climate", fmt.Sprintf(`{"celsius": %.2f, "humidity": 88}`, s.gh2Temp)},
		{"gh3", "greenhouse/gh3/soil", fmt.Sprintf(`{"moisture": %.1f}`, s.gh3Soil)},
		{"gh4", "greenhouse/gh4/climate", fmt.Sprintf(`{"celsius": 22, "humidity": %.0f}`, s.gh4Humid)},
	}
}

func clamp(v, lo, hi float64) float64 { return max(lo, min(hi, v)) }
