package demo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/edgeagent/gpio"
)

// band is the range a control loop of the greenhouse example keeps its variable in once it
// has settled (examples/greenhouse/rules/greenhouse.yaml): the actuator's two thresholds
// and the overshoot the loop's delays add to them (a 30 s average, a reading per second, a
// function's start). TestGreenhouseLoopsHoldTheirBands holds the rules to it.
type band struct{ lo, hi float64 }

func (b band) String() string { return fmt.Sprintf("%g–%g", b.lo, b.hi) }

// greenhouse is one simulated greenhouse: one variable its sensor reports, and the
// actuator, on the greenhouse's own agent, that moves it.
type greenhouse struct {
	name  string // gh1
	what  string // what the variable is, for the summary
	about string // its situation, for the demo's header
	unit  string
	band  band   // zero: no loop (gh4 only raises alerts)
	agent string // the greenhouse's edge agent ("" without an actuator)
	line  string // the actuator's output line on that agent

	value float64 // the variable now
	on    int     // the actuator line, as last read
	// step advances the physics by one second; message is the sensor's reading.
	step    func(g *greenhouse, r *rand.Rand, tick int)
	message func(g *greenhouse) (topic, payload string)
	// For the summary: readings inside the band since the loop settled, of all.
	inBand, settled int
}

// settleTicks is how long a loop may take to bring its greenhouse into its band from the
// starting conditions (seconds of simulated time).
const settleTicks = 120

// newGreenhouses returns the four greenhouses of the demo at their starting conditions:
// gh1 in the sun above its band, gh2 in a frost night below it, gh3 drying out, gh4 with
// no loop whose humidity jumps now and then.
func newGreenhouses() []*greenhouse {
	// relax moves v a step towards target with time constant tau (seconds).
	relax := func(v, target, tau float64) float64 { return v + (target-v)/tau }
	noise := func(r *rand.Rand, a float64) float64 { return (r.Float64()*2 - 1) * a }
	return []*greenhouse{
		{
			name: "gh1", what: "temperature", about: "in the sun", unit: "°C", band: band{24, 30}, agent: "gh1-edge", line: "fan",
			value: 29.5,
			// The sun drives it towards 34 °C; the fan, open to 16 °C outside air, towards 16.
			step: func(g *greenhouse, r *rand.Rand, _ int) {
				g.value = relax(g.value, either(g.on, 16.0, 34.0), 90) + noise(r, 0.05)
			},
			message: func(g *greenhouse) (string, string) {
				return "greenhouse/gh1/climate", fmt.Sprintf(`{"celsius": %.2f, "humidity": 62}`, g.value)
			},
		},
		{
			name: "gh2", what: "temperature", about: "a frost night", unit: "°C", band: band{4, 11}, agent: "gh2-edge", line: "heater",
			value: 2.5,
			// A frost night pulls it towards -3 °C; the heater towards 22.
			step: func(g *greenhouse, r *rand.Rand, _ int) {
				g.value = relax(g.value, either(g.on, 22.0, -3.0), 100) + noise(r, 0.05)
			},
			message: func(g *greenhouse) (string, string) {
				return "greenhouse/gh2/climate", fmt.Sprintf(`{"celsius": %.2f, "humidity": 88}`, g.value)
			},
		},
		{
			name: "gh3", what: "soil moisture", about: "drying out", unit: "%", band: band{22, 43}, agent: "gh3-edge", line: "valve",
			value: 27,
			// The bed dries by 0.25 points a second; the open valve adds 1.5.
			step: func(g *greenhouse, r *rand.Rand, _ int) {
				g.value += float64(g.on)*1.5 - 0.25 + noise(r, 0.2)
				g.value = max(0, min(100, g.value))
			},
			message: func(g *greenhouse) (string, string) {
				return "greenhouse/gh3/soil", fmt.Sprintf(`{"moisture": %.1f}`, g.value)
			},
		},
		{
			name: "gh4", what: "humidity", about: "jumps now and then (an alert, no loop)", unit: "%", value: 50,
			// A mister left open: the humidity jumps, then falls back.
			step: func(g *greenhouse, _ *rand.Rand, tick int) {
				if tick%45 == 20 {
					g.value = 78
				} else if g.value > 52 {
					g.value -= 2
				}
			},
			message: func(g *greenhouse) (string, string) {
				return "greenhouse/gh4/climate", fmt.Sprintf(`{"celsius": 22, "humidity": %.0f}`, g.value)
			},
		},
	}
}

// describeGreenhouses says what the demo simulates, for its header.
func describeGreenhouses() string {
	var parts []string
	for _, g := range newGreenhouses() {
		if g.band == (band{}) {
			parts = append(parts, fmt.Sprintf("%s %s %s", g.name, g.what, g.about))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s %s, the %s keeps it in %s %s", g.name, g.what, g.about, g.line, g.band, g.unit))
	}
	return strings.Join(parts, ";\n  ")
}

// simulation is the greenhouses, their sensors and the actuators' lines: a sensor reading
// per greenhouse every period, and each period one second of physics.
type simulation struct {
	lines map[string]gpio.Lines // agent id → its lines
	w     *watcher              // nil: nothing is printed
	n     atomic.Int64

	mu   sync.Mutex
	ghs  []*greenhouse
	rnd  *rand.Rand
	tick int
}

func newSimulation(lines map[string]gpio.Lines, w *watcher) *simulation {
	return &simulation{lines: lines, w: w, ghs: newGreenhouses(), rnd: rand.New(rand.NewPCG(16, 1))}
}

func (s *simulation) events() int64 { return s.n.Load() }

// seconds is the simulated time so far.
func (s *simulation) seconds() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tick
}

// state is the summary's picture of every greenhouse against its band.
func (s *simulation) state() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var parts []string
	for _, g := range s.ghs {
		p := fmt.Sprintf("%s %s %.1f %s", g.name, g.what, g.value, g.unit)
		if g.band != (band{}) {
			where := "in"
			switch {
			case g.value < g.band.lo:
				where = "BELOW"
			case g.value > g.band.hi:
				where = "ABOVE"
			}
			p += fmt.Sprintf(" %s band %s, %s %s", where, g.band, g.line, either(g.on, "on", "off"))
			if g.settled > 0 {
				p += fmt.Sprintf(", in band %.0f%% since settled", 100*float64(g.inBand)/float64(g.settled))
			}
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, "\n   ")
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
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
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

// publishAll advances the physics by one second and publishes every sensor's reading.
func (s *simulation) publishAll(ctx context.Context, publish publisher) error {
	s.readLines()
	s.step()
	for _, m := range s.messages() {
		// The reading's time is taken, and handed to the watcher, before it is sent: the
		// broker passes a QoS 1 message on to the engine while its PUBACK is on the way
		// back, so the whole loop (rule, actuation, delivery to the watcher) can finish
		// before Publish returns. Recorded after Publish, the watcher then measured that
		// loop from the previous reading, one sensor period earlier (issue 16's 1000 ms).
		if s.w != nil {
			s.w.published(m.greenhouse, s.w.now())
		}
		if err := publish(ctx, m.topic, []byte(m.payload)); err != nil {
			return fmt.Errorf("publish %s: %w", m.topic, err)
		}
		s.n.Add(1)
	}
	return nil
}

// readLines takes the actuators' lines from the agents and reports changes.
func (s *simulation) readLines() {
	for _, g := range s.ghs {
		if g.agent == "" {
			continue
		}
		lines, ok := s.lines[g.agent]
		if !ok {
			continue
		}
		v, err := lines.Get(g.line)
		if err != nil {
			continue
		}
		s.mu.Lock()
		old := g.on
		g.on = v
		s.mu.Unlock()
		if old != v && s.w != nil {
			s.w.lineChanged(g.name, g.agent, g.line, old, v)
		}
	}
}

// step advances the physics by one second.
func (s *simulation) step() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tick++
	for _, g := range s.ghs {
		g.step(g, s.rnd, s.tick)
		if g.band != (band{}) && s.tick > settleTicks {
			g.settled++
			if g.value >= g.band.lo && g.value <= g.band.hi {
				g.inBand++
			}
		}
	}
}

type message struct{ greenhouse, topic, payload string }

func (s *simulation) messages() []message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]message, 0, len(s.ghs))
	for _, g := range s.ghs {
		topic, payload := g.message(g)
		out = append(out, message{g.name, topic, payload})
	}
	return out
}

// either is on when the line is 1, else off.
func either[T any](line int, on, off T) T {
	if line == 1 {
		return on
	}
	return off
}
