// Package engine is the control plane of Deviceless: it takes events from the broker,
// evaluates the rules, dispatches invocations to edge agents, carries out actuations and
// publications, tracks the agents, and serves the HTTP API.
//
// One event's path (engine.go unless named):
//
//	eventSource.Next (transport.go, external.go) → (*Engine).eventLoop → (*Engine).evaluate
//	  → rules.Evaluator.Eval → (*Engine).act → (*dispatcher).invoke → (*dispatcher).send
//	  (dispatch.go) → {prefix}/agents/{id}/invoke; then eventBatch.Commit acknowledges it.
//	{prefix}/agents/{id}/result → (*Engine).controlLoop → (*Engine).control1
//	  → (*dispatcher).result → (*dispatcher).finish → the resultObservers New set up:
//	  history (history.go), promMetrics (metrics.go), sinkObserver (Influx),
//	  resultsTopic ({prefix}/results/{function}) and the web console's feed (console.go);
//	  then the invoke request's reply.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/protocol"
	"github.com/deviceless/deviceless/rules"
)

// maxHops bounds chains of rules that publish to topics other rules match, so that a
// rule publishing to its own topic cannot loop forever.
const maxHops = 8

const hopProperty = "deviceless-hop"

// Engine is one running control plane.
type Engine struct {
	cfg    Config
	log    *slog.Logger
	topics protocol.Topics
	// The transport, its sources, and its optional authorizer (nil: an external broker,
	// whose ACLs the engine cannot see).
	t       transport
	events  eventSource
	control controlSource
	auth    authorizer

	rules    atomic.Pointer[rules.Set]
	rulesErr atomic.Pointer[reloadStatus]
	registry *registry
	dispatch *dispatcher
	history  *history
	feed     *feed // the web console's live stream (console.go)
	metrics  *promMetrics
	sink     metrics.Sink
	influx   *metrics.Influx // nil when the influx block is absent

	httpAddr atomic.Value // string
	ready    chan struct{}
	now      func() time.Time
}

type reloadStatus struct {
	Error string      `json:"error,omitempty"`
	At    time.Time   `json:"at"`
	Diff  *rules.Diff `json:"diff,omitempty"` // a successful reload's changes (engine/reload.go)
}

// New validates cfg, loads the rules and prepares the broker. Nothing listens until Run.
func New(cfg Config, log *slog.Logger) (*Engine, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: cfg, log: log, ready: make(chan struct{}), now: time.Now, history: newHistory(cfg.History)}
	topics, err := protocol.NewTopics(cfg.Broker.Prefix)
	if err != nil {
		return nil, fmt.Errorf("engine: broker.prefix %q: %w", cfg.Broker.Prefix, err)
	}
	e.topics = topics
	set, err := e.loadRules()
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	e.rules.Store(set)
	e.registry = newRegistry(func(a []rules.Agent) { e.ruleSet().SetAgents(a) })
	if cfg.Broker.External != "" {
		e.t, err = openExternal(e)
	} else {
		e.t, err = openEmbedded(e)
	}
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	e.events, e.control = e.t.Events(), e.t.Control()
	e.auth, _ = e.t.(authorizer)
	e.sink = metrics.Nop{}
	if cfg.Influx != nil {
		if e.influx, err = metrics.New(*cfg.Influx, log.With("component", "metrics")); err != nil {
			return nil, fmt.Errorf("engine: influx: %w", err)
		}
		e.sink = e.influx
	}
	e.metrics = newPromMetrics(e)
	e.feed = e.newFeed(e.t.Publish)
	// A finished invocation goes to these, in this order, and nowhere else.
	observers := []resultObserver{e.history, e.metrics}
	if e.influx != nil {
		observers = append(observers, sinkObserver{e.influx})
	}
	observers = append(observers, resultsTopic{publish: e.t.Publish, topics: e.topics}, e.feed)
	m := e.metrics
	e.dispatch = newDispatcher(dispatchDeps{
		publish:   e.feed.publish, // e.t.Publish, tapped for the console
		agents:    e.registry,
		clock:     systemClock{},
		log:       log,
		limits:    cfg.Dispatch,
		topics:    e.topics,
		counters:  dispatchCounters{attempts: m.dispatched, retries: m.retries, timeouts: m.timeouts, late: m.late, deadLetters: m.deadLetters, malformed: m.malformed.WithLabelValues("result")},
		observers: observers,
	})
	return e, nil
}

func (e *Engine) loadRules() (*rules.Set, error) {
	opts := rules.Options{MaxKeys: e.cfg.MaxKeys, Logger: e.log.With("component", "rules")}
	if len(e.cfg.Rules) == 0 {
		return rules.Compile(nil, opts)
	}
	return rules.Load(e.cfg.Rules, opts)
}

func (e *Engine) ruleSet() *rules.Set { return e.rules.Load() }

// Ready is closed when the broker and the HTTP API listen.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// BrokerAddr is the embedded broker's TCP address, or the external broker's host (valid after Ready).
func (e *Engine) BrokerAddr() string { return e.t.Addr() }

// HTTPAddr is the HTTP API's address (valid after Ready; "" when disabled).
func (e *Engine) HTTPAddr() string {
	s, _ := e.httpAddr.Load().(string)
	return s
}

// Run serves until ctx ends, then stops taking events, waits for invocations in flight
// (up to shutdown_grace; the rest are dead-lettered), stops the broker and returns nil.
func (e *Engine) Run(ctx context.Context) error {
	brokerCtx, stopBroker := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBroker()
	brokerErr := make(chan error, 1)
	go func() { brokerErr <- e.t.Run(brokerCtx) }()
	select {
	case <-e.t.Ready():
	case err := <-brokerErr:
		return fmt.Errorf("engine: %w", err)
	}
	srv, err := e.serveHTTP()
	if err != nil {
		stopBroker()
		<-brokerErr
		return fmt.Errorf("engine: %w", err)
	}
	var wg sync.WaitGroup
	controlCtx, stopControl := context.WithCancel(context.WithoutCancel(ctx))
	defer stopControl()
	sinkCtx, stopSink := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSink()
	sinkDone := make(chan struct{})
	go func() {
		defer close(sinkDone)
		if e.influx != nil {
			_ = e.influx.Run(sinkCtx)
		}
	}()
	// The agents' retained statuses are queued by now: take them before the first event, so
	// events delivered again after a crash find their agents.
	e.controlBacklog()
	wg.Add(3)
	go func() { defer wg.Done(); e.reportEvents(controlCtx) }()
	go func() { defer wg.Done(); e.controlLoop(controlCtx) }()
	go func() { defer wg.Done(); e.watchRules(ctx) }()
	close(e.ready)
	e.log.Info("engine running", "broker", e.BrokerAddr(), "http", e.HTTPAddr(), "rules", len(e.ruleSet().Rules))

	evCtx, stopEvents := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEvents()
	evDone := make(chan struct{})
	go func() { defer close(evDone); e.eventLoop(evCtx) }()
	<-ctx.Done()

	// Shutdown. The broker acknowledges QoS 1 publishes until it stops, so events are
	// still evaluated while the invocations in flight finish; what arrives after that is
	// evaluated too, and its invocations are dead-lettered rather than lost.
	grace, endGrace := context.WithTimeout(context.Background(), e.cfg.ShutdownGrace)
	e.dispatch.drain(grace)
	endGrace()
	stopEvents()
	<-evDone
	stopControl()
	if srv != nil {
		shutCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(shutCtx)
		cancel()
	}
	wg.Wait()
	e.writeEventCounts()
	stopSink() // flushes what is buffered
	<-sinkDone
	stopBroker()
	if err := <-brokerErr; err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	e.log.Info("engine stopped")
	return nil
}

// eventLoop evaluates events in arrival order on one goroutine: rule state (windows,
// `for`, throttle) sees every key's events in order, and at 1–4 µs per event one
// goroutine keeps up with far more than a broker on an edge box delivers. Actions are
// handed to the broker and the dispatcher, which do not block. Each batch is evaluated,
// acted on, then acknowledged.
func (e *Engine) eventLoop(ctx context.Context) {
	var st evaluation
	handle := func(b eventBatch) {
		e.evaluate(&st, b.Events)
		// Every action of the batch is with the broker (invocations and actuations are
		// stored for their agents' sessions): the events need not come back.
		if err := b.Commit(); err != nil {
			e.log.Error("cannot commit evaluated events: they will be evaluated again after a restart", "err", err)
		}
	}
	for {
		b, err := e.events.Next(ctx)
		if err != nil {
			break
		}
		handle(b)
	}
	// Take what the broker already accepted before stopping, so QoS 1 events that were
	// acknowledged are evaluated; closing the intake discards what is still in it.
	// Devices that keep publishing would keep this going: it is bounded.
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		drainCtx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		b, err := e.events.Next(drainCtx)
		cancel()
		if err != nil {
			break
		}
		handle(b)
	}
	e.events.Close()
}

// evaluation is the event loop's state: the evaluator of the rule set it runs, and
// buffers reused from event to event.
type evaluation struct {
	set     *rules.Set
	eval    *rules.Evaluator
	firings []rules.Firing
	ev      rules.Event
}

// evaluate runs events through the rules and acts on the firings. A reloaded rule set is
// taken up here, between two batches.
func (e *Engine) evaluate(st *evaluation, events []broker.Event) {
	if set := e.ruleSet(); set != st.set {
		st.set, st.eval = set, set.NewEvaluator()
	}
	for i := range events {
		b := &events[i]
		if !e.forRules(b) {
			e.metrics.skipped.Inc()
			continue
		}
		e.metrics.received.Inc()
		st.ev = rules.Event{Topic: b.Topic, Payload: b.Payload, Client: b.ClientID, QoS: b.QoS, Retain: b.Retain, Time: b.Received}
		st.firings = st.eval.Eval(&st.ev, st.firings[:0])
		if len(st.firings) > 0 {
			e.metrics.matched.Inc()
		}
		acts := eventActions{src: b, ids: actionIDs{base: b.ID}}
		for j := range st.firings {
			e.act(&st.firings[j], &acts)
		}
	}
}

// reportEvents writes the cumulative event counts to the metrics sink periodically.
func (e *Engine) reportEvents(ctx context.Context) {
	if e.influx == nil {
		return
	}
	t := time.NewTicker(e.cfg.MetricsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.writeEventCounts()
		}
	}
}

func (e *Engine) writeEventCounts() {
	c := e.metrics.eventCounts()
	c.Dropped = int64(e.events.Stats().Dropped)
	e.sink.Write(metrics.Events(e.cfg.Name, c))
}

// forRules reports whether an event goes to the rules: everything outside the prefix,
// plus results and dead letters (so rules can react to them); agent and invoke traffic
// stays internal, and chains of rule publications stop after maxHops.
func (e *Engine) forRules(b *broker.Event) bool {
	if r, internal := e.topics.Parse(b.Topic); internal && r.Kind != protocol.Results && r.Kind != protocol.DeadLetter {
		return false
	}
	return hops(b) < maxHops
}

func hops(b *broker.Event) int {
	for _, u := range b.UserProperties {
		if u.Key == hopProperty {
			n, _ := strconv.Atoi(u.Value)
			return n
		}
	}
	return 0
}

// actionIDs names the invocations and actuations one event causes. An event from a
// durable intake has an ID that stays the same when it is evaluated again after a crash,
// so its actions get the same ids again and agents recognise the repeats (they keep the
// results of the ids they have seen); other events get random ids.
type actionIDs struct {
	base string
	n    int
}

func (a *actionIDs) next() string {
	if a == nil || a.base == "" {
		return newID()
	}
	a.n++
	return a.base + "-" + strconv.Itoa(a.n)
}

// eventActions is what the actions of one event share: the event, the ids of its
// invocations and actuations, and the event as its invocations carry it.
type eventActions struct {
	src *broker.Event
	ids actionIDs
	inv *protocol.Event // made at the first invocation, shared by the others
}

func (a *eventActions) invocationEvent() *protocol.Event {
	if a.inv == nil {
		a.inv = &protocol.Event{Topic: a.src.Topic, Payload: jsonPayload(a.src.Payload), ReceivedAt: a.src.Received}
	}
	return a.inv
}

// act carries out a firing's actions.
func (e *Engine) act(f *rules.Firing, acts *eventActions) {
	e.metrics.firings.WithLabelValues(f.Rule).Inc()
	src, ids := acts.src, &acts.ids
	for i := range f.Actions {
		a := &f.Actions[i]
		switch a.Kind {
		case rules.Invoke:
			e.dispatch.invoke(a.Function, f.Rule, a.Target, a.Args, acts.invocationEvent(), nil, ids)
		case rules.Actuate:
			if err := e.actuate(f.Rule, a, ids); err != nil {
				e.metrics.actionErrs.WithLabelValues("actuate").Inc()
				e.log.Warn("actuation failed", "rule", f.Rule, "line", a.Line, "err", err)
			}
		case rules.Publish:
			payload, err := payloadBytes(a.Payload)
			if err == nil {
				err = e.publish(broker.Message{Topic: a.Topic, Payload: payload, QoS: a.QoS, Retain: a.Retain,
					UserProperties: []broker.UserProperty{{Key: hopProperty, Value: strconv.Itoa(hops(src) + 1)}}})
			}
			if err != nil {
				e.metrics.actionErrs.WithLabelValues("publish").Inc()
				e.log.Warn("publish failed", "rule", f.Rule, "topic", a.Topic, "err", err)
			}
		}
	}
}

// actuate sends a direct actuation to every agent the target selects that has the line.
func (e *Engine) actuate(rule string, a *rules.Action, ids *actionIDs) error {
	v, err := lineValue(a.Value)
	if err != nil {
		return err
	}
	agents := e.registry.selectAgents(a.Target, a.Line, nil)
	if len(agents) == 0 {
		return fmt.Errorf("no online agent matches %s with output line %q", a.Target.String(), a.Line)
	}
	for _, id := range agents {
		msg := protocol.Actuation{ID: ids.next(), Line: a.Line, Value: v, For: protocol.Duration(a.For)}
		b, _ := json.Marshal(msg)
		if err := e.publish(broker.Message{Topic: e.topics.AgentActuate(id), Payload: b, QoS: 1, ContentType: "application/json"}); err != nil {
			return err
		}
	}
	return nil
}

func lineValue(v any) (int, error) {
	switch v := v.(type) {
	case bool:
		if v {
			return 1, nil
		}
		return 0, nil
	case int:
		return v, nil
	case int64:
		return int(v), nil
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<31 {
			return int(v), nil
		}
	}
	return 0, fmt.Errorf("actuation value %v (%T) is not an integer or boolean", v, v)
}

// payloadBytes encodes a publish payload: strings and bytes as they are, else JSON.
func payloadBytes(v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return []byte(v), nil
	case []byte:
		return v, nil
	case nil:
		return nil, nil
	}
	return json.Marshal(v)
}

// jsonPayload embeds an event payload in an invocation: JSON as is, else as a string.
// It runs once per event (eventActions), however many invocations the event causes.
func jsonPayload(b []byte) json.RawMessage {
	if len(b) > 0 && json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

func (e *Engine) publish(m broker.Message) error {
	return e.feed.publish(m) // e.t.Publish, tapped for the console
}

// controlBacklog handles the control messages already queued, without waiting.
func (e *Engine) controlBacklog() {
	now, cancel := context.WithCancel(context.Background())
	cancel()
	for {
		batch, err := e.control.NextBatch(now)
		if err != nil || len(batch) == 0 {
			return
		}
		for i := range batch {
			e.control1(&batch[i])
		}
	}
}

// controlLoop handles agent status, agent results and external invoke requests.
func (e *Engine) controlLoop(ctx context.Context) {
	for {
		batch, err := e.control.NextBatch(ctx)
		if err != nil {
			return
		}
		for i := range batch {
			e.control1(&batch[i])
		}
	}
}

func (e *Engine) control1(b *broker.Event) {
	r, _ := e.topics.Parse(b.Topic)
	switch r.Kind {
	case protocol.AgentStatus:
		if err := e.registry.update(r.Agent, b.Payload, e.now()); err != nil {
			e.metrics.malformed.WithLabelValues("status").Inc()
			e.log.Warn("agent status ignored", "err", err)
		}
	case protocol.AgentResult:
		e.dispatch.result(r.Agent, b.Payload, b.CorrelationData)
	case protocol.Invoke:
		e.externalInvoke(r.Function, b)
	}
}

// externalInvoke serves {prefix}/invoke/{function}: an MQTT v5 request whose result goes
// to the request's response topic with its correlation data.
func (e *Engine) externalInvoke(function string, b *broker.Event) {
	if b.Retain {
		// A retained request (left by a client before the broker refused them) would run
		// again at every start: never served.
		e.metrics.malformed.WithLabelValues("invoke").Inc()
		e.log.Warn("retained invoke request ignored", "client", b.ClientID, "topic", b.Topic)
		return
	}
	respondJSON := func(out []byte) {
		if b.ResponseTopic == "" || out == nil {
			return
		}
		_ = e.publish(broker.Message{Topic: b.ResponseTopic, Payload: out, QoS: 1, CorrelationData: b.CorrelationData, ContentType: "application/json"})
	}
	fail := func(err string) {
		out, _ := json.Marshal(protocol.Result{Function: function, Status: protocol.StatusError, Error: err, ExitCode: -1})
		respondJSON(out)
	}
	// The engine publishes without ACL checks: never onto a topic the requester could not
	// read itself.
	switch {
	case b.ResponseTopic == "":
	case e.auth == nil:
		// An external broker: the engine cannot see its ACLs and answers on whatever
		// response topic the request names; that broker's ACLs govern only who may send
		// requests (docs/engine.md). Kept as it is; a separate security issue changes it.
	case !e.auth.Permits(b.Username, b.ResponseTopic, false):
		e.metrics.malformed.WithLabelValues("invoke").Inc()
		e.log.Warn("invoke request refused: requester may not read its response topic", "client", b.ClientID, "response_topic", b.ResponseTopic)
		return
	}
	var req protocol.InvokeRequest
	if len(b.Payload) > 0 {
		if err := json.Unmarshal(b.Payload, &req); err != nil {
			e.metrics.malformed.WithLabelValues("invoke").Inc()
			fail("malformed request: " + err.Error())
			return
		}
	}
	if err := e.invoke(function, req, func(f *finished) { respondJSON(f.JSON()) }); err != nil {
		fail(err.Error())
	}
}

// ErrUnknownFunction is returned by Invoke for a function no rule file defines.
var ErrUnknownFunction = errors.New("unknown function")

// Invoke starts an invocation from outside the rules (MQTT, HTTP, CLI); reply receives
// the result.
func (e *Engine) Invoke(function string, req protocol.InvokeRequest, reply func(protocol.Result)) error {
	var r func(*finished)
	if reply != nil {
		r = func(f *finished) { reply(f.Result) }
	}
	return e.invoke(function, req, r)
}

func (e *Engine) invoke(function string, req protocol.InvokeRequest, reply func(*finished)) error {
	fn := e.ruleSet().Functions[function]
	if fn == nil {
		return fmt.Errorf("%w %q", ErrUnknownFunction, function)
	}
	var t protocol.Target
	if req.Target != nil {
		t = *req.Target
	}
	t, err := t.Normalize()
	if err != nil {
		return err
	}
	e.dispatch.invoke(fn, "", t, req.Args, nil, reply, nil)
	return nil
}
