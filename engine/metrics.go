package engine

import (
	"github.com/prometheus/client_golang/prometheus"
	"sync"

	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/protocol"
)

// promMetrics are the engine's Prometheus figures, on a registry of its own.
type promMetrics struct {
	reg     *prometheus.Registry
	events  *prometheus.CounterVec // stage: received, matched, skipped
	firings *prometheus.CounterVec // rule
	// fired caches firings' counter per rule name: WithLabelValues hashes and validates
	// the label at every firing (3 % of the engine's CPU at a paced 10k events/s).
	fired sync.Map // string → prometheus.Counter
	// The event loop's counters (children of events), and a registry of events and
	// firings alone: the cumulative counts of the deviceless_events point (eventCounts).
	received, matched, skipped prometheus.Counter
	unevaluated                *prometheus.CounterVec // fate: dropped, redelivered
	counts                     *prometheus.Registry
	dispatched                 prometheus.Counter
	retries                    prometheus.Counter
	timeouts                   prometheus.Counter
	dropped                    prometheus.Counter
	late                       prometheus.Counter
	foreign                    prometheus.Counter
	deadLetters                prometheus.Counter
	malformed                  *prometheus.CounterVec // what
	invokeRefused              *prometheus.CounterVec // reason: retained, response_topic, token
	actionErrs                 *prometheus.CounterVec // kind
	invocations                *prometheus.CounterVec // function, status, cold
	durations                  *prometheus.HistogramVec
	reloads                    *prometheus.CounterVec // result: ok, error
	apiRefused                 *prometheus.CounterVec // reason: auth, role, host, busy, content_type
	// change: added, removed, reset, changed (rules.Diff; kept is no change)
	reloadChanges *prometheus.CounterVec
}

func newPromMetrics(e *Engine) *promMetrics {
	m := &promMetrics{
		reg: prometheus.NewRegistry(),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: eventsTotal,
			Help: "Events by stage: received (into the rules), matched (by at least one rule), skipped (internal or loop)."}, []string{"stage"}),
		firings: prometheus.NewCounterVec(prometheus.CounterOpts{Name: firingsTotal, Help: "Rule firings."}, []string{"rule"}),
		unevaluated: prometheus.NewCounterVec(prometheus.CounterOpts{Name: unevaluatedTotal,
			Help: "Events the broker accepted that a stopping engine left unevaluated when its drain budget ran out: redelivered (QoS 1/2 from a durable intake or a persistent external session: they come again after the restart) or dropped."}, []string{"fate"}),
		dispatched: prometheus.NewCounter(prometheus.CounterOpts{Name: "deviceless_dispatch_attempts_total", Help: "Invocation attempts sent to agents."}),
		retries:    prometheus.NewCounter(prometheus.CounterOpts{Name: "deviceless_dispatch_retries_total", Help: "Invocation attempts retried on another agent."}),
		timeouts:   prometheus.NewCounter(prometheus.CounterOpts{Name: "deviceless_dispatch_timeouts_total", Help: "Invocation attempts without a result in time."}),
		dropped:    prometheus.NewCounter(prometheus.CounterOpts{Name: "deviceless_dispatch_dropped_total", Help: "Invocation attempts the embedded broker dropped because the agent's queue (broker.limits.max_queued) was full."}),
		late:       prometheus.NewCounter(prometheus.CounterOpts{Name: "deviceless_dispatch_late_results_total", Help: "Results for invocations no longer pending here."}),
		foreign: prometheus.NewCounter(prometheus.CounterOpts{Name: "deviceless_dispatch_foreign_results_total",
			Help: "Results from an agent the pending invocation was never sent to, ignored (a forgery, or another engine's id)."}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{Name: "deviceless_deadletters_total",
			Help: "Invocations that could not be delivered or exhausted their attempts."}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deviceless_malformed_messages_total",
			Help: "Control messages that could not be decoded."}, []string{"what"}),
		invokeRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deviceless_invoke_refused_total",
			Help: "MQTT invoke requests not served, by reason: retained, response_topic (not in the requester's response space), token (external broker: no API token of role client or admin)."}, []string{"reason"}),
		actionErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deviceless_action_errors_total",
			Help: "Actions that could not be carried out."}, []string{"kind"}),
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deviceless_invocations_total",
			Help: "Finished invocations."}, []string{"function", "status", "cold"}),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "deviceless_invocation_stage_seconds",
			Help: "Invocation time per stage as the agent measured it.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"function", "stage"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deviceless_rules_reloads_total", Help: "Rule reloads by result."}, []string{"result"}),
		apiRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deviceless_http_refused_total",
			Help: "HTTP API requests refused, by reason: auth, role, host, busy, content_type."}, []string{"reason"}),
		reloadChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "deviceless_rules_reload_changes_total",
			Help: "Rules that successful reloads added, removed, reset (state started empty) or changed (state kept, other actions)."}, []string{"change"}),
	}
	m.received, m.matched, m.skipped = m.events.WithLabelValues("received"), m.events.WithLabelValues("matched"), m.events.WithLabelValues("skipped")
	m.counts = prometheus.NewRegistry()
	m.counts.MustRegister(m.events, m.firings, m.unevaluated)
	m.reg.MustRegister(m.events, m.firings, m.unevaluated, m.dispatched, m.retries, m.timeouts, m.dropped, m.late, m.foreign, m.deadLetters,
		m.malformed, m.invokeRefused, m.actionErrs, m.invocations, m.durations, m.reloads, m.apiRefused, m.reloadChanges,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "deviceless_agents_online", Help: "Agents whose status is online."},
			func() float64 { return float64(e.registry.online()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "deviceless_invocations_in_flight", Help: "Invocations awaiting a result."},
			func() float64 { return float64(e.dispatch.inFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "deviceless_rules_loaded", Help: "Rules in the running set."},
			func() float64 { return float64(len(e.ruleSet().Rules)) }),
		&ruleCollector{e: e},
	)
	if c, ok := e.t.(collectorSource); ok {
		m.reg.MustRegister(c.Collector())
	}
	if e.influx != nil {
		m.reg.MustRegister(e.influx)
	}
	return m
}

const (
	eventsTotal      = "deviceless_events_total"
	firingsTotal     = "deviceless_rule_firings_total"
	unevaluatedTotal = "deviceless_events_unevaluated_total"
)

// eventCounts reads the cumulative counts of the deviceless_events point from the
// Prometheus counters: received and matched events, firings of every rule, and in
// Dropped the events dropped unevaluated at shutdown (the caller adds the event source's).
func (m *promMetrics) eventCounts() metrics.EventCounts {
	var c metrics.EventCounts
	mfs, _ := m.counts.Gather() // cannot fail: vectors of counters
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			v := int64(mt.GetCounter().GetValue())
			switch mf.GetName() {
			case firingsTotal:
				c.Fired += v
			case unevaluatedTotal:
				for _, l := range mt.GetLabel() {
					if l.GetName() == "fate" && l.GetValue() == "dropped" {
						c.Dropped += v
					}
				}
			case eventsTotal:
				for _, l := range mt.GetLabel() {
					switch {
					case l.GetName() != "stage":
					case l.GetValue() == "received":
						c.Received += v
					case l.GetValue() == "matched":
						c.Matched += v
					}
				}
			}
		}
	}
	return c
}

// observe counts a finished invocation and its stage latencies.
func (m *promMetrics) observe(f *finished) {
	r := &f.Result
	cold := "false"
	if r.Cold {
		cold = "true"
	}
	m.invocations.WithLabelValues(r.Function, statusLabel(r.Status), cold).Inc()
	if r.Status != protocol.StatusOK {
		return
	}
	for stage, ms := range map[string]float64{"queue": r.Timings.Queue, "start": r.Timings.Start, "run": r.Timings.Run, "total": r.Timings.Total} {
		m.durations.WithLabelValues(r.Function, stage).Observe(ms / 1000)
	}
}

// statusLabel is a result's status as a metric label: one of the contract's statuses, or
// "other" for whatever else an agent writes, so that labels stay few. The function, rule
// and agent of a finished invocation are the dispatcher's own (dispatcher.result).
func statusLabel(status string) string {
	switch status {
	case protocol.StatusOK, protocol.StatusError, protocol.StatusTimeout, protocol.StatusOOM, protocol.StatusRejected, protocol.StatusExpired:
		return status
	}
	return "other"
}

// ruleCollector exports the rules' own counters, which live in the rules package.
type ruleCollector struct{ e *Engine }

var (
	ruleErrorsDesc    = prometheus.NewDesc("deviceless_rule_errors_total", "Rule runtime errors (missing fields, wrong types, budgets).", []string{"rule"}, nil)
	ruleThrottledDesc = prometheus.NewDesc("deviceless_rule_throttled_total", "Firings suppressed by throttle.", []string{"rule"}, nil)
	ruleKeysDesc      = prometheus.NewDesc("deviceless_rule_state_keys", "State keys a rule holds.", []string{"rule"}, nil)
)

func (c *ruleCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- ruleErrorsDesc
	ch <- ruleThrottledDesc
	ch <- ruleKeysDesc
}

func (c *ruleCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range c.e.ruleSet().Rules {
		ch <- prometheus.MustNewConstMetric(ruleErrorsDesc, prometheus.CounterValue, float64(r.Counters().Errors.Load()), r.Name)
		ch <- prometheus.MustNewConstMetric(ruleThrottledDesc, prometheus.CounterValue, float64(r.Counters().Throttled.Load()), r.Name)
		ch <- prometheus.MustNewConstMetric(ruleKeysDesc, prometheus.GaugeValue, float64(r.Keys()), r.Name)
	}
}

// fire counts one firing of rule.
func (m *promMetrics) fire(rule string) {
	if c, ok := m.fired.Load(rule); ok {
		c.(prometheus.Counter).Inc()
		return
	}
	c := m.firings.WithLabelValues(rule)
	m.fired.Store(rule, c)
	c.Inc()
}
