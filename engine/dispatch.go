package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/protocol"
	"github.com/deviceless/deviceless/rules"
)

// dispatcher delivers invocations to agents as MQTT v5 requests, matches their results,
// retries on timeouts and dead-letters what cannot be delivered. It knows nothing of the
// engine: New hands it a dispatchDeps.
type dispatcher struct {
	dispatchDeps

	mu      sync.Mutex
	pending map[string]*pending
	closed  bool
	idle    chan struct{} // signalled when pending becomes empty
	stop    chan struct{} // closed when the dispatcher stops: senders waiting for a slot give up
}

// dispatchDeps are a dispatcher's narrow inputs, as mochi hands a client its ops and
// Prometheus' rule manager its ManagerOptions.
type dispatchDeps struct {
	publish  func(broker.Message) error // invocations and dead letters
	agents   agentPicker
	clock    clock
	log      *slog.Logger
	limits   DispatchConfig // attempts, backoff, start grace
	topics   protocol.Topics
	counters dispatchCounters
	// observers receive every finished invocation, a result or a dead letter, in order.
	observers []resultObserver
}

// agentPicker chooses the agents of an invocation and keeps their in-flight counts (the
// registry).
type agentPicker interface {
	// selectAgents returns the online agents t names (for pick: one, the least busy),
	// skipping those in exclude; line, when set, keeps agents with that output line.
	selectAgents(t protocol.Target, line string, exclude []string) []string
	addInFlight(agent string, delta int)
	// acquire is addInFlight(agent, 1) after waiting while agent has limit or more
	// invocations out (limit 0: none); false, counting nothing, when stop closes first.
	acquire(agent string, limit int, stop <-chan struct{}) bool
}

// clock is the dispatcher's time: the system's in the engine, a fake one in tests.
type clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine after d, unless stopped first.
	AfterFunc(d time.Duration, f func()) timer
}

type timer interface{ Stop() bool }

type systemClock struct{}

func (systemClock) Now() time.Time                            { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) timer { return time.AfterFunc(d, f) }

// counter is the part of a Prometheus counter the dispatcher uses.
type counter interface{ Inc() }

// dispatchCounters count what the dispatcher does (Prometheus counters in the engine).
type dispatchCounters struct {
	attempts, retries, timeouts, late, deadLetters, malformed counter
	// dropped counts attempts the broker dropped for a full agent queue (OnDropped).
	dropped counter
	// foreign counts results from an agent the invocation was not sent to (ignored).
	foreign counter
}

// resultObserver receives finished invocations: history, Prometheus, the Influx sink and
// the results topic each are one (see New). observe must not block; it must not keep f
// beyond the call, nor change it (f.JSON keeps the encoding it makes, for the others).
type resultObserver interface {
	observe(f *finished)
}

// finished is an invocation's end as the observers see it: the agent's result, or the
// result the dispatcher wrote for a dead letter.
type finished struct {
	Record
	raw    []byte // the result as JSON: the agent's bytes, or made at the first call of JSON
	hop    int    // the invocation's hop: the result goes back into the rules as hop+1
	memory int64  // the invocation's memory limit in bytes (usage metering)
}

// JSON returns the result encoded as JSON, encoding it at most once for every observer
// and the reply (nil if it cannot be).
func (f *finished) JSON() []byte {
	if f.raw == nil {
		f.raw, _ = json.Marshal(f.Result)
	}
	return f.raw
}

type pending struct {
	inv    protocol.Invocation
	target protocol.Target
	agent  string
	tried  []string
	timer  timer
	sent   bool // an attempt is out (counted in the agent's in-flight)
	reply  func(*finished)
	caller string // who invoked it (caller.String())
}

func newDispatcher(deps dispatchDeps) *dispatcher {
	if deps.log == nil {
		deps.log = slog.New(slog.DiscardHandler)
	}
	return &dispatcher{dispatchDeps: deps, pending: map[string]*pending{}, idle: make(chan struct{}, 1), stop: make(chan struct{})}
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// invoke starts an invocation of fn for each agent the target selects, named by ids (nil:
// random ids), on behalf of caller. hop is the hop count of the event that caused it (0
// from outside the rules): its result and dead letter come back into the rules with
// hop+1, and so do the function's publishes (the agent echoes it). reply, when set,
// receives the first result (or the dead-letter result).
// invoke sends one invocation per selected agent (pick all) or one. reply gets the first
// agent's result, or with every each agent's; invoke returns how many results reply gets.
func (d *dispatcher) invoke(fn *rules.Function, rule string, target protocol.Target, args map[string]any, ev *protocol.Event, hop int, reply func(*finished), every bool, ids *actionIDs, caller string) int {
	base := protocol.Invocation{ID: ids.next(), Function: fn.Name, Rule: rule, Hop: hop, Event: ev, Args: args, Spec: fn.Spec}
	target.Runtime = protocol.SpecRuntime(fn.Spec) // a wasm function to agents with wasm, a container to agents with podman
	agents := d.agents.selectAgents(target, "", nil)
	if len(agents) == 0 {
		d.deadLetter(&pending{inv: base, target: target, reply: reply, caller: caller}, "no online agent matches the target "+target.String(), protocol.StatusError)
		return 1
	}
	for i, a := range agents {
		inv := base
		if i > 0 {
			inv.ID = ids.next()
		}
		p := &pending{inv: inv, target: target, agent: a, reply: reply, caller: caller}
		if i > 0 && !every {
			p.reply = nil
		}
		if !d.send(p) {
			return 1 // the others would not encode either: one dead letter
		}
	}
	if every {
		return len(agents)
	}
	return 1
}

// budget is how long an attempt of p may take: the function's timeout and the start grace.
func (d *dispatcher) budget(p *pending) time.Duration {
	return p.inv.Spec.Timeout.D() + d.limits.StartGrace
}

// send delivers one attempt of p to p.agent, encoding the invocation once. It reports
// false when the invocation cannot be encoded: p is then dead-lettered as it was, without
// the attempt.
func (d *dispatcher) send(p *pending) bool {
	budget := d.budget(p)
	inv := p.inv
	inv.Attempt++
	inv.Deadline = d.clock.Now().Add(budget)
	payload, err := json.Marshal(&inv)
	if err != nil {
		// The event's payload is valid JSON or a string (jsonPayload), the spec is ours:
		// only the arguments, values of rule expressions, can fail (NaN, say).
		d.deadLetter(p, fmt.Sprintf("arguments cannot be encoded as JSON: %v", err), protocol.StatusError)
		return false
	}
	p.inv = inv
	p.tried = append(p.tried, p.agent)
	// Backpressure: a rule's invocation waits while its agent has limits.MaxInFlight out
	// (beyond the agent's queue the broker would drop it), which holds the event loop and
	// so the publishers. A client's invocation (API, MQTT invoke: rule "") never waits:
	// the control loop that takes it also takes the results that free the slots.
	limit := d.limits.MaxInFlight
	if p.inv.Rule == "" {
		limit = 0
	}
	if !d.agents.acquire(p.agent, limit, d.stop) {
		d.deadLetter(p, "engine stopping: not dispatched", protocol.StatusError)
		return true
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		d.agents.addInFlight(p.agent, -1)
		d.deadLetter(p, "engine stopping: not dispatched", protocol.StatusError)
		return true
	}
	d.pending[p.inv.ID] = p
	id, agent := p.inv.ID, p.agent
	p.sent = true
	p.timer = d.clock.AfterFunc(budget+250*time.Millisecond, func() { d.timeout(id) })
	d.mu.Unlock()
	err = d.publish(broker.Message{
		Topic: d.topics.AgentInvoke(agent), Payload: payload, QoS: 1,
		ResponseTopic: d.topics.AgentResult(agent), CorrelationData: []byte(id),
		ContentType: "application/json", Expiry: budget,
	})
	if err != nil {
		d.mu.Lock()
		delete(d.pending, id)
		p.timer.Stop()
		p.sent = false
		d.mu.Unlock()
		d.agents.addInFlight(agent, -1)
		d.deadLetter(p, "publish failed: "+err.Error(), protocol.StatusError)
		return true
	}
	d.counters.attempts.Inc()
	return true
}

// timeout handles an attempt whose result did not arrive in time.
func (d *dispatcher) timeout(id string) {
	d.attemptFailed(id, "", func(p *pending) string {
		d.counters.timeouts.Inc()
		return fmt.Sprintf("no result from agent %s within %v", p.agent, d.budget(p))
	}, protocol.StatusTimeout, true)
}

// dropped handles an invocation the broker dropped instead of queueing it for agentID
// (broker.OnDropped: the agent's queue, limits.max_queued, was full): the agent will never
// see it, so the attempt ends now, not at its timeout, and is retried on another agent or
// dead-lettered. The broker calls it within the engine's Publish: the rest runs on a timer.
func (d *dispatcher) dropped(agentID string, correlation []byte) {
	id := string(correlation)
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.pending[id]
	if p == nil || !p.sent || p.agent != agentID {
		return // not an attempt out to that agent (a repeat, or already over)
	}
	p.timer.Stop()
	p.timer = d.clock.AfterFunc(0, func() {
		d.attemptFailed(id, agentID, func(p *pending) string {
			d.counters.dropped.Inc()
			return fmt.Sprintf("not delivered: the broker's queue for agent %s is full (broker.limits.max_queued)", p.agent)
		}, protocol.StatusRejected, false)
	})
}

// brokerHolds is until when the broker may still hold p's attempt's message for the agent:
// its expiry is the budget in whole seconds, rounded up, from the send, and expired
// messages are swept once a second.
func (d *dispatcher) brokerHolds(p *pending) time.Time {
	budget := d.budget(p)
	return p.inv.Deadline.Add(time.Second - budget%time.Second + 2*time.Second)
}

// attemptFailed ends the attempt of invocation id that is out (to agent, when not ""),
// then retries or dead-letters it for the reason why says. held says the broker may still
// hold the attempt's message for the agent (a timeout): its slot in the agent's in-flight
// count (dispatch.max_in_flight) is given back only once the message has expired there,
// so the count never says there is room the agent's queue in the broker has not.
func (d *dispatcher) attemptFailed(id, agent string, why func(*pending) string, status string, held bool) {
	d.mu.Lock()
	p := d.pending[id]
	sent := p != nil && p.sent && (agent == "" || p.agent == agent)
	if sent {
		delete(d.pending, id)
		p.sent = false
	}
	d.mu.Unlock()
	if !sent {
		return
	}
	if wait := d.brokerHolds(p).Sub(d.clock.Now()); held && wait > 0 {
		agent := p.agent
		d.clock.AfterFunc(wait, func() { d.agents.addInFlight(agent, -1) })
	} else {
		d.agents.addInFlight(p.agent, -1)
	}
	d.retryOrDeadLetter(p, why(p), status)
	d.signalIdle()
}

func (d *dispatcher) retryOrDeadLetter(p *pending, reason, status string) {
	if p.target.Pick != protocol.PickAll && p.inv.Attempt < d.limits.Attempts {
		if next := d.agents.selectAgents(p.target, "", p.tried); len(next) > 0 {
			backoff := d.limits.Backoff << (p.inv.Attempt - 1)
			d.log.Info("retrying invocation", "id", p.inv.ID, "function", p.inv.Function, "attempt", p.inv.Attempt+1, "agent", next[0], "after", backoff, "reason", reason)
			d.counters.retries.Inc()
			d.mu.Lock()
			p.agent = next[0]
			// Hold the slot while backing off, so shutdown waits for it.
			d.pending[p.inv.ID] = p
			p.timer = d.clock.AfterFunc(backoff, func() {
				d.mu.Lock()
				_, still := d.pending[p.inv.ID]
				delete(d.pending, p.inv.ID)
				d.mu.Unlock()
				if still {
					d.send(p)
				}
			})
			d.mu.Unlock()
			return
		}
		reason += "; no other eligible agent"
	}
	d.deadLetter(p, reason, status)
}

// result handles a result message that agentID published on its own result topic (the
// broker lets no other agent write there). It counts only when an attempt of the
// invocation is out to that very agent: a result for an invocation sent elsewhere is
// foreign and ignored, so an agent can neither answer another's invocation nor pull it
// over by answering "rejected". The result's agent is the topic's, never the payload's.
func (d *dispatcher) result(agentID string, payload, correlation []byte) {
	var res protocol.Result
	if err := json.Unmarshal(payload, &res); err != nil {
		d.counters.malformed.Inc()
		d.log.Warn("malformed result", "agent", agentID, "err", err)
		return
	}
	id := string(correlation)
	if id == "" {
		id = res.ID
	}
	d.mu.Lock()
	p := d.pending[id]
	mine := p != nil && p.sent && p.agent == agentID
	tried := p != nil && slices.Contains(p.tried, agentID)
	if mine {
		p.timer.Stop()
		delete(d.pending, id)
		p.sent = false
	}
	d.mu.Unlock()
	switch {
	case p == nil || (!mine && tried):
		// A late answer to an attempt that was retried, or another engine's invocation.
		d.counters.late.Inc()
		return
	case !mine:
		d.counters.foreign.Inc()
		d.log.Warn("result ignored: the invocation was not sent to this agent", "agent", agentID, "id", id, "function", p.inv.Function)
		return
	}
	d.agents.addInFlight(p.agent, -1)
	if res.Status == protocol.StatusRejected {
		d.retryOrDeadLetter(p, fmt.Sprintf("agent %s rejected the invocation: %s", agentID, res.Error), protocol.StatusRejected)
		d.signalIdle()
		return
	}
	// The invocation's id, function and rule are the result's, and the topic's agent. When
	// the agent's result already says so (the edge agent's do), its bytes are forwarded as
	// they came.
	var raw []byte
	if res.ID == p.inv.ID && res.Function == p.inv.Function && res.Rule == p.inv.Rule && res.Agent == agentID {
		raw = payload
	}
	res.ID, res.Function, res.Rule, res.Agent = p.inv.ID, p.inv.Function, p.inv.Rule, agentID
	d.finish(p, res, raw)
	d.signalIdle()
}

// finish hands a finished invocation to the observers, then to its reply. raw, when set,
// is res encoded as JSON.
func (d *dispatcher) finish(p *pending, res protocol.Result, raw []byte) {
	f := &finished{Record: Record{Result: res, Attempts: p.inv.Attempt, Finished: d.clock.Now(), Caller: p.caller}, raw: raw, hop: p.inv.Hop, memory: int64(p.inv.Spec.Memory)}
	for _, o := range d.observers {
		o.observe(f)
	}
	if p.reply != nil {
		p.reply(f)
	}
}

func (d *dispatcher) deadLetter(p *pending, reason, status string) {
	d.log.Warn("invocation dead-lettered", "id", p.inv.ID, "function", p.inv.Function, "rule", p.inv.Rule, "reason", reason)
	inv := p.inv
	d.publishDeadLetter(DeadLetter{Reason: reason, Invocation: &inv, Tried: p.tried, At: d.clock.Now()}, p.inv.Hop)
	res := protocol.Result{ID: p.inv.ID, Function: p.inv.Function, Rule: p.inv.Rule, Status: status, Error: reason, ExitCode: -1}
	if len(p.tried) > 0 {
		res.Agent = p.tried[len(p.tried)-1]
	}
	d.finish(p, res, nil)
}

func (d *dispatcher) signalIdle() {
	d.mu.Lock()
	empty := len(d.pending) == 0
	d.mu.Unlock()
	if empty {
		select {
		case d.idle <- struct{}{}:
		default:
		}
	}
}

func (d *dispatcher) inFlight() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pending)
}

// drain waits until ctx ends for invocations in flight, then dead-letters the rest so
// that nothing is silently lost. Invocations started after drain are dead-lettered.
func (d *dispatcher) drain(ctx context.Context) {
	for d.inFlight() > 0 {
		select {
		case <-d.idle:
		case <-ctx.Done():
			d.mu.Lock()
			d.closed = true
			close(d.stop)
			left := make([]*pending, 0, len(d.pending))
			for id, p := range d.pending {
				p.timer.Stop()
				delete(d.pending, id)
				left = append(left, p)
			}
			d.mu.Unlock()
			slices.SortFunc(left, func(a, b *pending) int { return strings.Compare(a.inv.ID, b.inv.ID) })
			for _, p := range left {
				if p.sent {
					p.sent = false
					d.agents.addInFlight(p.agent, -1)
				}
				d.deadLetter(p, "engine stopped before the result arrived", protocol.StatusError)
			}
			return
		}
	}
	d.mu.Lock()
	d.closed = true
	close(d.stop)
	d.mu.Unlock()
}

// Observers of finished invocations, set up in New.

// sinkObserver writes a point per finished invocation to the metrics sink (Influx).
type sinkObserver struct{ sink metrics.Sink }

func (o sinkObserver) observe(f *finished) {
	r := f.Result
	r.Status = statusLabel(r.Status) // a tag: bounded like the Prometheus label
	o.sink.Write(metrics.Invocation(r))
}

// resultsTopic publishes every finished invocation on {prefix}/results/{function}.
type resultsTopic struct {
	publish func(broker.Message) error
	topics  protocol.Topics
}

func (o resultsTopic) observe(f *finished) {
	if b := f.JSON(); b != nil {
		_ = o.publish(broker.Message{Topic: o.topics.Results(f.Function), Payload: b, ContentType: "application/json",
			UserProperties: hopProperties(f.hop + 1)})
	}
}
