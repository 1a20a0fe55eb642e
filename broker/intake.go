package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/deviceless/deviceless/topic"
)

// ErrIntakeClosed is returned by Next and NextBatch once the intake is closed, by
// Intake.Close or because the server stopped.
var ErrIntakeClosed = errors.New("broker: intake closed")

// Event is one message as the broker delivered it to an Intake. Payload and the other
// slices are shared with the broker and other intakes: read them, never modify them.
type Event struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Retain   bool   // a retained message (also set for the retained copies sent when an intake starts)
	ClientID string // the publisher's client id ("" for $SYS)
	Username string // the publisher's username ("" for anonymous clients and the engine)
	Received time.Time
	// MQTT 5 request/response and metadata.
	ResponseTopic   string
	CorrelationData []byte
	ContentType     string
	UserProperties  []UserProperty
	// Expiry is the message expiry interval the publisher set (0: none).
	Expiry time.Duration

	// Durable intakes only (zero otherwise): the event's sequence number in the intake's
	// journal, to pass to Commit; ID, a name for the event that stays the same when it is
	// delivered again after a restart; Redelivered, set when it is.
	Seq         uint64
	ID          string
	Redelivered bool
}

// UserProperty is an MQTT 5 user property.
type UserProperty struct {
	Key, Value string
}

// IntakeOptions configure an Intake.
type IntakeOptions struct {
	// Filters are the MQTT topic filters the intake receives. Default ["#"] (every topic
	// outside $SYS). Topics starting with '$' arrive only through filters starting with '$'.
	Filters []string
	// Exclude are topic filters whose messages the intake does not take even when Filters
	// match them.
	Exclude []string
	// Buffer is how many events may wait before publishers are held back (or, with
	// Overflow OverflowShed, QoS 0 events are shed). Default: the broker's
	// limits.intake_buffer.
	Buffer int
	// Overflow is what happens when Buffer events wait: OverflowBackpressure (default)
	// holds each publisher's connection until there is room, so TCP pushes back on the
	// device and nothing is lost; OverflowShed drops new QoS 0 events and counts them.
	Overflow Overflow
	// Want, when set, is asked about the messages the engine itself publishes (the
	// broker's inline client): only those it wants are taken, e.g. the ones some rule can
	// match. Devices' messages are always taken.
	Want func(topic string) bool
	// Durable journals every QoS 1 and 2 message the intake takes before the broker
	// acknowledges it to its publisher, and delivers the messages the consumer did not
	// Commit again after a restart (journal.go). It needs the broker's store (the journal
	// is the folder "<store>-intake-<name>"), the intake must be created before Run, and a
	// server has at most one durable intake. A device's resend of a message the journal
	// already holds (its acknowledgement lost to a restart or a dropped connection) is
	// acknowledged and not delivered again.
	Durable bool
	// SkipRetained leaves out the retained messages the broker hands over when the intake
	// subscribes (at every start): a retained event is taken once, when it is published,
	// not again after each restart.
	SkipRetained bool
}

// Overflow says what an intake does when its buffer is full.
type Overflow string

// Overflow policies.
const (
	OverflowBackpressure Overflow = "backpressure"
	OverflowShed         Overflow = "shed"
)

// Intake is the engine's in-process feed of published messages: no network hop.
//
// Slow consumers, with OverflowBackpressure (the default): when Buffer events are waiting,
// or one publisher has half of them, the goroutine that delivers that publisher's next
// message (its connection's read loop) waits for room. The broker reads no further packet
// from that connection meanwhile, so TCP pushes back on the device, memory stays bounded
// (Buffer plus one waiting event per connection), and a flooding device takes at most half
// the buffer: the others' events still get in. The engine's own publications never wait
// (the engine is the consumer). With OverflowShed, new QoS 0 events beyond Buffer are
// dropped and counted (Stats().Dropped, deviceless_broker_intake_dropped_total) and QoS 1
// and 2 events queue beyond it. Events arrive in the order the broker delivered them
// (except shed ones).
type Intake struct {
	s       *Server
	name    string
	id      int
	filters []string
	// exclude holds the exclusion filters in a trie: most events are rejected at their
	// first level, where matching each filter in turn scanned every one of them.
	exclude topic.Matcher[struct{}]
	sys     bool // deliver '$' topics
	limit   int64

	durable      bool
	skipRetained bool
	overflow     Overflow
	want         func(string) bool
	journal      *journal    // set by Run for a durable intake
	attaching    atomic.Bool // retained messages are being delivered at subscription

	mu      sync.Mutex
	in      []Event // written by the broker, under mu
	spare   []Event // a batch a consumer gave back (Recycle), under mu
	closed  bool
	notify  chan struct{} // one-slot wake-up for the consumer
	done    chan struct{}
	cmu     sync.Mutex // serialises consumers
	out     []Event    // owned by the consumer side, under cmu
	pos     int
	backlog atomic.Int64
	// Backpressure, under mu: events waiting per publishing client, publishers waiting
	// for room, and the signal that there is room.
	perClient map[string]int
	waiting   int
	room      *sync.Cond

	received    atomic.Uint64
	dropped     atomic.Uint64
	held        atomic.Uint64 // times a publisher waited for room
	redelivered atomic.Uint64
	resends     atomic.Uint64
}

// IntakeStats are an intake's counters.
type IntakeStats struct {
	Received uint64 // events accepted into the intake
	Dropped  uint64 // QoS 0 events shed because the consumer was behind (OverflowShed)
	Held     uint64 // times a publisher was held back for room (OverflowBackpressure)
	Backlog  int64  // events waiting
	// Durable intakes: events delivered again after a restart, and resends of journaled
	// messages acknowledged without delivering them again.
	Redelivered uint64
	Resends     uint64
}

// Intake creates an in-process subscription named name (used as a metrics label). It may
// be called before or after Run starts; an intake created before Run starts receiving
// when Run has loaded the store, before any client connects, so it also sees the
// retained messages that survived a restart. Retained messages matching the filters are
// delivered first, with Retain set.
func (s *Server) Intake(name string, opts IntakeOptions) (*Intake, error) {
	if name == "" {
		return nil, errors.New("broker: intake: empty name")
	}
	filters := opts.Filters
	if len(filters) == 0 {
		filters = []string{"#"}
	}
	sys := false
	for _, f := range filters {
		if !mqtt.IsValidFilter(f, false) || strings.HasPrefix(strings.ToLower(f), "$share/") {
			return nil, fmt.Errorf("broker: intake %q: invalid topic filter %q", name, f)
		}
		if strings.HasPrefix(f, "$") {
			sys = true
		}
	}
	var exclude topic.Matcher[struct{}]
	for _, f := range opts.Exclude {
		if !mqtt.IsValidFilter(f, false) || strings.HasPrefix(strings.ToLower(f), "$share/") || exclude.Add(f, struct{}{}) != nil {
			return nil, fmt.Errorf("broker: intake %q: invalid exclude filter %q", name, f)
		}
	}
	buffer := opts.Buffer
	if buffer <= 0 {
		buffer = s.cfg.Limits.IntakeBuffer
	}
	in := &Intake{
		s:            s,
		name:         name,
		id:           int(s.intakeSeq.Add(1)),
		filters:      append([]string(nil), filters...),
		exclude:      exclude,
		sys:          sys,
		durable:      opts.Durable,
		skipRetained: opts.SkipRetained,
		overflow:     opts.Overflow,
		want:         opts.Want,
		limit:        int64(buffer),
		notify:       make(chan struct{}, 1),
		done:         make(chan struct{}),
	}
	switch in.overflow {
	case "":
		in.overflow = OverflowBackpressure
	case OverflowBackpressure, OverflowShed:
	default:
		return nil, fmt.Errorf("broker: intake %q: overflow %q: want backpressure or shed", name, opts.Overflow)
	}
	in.perClient = map[string]int{}
	in.room = sync.NewCond(&in.mu)
	s.intakeMu.Lock()
	defer s.intakeMu.Unlock()
	if s.stopped {
		return nil, fmt.Errorf("broker: intake %q: %w", name, ErrServerStopped)
	}
	if _, dup := s.intakes[name]; dup {
		return nil, fmt.Errorf("broker: intake %q already exists", name)
	}
	if in.durable {
		switch {
		case s.cfg.Store == "":
			return nil, fmt.Errorf("broker: intake %q: durable needs the broker's store", name)
		case s.started:
			return nil, fmt.Errorf("broker: intake %q: a durable intake must be created before Run", name)
		case s.durable != nil:
			return nil, fmt.Errorf("broker: intake %q: intake %q is already durable", name, s.durable.name)
		}
		s.durable = in
	}
	s.intakes[name] = in
	if s.started {
		if err := in.attach(); err != nil {
			delete(s.intakes, name)
			return nil, err
		}
	}
	return in, nil
}

// attach subscribes the intake's filters in mochi; for a durable intake it first opens
// the journal and queues the events it delivers again.
func (in *Intake) attach() error {
	if in.durable {
		dir := in.s.cfg.Store + "-intake-" + in.name
		j, pending, err := openJournal(dir, in.s.cfg.StoreSync == nil || *in.s.cfg.StoreSync, in.s.log.With("intake", in.name))
		if err != nil {
			return fmt.Errorf("broker: intake %q: %w", in.name, err)
		}
		if len(pending) > 0 {
			in.s.log.Info("intake: delivering again the events not handled before the restart", "intake", in.name, "events", len(pending))
		}
		in.mu.Lock()
		in.journal = j
		for _, ev := range pending {
			in.push(ev)
		}
		in.mu.Unlock()
		in.redelivered.Add(uint64(len(pending)))
	}
	// mochi hands the retained messages to the handler inside Subscribe.
	in.attaching.Store(true)
	defer in.attaching.Store(false)
	for _, f := range in.filters {
		if err := in.s.mqtt.Subscribe(f, in.id, in.deliver); err != nil {
			in.detach()
			return fmt.Errorf("broker: intake %q: subscribe %q: %w", in.name, f, err)
		}
	}
	return nil
}

func (in *Intake) detach() {
	for _, f := range in.filters {
		_ = in.s.mqtt.Unsubscribe(f, in.id)
	}
}

// deliver runs on the goroutine that publishes (a client's read loop): it waits only to
// push back on that client (backpressure), never for the engine's own publications.
func (in *Intake) deliver(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
	if len(pk.TopicName) > 0 && pk.TopicName[0] == '$' && !in.sys {
		return
	}
	if in.excluded(pk.TopicName) {
		return
	}
	if in.skipRetained && pk.FixedHeader.Retain && in.attaching.Load() {
		return
	}
	if in.durable && pk.FixedHeader.Qos > 0 && !in.attaching.Load() {
		return // journalPublish took it
	}
	own := in.fromEngine(pk.Origin)
	if own && in.want != nil && !in.want(pk.TopicName) {
		return
	}
	if in.overflow == OverflowShed && pk.FixedHeader.Qos == 0 && in.backlog.Load() >= in.limit {
		in.dropped.Add(1)
		return
	}
	ev := in.event(&pk)
	in.mu.Lock()
	if in.overflow == OverflowBackpressure && !own && !in.attaching.Load() && !in.waitForRoom(pk.Origin) {
		in.mu.Unlock()
		return
	}
	if in.closed {
		in.mu.Unlock()
		return
	}
	in.push(ev)
	in.mu.Unlock()
	in.wake()
}

// fromEngine reports whether a message comes from the engine (the broker's inline client).
func (in *Intake) fromEngine(origin string) bool {
	return origin == "" || origin == engineClientID || origin == mqtt.InlineClientId
}

// waitForRoom blocks the calling publisher until the intake has room for one more of
// client's events: fewer than Buffer waiting in all and fewer than half of them its own.
// Called with mu held; false when the intake closed meanwhile.
func (in *Intake) waitForRoom(client string) bool {
	share := max(in.limit/2, 1)
	for !in.closed && (in.backlog.Load() >= in.limit || int64(in.perClient[client]) >= share) {
		in.waiting++
		in.held.Add(1)
		in.room.Wait()
		in.waiting--
	}
	return !in.closed
}

// release gives back the room of events the consumer took.
func (in *Intake) release(events []Event) {
	if in.overflow != OverflowBackpressure {
		in.backlog.Add(-int64(len(events)))
		return
	}
	in.mu.Lock()
	in.backlog.Add(-int64(len(events)))
	for i := range events {
		if c := events[i].ClientID; !in.fromEngine(c) {
			if n := in.perClient[c] - 1; n > 0 {
				in.perClient[c] = n
			} else {
				delete(in.perClient, c)
			}
		}
	}
	if in.waiting > 0 {
		in.room.Broadcast()
	}
	in.mu.Unlock()
}

// journalPublish runs in the OnPublish hook, before mochi acknowledges pk: it journals a
// QoS 1 or 2 message the durable intake takes and queues it.
func (in *Intake) journalPublish(cl *mqtt.Client, pk packets.Packet) error {
	if pk.FixedHeader.Qos == 0 || in.journal == nil {
		return nil
	}
	if len(pk.TopicName) > 0 && pk.TopicName[0] == '$' && !in.sys {
		return nil
	}
	if !in.takes(pk.TopicName) {
		return nil
	}
	own := cl.Net.Inline
	if own && in.want != nil && !in.want(pk.TopicName) {
		return nil
	}
	if in.overflow == OverflowBackpressure && !own {
		// Before the journal write and the PUBACK: the publisher waits, unacknowledged.
		in.mu.Lock()
		ok := in.waitForRoom(pk.Origin)
		in.mu.Unlock()
		if !ok {
			return ErrIntakeClosed
		}
	}
	ev := in.event(&pk)
	client := ""
	if !own {
		client = cl.ID
	}
	seq, err := in.journal.record(&ev, client, pk.PacketID, pk.FixedHeader.Dup, func() {
		in.mu.Lock()
		if !in.closed {
			in.push(ev)
		}
		in.mu.Unlock()
	})
	switch {
	case errors.Is(err, errResend):
		in.resends.Add(1) // acknowledged once its first copy is on disk
	case err != nil:
		return fmt.Errorf("broker: intake %q: %w", in.name, err)
	default:
		in.wake()
	}
	if serr := in.awaitDisk(cl, pk.TopicName, seq); serr != nil {
		return serr
	}
	return err
}

// awaitDisk holds pk's acknowledgement until the journal is on disk up to seq. A network
// client's is deferred (mochi patch 9): its connection goes on reading the client's
// in-flight window while the journal's group commit fsyncs it all at once, and the
// PUBACKs follow in order. The engine's own publishes wait here.
func (in *Intake) awaitDisk(cl *mqtt.Client, topic string, seq uint64) error {
	j := in.journal
	if !j.sync {
		return nil
	}
	ack := cl.DeferAck()
	if ack == nil {
		return j.syncTo(seq)
	}
	j.whenSynced(seq, func(err error) {
		if err != nil && !errors.Is(err, ErrIntakeClosed) {
			in.s.log.Error("intake journal sync failed: message not acknowledged", "intake", in.name, "client", cl.ID, "topic", topic, "err", err)
		}
		// An error disconnects the client, which sends the message again.
		ack(err)
	})
	return nil
}

// takes reports whether topic matches the intake's filters and none of its exclusions.
func (in *Intake) takes(name string) bool {
	for _, f := range in.filters {
		if topic.Match(f, name) {
			return !in.excluded(name)
		}
	}
	return false
}

func (in *Intake) excluded(name string) bool {
	return len(in.exclude.Match(name, nil)) > 0 // zero-size values: no allocation
}

// push queues ev; called with mu held.
func (in *Intake) push(ev Event) {
	in.in = append(in.in, ev)
	in.backlog.Add(1)
	in.received.Add(1)
	if in.overflow == OverflowBackpressure && !in.fromEngine(ev.ClientID) {
		in.perClient[ev.ClientID]++
	}
}

func (in *Intake) wake() {
	select {
	case in.notify <- struct{}{}:
	default:
	}
}

// Commit tells a durable intake that every event up to seq has been handled (its effects
// handed to the broker): they are not delivered again after a restart. Call it in
// delivery order; a no-op for other intakes.
func (in *Intake) Commit(seq uint64) error {
	if !in.durable || seq == 0 {
		return nil
	}
	in.mu.Lock()
	j := in.journal
	in.mu.Unlock()
	if j == nil {
		return nil
	}
	if err := j.commit(seq); err != nil {
		return fmt.Errorf("broker: intake %q: commit: %w", in.name, err)
	}
	return nil
}

// event converts a published packet.
func (in *Intake) event(pk *packets.Packet) Event {
	ev := Event{
		Topic:           pk.TopicName,
		Payload:         pk.Payload,
		QoS:             pk.FixedHeader.Qos,
		Retain:          pk.FixedHeader.Retain,
		ClientID:        pk.Origin,
		Received:        time.Now(),
		ResponseTopic:   pk.Properties.ResponseTopic,
		CorrelationData: pk.Properties.CorrelationData,
		ContentType:     pk.Properties.ContentType,
		Expiry:          time.Duration(pk.Properties.MessageExpiryInterval) * time.Second,
	}
	if n := len(pk.Properties.User); n > 0 {
		ev.UserProperties = make([]UserProperty, n)
		for i, u := range pk.Properties.User {
			ev.UserProperties[i] = UserProperty{Key: u.Key, Value: u.Val}
		}
	}
	if pk.Origin != "" && pk.Origin != engineClientID {
		if cl, ok := in.s.mqtt.Clients.Get(pk.Origin); ok {
			ev.Username = string(cl.Properties.Username)
		}
	}
	return ev
}

// Next returns the next event, waiting for one until ctx ends or the intake closes.
// Several goroutines may call Next and NextBatch; each event goes to one of them.
func (in *Intake) Next(ctx context.Context) (Event, error) {
	in.cmu.Lock()
	defer in.cmu.Unlock()
	if in.pos >= len(in.out) {
		if err := in.fill(ctx); err != nil {
			return Event{}, err
		}
	}
	ev := in.out[in.pos]
	in.out[in.pos] = Event{}
	in.pos++
	in.release([]Event{ev})
	return ev, nil
}

// NextBatch returns every waiting event (at least one), waiting for one until ctx ends
// or the intake closes. The caller owns the returned slice.
func (in *Intake) NextBatch(ctx context.Context) ([]Event, error) {
	in.cmu.Lock()
	defer in.cmu.Unlock()
	if in.pos >= len(in.out) {
		if err := in.fill(ctx); err != nil {
			return nil, err
		}
	}
	batch := in.out[in.pos:]
	in.out, in.pos = nil, 0
	in.release(batch)
	return batch, nil
}

// Queued returns the events waiting now, without waiting for more: nil when there are
// none. (Next and NextBatch answer a consumer whose context has ended with the context's
// error, events queued or not; this is how to take what is queued at once.) It waits while
// another goroutine waits in Next or NextBatch. The caller owns the returned slice.
func (in *Intake) Queued() []Event {
	in.cmu.Lock()
	defer in.cmu.Unlock()
	if in.pos >= len(in.out) {
		in.mu.Lock()
		if len(in.in) == 0 {
			in.mu.Unlock()
			return nil
		}
		in.out, in.in = in.in, in.recycled()
		in.pos = 0
		in.mu.Unlock()
	}
	batch := in.out[in.pos:]
	in.out, in.pos = nil, 0
	in.release(batch) // gives its publishers their room back
	return batch
}

// recycled is an empty slice to queue the next events into: the consumer side's, or one a
// consumer gave back (Recycle), or nil. Called with mu and cmu held.
func (in *Intake) recycled() []Event {
	if in.out != nil {
		return in.out[:0]
	}
	spare := in.spare
	in.spare = nil
	return spare
}

// Recycle gives back a batch NextBatch returned, once the caller reads neither the slice
// nor its events any more: the next events are queued into it instead of a new slice
// (under a steady stream each batch was a new one, a third of the engine's allocated
// bytes). Only the slice is reused; the payloads and strings its events point to are not.
// Optional.
func (in *Intake) Recycle(batch []Event) {
	if cap(batch) == 0 {
		return
	}
	clear(batch) // what they point to may go
	in.mu.Lock()
	if cap(batch) > cap(in.spare) {
		in.spare = batch[:0]
	}
	in.mu.Unlock()
}

// fill waits for events and moves them to the consumer side. Called with cmu held.
func (in *Intake) fill(ctx context.Context) error {
	for {
		// The context first: under a flood there is always something queued, and a
		// consumer told to stop must hear it (a stopping engine would never get here).
		if err := ctx.Err(); err != nil {
			return err
		}
		in.mu.Lock()
		if len(in.in) > 0 {
			in.out, in.in = in.in, in.recycled()
			in.pos = 0
			in.mu.Unlock()
			return nil
		}
		closed := in.closed
		in.mu.Unlock()
		if closed {
			return ErrIntakeClosed
		}
		select {
		case <-in.notify:
		case <-in.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stats returns the intake's counters.
func (in *Intake) Stats() IntakeStats {
	return IntakeStats{Received: in.received.Load(), Dropped: in.dropped.Load(), Held: in.held.Load(), Backlog: in.backlog.Load(),
		Redelivered: in.redelivered.Load(), Resends: in.resends.Load()}
}

// Name returns the intake's name.
func (in *Intake) Name() string { return in.name }

// Close unsubscribes the intake; waiting and later Next calls return ErrIntakeClosed.
// The events still waiting are discarded (see Stop).
func (in *Intake) Close() error {
	_ = in.Stop()
	return nil
}

// Stop closes the intake as Close does and returns the events still waiting, which no
// consumer will get, in delivery order: a stopping consumer accounts for them. QoS 0
// ones are lost; the QoS 1 and 2 ones of a durable intake are in its journal and are
// delivered again after a restart (Commit has not covered them).
func (in *Intake) Stop() []Event {
	in.s.intakeMu.Lock()
	if in.s.intakes[in.name] == in {
		delete(in.s.intakes, in.name)
	}
	in.s.intakeMu.Unlock()
	queued := in.shut()
	// shut woke a consumer waiting in fill, which holds cmu until it returns.
	in.cmu.Lock()
	left := append(in.out[in.pos:len(in.out):len(in.out)], queued...)
	in.backlog.Add(-int64(len(in.out) - in.pos))
	in.out, in.pos = nil, 0
	in.cmu.Unlock()
	return left
}

// shut closes the intake and returns the events that were still queued for the consumer
// side (the first call only).
func (in *Intake) shut() []Event {
	in.detach()
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return nil
	}
	in.closed = true
	queued := in.in
	in.backlog.Add(-int64(len(in.in)))
	in.in = nil
	close(in.done)
	in.room.Broadcast() // publishers waiting for room give up
	j := in.journal
	in.mu.Unlock()
	// After in.mu: journalPublish holds the journal's lock while it takes in.mu.
	if j != nil {
		if err := j.close(); err != nil {
			in.s.log.Warn("intake: closing the journal", "intake", in.name, "err", err)
		}
	}
	return queued
}
