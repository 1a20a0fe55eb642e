package engine

import (
	"encoding/json"
	"time"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/protocol"
	"github.com/deviceless/deviceless/rules"
)

// DeadLetter is what the engine publishes on {prefix}/deadletter: an invocation that could
// not be delivered or exhausted its retries (Invocation, Tried), or a rule's actuation or
// publication that could not be carried out (Rule, Action, and Event, the event that fired
// it; none for a scheduled run). Either way nothing the rules decided is only logged.
type DeadLetter struct {
	Reason     string               `json:"reason"`
	Invocation *protocol.Invocation `json:"invocation,omitempty"`
	Tried      []string             `json:"tried,omitempty"`
	Rule       string               `json:"rule,omitempty"`
	Action     *ActionView          `json:"action,omitempty"`
	Event      *protocol.Event      `json:"event,omitempty"`
	At         time.Time            `json:"at"`
}

// publishDeadLetter publishes dl on {prefix}/deadletter, one hop on from the event that
// caused it. It is the one way out for dead letters, the dispatcher's and the actions'.
func (d *dispatcher) publishDeadLetter(dl DeadLetter, hop int) {
	d.counters.deadLetters.Inc()
	b, err := json.Marshal(dl)
	if err != nil && dl.Invocation != nil {
		// Only the arguments can fail to encode (the reason says so): leave them out.
		inv := *dl.Invocation
		inv.Args = nil
		dl.Invocation = &inv
		b, err = json.Marshal(dl)
	}
	if err != nil && dl.Action != nil {
		a := *dl.Action
		a.Args, a.Value, a.Payload = nil, nil, nil
		dl.Action = &a
		b, err = json.Marshal(dl)
	}
	if err != nil {
		d.log.Error("dead letter cannot be encoded", "reason", dl.Reason, "err", err)
		return
	}
	if err := d.publish(broker.Message{Topic: d.topics.DeadLetter(), Payload: b, QoS: 1, ContentType: "application/json",
		UserProperties: hopProperties(hop + 1)}); err != nil {
		d.log.Error("dead letter not published", "reason", dl.Reason, "err", err)
	}
}

// actionFailed dead-letters a rule's actuation or publication that could not be carried
// out (no online agent with the line, a value that is no line value, a payload that cannot
// be encoded, a broker that refused it), with the event that fired it.
func (e *Engine) actionFailed(rule string, a *rules.Action, acts *eventActions, err error) {
	kind := a.Kind.String()
	e.metrics.actionErrs.WithLabelValues(kind).Inc()
	e.log.Warn("action dead-lettered", "rule", rule, "kind", kind, "line", a.Line, "topic", a.Topic, "err", err)
	v := viewActions([]rules.Action{*a})[0]
	e.dispatch.publishDeadLetter(DeadLetter{Reason: kind + " failed: " + err.Error(), Rule: rule, Action: &v,
		Event: acts.invocationEvent(), At: e.now()}, acts.hop)
}
