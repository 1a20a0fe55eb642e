package edgeagent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/edgeagent/container"
	"github.com/deviceless/deviceless/protocol"
)

// replyTo is where one copy of a result goes: the request's MQTT v5 response topic with its
// correlation data, or the agent's result topic.
type replyTo struct {
	topic       string
	correlation []byte
}

// task is one accepted invocation.
type task struct {
	inv      protocol.Invocation
	raw      []byte // the invocation as received, compacted to one line
	received time.Time
}

// receiveInvocation decodes, dedupes and queues an invocation. It runs on the MQTT
// client's goroutine, so it never blocks.
func (a *Agent) receiveInvocation(p *paho.Publish) {
	received := time.Now()
	to := replyTo{topic: a.topics.AgentResult(a.cfg.ID)}
	if p.Properties != nil && p.Properties.ResponseTopic != "" {
		to = replyTo{topic: p.Properties.ResponseTopic, correlation: p.Properties.CorrelationData}
	}
	var inv protocol.Invocation
	if err := json.Unmarshal(p.Payload, &inv); err != nil {
		var idOnly struct {
			ID       string `json:"id"`
			Function string `json:"function"`
		}
		_ = json.Unmarshal(p.Payload, &idOnly)
		a.log.Warn("malformed invocation", "err", err)
		a.replyAsync(to, a.encode(a.result(protocol.Invocation{ID: idOnly.ID, Function: idOnly.Function}, protocol.StatusError,
			"malformed invocation: "+err.Error())))
		return
	}
	if inv.ID == "" {
		a.replyAsync(to, a.encode(a.result(inv, protocol.StatusError, "malformed invocation: no id")))
		return
	}
	if stored, seen, done := a.dedupe.join(inv.ID, to); done {
		a.log.Debug("repeated invocation: answering the stored result", "id", inv.ID)
		a.replyAsync(to, stored)
		return
	} else if seen {
		return // in flight: the answer goes to every requester
	}
	if spec, err := a.spec(inv); err == nil {
		if err := a.cfg.checkCaps(spec, "this agent's "); err != nil {
			// Not stored: another agent may have the room (the engine tries one), and this
			// one gives the same answer again.
			res := a.result(inv, protocol.StatusRejected, strings.ReplaceAll(err.Error(), "\n", "; "))
			res.Timings.Total = ms(time.Since(received))
			a.pending.Go(func() { a.finish(res, false) })
			return
		}
	}
	var raw bytes.Buffer
	if err := json.Compact(&raw, p.Payload); err != nil {
		raw.Reset()
		b, _ := json.Marshal(inv)
		raw.Write(b)
	}
	raw.WriteByte('\n')
	t := &task{inv: inv, raw: raw.Bytes(), received: received}
	select {
	case a.queue <- t:
	default:
		res := a.result(inv, protocol.StatusRejected, fmt.Sprintf("queue full (%d waiting, concurrency %d)", a.cfg.Queue, a.cfg.Concurrency))
		res.Timings.Total = ms(time.Since(received))
		// Not stored: a retry with the same id may find room.
		a.pending.Go(func() { a.finish(res, false) })
	}
}

func (a *Agent) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case t := <-a.queue:
			a.metrics.running.Add(1)
			res := a.execute(ctx, t)
			a.metrics.running.Add(-1)
			// One cancelled by the shutdown applied nothing: not stored, it runs when
			// delivered again after the restart. A rejection neither: a repeat may succeed
			// (the module fetched, another agent tried).
			a.finish(res, res.Error != errShutdown && res.Status != protocol.StatusRejected)
		}
	}
}

// drainQueue answers invocations still queued at shutdown.
func (a *Agent) drainQueue() {
	for {
		select {
		case t := <-a.queue:
			res := a.result(t.inv, protocol.StatusRejected, "agent shutting down")
			a.finish(res, false)
		default:
			return
		}
	}
}

// finish sends res to everyone waiting for it; store keeps it for repeated ids. It is
// encoded once, for all of them.
func (a *Agent) finish(res protocol.Result, store bool) {
	a.metrics.result(res)
	payload := a.encode(res)
	for _, to := range a.dedupe.complete(res.ID, payload, store) {
		a.reply(to, payload)
	}
}

// encode returns res as published. The function's output, a json.RawMessage of validated
// stdout, is not decoded again: it is copied in compacted, without HTML escaping.
func (a *Agent) encode(res protocol.Result) []byte {
	payload, err := encodeJSON(res)
	if err != nil {
		a.log.Error("encoding result", "id", res.ID, "err", err)
		return nil
	}
	return payload
}

// replyAsync replies from an MQTT callback, which must not wait for the broker.
func (a *Agent) replyAsync(to replyTo, payload []byte) {
	a.pending.Go(func() { a.reply(to, payload) })
}

// reply publishes an encoded result (nil: it could not be encoded) to one requester;
// without its output if it would not fit in a packet (see fit).
func (a *Agent) reply(to replyTo, payload []byte) {
	if payload == nil {
		return
	}
	if p := a.fit(to, payload); p != nil {
		a.publish(p)
	}
}

func (a *Agent) result(inv protocol.Invocation, status, msg string) protocol.Result {
	return protocol.Result{ID: inv.ID, Agent: a.cfg.ID, Function: inv.Function, Rule: inv.Rule, Status: status, Error: msg}
}

// errShutdown is the error of an invocation the agent's shutdown cancelled.
const errShutdown = "agent shutting down: invocation cancelled"

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// execute runs one invocation and builds its result.
func (a *Agent) execute(ctx context.Context, t *task) (res protocol.Result) {
	start := time.Now()
	inv := t.inv
	defer func() {
		res.Timings.Queue = ms(start.Sub(t.received))
		res.Timings.Total = ms(time.Since(t.received))
		a.log.Debug("invocation finished", "id", inv.ID, "function", inv.Function, "status", res.Status,
			"total_ms", res.Timings.Total)
	}()
	if !inv.Deadline.IsZero() && !start.Before(inv.Deadline) {
		return a.result(inv, protocol.StatusExpired, fmt.Sprintf("deadline %s passed before the invocation started", inv.Deadline.Format(time.RFC3339Nano)))
	}
	job, rt, err := a.job(inv)
	if err != nil {
		return a.result(inv, protocol.StatusError, err.Error())
	}
	a.metrics.admit(inv.Function)
	job.Stdin = t.raw
	if !inv.Deadline.IsZero() {
		job.Timeout = min(job.Timeout, inv.Deadline.Sub(start))
	}
	if rt == container.Runtime(a.wasm) {
		// A module the agent lacks comes from the engine over the broker; one it cannot get
		// or verify is rejected (not stored: the engine may try another agent, and a
		// repeat fetches again).
		if err := a.modules.fetch(ctx, job.Image); err != nil {
			res := a.result(inv, protocol.StatusRejected, err.Error())
			if ctx.Err() != nil {
				res.Status, res.Error = protocol.StatusError, errShutdown
			}
			return res
		}
		if !inv.Deadline.IsZero() {
			// A transfer takes time: the run gets what is left of the deadline.
			left := time.Until(inv.Deadline)
			if left <= 0 {
				return a.result(inv, protocol.StatusExpired, fmt.Sprintf("deadline %s passed while the module was fetched", inv.Deadline.Format(time.RFC3339Nano)))
			}
			job.Timeout = min(job.Timeout, left)
		}
	}
	out, err := rt.Run(ctx, job)
	res = a.result(inv, protocol.StatusOK, "")
	res.Cold = out.Cold
	res.ExitCode = out.ExitCode
	res.Timings.Start = ms(out.Start)
	res.Timings.Run = ms(out.Run)
	switch {
	case errors.Is(err, container.ErrImageNotFound):
		res.Status, res.Error = protocol.StatusError, err.Error()
		return res
	case err != nil && ctx.Err() != nil:
		res.Status, res.Error = protocol.StatusError, errShutdown
		return res
	case err != nil:
		res.Status, res.Error = protocol.StatusError, err.Error()
		if perr := rt.Ping(ctx); perr != nil && a.healthOf(rt) {
			a.setHealth(false, perr.Error())
		}
		return res
	case out.TimedOut:
		res.Status, res.Error = protocol.StatusTimeout, fmt.Sprintf("killed after %s", job.Timeout.Round(time.Millisecond))
		return res
	case out.OOMKilled:
		res.Status, res.Error = protocol.StatusOOM, fmt.Sprintf("killed for exceeding its memory limit of %d bytes", job.Memory)
		return res
	case out.ExitCode != 0:
		res.Status, res.Error = protocol.StatusError, fmt.Sprintf("exit status %d: %s", out.ExitCode, lastLines(out.Stderr, 400))
		return res
	case out.Truncated:
		res.Status, res.Error = protocol.StatusError, fmt.Sprintf("output exceeds the %d byte limit", a.cfg.Limits.Output)
		return res
	}
	if a.healthOf(rt) {
		a.setHealth(true, "")
	}
	output, actions, err := interpret(out.Stdout)
	if err != nil {
		res.Status, res.Error = protocol.StatusError, err.Error()
		return res
	}
	res.Output = output
	if expired, err := a.perform(inv, actions); len(expired) > 0 {
		res.Status, res.Error, res.Expired = protocol.StatusExpired, err.Error(), expired
	} else if err != nil {
		res.Status, res.Error = protocol.StatusError, err.Error()
	}
	return res
}

// spec is the definition an invocation runs: its own spec, or without one the agent's
// function of that name.
func (a *Agent) spec(inv protocol.Invocation) (protocol.FunctionSpec, error) {
	if inv.Spec.Image != "" || inv.Spec.Runtime != "" {
		return inv.Spec, nil
	}
	local, ok := a.cfg.Functions[inv.Function]
	if !ok {
		return protocol.FunctionSpec{}, fmt.Errorf("unknown function %q: the invocation has no spec and the agent defines no such function", inv.Function)
	}
	return local, nil
}

// job resolves an invocation's function into a job and the runtime that runs it (podman,
// or wasm for runtime wasm: Image is then the module's digest). What the spec leaves unset
// gets protocol's defaults lowered to the agent's caps (receiveInvocation refused specs
// asking more than the caps).
func (a *Agent) job(inv protocol.Invocation) (container.Job, container.Runtime, error) {
	spec, err := a.spec(inv)
	if err != nil {
		return container.Job{}, nil, err
	}
	if err := a.cfg.checkFunction(spec); err != nil {
		return container.Job{}, nil, fmt.Errorf("%s: %w", inv.Function, err)
	}
	if spec.Runtime == protocol.RuntimeWasm && !protocol.IsModuleDigest(spec.Module) {
		return container.Job{}, nil, fmt.Errorf("%s: module %q: an invocation names its module by digest (%s<64 hex digits>)",
			inv.Function, spec.Module, protocol.ModuleDigestPrefix)
	}
	if spec.Timeout == 0 {
		spec.Timeout = protocol.Duration(min(protocol.DefaultTimeout, a.cfg.Limits.Timeout))
	}
	if spec.Memory == 0 {
		spec.Memory = min(protocol.DefaultMemory, a.cfg.Limits.Memory)
	}
	spec = spec.WithDefaults()
	job := container.Job{
		ID:       inv.ID,
		Function: inv.Function,
		Image:    spec.Image,
		Command:  spec.Command,
		Code:     spec.Code,
		Env:      spec.Env,
		Timeout:  spec.Timeout.D(),
		Memory:   int64(spec.Memory),
		Warm:     spec.Warm,
	}
	switch spec.Runtime {
	case protocol.RuntimeWasm:
		job.Image, job.Warm = spec.Module, nil // a fresh instance every time
		return job, a.wasm, nil
	case "":
	default:
		job.Image = a.cfg.Runtimes[spec.Runtime]
		job.Prepare = true // runtime images have /bin/sh
		if len(job.Command) == 0 {
			job.Command = []string{spec.Runtime, container.CodePath}
		}
	}
	return job, a.podman, nil
}

// perform applies a function's actuations and publishes, all of them or none: every
// actuation and publish is checked first, and one bad line, one stale actuation (past its
// expires_at, or without one the invocation's deadline: returned in expired) or one
// publish that cannot be sent, and none is applied or sent.
func (a *Agent) perform(inv protocol.Invocation, out *protocol.Output) (expired []protocol.Actuation, err error) {
	if out == nil {
		return nil, nil
	}
	for _, act := range out.Actuate {
		if err := a.checkActuation(act); err != nil {
			return nil, fmt.Errorf("actuate: %w", err)
		}
	}
	now := time.Now()
	var stales []string
	for _, act := range out.Actuate {
		if at, old := stale(act, inv.Deadline, now); old {
			expired = append(expired, act)
			stales = append(stales, act.Line+" at "+at.UTC().Format(time.RFC3339Nano))
		}
	}
	if len(expired) > 0 {
		a.metrics.expiredActuations(len(expired))
		a.log.Warn("function's actuations expired: none applied", "id", inv.ID, "function", inv.Function, "expired", stales)
		return expired, fmt.Errorf("actuations expired (%s): none of the function's %d actuations applied, nor its %d publishes sent",
			strings.Join(stales, ", "), len(out.Actuate), len(out.Publish))
	}
	limit := a.maxPacket()
	for _, p := range out.Publish {
		if err := checkPublishTopic(a.topics, p.Topic); err != nil {
			return nil, fmt.Errorf("publish: %w", err)
		}
		if p.QoS > 2 {
			return nil, fmt.Errorf("publish %s: qos %d", p.Topic, p.QoS)
		}
		if size := packetSize(publishPacket(p, inv.Hop)); size > limit {
			return nil, fmt.Errorf("publish %s: a message of %d bytes exceeds the broker's maximum packet size of %d", p.Topic, size, limit)
		}
	}
	if len(out.Actuate) > 0 || len(out.Publish) > 0 {
		a.dedupe.applying(inv.ID) // on disk before anything is applied
	}
	for _, act := range out.Actuate {
		if err := a.actuate(act); err != nil {
			return nil, fmt.Errorf("actuate: %w", err)
		}
	}
	for _, p := range out.Publish {
		a.publish(publishPacket(p, inv.Hop))
	}
	return nil, nil
}

// publishPacket is the message a function's publish becomes. It comes back into the rules
// one hop after its invocation (hop), so that rule chains through functions stop too
// (docs/design.md, deviceless-hop).
func publishPacket(p protocol.Publish, hop int) *paho.Publish {
	return &paho.Publish{Topic: p.Topic, Payload: payloadBytes(p.Payload), QoS: p.QoS, Retain: p.Retain,
		Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: protocol.HopProperty, Value: strconv.Itoa(hop + 1)}}}}
}

// payloadBytes turns a publish payload into message bytes: a JSON string travels as its
// text, anything else as JSON.
func payloadBytes(raw json.RawMessage) []byte {
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return []byte(s)
	}
	return raw
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func lastLines(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}
