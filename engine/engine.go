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
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
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

// maxHops bounds chains of rules: every way an event's actions come back into the rules
// (a rule's publish, an invocation's result and dead letter, a function's publishes)
// counts one hop, so that no rule can loop forever.
const maxHops = 8

// hopProperty carries the hop count on what the engine and agents publish.
const hopProperty = protocol.HopProperty

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
	drops    undelivered // actuations the broker dropped while they were published
	sched    *scheduler  // scheduled rules (schedule.go)
	history  *history
	feed     *feed // the web console's live stream (console.go)
	metrics  *promMetrics
	sink     metrics.Sink
	influx   *metrics.Influx // nil when the influx block is absent
	// functions deployed through the API, their usage and logs (functions.go, usage.go)
	functions *functionRegistry
	reloading sync.Mutex // one Reload at a time (the watcher's, a deploy's)

	// parallelChunks counts the chunks of events the workers evaluated (parallel.go):
	// tests check that their load took that path.
	parallelChunks atomic.Uint64

	tokens   tokenTable   // api.tokens, for invoke requests through an external broker
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
	e.tokens = newTokenTable(cfg.API.Tokens)
	// Deployed functions first: rules may invoke them.
	if e.functions, err = openFunctions(cfg.State, cfg.Functions, cfg.Broker.Users, log.With("component", "functions"), e.now); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	opened := false
	defer func() {
		if !opened {
			e.functions.close()
		}
	}()
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
	e.functions.sink = e.sink
	e.feed = e.newFeed(e.t.Publish)
	// A finished invocation goes to these, in this order, and nowhere else.
	observers := []resultObserver{e.history, e.functions, e.metrics}
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
		counters:  dispatchCounters{attempts: m.dispatched, retries: m.retries, timeouts: m.timeouts, dropped: m.dropped, late: m.late, foreign: m.foreign, deadLetters: m.deadLetters, malformed: m.malformed.WithLabelValues("result")},
		observers: observers,
	})
	e.sched = newScheduler(e.ruleSet, e.actScheduled, e.now, log.With("component", "schedule"), cfg.State)
	opened = true
	return e, nil
}

func (e *Engine) loadRules() (*rules.Set, error) {
	opts := rules.Options{MaxKeys: e.cfg.MaxKeys, Logger: e.log.With("component", "rules"), Deployed: e.functions.exists}
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

// Run serves until ctx ends, then waits for invocations in flight (up to shutdown_grace;
// the rest are dead-lettered) while it evaluates events, evaluates what the broker has
// accepted for drainBudget more, stops the broker and returns nil.
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
	wg.Add(4)
	go func() { defer wg.Done(); e.functions.usage.run(controlCtx) }()
	go func() { defer wg.Done(); e.reportEvents(controlCtx) }()
	go func() { defer wg.Done(); e.controlLoop(controlCtx) }()
	go func() { defer wg.Done(); e.watchRules(ctx) }()
	if mr, ok := e.t.(moduleRequests); ok {
		wg.Add(1)
		go func() { defer wg.Done(); e.serveModules(controlCtx, mr.ModuleRequests()) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); e.sched.run(ctx) }() // after controlBacklog: catch-up runs find their agents
	close(e.ready)
	e.log.Info("engine running", "broker", e.BrokerAddr(), "http", e.HTTPAddr(), "rules", len(e.ruleSet().Rules))

	evCtx, stopEvents := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEvents()
	evDone := make(chan struct{})
	go func() { defer close(evDone); e.eventLoop(evCtx) }()
	<-ctx.Done()

	// Shutdown. The broker acknowledges QoS 1 publishes until it stops, so events are
	// still evaluated while the invocations in flight finish; what arrives after that is
	// evaluated too, within the drain budget, and its invocations are dead-lettered
	// rather than lost.
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
	e.functions.close()
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

// drainBudget is how long a stopping engine goes on evaluating the events the broker has
// accepted, once the invocations in flight are done (or shutdown_grace ran out).
const drainBudget = time.Second

// eventLoop evaluates batches of events in arrival order: on this goroutine, or on the
// workers (parallel.go) for a large batch, every rule key sees its events in order.
// Actions are handed to the broker and the dispatcher from this goroutine, in arrival
// order, and do not block. Each batch is evaluated, acted on, then acknowledged.
//
// When ctx ends the loop takes what the broker already accepted, for drainBudget: the
// budget is checked at every event, since under a flood (and -race) one batch can take
// seconds. What it leaves is not committed: it is counted, and comes again where the
// source redelivers it (unevaluatedEvents).
func (e *Engine) eventLoop(ctx context.Context) {
	var st evaluation
	budget := drainClock{ctx: ctx, now: e.now}
	var left unevaluatedEvents
	handle := func(b eventBatch) {
		// A stopping engine drains on this goroutine alone: its budget is checked at every
		// event, and what it cuts short is exactly what it did not evaluate.
		st.batch.draining = ctx.Err() != nil
		n := e.evaluate(&st, b.Events, budget.spent)
		// Every action of the evaluated events is with the broker (invocations and
		// actuations are stored for their agents' sessions): those need not come back.
		if err := b.Commit(n); err != nil {
			e.log.Error("cannot commit evaluated events: they will be evaluated again after a restart", "err", err)
		}
		left.add(b.Events[n:], e.events.Redelivers())
		b.Done()
	}
	for {
		b, err := e.events.Next(ctx)
		if err != nil {
			break
		}
		handle(b)
	}
	// Take what the broker already accepted before stopping, so that QoS 1 events it
	// acknowledged are evaluated. Devices that keep publishing would keep this going: it
	// is bounded in time.
	for !budget.spent() {
		drainCtx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
		b, err := e.events.Next(drainCtx)
		cancel()
		if err != nil {
			break
		}
		handle(b)
	}
	left.add(e.events.Close(), e.events.Redelivers())
	if left.dropped+left.redelivered > 0 {
		e.metrics.unevaluated.WithLabelValues("dropped").Add(float64(left.dropped))
		e.metrics.unevaluated.WithLabelValues("redelivered").Add(float64(left.redelivered))
		e.log.Warn("stopped before evaluating every event the broker accepted",
			"drain_budget", drainBudget, "dropped", left.dropped, "redelivered_after_restart", left.redelivered)
	}
}

// drainClock tells the event loop when a stop has used up its drainBudget: the budget
// starts when ctx ends.
type drainClock struct {
	ctx context.Context
	now func() time.Time
	end time.Time
}

func (d *drainClock) spent() bool {
	if d.end.IsZero() {
		if d.ctx.Err() == nil {
			return false
		}
		d.end = d.now().Add(drainBudget)
		return false
	}
	return !d.now().Before(d.end)
}

// unevaluatedEvents counts the events a stopping engine did not evaluate: QoS 1 and 2
// ones come again after the restart when the source redelivers them, the others are
// dropped (QoS 0 is at most once).
type unevaluatedEvents struct{ dropped, redelivered int }

func (u *unevaluatedEvents) add(events []broker.Event, redelivers bool) {
	for i := range events {
		if redelivers && events[i].QoS > 0 {
			u.redelivered++
		} else {
			u.dropped++
		}
	}
}

// evaluation is the event loop's state: the evaluator of the rule set it runs, and
// buffers reused from event to event.
type evaluation struct {
	set     *rules.Set
	eval    *rules.Evaluator
	firings []rules.Firing
	ev      rules.Event
	batch   parallelBatch // Workers > 1 (parallel.go)
}

// evaluate runs events through the rules and acts on the firings, until stop reports
// true (checked before each event); it returns how many events it evaluated. A reloaded
// rule set is taken up here, between two batches.
func (e *Engine) evaluate(st *evaluation, events []broker.Event, stop func() bool) int {
	if set := e.ruleSet(); set != st.set {
		st.set, st.eval = set, set.NewEvaluator()
		st.batch.reset(set, e.cfg.Workers)
	}
	if st.batch.takes(events) {
		return e.evaluateParallel(st, events, stop)
	}
	for i := range events {
		if stop() {
			return i
		}
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
		acts := eventActions{src: b, hop: hops(b), ids: actionIDs{base: b.ID}}
		for j := range st.firings {
			e.act(&st.firings[j], &acts)
		}
	}
	return len(events)
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
	c.Dropped += int64(e.events.Stats().Dropped)
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

// hops is the event's hop count: how many rule actions led to it. Only the engine and
// agents set it (the embedded broker strips it from devices and clients); a value below 0
// or not a number counts 0, so nobody can extend a chain (an external broker strips
// nothing: a device there can only shorten its own chains).
func hops(b *broker.Event) int {
	if b == nil {
		return 0 // a scheduled run
	}
	v := userProperty(b, hopProperty)
	if v == "" {
		return 0 // the common case: Atoi would allocate its error for every event
	}
	n, _ := strconv.Atoi(v)
	return max(n, 0)
}

// hopProperties are the user properties of a message hop hops into a chain. The broker
// only reads them: the usual ones are shared, not made at every publish.
func hopProperties(hop int) []broker.UserProperty {
	if hop >= 0 && hop < len(hopPropertyTable) {
		return hopPropertyTable[hop]
	}
	return []broker.UserProperty{{Key: hopProperty, Value: strconv.Itoa(hop)}}
}

// hopPropertyTable holds hopProperties(0..maxHops), read-only.
var hopPropertyTable = func() (t [maxHops + 1][]broker.UserProperty) {
	for i := range t {
		t[i] = []broker.UserProperty{{Key: hopProperty, Value: strconv.Itoa(i)}}
	}
	return t
}()

// actionIDs names the invocations and actuations one event causes. An event from a
// durable intake has an ID that stays the same when it is evaluated again after a crash,
// so its actions get the same ids again and agents recognise the repeats (they keep the
// results of the ids they have seen); other events get random ids. The event's ID is a
// secret of the broker's journal (an HMAC under the journal's key): the n-th action's id
// is an HMAC of n under it, so an agent that sees some ids can derive neither the event's
// ID nor any other action's id (issue 12).
type actionIDs struct {
	base string
	n    int
}

func (a *actionIDs) next() string {
	if a == nil || a.base == "" {
		return newID()
	}
	a.n++
	mac := hmac.New(sha256.New, []byte(a.base))
	mac.Write(strconv.AppendInt(nil, int64(a.n), 10))
	return hex.EncodeToString(mac.Sum(nil)[:12])
}

// eventActions is what the actions of one event share: the event, its hop count, the ids
// of its invocations and actuations, and the event as its invocations carry it. A
// scheduled run has no event (src nil): its invocations carry none.
type eventActions struct {
	src *broker.Event
	hop int // hops(src): what it publishes is hop+1, its invocations carry it
	ids actionIDs
	inv *protocol.Event // made at the first invocation, shared by the others
}

func (a *eventActions) invocationEvent() *protocol.Event {
	if a.src == nil {
		return nil
	}
	if a.inv == nil {
		a.inv = &protocol.Event{Topic: a.src.Topic, Payload: jsonPayload(a.src.Payload), ReceivedAt: a.src.Received}
	}
	return a.inv
}

// act carries out a firing's actions.
func (e *Engine) act(f *rules.Firing, acts *eventActions) {
	e.metrics.fire(f.Rule)
	ids := &acts.ids
	for i := range f.Actions {
		a := &f.Actions[i]
		switch a.Kind {
		case rules.Invoke:
			e.invokeRule(f.Rule, a, acts.invocationEvent(), acts.hop, ids)
		case rules.Actuate:
			if err := e.actuate(f.Rule, a, ids); err != nil {
				e.actionFailed(f.Rule, a, acts, err)
			}
		case rules.Publish:
			payload, err := payloadBytes(a.Payload)
			if err == nil {
				err = e.publish(broker.Message{Topic: a.Topic, Payload: payload, QoS: a.QoS, Retain: a.Retain,
					UserProperties: hopProperties(acts.hop + 1)})
			}
			if err != nil {
				e.actionFailed(f.Rule, a, acts, err)
			}
		}
	}
}

// actuate sends a direct actuation to every agent the target selects that has the line.
// It expires after the action's Expire (MQTT message expiry, and expires_at for the
// agent): the broker drops it from the queue of an agent that is away, and an agent that
// gets it late does not apply it.
func (e *Engine) actuate(rule string, a *rules.Action, ids *actionIDs) error {
	v, err := lineValue(a.Value)
	if err != nil {
		return err
	}
	agents := e.registry.selectAgents(a.Target, a.Line, nil)
	if len(agents) == 0 {
		return fmt.Errorf("no online agent matches %s with output line %q", a.Target.String(), a.Line)
	}
	expire := a.Expire
	if expire <= 0 {
		expire = rules.DefaultActuationExpiry
	}
	expiresAt := e.now().Add(expire)
	var errs []error
	for _, id := range agents {
		msg := protocol.Actuation{ID: ids.next(), Line: a.Line, Value: v, For: protocol.Duration(a.For), ExpiresAt: expiresAt}
		b, _ := json.Marshal(msg)
		e.drops.watch(msg.ID)
		err := e.publish(broker.Message{Topic: e.topics.AgentActuate(id), Payload: b, QoS: 1, ContentType: "application/json", Expiry: expire})
		if e.drops.take(msg.ID) && err == nil {
			err = fmt.Errorf("not delivered to agent %s: the broker's queue for it is full (broker.limits.max_queued)", id)
		}
		if err != nil {
			errs = append(errs, err) // the other agents still get theirs
		}
	}
	return errors.Join(errs...)
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
	case rules.RawPayload: // the event's payload, forwarded
		return v, nil
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

// controlBacklog handles the control messages already queued, without waiting. (Not with
// NextBatch and a context that has ended: the intake answers that with the context's
// error, and the agents' statuses waited for the control loop, racing the first events.)
func (e *Engine) controlBacklog() {
	batch := e.control.Queued()
	for i := range batch {
		e.control1(&batch[i])
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
		e.metrics.invokeRefused.WithLabelValues(refusedRetained).Inc()
		e.log.Warn("retained invoke request ignored", "client", b.ClientID, "topic", b.Topic)
		return
	}
	// The engine publishes without ACL checks: it answers only in the requester's response
	// space, and a request it may not answer is not run either.
	if b.ResponseTopic != "" {
		if reason := e.responseRefused(b); reason != "" {
			e.metrics.invokeRefused.WithLabelValues(reason).Inc()
			e.log.Warn("invoke request refused: its response topic is not the requester's response space",
				"reason", reason, "client", b.ClientID, "username", b.Username, "response_topic", b.ResponseTopic)
			return
		}
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
	var req protocol.InvokeRequest
	if len(b.Payload) > 0 {
		if err := json.Unmarshal(b.Payload, &req); err != nil {
			e.metrics.malformed.WithLabelValues("invoke").Inc()
			fail("malformed request: " + err.Error())
			return
		}
	}
	if _, _, err := e.invoke(e.mqttCaller(b), function, req, func(f *finished) { respondJSON(f.JSON()) }, false); err != nil {
		fail(err.Error())
	}
}

// Why an invoke request is refused (deviceless_invoke_refused_total{reason}).
const (
	refusedRetained      = "retained"       // a retained request
	refusedResponseTopic = "response_topic" // not in the requester's response space
	refusedToken         = "token"          // external broker: no API token of role client or admin
)

// tokenProperty is the MQTT user property of an invoke request that carries an API token,
// the requester's name with an external broker.
const tokenProperty = "deviceless-token"

// responseRefused checks that b's response topic lies in its requester's response space,
// {prefix}/responses/{requester}/..., and returns why not ("" when it does). The requester
// is the publisher's MQTT username with the embedded broker, which tells the engine who
// published (and that user must be allowed to read the topic). An external broker does
// not: there the request must prove its name with an API token of role client or admin
// in its deviceless-token user property, and the requester is the token's name.
func (e *Engine) responseRefused(b *broker.Event) string {
	r, _ := e.topics.Parse(b.ResponseTopic)
	if r.Kind != protocol.Response {
		return refusedResponseTopic
	}
	requester := b.Username
	if e.auth == nil {
		t, ok := e.tokens.lookup(userProperty(b, tokenProperty))
		if !ok || !accessInvoke.allows(t.Role) {
			return refusedToken
		}
		requester = t.Name
	} else if !e.auth.Permits(requester, b.ResponseTopic, false) {
		return refusedResponseTopic
	}
	if requester == "" || r.User != requester {
		return refusedResponseTopic
	}
	return ""
}

// userProperty returns the value of b's first user property key ("" when it has none).
func userProperty(b *broker.Event, key string) string {
	for _, u := range b.UserProperties {
		if u.Key == key {
			return u.Value
		}
	}
	return ""
}

// ErrUnknownFunction is returned by Invoke for a function no rule file defines and none
// is deployed under.
var ErrUnknownFunction = errors.New("unknown function")

// Invoke starts an invocation from outside the rules (MQTT, HTTP, CLI) of function (a
// name, or name@version for a deployed function's version); reply receives the result.
func (e *Engine) Invoke(function string, req protocol.InvokeRequest, reply func(protocol.Result)) error {
	var r func(*finished)
	if reply != nil {
		r = func(f *finished) { reply(f.Result) }
	}
	_, _, err := e.invoke(engineCaller, function, req, r, false)
	return err
}

// invoke starts an invocation on behalf of c, once c may (functions_invoke.go), and
// returns the function it runs and how many results reply gets: one (the first agent's),
// or with every one per agent of a `pick: all` target.
func (e *Engine) invoke(c caller, function string, req protocol.InvokeRequest, reply func(*finished), every bool) (*rules.Function, int, error) {
	r, t, err := e.prepareInvoke(c, function, req.Target)
	if err != nil {
		return nil, 0, err
	}
	n := e.dispatch.invoke(r.fn, "", t, req.Args, nil, 0, reply, every, nil, c.String())
	return r.fn, n, nil
}
