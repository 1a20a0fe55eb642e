package metrics

import (
	"strconv"
	"time"

	"github.com/deviceless/deviceless/protocol"
)

// Measurements (docs/metrics.md). Prometheus names mirror them.
const (
	MeasurementEvents      = "deviceless_events"
	MeasurementInvocations = "deviceless_invocations"
	MeasurementActuations  = "deviceless_actuations"
	MeasurementAgent       = "deviceless_agent"
	MeasurementUsage       = "deviceless_usage"
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

// UsageRecord is what one finished invocation used, as the engine meters it.
type UsageRecord struct {
	Function string // the function's name (without its version)
	Version  int    // the deployed version; 0 for a rule file's function
	Agent    string
	Rule     string // the rule that invoked it, if one did
	Caller   string // who invoked it: user:alice, token:ci, rule:hot, ...
	Status   string
	Cold     bool
	RunMS    int64 // run time in whole milliseconds, rounded up
	MiBMS    int64 // memory limit in MiB (rounded up) × RunMS
	Time     time.Time
}

// Usage is the `deviceless_usage` point of one finished invocation: tags function,
// version (absent for a rule file's function), agent, rule, caller, status; integer
// fields invocations (1), run_ms, cold_starts (0 or 1); float field gb_ms (MiB-ms / 1024,
// exact). Sums over any time range give the figures of GET /api/v1/usage.
func Usage(u UsageRecord) Point {
	version, cold := "", int64(0)
	if u.Version > 0 {
		version = strconv.Itoa(u.Version)
	}
	if u.Cold {
		cold = 1
	}
	return Point{
		Measurement: MeasurementUsage,
		Tags: []Tag{
			{"agent", u.Agent},
			{"caller", u.Caller},
			{"function", u.Function},
			{"rule", u.Rule},
			{"status", u.Status},
			{"version", version},
		},
		Fields: []Field{
			Int("invocations", 1),
			Int("run_ms", u.RunMS),
			Float("gb_ms", float64(u.MiBMS)/1024),
			Int("cold_starts", cold),
		},
		Time: u.Time,
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
