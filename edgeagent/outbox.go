package edgeagent

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/eclipse/paho.golang/autopaho/queue"
)

// outbox is the agent's queue of messages published while the broker is away (autopaho's
// queue.Queue, which sends them in order once the connection is back). Unlike autopaho's
// memory queue it is bounded: beyond maxItems messages or maxBytes bytes the oldest are
// dropped (never the one being sent), each reported to drop with the reason
// "outbox_full". A message larger than the broker's maximum packet size when its turn comes
// (the maximum shrank across a reconnection) is dropped too, reason "too_large": sent, it
// would get the agent disconnected again at every reconnection.
type outbox struct {
	mu        sync.Mutex
	items     [][]byte // encoded PUBLISH packets, oldest first
	bytes     int
	peeked    bool // items[0] is being sent
	maxItems  int
	maxBytes  int
	maxPacket func() int
	drop      func(reason, topic string)
	waiting   []chan struct{}
}

var _ queue.Queue = (*outbox)(nil)

func newOutbox(maxItems, maxBytes int, maxPacket func() int, drop func(reason, topic string)) *outbox {
	return &outbox{maxItems: maxItems, maxBytes: maxBytes, maxPacket: maxPacket, drop: drop}
}

// Wait returns a channel closed once the outbox holds a message.
func (q *outbox) Wait() chan struct{} {
	c := make(chan struct{})
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) > 0 {
		close(c)
	} else {
		q.waiting = append(q.waiting, c)
	}
	return c
}

// Enqueue adds an encoded packet, dropping the oldest beyond the bounds.
func (q *outbox) Enqueue(r io.Reader) error {
	var b bytes.Buffer
	if _, err := b.ReadFrom(r); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	p := b.Bytes()
	q.mu.Lock()
	var dropped [][]byte
	if len(p) > q.maxBytes {
		dropped = append(dropped, p)
	} else {
		q.items = append(q.items, p)
		q.bytes += len(p)
		for len(q.items) > q.maxItems || q.bytes > q.maxBytes {
			i := 0
			if q.peeked {
				i = 1 // the one being sent stays
			}
			if i >= len(q.items)-1 && q.peeked {
				break // only the one being sent and the new one: over by one for a moment
			}
			dropped = append(dropped, q.items[i])
			q.bytes -= len(q.items[i])
			q.items = append(q.items[:i], q.items[i+1:]...)
		}
		for _, c := range q.waiting {
			close(c)
		}
		q.waiting = q.waiting[:0]
	}
	q.mu.Unlock()
	for _, d := range dropped {
		q.drop("outbox_full", packetTopic(d))
	}
	return nil
}

// Peek returns the oldest message the broker can take; the caller must Leave, Remove or
// Quarantine it before the next Peek.
func (q *outbox) Peek() (queue.Entry, error) {
	limit := q.maxPacket()
	q.mu.Lock()
	var dropped [][]byte
	for len(q.items) > 0 && len(q.items[0]) > limit {
		dropped = append(dropped, q.items[0])
		q.bytes -= len(q.items[0])
		q.items = q.items[1:]
	}
	empty := len(q.items) == 0
	q.peeked = !empty
	q.mu.Unlock()
	for _, d := range dropped {
		q.drop("too_large", packetTopic(d))
	}
	if empty {
		return nil, queue.ErrEmpty
	}
	return outboxEntry{q}, nil
}

// len is the number of messages waiting.
func (q *outbox) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// outboxEntry is the oldest message, handed out by Peek.
type outboxEntry struct{ q *outbox }

func (e outboxEntry) Reader() (io.Reader, error) {
	e.q.mu.Lock()
	defer e.q.mu.Unlock()
	if len(e.q.items) == 0 {
		return nil, queue.ErrEmpty
	}
	return bytes.NewReader(e.q.items[0]), nil
}

func (e outboxEntry) Leave() error {
	e.q.mu.Lock()
	e.q.peeked = false
	e.q.mu.Unlock()
	return nil
}

func (e outboxEntry) Remove() error {
	e.q.mu.Lock()
	defer e.q.mu.Unlock()
	e.q.peeked = false
	if len(e.q.items) == 0 {
		return queue.ErrEmpty
	}
	e.q.bytes -= len(e.q.items[0])
	e.q.items = e.q.items[1:]
	return nil
}

func (e outboxEntry) Quarantine() error { return e.Remove() }

// packetTopic reads the topic of an encoded PUBLISH packet ("" if it is not one).
func packetTopic(p []byte) string {
	i := 1
	for ; i < len(p) && i < 5 && p[i]&0x80 != 0; i++ { // remaining length
	}
	i++
	if i+2 > len(p) {
		return ""
	}
	n := int(binary.BigEndian.Uint16(p[i:]))
	if i+2+n > len(p) {
		return ""
	}
	return string(p[i+2 : i+2+n])
}
