package metrics

import (
	"github.com/deviceless/deviceless/protocol"
)

// Measurements (docs/metrics.md). Prometheus names mirror them.
const (
	MeasurementEvents      = "deviceless_events"
	MeasurementInvocations = "deviceless_invocations"
	MeasurementActuations  = "deviceless_actuations"
	MeasurementAgent       = "deviceless_agent"
)

// EventCounts are the engine's event counters since it started. They are cumulative, like
// Prometheus counters, so a lost point loses no events; dashboards take
// non_negative_derivative to get rates.
type EventCounts struct {
	Received int64 // events the engine took in
	Matched  int64 // events that matched at least one rule
	Dropped  int64 // events the engine could not process (intake full, undecodable when required)
	Fired    int64 // rule firings (one event can fire several rules)
}

// Events is the engine's periodic `deviceless_events` point: tag engine (the engine's
// name, e.g. the host name; several engines can share a broker); integer fields received,
// matched, dropped, fired.
func Events(engine string, c EventCounts) Point {
	return Point{
		Measurement: MeasurementEvents,
		Tags:        []Tag{{"engine", engine}},
		Fields: []Field{
			Int("received", c.Received),
			Int("matched", c.Matched),
			Int("dropped", c.Dropped),
			Int("fired", c.Fired),
		},
	}
}

// Invocation is the `deviceless_invocations` point of one finished invocation: tags
// function, agent, rule, status, cold ("true"/"false"); float fields queue_ms, start_ms,
// run_ms, total_ms and the integer exit_code. Empty tags (no agent for an invocation that
// never reached one, no rule for a direct invoke) are left out.
func Invocation(r protocol.Result) Point {
	cold := "false"
	if r.Cold {
		cold = "true"
	}
	return Point{
		Measurement: MeasurementInvocations,
		Tags: []Tag{
			{"agent", r.Agent},
			{"cold", cold},
			{"function", r.Function},
			{"rule", r.Rule},
			{"status", r.Status},
		},
		Fields: []Field{
			Float("queue_ms", r.Timings.Queue),
			Float("start_ms", r.Timings.Start),
			Float("run_ms", r.Timings.Run),
			Float("total_ms", r.Timings.Total),
			Int("exit_code", int64(r.ExitCode)),
		},
	}
}

// Actuation is the `deviceless_actuations` point of one line change an agent applied:
// tags agent, line; integer field value; float field for_ms when the change reverts
// after a while (0 when it does not).
func Actuation(agent string, a protocol.Actuation) Point {
	return Point{
		Measurement: MeasurementActuations,
		Tags:        []Tag{{"agent", agent}, {"line", a.Line}},
		Fields: []Field{
			Int("value", int64(a.Value)),
			Float("for_ms", float64(a.For.D().Microseconds())/1000),
		},
	}
}

// AgentStats is what an agent reports about itself periodically.
type AgentStats struct {
	CPU     float64 // CPU use of the agent process in percent of one core over the last period
	RSS     int64   // resident memory of the agent process in bytes
	Running int     // invocations running now
	Queue   int     // invocations waiting for a slot
}

// Agent is an agent's periodic `deviceless_agent` point: tag agent; float field cpu,
// integer fields rss, running, queue. An agent counts as online while it sends them.
func Agent(agent string, s AgentStats) Point {
	return Point{
		Measurement: MeasurementAgent,
		Tags:        []Tag{{"agent", agent}},
		Fields: []Field{
			Float("cpu", s.CPU),
			Int("rss", s.RSS),
			Int("running", int64(s.Running)),
			Int("queue", int64(s.Queue)),
		},
	}
}
