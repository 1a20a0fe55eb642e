package engine

import (
	"context"
	"fmt"
	"io"
	"sync"

	pahoqueue "github.com/eclipse/paho.golang/autopaho/queue"
	"github.com/eclipse/paho.golang/autopaho/queue/memory"
)

// sentQueue is autopaho's memory queue of the engine's publications, counting what was
// queued and what has been written to the broker's connection. An event is acknowledged
// only once the publications its evaluation queued have been written (heldAcks): both
// travel on the one connection, so the broker has an event's invocations and actuations
// before it has the event's acknowledgement. Acknowledged at commit instead, an engine
// killed in between lost the event: the broker forgot it, and the publications were in
// the dead process's memory.
type sentQueue struct {
	*memory.Queue
	mu       sync.Mutex
	enqueued uint64
	written  uint64
	onSent   func(written uint64) // called after each write, before written counts it, without mu
	wrote    chan struct{}        // signalled after each write
}

func newSentQueue() *sentQueue { return &sentQueue{Queue: memory.New(), wrote: make(chan struct{}, 1)} }

// waitWritten waits until n publications have been written.
func (q *sentQueue) waitWritten(ctx context.Context, n uint64) error {
	for q.writtenCount() < n {
		select {
		case <-q.wrote:
		case <-ctx.Done():
			return fmt.Errorf("%d of %d publications written: %w", q.writtenCount(), n, ctx.Err())
		}
	}
	return nil
}

func (q *sentQueue) Enqueue(p io.Reader) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.Queue.Enqueue(p); err != nil {
		return err
	}
	q.enqueued++
	return nil
}

// queued returns how many publications have been queued so far.
func (q *sentQueue) queued() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.enqueued
}

// writtenCount returns how many publications have been written so far.
func (q *sentQueue) writtenCount() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.written
}

func (q *sentQueue) Peek() (pahoqueue.Entry, error) {
	e, err := q.Queue.Peek()
	if err != nil {
		return e, err
	}
	return sentEntry{Entry: e, q: q}, nil
}

// done counts an entry that left the queue, written (or quarantined: never for the
// engine's own packets, and holding acknowledgements for it would hold them all). It runs
// on autopaho's one queue goroutine. The acknowledgements the write releases are handed to
// paho before the new count is visible: waitWritten's caller disconnects as soon as it sees
// the count, and an acknowledgement handed on after that was lost (its event came again
// after a stop).
func (q *sentQueue) done() {
	q.mu.Lock()
	n, f := q.written+1, q.onSent
	q.mu.Unlock()
	if f != nil {
		f(n)
	}
	q.mu.Lock()
	q.written = n
	q.mu.Unlock()
	select {
	case q.wrote <- struct{}{}:
	default:
	}
}

type sentEntry struct {
	pahoqueue.Entry
	q *sentQueue
}

func (e sentEntry) Remove() error {
	err := e.Entry.Remove()
	if err == nil { // ErrEmpty: there was nothing to remove
		e.q.done()
	}
	return err
}

func (e sentEntry) Quarantine() error {
	err := e.Entry.Quarantine()
	e.q.done()
	return err
}

// heldAcks are committed events waiting for the publications queued before their commit
// to be written.
type heldAcks struct {
	after uint64 // the sentQueue's count of queued publications at the commit
	acks  []unacked
}
