package edgeagent

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/edgeagent/gpio"
	"github.com/deviceless/deviceless/protocol"
)

// checkActuation accepts only declared output lines and values 0 or 1.
func (a *Agent) checkActuation(act protocol.Actuation) error {
	if err := gpio.CheckOutput(a.cfg.GPIO.Lines, act.Line, act.Value); err != nil {
		if errors.Is(err, gpio.ErrUnknownLine) {
			return fmt.Errorf("%w (declared: %v)", err, sortedKeys(a.cfg.GPIO.Lines))
		}
		return err
	}
	if act.For < 0 {
		return fmt.Errorf("line %s: negative for", act.Line)
	}
	return nil
}

// actuate drives a line, scheduling the revert when act.For is set.
func (a *Agent) actuate(act protocol.Actuation) error {
	if err := a.checkActuation(act); err != nil {
		return err
	}
	if err := a.reverts.set(act.Line, act.Value, act.For.D()); err != nil {
		return err
	}
	a.metrics.actuation(a.cfg.ID, act)
	return nil
}

// stale reports whether act has expired at now, and when: at its expires_at, or without
// one at deadline (a function's actuations: the invocation's; zero: never).
func stale(act protocol.Actuation, deadline, now time.Time) (time.Time, bool) {
	at := act.ExpiresAt
	if at.IsZero() {
		at = deadline
	}
	return at, !at.IsZero() && !now.Before(at)
}

// receiveActuation handles a message on the actuate topic. With a response topic the
// outcome is answered as a result (status ok, error, or expired for one received after
// its expires_at, which is not applied).
//
// An actuation whose id the agent has seen is not applied again (the engine sends the
// same id again when it evaluates an event a second time after a crash, and QoS 1 may
// deliver twice); it is answered with the first outcome.
func (a *Agent) receiveActuation(p *paho.Publish) {
	var to replyTo
	if p.Properties != nil {
		to = replyTo{topic: p.Properties.ResponseTopic, correlation: p.Properties.CorrelationData}
	}
	var act protocol.Actuation
	joined := false
	err := json.Unmarshal(p.Payload, &act)
	if err != nil {
		err = fmt.Errorf("malformed actuation: %w", err)
	} else if act.ID != "" {
		joined = true
		if stored, seen, done := a.dedupe.join(act.ID, to); seen {
			// Seen: answered now, or by the delivery being applied when it finishes.
			a.log.Debug("actuation repeated: not applied again", "id", act.ID, "line", act.Line)
			a.metrics.repeatedActuation()
			if done && to.topic != "" {
				a.replyAsync(to, stored)
			}
			return
		}
	}
	res := protocol.Result{ID: act.ID, Agent: a.cfg.ID, Status: protocol.StatusOK}
	if err == nil {
		if at, old := stale(act, time.Time{}, time.Now()); old {
			res.Status = protocol.StatusExpired
			err = fmt.Errorf("expired at %s, before the agent got it: not applied", at.UTC().Format(time.RFC3339Nano))
			a.metrics.expiredActuations(1)
		}
	}
	if err == nil {
		err = a.checkActuation(act)
	}
	if err == nil {
		if joined {
			a.dedupe.applying(act.ID) // on disk before the line moves
		}
		err = a.actuate(act)
	}
	switch {
	case err == nil:
		a.log.Debug("actuated", "id", act.ID, "line", act.Line, "value", act.Value, "for", act.For.D())
	case res.Status == protocol.StatusExpired:
		a.log.Warn("actuation expired: not applied", "id", act.ID, "line", act.Line, "expires_at", act.ExpiresAt)
		res.Error = err.Error()
	default:
		a.log.Warn("actuation refused", "line", act.Line, "err", err)
		res.Status, res.Error = protocol.StatusError, err.Error()
	}
	payload := a.encode(res)
	waiters := []replyTo{to}
	if joined {
		waiters = a.dedupe.complete(res.ID, payload, true)
	}
	for _, w := range waiters {
		if w.topic != "" {
			a.replyAsync(w, payload)
		}
	}
}

// reverter sets lines and puts them back after a `for` duration. A new actuation of a line
// replaces its pending revert; the value restored is the one from before the first of them.
type reverter struct {
	mu      sync.Mutex
	lines   gpio.Lines
	log     *slog.Logger
	changed func() // after a line was set; must not block
	pending map[string]*revert
	stopped bool
}

type revert struct {
	timer *time.Timer
	base  int
}

func newReverter(lines gpio.Lines, log *slog.Logger, changed func()) *reverter {
	return &reverter{lines: lines, log: log, changed: changed, pending: map[string]*revert{}}
}

func (r *reverter) set(line string, value int, d time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return fmt.Errorf("line %s: agent shutting down", line)
	}
	p := r.pending[line]
	base := 0
	if p != nil {
		p.timer.Stop()
		base = p.base
		delete(r.pending, line)
	} else if d > 0 {
		v, err := r.lines.Get(line)
		if err != nil {
			return err
		}
		base = v
	}
	if err := r.lines.Set(line, value); err != nil {
		return err
	}
	r.changed()
	if d > 0 {
		rv := &revert{base: base}
		rv.timer = time.AfterFunc(d, func() { r.fire(line, rv) })
		r.pending[line] = rv
	}
	return nil
}

func (r *reverter) fire(line string, rv *revert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending[line] != rv || r.stopped {
		return
	}
	delete(r.pending, line)
	if err := r.lines.Set(line, rv.base); err != nil {
		r.log.Error("reverting line", "line", line, "err", err)
	}
	r.changed()
}

// stop applies pending reverts now, so no line stays driven past its `for` after shutdown.
func (r *reverter) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	for line, rv := range r.pending {
		rv.timer.Stop()
		if err := r.lines.Set(line, rv.base); err != nil {
			r.log.Error("reverting line", "line", line, "err", err)
		}
	}
	clear(r.pending)
}
