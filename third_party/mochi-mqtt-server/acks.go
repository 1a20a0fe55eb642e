// SPDX-License-Identifier: MIT

package mqtt

import (
	"sync"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Deferred acknowledgements (Deviceless patch 9, PATCHES.md).
//
// An OnPublish hook that must make a client's QoS 1 or 2 message durable before it is
// acknowledged (a journal's fsync) calls Client.DeferAck and returns at once: the server
// goes on reading that client's next packets, so one connection's in-flight window (up to
// the receive maximum) is on its way to disk together, and the hook completes each
// acknowledgement when it may go out. The PUBACKs and PUBRECs of a connection are written
// in the order their PUBLISHes arrived ([MQTT-4.6.0-2], [MQTT-4.6.0-3]), deferred or not:
// an acknowledgement that is ready waits for the deferred ones before it.

// pendingAck is one acknowledgement of a client's PUBLISH waiting for its turn.
type pendingAck struct {
	// write performs the acknowledgement; err is what the hook completed it with (the
	// message may not be acknowledged: the client is disconnected).
	write func(err error) error
	err   error
	done  bool // completed by the hook, or never deferred
	// queued is set when processPublish has put the entry in the queue (the hook may
	// complete it before that).
	queued bool
}

// ackQueue holds a client's acknowledgements in arrival order while any is deferred.
type ackQueue struct {
	mu       sync.Mutex
	q        []*pendingAck
	flushing bool          // a goroutine is writing the head of q
	wake     chan struct{} // the write loop: the head is ready
	room     chan struct{} // the read loop: acknowledgements were written (quota back)

	// current is the entry an OnPublish hook may claim with DeferAck, only set while the
	// read loop runs the hooks for a QoS 1 or 2 PUBLISH (read loop only: no lock).
	current  *pendingAck
	claimed  bool
	claiming bool
}

func newAckQueue() ackQueue {
	return ackQueue{wake: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

// DeferAck holds back the PUBACK (QoS 1) or PUBREC (QoS 2) of the PUBLISH whose OnPublish
// hook is running for cl, until the returned function is called, from any goroutine: with
// nil the acknowledgement goes out (after those of the client's earlier PUBLISHes), with
// an error it never does and the client is disconnected (with the error's reason code if
// it is a packets.Code). The server meanwhile reads the client's next packets, within its
// receive maximum (an MQTT 3 client, which was never told the limit, is read again once
// acknowledgements have been written). If the connection ends first, nothing is written.
// Call the function once; later calls do nothing.
//
// DeferAck may only be called from OnPublish, on the goroutine that runs it. It returns
// nil when there is nothing to defer: a QoS 0 publish, an inline client's publish, or a
// second call for the same packet.
func (cl *Client) DeferAck() func(error) {
	q := &cl.State.acks
	if !q.claiming || q.claimed {
		return nil
	}
	q.claimed = true
	e := &pendingAck{}
	q.current = e
	var once sync.Once
	return func(err error) {
		once.Do(func() { cl.completeAck(e, err) })
	}
}

// beginPublish lets the OnPublish hooks defer the acknowledgement of a QoS 1 or 2
// PUBLISH; endPublish returns the entry if one did.
func (q *ackQueue) beginPublish() {
	q.current, q.claimed, q.claiming = nil, false, true // allocated by DeferAck, if called
}

func (q *ackQueue) endPublish() *pendingAck {
	e := q.current
	claimed := q.claimed
	q.current, q.claimed, q.claiming = nil, false, false
	if !claimed {
		return nil
	}
	return e
}

// completeAck records the hook's verdict on e and wakes the write loop if e is next.
func (cl *Client) completeAck(e *pendingAck, err error) {
	q := &cl.State.acks
	q.mu.Lock()
	e.done, e.err = true, err
	next := e.queued && !q.flushing && len(q.q) > 0 && q.q[0].done
	q.mu.Unlock()
	if next {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// ack writes an acknowledgement in order: at once when nothing is waiting before it
// (also when write is nil and no hook deferred it), else after what is. e is the entry a
// hook deferred (nil: none); write performs the acknowledgement. Called on the read loop.
func (cl *Client) ack(e *pendingAck, write func(error) error) error {
	q := &cl.State.acks
	q.mu.Lock()
	if e == nil && len(q.q) == 0 {
		// Nothing deferred before it: no flusher can be writing (the queue empties only
		// after its writes), and only this goroutine adds entries.
		q.mu.Unlock()
		return write(nil)
	}
	if e == nil {
		e = &pendingAck{done: true}
	}
	e.write, e.queued = write, true
	q.q = append(q.q, e)
	q.mu.Unlock()
	cl.flushAcks()
	return nil
}

// pendingAcks reports how many acknowledgements wait to be written.
func (cl *Client) pendingAcks() int {
	q := &cl.State.acks
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.q)
}

// flushAcks writes the acknowledgements at the head of the queue that are ready, in
// order; one goroutine at a time (the read loop or the write loop). A connection that
// ended gets nothing more.
func (cl *Client) flushAcks() {
	q := &cl.State.acks
	var batch []*pendingAck
	for {
		q.mu.Lock()
		n := 0
		for n < len(q.q) && q.q[n].done {
			n++
		}
		if q.flushing || n == 0 {
			q.mu.Unlock()
			return
		}
		batch = append(batch[:0], q.q[:n]...)
		q.flushing = true
		q.mu.Unlock()

		var err error
		batching := false
		for _, e := range batch {
			if err != nil || cl.Closed() {
				break
			}
			if e.err != nil && batching {
				// The refusal disconnects: what is buffered goes out first.
				batching, err = false, cl.endBatch()
				if err != nil {
					break
				}
			}
			if e.err == nil && !batching && n > 1 {
				batching = true
				cl.beginBatch()
			}
			err = e.write(e.err)
		}
		if batching {
			if ferr := cl.endBatch(); err == nil {
				err = ferr
			}
		}
		clear(batch)

		q.mu.Lock()
		rest := copy(q.q, q.q[n:])
		clear(q.q[rest:])
		q.q = q.q[:rest]
		q.flushing = false
		q.mu.Unlock()
		select {
		case q.room <- struct{}{}:
		default:
		}
		if err != nil {
			cl.ops.log.Debug("failed writing acknowledgement", "error", err, "client", cl.ID)
			return
		}
	}
}

// waitAckRoom holds the read loop of a client whose receive quota is used up by
// deferred acknowledgements until some are written: an MQTT 3 client does not know the
// server's receive maximum and must not be disconnected for exceeding it. False when the
// connection ended meanwhile.
func (cl *Client) waitAckRoom(quota func() int32) bool {
	q := &cl.State.acks
	for quota() == 0 && cl.pendingAcks() > 0 {
		select {
		case <-q.room:
		case <-cl.State.open.Done():
			return false
		}
	}
	return true
}

// ackError is the reason code a client is disconnected with when a hook completes its
// deferred acknowledgement with err.
func ackError(err error) packets.Code {
	if code, ok := err.(packets.Code); ok && code.Code >= packets.ErrUnspecifiedError.Code {
		return code
	}
	return packets.ErrUnspecifiedError
}
