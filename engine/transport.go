package engine

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deviceless/deviceless/broker"
)

// transport is where the engine meets MQTT: the embedded broker in process, or an
// external broker over the network (several engines sharing the load).
type transport interface {
	// Run connects or serves until ctx ends.
	Run(ctx context.Context) error
	Ready() <-chan struct{}
	// NextEvents returns the next device events (and everything else for the rules).
	NextEvents(ctx context.Context) ([]broker.Event, error)
	// CommitEvents reports that every event up to seq (broker.Event.Seq) has been
	// evaluated and its actions handed to the broker: a durable intake does not deliver
	// them again after a restart.
	CommitEvents(seq uint64) error
	// CloseEvents stops event intake; NextEvents then returns what is left, then an error.
	CloseEvents()
	// NextControl returns agent status and results, and external invoke requests.
	NextControl(ctx context.Context) ([]broker.Event, error)
	Publish(m broker.Message) error
	// Permits reports whether username may read (or write) topic.
	Permits(username, topic string, write bool) bool
	Addr() string
	Collector() prometheus.Collector // nil when there is none
	Stats() broker.IntakeStats
}

// embedded is the transport of the embedded broker: intakes in, Publish out, no network.
type embedded struct {
	*broker.Server
	events, control *broker.Intake
}

func openEmbedded(e *Engine) (*embedded, error) {
	b, err := broker.New(e.cfg.Broker.Config, e.log.With("component", "broker"))
	if err != nil {
		return nil, err
	}
	t := &embedded{Server: b}
	// With a store the event intake is durable: QoS 1 and 2 events are journaled before the
	// broker acknowledges them and come back after a crash until evaluated (docs/engine.md).
	// Agent and invoke traffic never reaches the rules (forRules), so it is not taken.
	if t.events, err = b.Intake("events", broker.IntakeOptions{
		Filters: []string{"#"},
		Exclude: []string{e.topics.AgentAll("+"), e.topics.AllInvoke()},
		Durable: e.cfg.Broker.Store != "",
	}); err != nil {
		return nil, err
	}
	if t.control, err = b.Intake("control", broker.IntakeOptions{Filters: []string{
		e.topics.AllStatus(), e.topics.AllResults(), e.topics.AllInvoke(),
	}}); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *embedded) NextEvents(ctx context.Context) ([]broker.Event, error) {
	return t.events.NextBatch(ctx)
}

func (t *embedded) CommitEvents(seq uint64) error { return t.events.Commit(seq) }

func (t *embedded) CloseEvents() { t.events.Close() }

func (t *embedded) NextControl(ctx context.Context) ([]broker.Event, error) {
	return t.control.NextBatch(ctx)
}

func (t *embedded) Addr() string { return t.Server.Addr(broker.ListenerTCP) }

func (t *embedded) Stats() broker.IntakeStats { return t.events.Stats() }
