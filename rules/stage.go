package rules

import (
	"sync"
	"time"
)

// Staged is one event part-way through its evaluation, for evaluating a batch of events
// on several goroutines (the engine's evaluation workers) with the result of Eval:
//
//  1. Stage (any worker, events in any order): match the topic, decode the payload (or
//     set it up lazy, lazy.go), run the rules without state (`if`, actions) and compute
//     the stateful rules' keys;
//  2. Apply (worker w of n): run the stateful steps (window, prev, `if`, `for`,
//     throttle, then the actions) of the staged events whose Shard(rule, key) is w,
//     taking the events in arrival order; a (rule, key) always lands on the same worker,
//     so every key sees its events in order, and different keys go in parallel;
//  3. Firings (one goroutine): the event's firings in rule order, as Eval returns them.
//
// A Staged is reused from event to event; it keeps no reference to the Event.
type Staged struct {
	env   Env
	parts []string
	// lazy is the event's payload when it is lazy (lazy.go): st.env.Payload is then
	// &lazy, and Apply's workers fetch from copies.
	lazy  lazyPayload
	now   time.Time
	slots []slot
	// pending counts the slots still waiting for Apply.
	pending int
}

// slot is one matching rule of a staged event.
type slot struct {
	rule   int32
	state  slotState
	shard  uint32 // hash of (rule, key), for a pending slot
	key    string
	firing Firing
}

type slotState uint8

const (
	slotNone    slotState = iota // did not fire (or failed)
	slotFired                    // fired: firing is set
	slotPending                  // a stateful rule waiting for Apply
)

// Stage evaluates what of ev does not depend on rule state into st. Stateful rules are
// left pending for Apply.
func (e *Evaluator) Stage(ev *Event, st *Staged) {
	st.slots, st.pending = st.slots[:0], 0
	now, ok := e.begin(ev, &st.parts, &st.lazy)
	if !ok {
		st.env = Env{}
		st.lazy.reset(nil, nil)
		return
	}
	st.now = now
	s := e.set
	for _, i := range e.matched {
		r := s.Rules[i]
		sl := slot{rule: i}
		e.env.Window, e.env.Prev = Window{}, nil
		if r.stateful {
			if key, ok := e.ruleKey(r, now); ok {
				sl.state, sl.key, sl.shard = slotPending, key, shardHash(i, key)
				st.pending++
			}
		} else if f, ok := e.statelessRule(r, now); ok {
			sl.state, sl.firing = slotFired, f
		}
		st.slots = append(st.slots, sl)
	}
	st.env = e.env
}

// Pending reports whether st has stateful steps left for Apply.
func (st *Staged) Pending() bool { return st.pending > 0 }

// Apply runs st's pending stateful steps whose shard (Shard(rule, key) modulo of) is
// shard. Call it for the events of a batch in their arrival order, with the same of for
// every event; different shards may run concurrently on their own Evaluators.
func (e *Evaluator) Apply(st *Staged, shard, of uint32) {
	if st.pending == 0 {
		return
	}
	s := e.set
	var env Env
	ready := false
	for j := range st.slots {
		sl := &st.slots[j]
		// The shard first: another shard's pending slot is written by its own worker.
		if sl.shard%of != shard || sl.state != slotPending {
			continue
		}
		if !ready {
			env, ready = st.env, true
			if p, ok := env.Payload.(*lazyPayload); ok {
				// Other workers apply st at the same time: this one fetches into its
				// own copy, which keeps what this event's slots decode.
				e.lazy.copyOf(p, e.keys)
				env.Payload = &e.lazy
			}
		}
		e.env = env
		if f, ok := e.statefulRule(s.Rules[sl.rule], sl.key, st.now); ok {
			sl.state, sl.firing = slotFired, f
		} else {
			sl.state = slotNone
		}
	}
	e.lazy.reset(nil, nil)
}

// Firings appends st's firings to dst in rule order. Call it once every shard has
// applied st (it counts the steps done: a pending one left is a caller's bug and
// panics, rather than losing a firing silently).
func (st *Staged) Firings(dst []Firing) []Firing {
	for j := range st.slots {
		sl := &st.slots[j]
		switch sl.state {
		case slotFired:
			dst = append(dst, sl.firing)
			sl.firing = Firing{} // the slot is reused: drop the actions
		case slotPending:
			panic("rules: Staged.Firings before every shard applied it")
		}
	}
	st.pending = 0
	st.env = Env{} // the payload and topic parts are the event's: not kept past it
	st.lazy.reset(nil, nil)
	return dst
}

// shardHash is FNV-1a over the rule's index and its key: where (rule, key)'s state
// steps run.
func shardHash(rule int32, key string) uint32 {
	const prime = 16777619
	h := uint32(2166136261)
	for i := 0; i < 4; i++ {
		h = (h ^ uint32(byte(rule>>(8*i)))) * prime
	}
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * prime
	}
	return h
}

// Workers evaluates batches of events on n goroutines with the result of evaluating them
// one after the other with Eval (see Staged): the same firings in the same order, the
// same final state. It is used by one goroutine at a time; each batch's goroutines have
// ended when Eval returns.
type Workers struct {
	evals  []*Evaluator
	staged []Staged
}

// NewWorkers returns n (at least 1) workers on s.
func (s *Set) NewWorkers(n int) *Workers {
	w := &Workers{evals: make([]*Evaluator, max(n, 1))}
	for i := range w.evals {
		w.evals[i] = s.NewEvaluator()
	}
	return w
}

// Len is the number of workers.
func (w *Workers) Len() int { return len(w.evals) }

// Eval stages and applies events (Stage on contiguous runs of them in parallel, then
// Apply by shard in parallel) and returns them staged, in their order: the caller takes
// each one's Firings in turn. The result is valid until the next call.
func (w *Workers) Eval(events []Event) []Staged {
	if cap(w.staged) < len(events) {
		w.staged = make([]Staged, len(events))
	}
	staged := w.staged[:len(events)]
	n := min(len(w.evals), len(events))
	if n <= 1 {
		e := w.evals[0]
		for i := range events {
			e.Stage(&events[i], &staged[i])
			e.Apply(&staged[i], 0, 1)
		}
		return staged
	}
	w.parallel(n, func(k int) {
		lo, hi := k*len(events)/n, (k+1)*len(events)/n
		for i := lo; i < hi; i++ {
			w.evals[k].Stage(&events[i], &staged[i])
		}
	})
	pending := false
	for i := range staged {
		if staged[i].Pending() {
			pending = true
			break
		}
	}
	if pending {
		// Every worker takes the whole batch in order and applies its own shard: the
		// shards are over all the workers, not n, so a key keeps its worker whatever the
		// batch's size.
		of := uint32(len(w.evals))
		w.parallel(len(w.evals), func(k int) {
			for i := range staged {
				w.evals[k].Apply(&staged[i], uint32(k), of)
			}
		})
	}
	return staged
}

// parallel runs f(0..n-1) on n goroutines, f(0) on the caller's, and waits for them.
func (w *Workers) parallel(n int, f func(k int)) {
	var wg sync.WaitGroup
	wg.Add(n - 1)
	for k := 1; k < n; k++ {
		go func() {
			defer wg.Done()
			f(k)
		}()
	}
	f(0)
	wg.Wait()
}
