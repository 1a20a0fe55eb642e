package edgeagent

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/protocol"
)

// agentMetrics are the agent's figures, written to InfluxDB (when configured) and exposed
// to Prometheus (deviceless agent --metrics ADDR).
type agentMetrics struct {
	sink    metrics.Sink
	influx  *metrics.Influx // nil without an influx block
	reg     *prometheus.Registry
	results *prometheus.CounterVec // status, cold
	stages  *prometheus.HistogramVec
	actions *prometheus.CounterVec // line
	repeats prometheus.Counter
	expired prometheus.Counter
	drops   *prometheus.CounterVec // reason
	running atomic.Int64

	fnMu     sync.Mutex
	fnLabels map[string]bool // function names that are labels (see functionLabel)
	fnRun    int             // of them, admitted because the agent ran them
}

// maxFunctionLabels bounds the function names, beyond the agent's own functions, that
// label its invocation metrics: the names come from the invocations it is sent.
const maxFunctionLabels = 64

// otherFunction labels the invocations of every other name.
const otherFunction = "other"

func newAgentMetrics(a *Agent) (*agentMetrics, error) {
	m := &agentMetrics{sink: metrics.Nop{}, reg: prometheus.NewRegistry(), fnLabels: map[string]bool{},
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deviceless_agent_invocations_total",
			Help: "Invocations this agent finished, by status."}, []string{"function", "status", "cold"}),
		stages: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "deviceless_agent_invocation_stage_seconds",
			Help: "Invocation time per stage.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"function", "stage"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deviceless_actuations_total",
			Help: "Actuations applied to output lines."}, []string{"line"}),
		repeats: prometheus.NewCounter(prometheus.CounterOpts{Name: "deviceless_agent_actuations_repeated_total",
			Help: "Actuations received again with an id already applied, and not applied again."}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{Name: "deviceless_agent_actuations_expired_total",
			Help: "Actuations not applied because their expires_at (or their invocation's deadline) had passed."}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deviceless_agent_publish_dropped_total",
			Help: "Messages the agent did not publish: too_large for the broker's maximum packet size, outbox_full during a broker outage."},
			[]string{"reason"}),
	}
	for name := range a.cfg.Functions {
		if labelName(name) {
			m.fnLabels[name] = true
		}
	}
	if a.cfg.Influx != nil {
		in, err := metrics.New(a.cfg.Influx.Config, a.log.With("component", "metrics"))
		if err != nil {
			return nil, err
		}
		m.influx, m.sink = in, in
		m.reg.MustRegister(in)
	}
	m.reg.MustRegister(m.results, m.stages, m.actions, m.repeats, m.expired, m.drops,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "deviceless_agent_running", Help: "Invocations running."},
			func() float64 { return float64(m.running.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "deviceless_agent_queue", Help: "Invocations waiting."},
			func() float64 { return float64(len(a.queue)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "deviceless_agent_healthy", Help: "1 while the podman service answers."},
			func() float64 {
				if a.healthy.Load() {
					return 1
				}
				return 0
			}),
	)
	return m, nil
}

func (m *agentMetrics) result(r protocol.Result) {
	cold := strconv.FormatBool(r.Cold)
	fn := m.functionLabel(r.Function)
	m.results.WithLabelValues(fn, r.Status, cold).Inc()
	if r.Status == protocol.StatusOK {
		for stage, v := range map[string]float64{"queue": r.Timings.Queue, "start": r.Timings.Start, "run": r.Timings.Run, "total": r.Timings.Total} {
			m.stages.WithLabelValues(fn, stage).Observe(v / 1000)
		}
	}
}

// admit makes name a function label once the agent runs a job of that name, while fewer
// than maxFunctionLabels names were admitted so.
func (m *agentMetrics) admit(name string) {
	m.fnMu.Lock()
	defer m.fnMu.Unlock()
	if !m.fnLabels[name] && m.fnRun < maxFunctionLabels && labelName(name) {
		m.fnLabels[name] = true
		m.fnRun++
	}
}

// functionLabel is name if the agent knows it (its own function, or one admitted), else
// "other": unknown names, malformed invocations and names past the bound add no series.
func (m *agentMetrics) functionLabel(name string) string {
	m.fnMu.Lock()
	defer m.fnMu.Unlock()
	if m.fnLabels[name] {
		return name
	}
	return otherFunction
}

// labelName accepts names that are fit to be a label value: short, printable UTF-8.
func labelName(name string) bool {
	if name == "" || len(name) > 64 || name == otherFunction || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func (m *agentMetrics) repeatedActuation() { m.repeats.Inc() }

func (m *agentMetrics) expiredActuations(n int) { m.expired.Add(float64(n)) }

// dropped counts a message not published, by reason.
func (m *agentMetrics) dropped(reason string) { m.drops.WithLabelValues(reason).Inc() }

func (m *agentMetrics) actuation(agent string, act protocol.Actuation) {
	m.actions.WithLabelValues(act.Line).Inc()
	m.sink.Write(metrics.Actuation(agent, act))
}

// report writes the agent's CPU, RSS, running and queued invocations every interval.
func (a *Agent) reportStats(ctx context.Context) {
	if a.metrics.influx == nil {
		return
	}
	every := a.cfg.Influx.Interval
	if every <= 0 {
		every = 10 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	lastCPU, lastAt := processCPU(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cpu := processCPU()
			pct := 0.0
			if wall := now.Sub(lastAt); wall > 0 && cpu >= lastCPU {
				pct = 100 * float64(cpu-lastCPU) / float64(wall)
			}
			lastCPU, lastAt = cpu, now
			a.metrics.sink.Write(metrics.Agent(a.cfg.ID, metrics.AgentStats{
				CPU: pct, RSS: processRSS(), Running: int(a.metrics.running.Load()), Queue: len(a.queue),
			}))
		}
	}
}

// processCPU is the CPU time (user + system) this process used, from /proc/self/stat.
func processCPU() time.Duration {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after the last ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}

// processRSS is this process's resident set size in bytes, from /proc/self/statm.
func processRSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// Metrics is the agent's Prometheus registry, for `deviceless agent --metrics ADDR`.
func (a *Agent) Metrics() *prometheus.Registry { return a.metrics.reg }
