package engine

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/protocol"
)

// transport is where the engine meets MQTT: the embedded broker in process, or an
// external broker over the network (several engines sharing the load). Each is a service
// with an event source, a control source and a publisher. What only some transports can
// do is an optional trait that New finds by type assertion: authorizer and
// collectorSource.
type transport interface {
	// Run connects or serves until ctx ends.
	Run(ctx context.Context) error
	Ready() <-chan struct{}
	Addr() string
	publisher
	// Events are the messages for the rules (device events and everything else that
	// forRules lets through).
	Events() eventSource
	// Control are agent status and results, and external invoke requests.
	Control() controlSource
}

// publisher sends the engine's messages: invocations, actuations, rule publications,
// results and dead letters.
type publisher interface {
	Publish(m broker.Message) error
}

// eventSource delivers the events for the rules in batches; each batch carries its own
// acknowledgement.
type eventSource interface {
	// Next returns the next batch; the caller commits it once its actions are handed on.
	Next(ctx context.Context) (eventBatch, error)
	// Close stops intake, at the end of the event loop, and returns the events still
	// waiting, which nobody will evaluate.
	Close() []broker.Event
	// Redelivers reports whether QoS 1 and 2 events not committed come again after a
	// restart (a durable intake; an external broker's persistent session): then an event
	// left unevaluated at shutdown is delayed, not lost.
	Redelivers() bool
	Stats() broker.IntakeStats
}

// controlSource delivers control messages, acknowledged as they arrive (a
// *broker.Intake, or the external transport's queue).
type controlSource interface {
	NextBatch(ctx context.Context) ([]broker.Event, error)
	// Queued returns what is waiting now, without waiting (nil: nothing).
	Queued() []broker.Event
}

// eventBatch is a run of events from an eventSource.
type eventBatch struct {
	Events []broker.Event
	acker  acker
}

// acker acknowledges a source's events up to a sequence number.
type acker interface {
	commit(upTo uint64) error
}

func newBatch(events []broker.Event, a acker) eventBatch {
	return eventBatch{Events: events, acker: a}
}

// recycler is a source that takes its batches' slices back (broker.Intake.Recycle).
type recycler interface {
	recycle(events []broker.Event)
}

// Done hands the batch's slice back to its source: the loop reads neither it nor its
// events any more (what an action keeps of an event, it has copied: payloads are never
// reused).
func (b eventBatch) Done() {
	if r, ok := b.acker.(recycler); ok {
		r.recycle(b.Events)
	}
}

// Commit reports that the first n events of the batch (all of them, or fewer when a
// stopping engine ran out of time) have been evaluated and their actions handed to the
// broker: a durable intake does not deliver them again after a restart, an external
// broker gets their acknowledgements. Sources number their events in the order they
// deliver them, so this acknowledges up to the highest sequence number among the n, and
// the rest stay unacknowledged.
func (b eventBatch) Commit(n int) error {
	var upTo uint64 // 0: nothing to acknowledge
	for i := range b.Events[:n] {
		upTo = max(upTo, b.Events[i].Seq)
	}
	if upTo == 0 || b.acker == nil {
		return nil
	}
	return b.acker.commit(upTo)
}

// authorizer is a transport that knows its broker's ACLs (the embedded broker).
type authorizer interface {
	// Permits reports whether username may read (or write) topic.
	Permits(username, topic string, write bool) bool
}

// collectorSource is a transport with Prometheus figures of its own (the embedded broker).
type collectorSource interface {
	Collector() prometheus.Collector
}

// embedded is the transport of the embedded broker: intakes in, Publish out, no network.
// It is an authorizer and a collectorSource through *broker.Server.
type embedded struct {
	*broker.Server
	events  intakeEvents
	control *broker.Intake
	modules *broker.Intake
}

var (
	_ authorizer      = (*embedded)(nil)
	_ collectorSource = (*embedded)(nil)
	_ moduleRequests  = (*embedded)(nil)
)

func openEmbedded(e *Engine) (*embedded, error) {
	b, err := broker.New(e.cfg.Broker.Config, e.log.With("component", "broker"))
	if err != nil {
		return nil, err
	}
	t := &embedded{Server: b}
	// An invocation the broker drops for an agent whose queue is full ends its attempt
	// now (retried elsewhere or dead-lettered), not at its timeout; a dropped actuation is
	// dead-lettered with its rule.
	b.OnDropped(func(d broker.Dropped) {
		r, ok := e.topics.Parse(d.Topic)
		switch {
		case !ok || r.Agent != d.Client:
		case r.Kind == protocol.AgentInvoke:
			e.dispatch.dropped(r.Agent, d.CorrelationData)
		case r.Kind == protocol.AgentActuate:
			e.drops.dropped(d.Payload)
		}
	})
	// With a store the event intake is durable: QoS 1 and 2 events are journaled before the
	// broker acknowledges them and come back after a crash until evaluated (docs/engine.md).
	// Agent, invoke and response traffic never reaches the rules (forRules), so it is not
	// taken.
	t.events.durable = e.cfg.Broker.Store != ""
	if t.events.in, err = b.Intake("events", broker.IntakeOptions{
		Filters: []string{"#"},
		Exclude: []string{e.topics.AgentAll("+"), e.topics.AllInvoke(), e.topics.AllResponses(), e.topics.AllModules()},
		Durable: t.events.durable,
		// A retained event is evaluated when it is published, not again at every start.
		SkipRetained: true,
		// A full intake holds the publishers back (TCP pushes back on the devices) unless
		// intake.overflow says shed.
		Overflow: e.cfg.Intake.Overflow,
		// What the engine publishes itself (rule publications, results, dead letters)
		// comes back only where a rule can match it.
		Want: func(topic string) bool { return e.ruleSet().Matches(topic) },
	}); err != nil {
		return nil, err
	}
	if t.control, err = b.Intake("control", broker.IntakeOptions{Filters: []string{
		e.topics.AllStatus(), e.topics.AllResults(), e.topics.AllInvoke(),
	}}); err != nil {
		return nil, err
	}
	// Agents' requests for wasm modules: served apart from the control messages, so that
	// sending a large module does not hold statuses and results back.
	if t.modules, err = b.Intake("modules", broker.IntakeOptions{Filters: []string{e.topics.AllModules()}}); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *embedded) Events() eventSource { return t.events }

func (t *embedded) ModuleRequests() controlSource { return t.modules }

func (t *embedded) Control() controlSource { return t.control }

func (t *embedded) Addr() string { return t.Server.Addr(broker.ListenerTCP) }

// intakeEvents is the embedded broker's event intake: committing a batch commits it in
// the intake's journal (a durable intake; a no-op otherwise).
type intakeEvents struct {
	in      *broker.Intake
	durable bool
}

func (s intakeEvents) Next(ctx context.Context) (eventBatch, error) {
	events, err := s.in.NextBatch(ctx)
	if err != nil {
		return eventBatch{}, err
	}
	return newBatch(events, s), nil
}

func (s intakeEvents) commit(upTo uint64) error { return s.in.Commit(upTo) }

func (s intakeEvents) recycle(events []broker.Event) { s.in.Recycle(events) }

func (s intakeEvents) Close() []broker.Event { return s.in.Stop() }

func (s intakeEvents) Redelivers() bool { return s.durable }

func (s intakeEvents) Stats() broker.IntakeStats { return s.in.Stats() }
