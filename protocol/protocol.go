// Package protocol holds what crosses the wire between the engine, the edge agents and
// MQTT clients: topic names and message shapes (see docs/design.md). It is the only
// package the engine and the edge agent share.
package protocol

import (
	"encoding/json"
	"fmt"
	"time"
)

// Line directions.
const (
	DirectionOutput = "output"
	DirectionInput  = "input"
)

// LineInfo describes one GPIO line an agent exposes.
type LineInfo struct {
	Direction string `json:"direction"`
	// Value is the line's logical level (0 or 1) when the status was published; the agent
	// publishes its status again when a line's value changes. Absent when it cannot be read.
	Value *int `json:"value,omitempty"`
}

// Status is an agent's retained status message.
type Status struct {
	Agent    string            `json:"agent"`
	Online   bool              `json:"online"`
	Healthy  bool              `json:"healthy"`           // the agent can run functions (its container engine answers)
	Problem  string            `json:"problem,omitempty"` // why it cannot, when not healthy
	Labels   map[string]string `json:"labels,omitempty"`
	Runtimes []string          `json:"runtimes,omitempty"`
	// Containers says whether the agent runs container functions (podman.enabled); absent
	// (agents before the wasm runtime): it does.
	Containers *bool               `json:"containers,omitempty"`
	Functions  []string            `json:"functions,omitempty"`
	Lines      map[string]LineInfo `json:"lines,omitempty"`
	Version    string              `json:"version,omitempty"`
	StartedAt  time.Time           `json:"started_at,omitzero"`
}

// Event is the sensor event that triggered an invocation.
type Event struct {
	Topic      string          `json:"topic"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	ReceivedAt time.Time       `json:"received_at,omitzero"`
}

// Invocation is an invocation request sent to an agent.
type Invocation struct {
	ID       string         `json:"id"`
	Function string         `json:"function"`
	Rule     string         `json:"rule,omitempty"`
	Attempt  int            `json:"attempt"`
	Hop      int            `json:"hop"` // the hop of the event that caused it: the agent's publishes carry Hop+1
	Deadline time.Time      `json:"deadline,omitzero"`
	Event    *Event         `json:"event,omitempty"`
	Args     map[string]any `json:"args,omitempty"`
	Spec     FunctionSpec   `json:"spec"`
}

// HopProperty is the MQTT user property that counts how many rule actions led to a
// message (docs/design.md, "rules cannot loop"): the engine sets it on what it publishes,
// an agent on a function's publishes (the invocation's Hop + 1). The embedded broker
// strips it from devices and clients.
const HopProperty = "deviceless-hop"

// Result statuses.
const (
	StatusOK       = "ok"
	StatusError    = "error"
	StatusTimeout  = "timeout"
	StatusOOM      = "oom"
	StatusRejected = "rejected"
	StatusExpired  = "expired"
)

// Timings are the stages of one invocation in milliseconds.
type Timings struct {
	Queue float64 `json:"queue"`
	Start float64 `json:"start"`
	Run   float64 `json:"run"`
	Total float64 `json:"total"`
}

// Result is what an agent answers for an invocation.
type Result struct {
	ID       string          `json:"id"`
	Agent    string          `json:"agent"`
	Function string          `json:"function"`
	Rule     string          `json:"rule,omitempty"`
	Status   string          `json:"status"`
	Output   json.RawMessage `json:"output,omitempty"`
	Error    string          `json:"error,omitempty"`
	ExitCode int             `json:"exit_code"`
	Cold     bool            `json:"cold"`
	Timings  Timings         `json:"timings_ms"`
	// Expired are the actuations the function asked for that the agent dropped because
	// their expires_at (or the invocation's deadline) had passed.
	Expired []Actuation `json:"expired,omitempty"`
}

// Actuation drives one output line of an agent; For, when set, reverts it afterwards.
// ExpiresAt, when set, is when it goes stale: an agent that gets it later does not apply
// it (the engine also sets the MQTT message expiry, so the broker drops it from an
// offline agent's queue).
type Actuation struct {
	ID        string    `json:"id,omitempty"`
	Line      string    `json:"line"`
	Value     int       `json:"value"`
	For       Duration  `json:"for,omitzero"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Publish is a message a function (or a rule) asks to publish.
type Publish struct {
	Topic   string          `json:"topic"`
	Payload json.RawMessage `json:"payload,omitempty"`
	QoS     byte            `json:"qos,omitempty"`
	Retain  bool            `json:"retain,omitempty"`
}

// Output is the shape of a function's stdout when it asks the agent to act.
type Output struct {
	Actuate []Actuation     `json:"actuate,omitempty"`
	Publish []Publish       `json:"publish,omitempty"`
	Result  json.RawMessage `json:"result,omitempty"`
}

// InvokeRequest is the body of an external invoke (MQTT deviceless/invoke/{fn} or HTTP).
type InvokeRequest struct {
	Args   map[string]any `json:"args,omitempty"`
	Target *Target        `json:"target,omitempty"`
}

// Duration is a time.Duration that travels as a Go duration string ("30s") and also
// accepts a number of milliseconds.
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads "30s" or a number of milliseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return fmt.Errorf("duration must be a string like \"30s\" or milliseconds, got %s", b)
	}
	*d = Duration(ms * float64(time.Millisecond))
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }
