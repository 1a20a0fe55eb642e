package engine

import (
	"runtime"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/rules"
)

// Evaluation on every core (issue 13). A batch from the event source is cut into chunks;
// each chunk is evaluated by rules.Workers in two parallel phases, then acted on here:
//
//  1. stage, events split in contiguous runs over the workers: payload decode, trie
//     match, the rules without state (`if`, actions), the stateful rules' `key`;
//  2. apply, every worker over the whole chunk in arrival order, taking the stateful
//     steps (window, prev, `if`, `for`, throttle, actions) of the (rule, key)s that hash
//     to it: one key's events in order, different keys in parallel;
//  3. act, on the event loop's goroutine, event after event in arrival order, firings in
//     rule order: actions go to the broker in the order one goroutine would send them,
//     and their ids (actionIDs, from the event's journal position) are unchanged.
//
// The chunk's end is a barrier: the next chunk starts once this one's actions are with
// the broker, and the batch is committed (eventBatch.Commit) once every chunk is, so the
// durable intake commits only events whose actions were all handed on. A reload is taken
// between two batches (evaluate), never inside one.
const (
	// parallelMin is the smallest batch worth the workers: below it, starting goroutines
	// costs more than the evaluation (a lightly loaded engine gets batches of a few
	// events).
	parallelMin = 64
	// parallelChunk bounds a chunk, so that the staged events stay in cache and stop is
	// checked every 1–2 ms of work. (A stopping engine drains on the loop alone, checking
	// its budget at every event: eventLoop.)
	parallelChunk = 512
)

// maxWorkers bounds the workers config key.
const maxWorkers = 256

// parallelBatch is the event loop's parallel evaluator: the rule set's workers and the
// buffers of a chunk.
type parallelBatch struct {
	workers *rules.Workers // nil: Workers is 1, evaluate on the loop alone
	evs     []rules.Event  // the chunk's events for the rules
	src     []int          // evs[j] is the chunk's event src[j]
	// draining: the engine is stopping, the loop evaluates alone (eventLoop)
	draining bool
}

// reset takes up a new rule set (a reload).
func (p *parallelBatch) reset(set *rules.Set, workers int) {
	p.workers = nil
	if workers > 1 {
		p.workers = set.NewWorkers(workers)
	}
}

// takes reports whether events go to the workers: not while the process runs on one P
// (--procs auto at low load), where the workers' goroutines would take turns on it and
// only add their start and hand-off to the loop's work.
func (p *parallelBatch) takes(events []broker.Event) bool {
	return p.workers != nil && !p.draining && len(events) >= parallelMin && runtime.GOMAXPROCS(0) > 1
}

// evaluateParallel is evaluate on the workers, chunk after chunk, until stop reports true
// (checked before each chunk); it returns how many events it evaluated.
func (e *Engine) evaluateParallel(st *evaluation, events []broker.Event, stop func() bool) int {
	p := &st.batch
	for lo := 0; lo < len(events); lo += parallelChunk {
		if stop() {
			return lo
		}
		chunk := events[lo:min(len(events), lo+parallelChunk)]
		p.evs, p.src = p.evs[:0], p.src[:0]
		for i := range chunk {
			b := &chunk[i]
			if !e.forRules(b) {
				e.metrics.skipped.Inc()
				continue
			}
			p.evs = append(p.evs, rules.Event{Topic: b.Topic, Payload: b.Payload, Client: b.ClientID, QoS: b.QoS, Retain: b.Retain, Time: b.Received})
			p.src = append(p.src, i)
		}
		staged := p.workers.Eval(p.evs)
		e.parallelChunks.Add(1)
		for j := range staged {
			b := &chunk[p.src[j]]
			e.metrics.received.Inc()
			st.firings = staged[j].Firings(st.firings[:0])
			if len(st.firings) > 0 {
				e.metrics.matched.Inc()
			}
			acts := eventActions{src: b, hop: hops(b), ids: actionIDs{base: b.ID}}
			for k := range st.firings {
				e.act(&st.firings[k], &acts)
			}
		}
		clear(p.evs) // the payloads are the broker's: do not keep them past the batch
	}
	return len(events)
}
