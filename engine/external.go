package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/protocol"
)

// Subscription identifiers tell the two ways a message reaches an external engine apart.
const (
	subShared  = 1 // $share/{group}/#: every message, to one engine of the group
	subControl = 2 // agent status and results: to every engine
)

// external is the transport of an external MQTT v5 broker through autopaho. With a
// shared_group, several engines split the events (and external invoke requests) between
// them, while every engine sees every agent's status and every result (each keeps the
// results of the invocations it dispatched).
type external struct {
	e      *Engine
	url    *url.URL
	topics protocol.Topics
	cm     atomic.Pointer[autopaho.ConnectionManager]
	ready  chan struct{}
	once   sync.Once

	events, control *queue
	receiveMax      uint16 // announced in CONNECT: flowControl
	maxPacket       uint32

	// Events are acknowledged to the broker once committed (evaluated, actions handed on):
	// a crash leaves them unacknowledged, and the broker sends them again to the engine's
	// persistent session (or, in a shared group, to another engine).
	amu     sync.Mutex
	seq     uint64
	unacked []unacked
	held    []heldAcks // committed, waiting for their publications to be written
	pubs    *sentQueue

	ids *externalIDs // the events' IDs, from which their actions' ids derive
}

type unacked struct {
	seq uint64
	c   *paho.Client
	p   *paho.Publish
}

func openExternal(e *Engine) (*external, error) {
	u, err := protocol.ParseBrokerURL(e.cfg.Broker.External)
	if err != nil {
		return nil, fmt.Errorf("broker.external %q: %w", e.cfg.Broker.External, err)
	}
	buf := e.cfg.Broker.Limits.IntakeBuffer
	if buf <= 0 {
		buf = broker.DefaultIntakeBuffer
	}
	maxPacket := e.cfg.Broker.Limits.MaxPacketSize
	if maxPacket == 0 {
		maxPacket = broker.DefaultMaxPacketSize
	}
	t := &external{e: e, url: u, topics: e.topics, ready: make(chan struct{}),
		events: newQueue(buf), control: newQueue(buf), maxPacket: maxPacket,
		ids: newExternalIDs(e.cfg.Broker.ClientID)}
	t.pubs = newSentQueue()
	t.pubs.onSent = t.release
	t.receiveMax = uint16(min(buf, math.MaxUint16))
	// A broker that sends more unacknowledged QoS 1/2 events than the Receive Maximum
	// breaks MQTT 5 §3.3.4 (mosquitto 2.0.11 sends a few more once acknowledgements flow:
	// TestExternalFloodStaysBounded): beyond that plus the QoS 0 room, they wait (push).
	t.events.hard = buf + int(t.receiveMax)
	return t, nil
}

// flowControl sets the CONNECT's Receive Maximum (the engine's QoS 1/2 events in flight,
// unacknowledged until committed: the broker sends no more) and Maximum Packet Size (the
// broker sends nothing bigger), so that memory stays bounded however fast that broker's
// publishers are (docs/engine.md, "Ordering and overload").
func (t *external) flowControl(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
	if cp.Properties == nil {
		cp.Properties = &paho.ConnectProperties{}
	}
	rm, mp := t.receiveMax, t.maxPacket
	cp.Properties.ReceiveMaximum, cp.Properties.MaximumPacketSize = &rm, &mp
	return cp, nil
}

func (t *external) Run(ctx context.Context) error {
	cfg := t.e.cfg.Broker
	clientID := cfg.ClientID
	persistent := clientID != ""
	if clientID == "" {
		clientID = "deviceless-engine-" + newID()[:8]
	}
	shared := "#"
	if cfg.SharedGroup != "" {
		shared = "$share/" + cfg.SharedGroup + "/#"
	}
	subs := &paho.Subscribe{
		Subscriptions: []paho.SubscribeOptions{{Topic: shared, QoS: 1}},
		Properties:    &paho.SubscribeProperties{SubscriptionIdentifier: intPtr(subShared)},
	}
	ctrl := &paho.Subscribe{
		Subscriptions: []paho.SubscribeOptions{{Topic: t.topics.AllStatus(), QoS: 1}, {Topic: t.topics.AllResults(), QoS: 1}},
		Properties:    &paho.SubscribeProperties{SubscriptionIdentifier: intPtr(subControl)},
	}
	ac := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{t.url},
		KeepAlive:                     30,
		CleanStartOnInitialConnection: !persistent,
		ConnectUsername:               cfg.Username,
		ConnectPassword:               []byte(cfg.Password),
		Queue:                         t.pubs,
		ConnectPacketBuilder:          t.flowControl,
		ReconnectBackoff:              func(n int) time.Duration { return min(time.Duration(n+1)*250*time.Millisecond, 5*time.Second) },
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			t.cm.Store(cm)
			go func() {
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if _, err := cm.Subscribe(sctx, ctrl); err != nil {
					t.e.log.Error("external broker: subscribe", "err", err)
					return
				}
				if _, err := cm.Subscribe(sctx, subs); err != nil {
					t.e.log.Error("external broker: subscribe", "err", err)
					return
				}
				t.e.log.Info("external broker connected", "url", t.url.Redacted(), "client_id", clientID, "shared_group", cfg.SharedGroup)
				t.once.Do(func() { close(t.ready) })
			}()
		},
		OnConnectError: func(err error) { t.e.log.Warn("external broker: connect", "err", err) },
		ClientConfig: paho.ClientConfig{
			ClientID:                   clientID,
			EnableManualAcknowledgment: true,
			// paho sends the acknowledgements due every SendAcksInterval: with mosquitto's
			// 20 messages in flight per client, this bounds the engine to 20 per interval.
			// Disconnect sends the due ones first (our fork, third_party/paho.golang
			// PATCHES.md), so a stop leaves exactly the uncommitted events unacknowledged.
			SendAcksInterval: 2 * time.Millisecond,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				t.receive(pr.Client, pr.Packet)
				return true, nil
			}},
		},
	}
	if persistent {
		ac.SessionExpiryInterval = uint32(cfg.sessionExpiry() / time.Second)
	}
	if rm := uint16(cfg.ReceiveMaximum); rm > 0 {
		ac.ConnectPacketBuilder = func(cp *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			if cp.Properties == nil {
				cp.Properties = &paho.ConnectProperties{}
			}
			cp.Properties.ReceiveMaximum = &rm
			return cp, nil
		}
	}
	// The agents first, on a connection of their own: the session's events arrive from
	// the connect on, and the event loop takes none before Ready.
	if err := t.statusSnapshot(ctx, ac, clientID+"-sync"); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		t.e.log.Warn("external broker: the agents' retained statuses may not all be in before the first event "+
			"(an event whose action finds no agent is dead-lettered)", "err", err)
	}
	// The connection outlives ctx by the flush below.
	cm, err := autopaho.NewConnection(context.WithoutCancel(ctx), ac)
	if err != nil {
		return fmt.Errorf("external broker: %w", err)
	}
	t.cm.Store(cm)
	<-ctx.Done()
	// The event loop has ended (Engine.Run stops the transport last). Its last actions are
	// written first, which releases the acknowledgements of their events (commit), and
	// paho sends those before DISCONNECT; what is not written within the budget stays
	// unacknowledged and comes again.
	t.events.close()
	t.control.close()
	dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := t.pubs.waitWritten(dctx, t.pubs.queued()); err != nil {
		t.e.log.Warn("external broker: stopping with publications not written; their events come again", "err", err)
	}
	_ = cm.Disconnect(dctx)
	<-cm.Done()
	return nil
}

func intPtr(i int) *int { return &i }

// statusSnapshot reads the agents' retained statuses into the control queue before the
// engine's own session connects, on a clean session of its own (client id id): the
// persistent session's queue holds the events it missed, and the broker sends only its
// in-flight window of them before the engine acknowledges some, which it does once it has
// evaluated them, so a marker behind them would never come. The snapshot subscribes to the
// statuses and to its sync topic, publishes a fresh nonce there and waits until it comes
// back: a broker sends a subscription's retained messages before what is published to it
// afterwards, and paho hands received messages on in order (though it may report the
// SUBACK before it has handed on the messages that came before it). docs/engine.md,
// "External broker: start".
func (t *external) statusSnapshot(ctx context.Context, main autopaho.ClientConfig, id string) error {
	syncTopic := t.topics.EngineSync(id)
	nonce, returned := newID(), make(chan struct{})
	var once sync.Once
	ac := autopaho.ClientConfig{
		ServerUrls:                    main.ServerUrls,
		KeepAlive:                     main.KeepAlive,
		CleanStartOnInitialConnection: true,
		ConnectUsername:               main.ConnectUsername,
		ConnectPassword:               main.ConnectPassword,
		ReconnectBackoff:              main.ReconnectBackoff,
		OnConnectError:                main.OnConnectError,
		ClientConfig: paho.ClientConfig{
			ClientID: id,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				p := pr.Packet
				switch r, _ := t.topics.Parse(p.Topic); r.Kind {
				case protocol.AgentStatus:
					t.control.push(broker.Event{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Received: t.e.now()})
				case protocol.EngineSync:
					if string(p.Payload) == nonce {
						once.Do(func() { close(returned) })
					}
				}
				return true, nil
			}},
		},
	}
	cm, err := autopaho.NewConnection(ctx, ac)
	if err != nil {
		return err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = cm.Disconnect(dctx)
		<-cm.Done()
	}()
	// However long the broker takes to come up; then the round trip is bounded.
	if err := cm.AwaitConnection(ctx); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cm.Subscribe(sctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: t.topics.AllStatus(), QoS: 1}, {Topic: syncTopic, QoS: 1}}}); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if _, err := cm.Publish(sctx, &paho.Publish{Topic: syncTopic, QoS: 1, Payload: []byte(nonce)}); err != nil {
		return fmt.Errorf("publish on %s: %w", syncTopic, err)
	}
	select {
	case <-returned:
		return nil
	case <-sctx.Done():
		return fmt.Errorf("no message back on %s (may the engine's user read and write it?): %w", syncTopic, sctx.Err())
	}
}

// receive routes one message. A control message can arrive twice (through the shared
// subscription and the control one): the shared copy of status and results is dropped.
// Control messages are acknowledged at once (paho sends acknowledgements in the order
// the messages arrived), events when committed.
func (t *external) receive(c *paho.Client, p *paho.Publish) {
	ev := broker.Event{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, Received: t.e.now()}
	viaControl := false
	if pp := p.Properties; pp != nil {
		ev.ResponseTopic, ev.CorrelationData, ev.ContentType = pp.ResponseTopic, pp.CorrelationData, pp.ContentType
		for _, u := range pp.User {
			ev.UserProperties = append(ev.UserProperties, broker.UserProperty{Key: u.Key, Value: u.Value})
		}
		if pp.MessageExpiry != nil {
			ev.Expiry = time.Duration(*pp.MessageExpiry) * time.Second
		}
		viaControl = pp.SubscriptionIdentifier != nil && *pp.SubscriptionIdentifier == subControl
	}
	r, _ := t.topics.Parse(p.Topic)
	switch r.Kind {
	case protocol.AgentStatus, protocol.AgentResult:
		if viaControl {
			t.control.push(ev)
		} // else the control subscription delivers it
		t.ack(c, p)
		return
	case protocol.Invoke:
		t.control.push(ev)
		t.ack(c, p)
		return
	case protocol.EngineSync:
		t.ack(c, p) // a status snapshot's marker, through the shared subscription
		return
	}
	ev.ID, ev.Redelivered = t.ids.eventID(p), p.Duplicate()
	// Wait for room before taking amu: commit takes it, and the event loop commits its
	// batch before it takes the next, which is what makes room (waiting under amu, in
	// push, deadlocked the two once the queue was full). This goroutine is the queue's
	// only producer, so push then finds the room.
	t.events.waitRoom(ev.QoS)
	t.amu.Lock()
	t.seq++
	ev.Seq = t.seq
	if t.events.push(ev) && p.QoS > 0 {
		t.unacked = append(t.unacked, unacked{t.seq, c, p})
	}
	t.amu.Unlock()
}

func (t *external) ack(c *paho.Client, p *paho.Publish) {
	if err := c.Ack(p); err != nil {
		// The connection it came on is gone: the broker sends it again.
		t.e.log.Debug("external broker: acknowledgement not sent", "topic", p.Topic, "err", err)
	}
}

func (t *external) Ready() <-chan struct{} { return t.ready }

func (t *external) Events() eventSource { return externalEvents{t} }

func (t *external) Control() controlSource { return t.control }

// externalEvents is the external transport's event source: committing a batch
// acknowledges its QoS 1/2 events to the broker.
type externalEvents struct{ t *external }

func (s externalEvents) Next(ctx context.Context) (eventBatch, error) {
	events, err := s.t.events.NextBatch(ctx)
	if err != nil {
		return eventBatch{}, err
	}
	return newBatch(events, s), nil
}

// commit acknowledges the QoS 1/2 events up to seq to the broker, once the publications
// queued so far (their actions among them) have been written (sentQueue).
func (s externalEvents) commit(seq uint64) error {
	t := s.t
	t.amu.Lock()
	n := 0
	for n < len(t.unacked) && t.unacked[n].seq <= seq {
		n++
	}
	if n > 0 {
		t.held = append(t.held, heldAcks{after: t.pubs.queued(), acks: t.unacked[:n:n]})
		t.unacked = t.unacked[n:]
	}
	t.amu.Unlock()
	t.release(t.pubs.writtenCount())
	return nil
}

// release acknowledges the held events whose publications have all been written, in
// order (paho sends acknowledgements in the order the messages arrived).
func (t *external) release(written uint64) {
	t.amu.Lock()
	n := 0
	for n < len(t.held) && t.held[n].after <= written {
		n++
	}
	done := t.held[:n:n]
	t.held = t.held[n:]
	t.amu.Unlock()
	for _, h := range done {
		for _, u := range h.acks {
			t.ack(u.c, u.p)
		}
	}
}

// Close stops taking events; those still queued stay unacknowledged: with a persistent
// session (client_id set) the broker sends them again.
func (s externalEvents) Close() []broker.Event { return s.t.events.stop() }

func (s externalEvents) Redelivers() bool { return s.t.e.cfg.Broker.sessionExpiry() > 0 }

func (s externalEvents) Stats() broker.IntakeStats { return s.t.events.stats() }

// Publish queues m without waiting for the broker: the event loop must not wait for a
// round trip per action.
func (t *external) Publish(m broker.Message) error {
	cm := t.cm.Load()
	if cm == nil {
		return errors.New("external broker: not connected")
	}
	p := &paho.Publish{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, Properties: &paho.PublishProperties{
		ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData, ContentType: m.ContentType,
	}}
	if m.Expiry > 0 {
		secs := uint32((m.Expiry + time.Second - 1) / time.Second)
		p.Properties.MessageExpiry = &secs
	}
	for _, u := range m.UserProperties {
		p.Properties.User = append(p.Properties.User, paho.UserProperty{Key: u.Key, Value: u.Value})
	}
	// The queue keeps the order of publications (an actuation on, then off) and holds
	// them across reconnects.
	if err := cm.PublishViaQueue(context.Background(), &autopaho.QueuePublish{Publish: p}); err != nil {
		return fmt.Errorf("external broker: publish %s: %w", m.Topic, err)
	}
	return nil
}

// The external transport is no authorizer: it cannot see that broker's ACLs (see
// externalInvoke). Nor is it a collectorSource.

func (t *external) Addr() string { return t.url.Host }

// queue is an unbounded-for-QoS-1, bounded-for-QoS-0 FIFO between the MQTT client's
// receive path and the engine: QoS 0 events beyond limit are shed and counted, QoS 1
// events are never shed (the same policy as the embedded broker's intake).
type queue struct {
	mu      sync.Mutex
	items   []broker.Event
	limit   int
	hard    int           // 0, or the most events it holds before a QoS 1/2 one waits (push)
	room    chan struct{} // signalled when events are taken
	peak    int           // the most it held (tests)
	closed  bool
	notify  chan struct{}
	dropped uint64
	total   uint64
}

func newQueue(limit int) *queue {
	return &queue{limit: limit, notify: make(chan struct{}, 1), room: make(chan struct{}, 1)}
}

// taken tells a push waiting for room that there may be some.
func (q *queue) taken() {
	select {
	case q.room <- struct{}{}:
	default:
	}
}

// waitRoom waits until a QoS 1/2 event (qos > 0) fits under hard, or the queue is closed.
// A QoS 1/2 event beyond hard (a broker over the Receive Maximum) waits for room: the
// client stops reading, TCP holds that broker back, and nothing is lost.
func (q *queue) waitRoom(qos byte) {
	q.mu.Lock()
	q.waitRoomLocked(qos)
	q.mu.Unlock()
}

func (q *queue) waitRoomLocked(qos byte) {
	for q.hard > 0 && qos > 0 && !q.closed && len(q.items) >= q.hard {
		q.mu.Unlock()
		<-q.room
		q.mu.Lock()
	}
}

// push queues ev and reports whether it did; a QoS 1/2 event waits for room (waitRoom).
func (q *queue) push(ev broker.Event) bool {
	q.mu.Lock()
	q.waitRoomLocked(ev.QoS)
	if q.closed || (ev.QoS == 0 && len(q.items) >= q.limit) {
		if !q.closed {
			q.dropped++
		}
		q.mu.Unlock()
		return false
	}
	q.items = append(q.items, ev)
	q.total++
	q.peak = max(q.peak, len(q.items))
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return true
}

// NextBatch returns what is queued, waiting for something if nothing is; once the queue is
// closed, what is left, then broker.ErrIntakeClosed. (As broker.Intake's: a queue is a
// controlSource.)
func (q *queue) NextBatch(ctx context.Context) ([]broker.Event, error) {
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			out := q.items
			q.items = nil
			q.mu.Unlock()
			q.taken()
			return out, nil
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil, broker.ErrIntakeClosed
		}
		select {
		case <-q.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Queued returns what is queued now, without waiting (a controlSource).
func (q *queue) Queued() []broker.Event {
	q.mu.Lock()
	out := q.items
	q.items = nil
	q.mu.Unlock()
	q.taken()
	return out
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.taken()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// stop closes the queue and returns what is still in it.
func (q *queue) stop() []broker.Event {
	q.close()
	return q.Queued()
}

func (q *queue) stats() broker.IntakeStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return broker.IntakeStats{Received: q.total, Dropped: q.dropped, Backlog: int64(len(q.items))}
}
