package engine

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/protocol"
	"github.com/deviceless/deviceless/rules"
)

// dispatcher delivers invocations to agents as MQTT v5 requests, matches their results,
// retries on timeouts and dead-letters what cannot be delivered.
type dispatcher struct {
	e *Engine

	mu      sync.Mutex
	pending map[string]*pending
	closed  bool
	idle    chan struct{} // signalled when pending becomes empty
}

type pending struct {
	inv    protocol.Invocation
	target protocol.Target
	agent  string
	tried  []string
	timer  *time.Timer
	sent   bool // an attempt is out (counted in the agent's in-flight)
	reply  func(protocol.Result)
}

// DeadLetter is what the engine publishes on {prefix}/deadletter.
type DeadLetter struct {
	Reason     string              `json:"reason"`
	Invocation protocol.Invocation `json:"invocation"`
	Tried      []string            `json:"tried,omitempty"`
	At         time.Time           `json:"at"`
}

func newDispatcher(e *Engine) *dispatcher {
	return &dispatcher{e: e, pending: map[string]*pending{}, idle: make(chan struct{}, 1)}
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// invoke starts an invocation of fn for each agent the target selects, named by ids (nil:
// random ids). reply, when set, receives the first result (or the dead-letter result).
func (d *dispatcher) invoke(fn *rules.Function, rule string, target protocol.Target, args map[string]any, ev *protocol.Event, reply func(protocol.Result), ids *actionIDs) {
	base := protocol.Invocation{ID: ids.next(), Function: fn.Name, Rule: rule, Event: ev, Args: args, Spec: fn.Spec}
	if _, err := json.Marshal(args); err != nil {
		d.deadLetter(&pending{inv: base, target: target, reply: reply}, fmt.Sprintf("arguments cannot be encoded as JSON: %v", err), protocol.StatusError)
		return
	}
	agents := d.e.registry.selectAgents(target, "", nil)
	if len(agents) == 0 {
		d.deadLetter(&pending{inv: base, target: target, reply: reply}, "no online agent matches the target "+target.String(), protocol.StatusError)
		return
	}
	for i, a := range agents {
		inv := base
		if i > 0 {
			inv.ID = ids.next()
		}
		p := &pending{inv: inv, target: target, agent: a, reply: reply}
		if i > 0 {
			p.reply = nil
		}
		d.send(p)
	}
}

// send delivers one attempt of p to p.agent.
func (d *dispatcher) send(p *pending) {
	now := d.e.now()
	p.inv.Attempt++
	p.tried = append(p.tried, p.agent)
	budget := p.inv.Spec.Timeout.D() + d.e.cfg.Dispatch.StartGrace
	p.inv.Deadline = now.Add(budget)
	payload, err := json.Marshal(p.inv)
	if err != nil {
		d.deadLetter(p, "invocation cannot be encoded: "+err.Error(), protocol.StatusError)
		return
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		d.deadLetter(p, "engine stopping: not dispatched", protocol.StatusError)
		return
	}
	d.pending[p.inv.ID] = p
	id, agent := p.inv.ID, p.agent
	p.sent = true
	p.timer = time.AfterFunc(budget+250*time.Millisecond, func() { d.timeout(id) })
	d.mu.Unlock()
	d.e.registry.addInFlight(agent, 1)
	err = d.e.publish(broker.Message{
		Topic: d.e.topics.AgentInvoke(agent), Payload: payload, QoS: 1,
		ResponseTopic: d.e.topics.AgentResult(agent), CorrelationData: []byte(id),
		ContentType: "application/json", Expiry: budget,
	})
	if err != nil {
		d.mu.Lock()
		delete(d.pending, id)
		p.timer.Stop()
		p.sent = false
		d.mu.Unlock()
		d.e.registry.addInFlight(agent, -1)
		d.deadLetter(p, "publish failed: "+err.Error(), protocol.StatusError)
		return
	}
	d.e.metrics.dispatched.Inc()
}

// timeout handles an attempt whose result did not arrive in time.
func (d *dispatcher) timeout(id string) {
	d.mu.Lock()
	p := d.pending[id]
	sent := p != nil && p.sent
	if sent {
		delete(d.pending, id)
		p.sent = false
	}
	d.mu.Unlock()
	if !sent {
		return
	}
	d.e.registry.addInFlight(p.agent, -1)
	d.e.metrics.timeouts.Inc()
	d.retryOrDeadLetter(p, fmt.Sprintf("no result from agent %s within %v", p.agent, p.inv.Spec.Timeout.D()+d.e.cfg.Dispatch.StartGrace), protocol.StatusTimeout)
	d.signalIdle()
}

func (d *dispatcher) retryOrDeadLetter(p *pending, reason, status string) {
	if p.target.Pick != protocol.PickAll && p.inv.Attempt < d.e.cfg.Dispatch.Attempts {
		if next := d.e.registry.selectAgents(p.target, "", p.tried); len(next) > 0 {
			backoff := d.e.cfg.Dispatch.Backoff << (p.inv.Attempt - 1)
			d.e.log.Info("retrying invocation", "id", p.inv.ID, "function", p.inv.Function, "attempt", p.inv.Attempt+1, "agent", next[0], "after", backoff, "reason", reason)
			d.e.metrics.retries.Inc()
			d.mu.Lock()
			p.agent = next[0]
			// Hold the slot while backing off, so shutdown waits for it.
			d.pending[p.inv.ID] = p
			p.timer = time.AfterFunc(backoff, func() {
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

// result handles a result message from an agent.
func (d *dispatcher) result(agentID string, payload, correlation []byte) {
	var res protocol.Result
	if err := json.Unmarshal(payload, &res); err != nil {
		d.e.metrics.malformed.WithLabelValues("result").Inc()
		d.e.log.Warn("malformed result", "agent", agentID, "err", err)
		return
	}
	id := string(correlation)
	if id == "" {
		id = res.ID
	}
	d.mu.Lock()
	p := d.pending[id]
	sent := false
	if p != nil {
		p.timer.Stop()
		delete(d.pending, id)
		sent, p.sent = p.sent, false
	}
	d.mu.Unlock()
	if p == nil {
		// A late answer to an attempt that was retried, or another engine's invocation.
		d.e.metrics.late.Inc()
		return
	}
	if sent {
		d.e.registry.addInFlight(p.agent, -1)
	}
	if res.Status == protocol.StatusRejected {
		d.retryOrDeadLetter(p, fmt.Sprintf("agent %s rejected the invocation: %s", agentID, res.Error), protocol.StatusRejected)
		d.signalIdle()
		return
	}
	res.ID, res.Function, res.Rule = p.inv.ID, p.inv.Function, p.inv.Rule
	if res.Agent == "" {
		res.Agent = agentID
	}
	d.finish(p, res)
	d.signalIdle()
}

func (d *dispatcher) finish(p *pending, res protocol.Result) {
	d.e.history.add(Record{Result: res, Attempts: p.inv.Attempt, Finished: d.e.now()})
	d.e.metrics.observe(res)
	d.e.sink.Write(metrics.Invocation(res))
	if b, err := json.Marshal(res); err == nil {
		_ = d.e.publish(broker.Message{Topic: d.e.topics.Results(res.Function), Payload: b, ContentType: "application/json"})
	}
	if p.reply != nil {
		p.reply(res)
	}
}

func (d *dispatcher) deadLetter(p *pending, reason, status string) {
	d.e.log.Warn("invocation dead-lettered", "id", p.inv.ID, "function", p.inv.Function, "rule", p.inv.Rule, "reason", reason)
	d.e.metrics.deadLetters.Inc()
	dl := DeadLetter{Reason: reason, Invocation: p.inv, Tried: p.tried, At: d.e.now()}
	if b, err := json.Marshal(dl); err == nil {
		_ = d.e.publish(broker.Message{Topic: d.e.topics.DeadLetter(), Payload: b, QoS: 1, ContentType: "application/json"})
	}
	res := protocol.Result{ID: p.inv.ID, Function: p.inv.Function, Rule: p.inv.Rule, Status: status, Error: reason, ExitCode: -1}
	if len(p.tried) > 0 {
		res.Agent = p.tried[len(p.tried)-1]
	}
	d.finish(p, res)
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

// drain waits up to grace for invocations in flight, then dead-letters the rest so that
// nothing is silently lost.
func (d *dispatcher) drain(grace time.Duration) {
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	for d.inFlight() > 0 {
		select {
		case <-d.idle:
		case <-deadline.C:
			d.mu.Lock()
			d.closed = true
			left := make([]*pending, 0, len(d.pending))
			for id, p := range d.pending {
				p.timer.Stop()
				delete(d.pending, id)
				left = append(left, p)
			}
			d.mu.Unlock()
			for _, p := range left {
				d.deadLetter(p, "engine stopped before the result arrived", protocol.StatusError)
			}
			return
		}
	}
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
}
