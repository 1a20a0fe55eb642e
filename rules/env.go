package rules

import (
	"time"
)

// Env is what an expression sees. Field tags are the variable names of the rule language.
type Env struct {
	Topic      string      `expr:"topic"`
	TopicParts []string    `expr:"topic_parts"`
	Payload    any         `expr:"payload"`
	Raw        string      `expr:"raw"`
	Client     string      `expr:"client"`
	QoS        int         `expr:"qos"`
	Retain     bool        `expr:"retain"`
	Now        time.Time   `expr:"now"`
	Window     Window      `expr:"window"`
	Prev       any         `expr:"prev"`
	Agents     []Agent     `expr:"agents"`
	Schedule   ScheduleRun `expr:"schedule"`
	// Fetch is member access into untyped values (fetch.go); always fetchMember.
	Fetch func(any, any) any `expr:"$fetch"`
	// body is the event's payload as it came, for a publish without `payload`
	// (RawPayload); expressions do not see unexported fields.
	body []byte
}

// ScheduleRun is the `schedule` variable: the run of a scheduled rule being evaluated. An
// event's evaluation sees it empty (rule "", at the zero time).
type ScheduleRun struct {
	Rule string `expr:"rule"`
	// At is the time the run was due (in the schedule's zone); `now` is when it ran.
	At time.Time `expr:"at"`
	// CatchUp is true for the one run, at the engine's start, that stands for the runs
	// missed while it was down (`catch_up: true`).
	CatchUp bool `expr:"catch_up"`
}

// Window is the state of a rule's window for the current key, this event included.
type Window struct {
	Avg   float64 `expr:"avg"`
	Min   float64 `expr:"min"`
	Max   float64 `expr:"max"`
	Sum   float64 `expr:"sum"`
	Count int     `expr:"count"`
	Last  float64 `expr:"last"`
}

// Agent is what expressions see of an edge agent in the registry.
type Agent struct {
	ID       string            `expr:"id"`
	Online   bool              `expr:"online"`
	Labels   map[string]string `expr:"labels"`
	Lines    []string          `expr:"lines"`
	InFlight int               `expr:"in_flight"`
}

// Variables lists the names an expression may use, for error messages and docs.
var Variables = []string{"topic", "topic_parts", "payload", "raw", "client", "qos", "retain", "now", "window", "prev", "agents", "schedule"}

// uses records which costly variables a rule's expressions read, so that an event is
// only decoded, split or copied when some matching rule needs it.
type uses uint8

const (
	usePayload uses = 1 << iota
	useRaw
	useTopicParts
	usePrev
	useWindow
	// usePayloadWhole: payload is read other than as $fetch(payload, ...) (`payload`,
	// `payload?.x`, `len(payload)`, `$env`...), so the event's payload must be decoded,
	// not lazy (lazy.go). It comes with usePayload.
	usePayloadWhole
)
