package broker

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// A consumer that does not read: QoS 0 events beyond the buffer are shed and counted,
// QoS 1 events are all kept.
func TestIntakeShedsQoS0KeepsQoS1(t *testing.T) {
	t.Parallel()
	b := start(t, baseConfig(t))
	in, err := b.Intake("rules", IntakeOptions{Filters: []string{"sensors/#"}, Buffer: 10, Overflow: OverflowShed})
	if err != nil {
		t.Fatal(err)
	}
	pub := mustConnect(t, b.Addr(ListenerTCP), connOpts{clientID: "pub", user: "sensor1"})
	for i := range 100 {
		pub.mustPublish(t, "sensors/q0", itoa(i), 0)
	}
	// mochi handles one client's packets in order: once this QoS 1 publish is
	// acknowledged, every QoS 0 before it has been delivered or shed. (mochi acknowledges
	// before delivering, so "first" itself may still be on its way.)
	pub.mustPublish(t, "sensors/q1", "first", 1)
	if st := in.Stats(); st.Dropped != 90 || st.Received < 10 || st.Received > 11 {
		t.Fatalf("after 100 QoS 0 + 1 QoS 1 into a buffer of 10: %+v, want 90 dropped", st)
	}
	for i := range 50 {
		pub.mustPublish(t, "sensors/q1", itoa(i), 1)
	}
	ctx := testContext(t)
	var got []Event
	for len(got) < 61 {
		batch, err := in.NextBatch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, batch...)
	}
	if st := in.Stats(); st.Received != 61 || st.Dropped != 90 || st.Backlog != 0 {
		t.Fatalf("QoS 1 beyond the buffer: %+v, want received 61, dropped 90, backlog 0", st)
	}
	for i := range 10 {
		if got[i].Topic != "sensors/q0" || string(got[i].Payload) != itoa(i) || got[i].QoS != 0 {
			t.Fatalf("event %d: %q %q qos %d", i, got[i].Topic, got[i].Payload, got[i].QoS)
		}
	}
	if string(got[10].Payload) != "first" {
		t.Fatalf("event 10: %q", got[10].Payload)
	}
	for i := range 50 {
		e := got[11+i]
		if e.Topic != "sensors/q1" || string(e.Payload) != itoa(i) || e.QoS != 1 || e.Username != "sensor1" || e.ClientID != "pub" {
			t.Fatalf("event %d: %+v", 11+i, e)
		}
	}
	if counterValue(t, b.Server, "deviceless_broker_intake_dropped_total", "intake", "rules") != 90 {
		t.Error("intake_dropped_total{intake=rules} != 90")
	}
	// After draining, QoS 0 flows again.
	pub.mustPublish(t, "sensors/q0", "again", 0)
	pub.mustPublish(t, "sensors/q1", "sync", 1)
	if ev, err := in.Next(ctx); err != nil || string(ev.Payload) != "again" {
		t.Fatalf("after drain: %+v %v", ev, err)
	}
}

func TestIntakeLifecycle(t *testing.T) {
	t.Parallel()
	srv, err := New(baseConfig(t), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Intake("bad", IntakeOptions{Filters: []string{"a/#/b"}}); err == nil {
		t.Fatal("invalid filter accepted")
	}
	all, err := srv.Intake("all", IntakeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Intake("all", IntakeOptions{}); err == nil {
		t.Fatal("duplicate intake name accepted")
	}
	sys, err := srv.Intake("sys", IntakeOptions{Filters: []string{"$SYS/broker/version"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Publish(Message{Topic: "x"}); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Publish before Run: %v", err)
	}
	b := startServer(t, srv)
	ctx := testContext(t)
	ev, err := sys.Next(ctx)
	if err != nil || ev.Topic != "$SYS/broker/version" {
		t.Fatalf("$SYS intake: %+v %v", ev, err)
	}
	// The engine's own publishes reach intakes too, with their MQTT 5 properties.
	if err := b.Publish(Message{Topic: "alerts/gh1", Payload: []byte("hot"), QoS: 1, ContentType: "text/plain",
		Expiry: 1500 * time.Millisecond, UserProperties: []UserProperty{{"k", "v"}}}); err != nil {
		t.Fatal(err)
	}
	ev, err = all.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Topic != "alerts/gh1" || ev.ClientID != engineClientID || ev.ContentType != "text/plain" || ev.Expiry != 2*time.Second ||
		len(ev.UserProperties) != 1 || ev.UserProperties[0] != (UserProperty{"k", "v"}) {
		t.Fatalf("engine publish via intake: %+v", ev)
	}
	// "#" does not deliver $SYS.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if ev, err := all.Next(cctx); err == nil {
		t.Fatalf("unexpected event %+v", ev)
	}
	// Next waits; Close wakes it with ErrIntakeClosed.
	errc := make(chan error, 1)
	go func() {
		_, err := all.Next(ctx)
		errc <- err
	}()
	if err := all.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrIntakeClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	if err := b.Publish(Message{Topic: "alerts/gh1", Payload: []byte("after")}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Intake("all", IntakeOptions{}); err != nil {
		t.Fatalf("name not free after Close: %v", err)
	}
	// Stopping the server closes the remaining intakes.
	b.stop()
	if _, err := sys.Next(ctx); err != nil && !errors.Is(err, ErrIntakeClosed) {
		t.Fatalf("Next after stop: %v", err)
	}
	for {
		if _, err := sys.Next(ctx); errors.Is(err, ErrIntakeClosed) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	b := start(t, baseConfig(t))
	addr := b.Addr(ListenerTCP)
	if _, err := connectConn(t, dialTCP(t, addr), connOpts{clientID: "bad", user: "root", password: "x"}); err == nil {
		t.Fatal("bad password accepted")
	}
	c := mustConnect(t, addr, connOpts{clientID: "m", user: "sensor1"})
	c.mustSubscribe(t, "sensors/#", 1)
	c.mustPublish(t, "sensors/m", strings.Repeat("x", 100), 1)
	c.expect(t, "sensors/m", strings.Repeat("x", 100))
	reg := prometheus.NewRegistry()
	reg.MustRegister(b.Collector())
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, label, value string
		min                float64
	}{
		{"deviceless_broker_clients_connected", "", "", 1},
		{"deviceless_broker_messages_received_total", "", "", 1},
		{"deviceless_broker_messages_sent_total", "", "", 1},
		{"deviceless_broker_bytes_received_total", "", "", 100},
		{"deviceless_broker_bytes_sent_total", "", "", 100},
		{"deviceless_broker_auth_failures_total", "reason", "bad_password", 1},
		{"deviceless_broker_subscriptions", "", "", 1},
	} {
		// Counters of a write are updated after the bytes are out: wait for them.
		waitFor(t, fmt.Sprintf("%s{%s=%q} >= %v", tc.name, tc.label, tc.value, tc.min), func() bool {
			return counterValue(t, b.Server, tc.name, tc.label, tc.value) >= tc.min
		})
	}
	if _, err := c.subscribe(t, "deviceless/#", 0); err == nil {
		t.Fatal("device subscribed inside the prefix")
	}
	if got := counterValue(t, b.Server, "deviceless_broker_acl_denied_total", "action", "read"); got != 1 {
		t.Errorf("acl_denied_total{action=read} = %v, want 1", got)
	}
}

// counterValue gathers the broker's collector and returns the value of one sample.
func counterValue(t testing.TB, s *Server, name, label, value string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					match = true
				}
			}
			if !match {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s=%q} not found", name, label, value)
	return 0
}

// A consumer whose context has ended hears it even with events waiting: under a flood
// there is always something queued, and a stopping engine must stop.
func TestIntakeNextBatchHonoursCancelWithEventsQueued(t *testing.T) {
	t.Parallel()
	b := start(t, baseConfig(t))
	in, err := b.Intake("rules", IntakeOptions{Filters: []string{"sensors/#"}})
	if err != nil {
		t.Fatal(err)
	}
	pub := mustConnect(t, b.Addr(ListenerTCP), connOpts{clientID: "pub", user: "sensor1"})
	pub.mustPublish(t, "sensors/q1", "queued", 1)
	waitFor(t, "event queued", func() bool { return in.Stats().Backlog == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if batch, err := in.NextBatch(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("NextBatch with a cancelled context and an event queued = %d events, %v; want context.Canceled", len(batch), err)
	}
	batch, err := in.NextBatch(testContext(t))
	if err != nil || len(batch) != 1 || string(batch[0].Payload) != "queued" {
		t.Fatalf("the queued event after the refusal: %v, %v", batch, err)
	}
}

// Backpressure (the default overflow): a device flooding at QoS 0 from mosquitto_pub -l is
// held back instead of shed while the consumer does not read; memory stays bounded (the
// buffer, plus what one connection has in flight); a quiet device's event still gets in
// at once (the flooder holds at most half the buffer); once the consumer reads, every
// event arrives, in order, none lost.
func TestIntakeBackpressure(t *testing.T) {
	t.Parallel()
	b := start(t, baseConfig(t))
	const buffer, n = 100, 5000
	in, err := b.Intake("rules", IntakeOptions{Filters: []string{"sensors/#"}, Buffer: buffer})
	if err != nil {
		t.Fatal(err)
	}
	host, port := hostPort(t, b.Addr(ListenerTCP))
	pub := exec.Command(requireTool(t, "mosquitto_pub"), "-h", host, "-p", port, "-u", "sensor1", "-P", "pw-sensor1", "-i", "flood", "-t", "sensors/flood", "-q", "0", "-l")
	var lines strings.Builder
	for i := range n {
		fmt.Fprintf(&lines, "%d\n", i)
	}
	pub.Stdin = strings.NewReader(lines.String())
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	pubDone := make(chan error, 1)
	go func() { pubDone <- pub.Wait() }()
	waitFor(t, "the flooder held back", func() bool { return in.Stats().Held > 0 })
	if st := in.Stats(); st.Backlog > buffer || st.Dropped != 0 {
		t.Fatalf("while held: %+v, want a backlog of at most %d and nothing dropped", st, buffer)
	}
	quiet := mustConnect(t, b.Addr(ListenerTCP), connOpts{clientID: "quiet", user: "nodered"})
	quiet.mustPublish(t, "sensors/quiet", "hello", 1) // acknowledged: it is in
	if st := in.Stats(); st.Backlog > buffer {
		t.Fatalf("backlog %d beyond the buffer of %d", st.Backlog, buffer)
	}
	ctx := testContext(t)
	next, sawQuiet := 0, false
	for next < n || !sawQuiet {
		batch, err := in.NextBatch(ctx)
		if err != nil {
			t.Fatalf("after %d flood events: %v", next, err)
		}
		for _, ev := range batch {
			switch ev.Topic {
			case "sensors/quiet":
				sawQuiet = true
			case "sensors/flood":
				if string(ev.Payload) != strconv.Itoa(next) {
					t.Fatalf("flood event %q, want %d: lost or out of order", ev.Payload, next)
				}
				next++
			}
		}
	}
	if err := <-pubDone; err != nil {
		t.Fatalf("mosquitto_pub: %v", err)
	}
	if st := in.Stats(); st.Dropped != 0 || st.Received != n+1 {
		t.Fatalf("after draining: %+v, want %d received and none dropped", st, n+1)
	}
}

// Stop hands a stopping consumer the events still waiting, in order (Close discards
// them): it counts what it leaves unevaluated. Afterwards nothing more comes in.
func TestIntakeStopReturnsTheEventsWaiting(t *testing.T) {
	t.Parallel()
	b := start(t, baseConfig(t))
	in, err := b.Intake("rules", IntakeOptions{Filters: []string{"sensors/#"}})
	if err != nil {
		t.Fatal(err)
	}
	pub := mustConnect(t, b.Addr(ListenerTCP), connOpts{clientID: "pub", user: "sensor1"})
	for i := range 3 {
		pub.mustPublish(t, "sensors/q1", itoa(i), 1)
	}
	waitFor(t, "events queued", func() bool { return in.Stats().Backlog == 3 })
	if ev, err := in.Next(testContext(t)); err != nil || string(ev.Payload) != "0" {
		t.Fatalf("Next: %+v, %v", ev, err)
	}
	pub.mustPublish(t, "sensors/q1", "3", 1)
	waitFor(t, "event queued", func() bool { return in.Stats().Backlog == 3 })
	left := in.Stop()
	var got []string
	for _, ev := range left {
		got = append(got, string(ev.Payload))
	}
	if strings.Join(got, ",") != "1,2,3" {
		t.Fatalf("Stop returned %q, want 1,2,3", got)
	}
	if st := in.Stats(); st.Backlog != 0 {
		t.Fatalf("after Stop: %+v, want no backlog", st)
	}
	pub.mustPublish(t, "sensors/q1", "late", 1)
	if _, err := in.NextBatch(testContext(t)); !errors.Is(err, ErrIntakeClosed) {
		t.Fatalf("NextBatch after Stop: %v", err)
	}
	if left := in.Stop(); len(left) != 0 {
		t.Fatalf("a second Stop returned %d events", len(left))
	}
}

// Queued takes what is waiting without waiting for more, also where NextBatch would
// answer with the consumer's ended context.
func TestIntakeQueuedDoesNotWait(t *testing.T) {
	t.Parallel()
	b := start(t, baseConfig(t))
	in, err := b.Intake("rules", IntakeOptions{Filters: []string{"sensors/#"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := in.Queued(); got != nil {
		t.Fatalf("Queued on an empty intake: %v", got)
	}
	pub := mustConnect(t, b.Addr(ListenerTCP), connOpts{clientID: "pub", user: "sensor1"})
	pub.mustPublish(t, "sensors/q1", "a", 1)
	pub.mustPublish(t, "sensors/q1", "b", 1)
	waitFor(t, "events queued", func() bool { return in.Stats().Backlog == 2 })
	got := in.Queued()
	if len(got) != 2 || string(got[0].Payload) != "a" || string(got[1].Payload) != "b" {
		t.Fatalf("Queued: %v", got)
	}
	if st := in.Stats(); st.Backlog != 0 {
		t.Fatalf("after Queued: %+v", st)
	}
	if got := in.Queued(); got != nil {
		t.Fatalf("Queued again: %v", got)
	}
}

// Devices publishing with mosquitto_pub, as devices do: an intake on `sensors/#` takes
// `sensors` itself (MQTT 4.7.1.2; mochi's inline subscriptions missed it before fork patch
// 11), its exclusions (a trie) hold back only what they match, and a batch given back
// with Recycle is reused without leaking its old events into the next ones.
func TestIntakeParentLevelExclusionsAndRecycle(t *testing.T) {
	t.Parallel()
	b := start(t, baseConfig(t))
	in, err := b.Intake("rules", IntakeOptions{Filters: []string{"sensors/#"}, Exclude: []string{"sensors/+/private", "sensors/debug/#"}})
	if err != nil {
		t.Fatal(err)
	}
	host, port := hostPort(t, b.Addr(ListenerTCP))
	pub := func(topic, payload string) {
		t.Helper()
		if out, err := mosquitto(t, "mosquitto_pub", "-h", host, "-p", port, "-u", "sensor1", "-P", "pw-sensor1",
			"-t", topic, "-m", payload, "-q", "1"); err != nil {
			t.Fatalf("mosquitto_pub %s: %v: %s", topic, err, out)
		}
	}
	ctx := testContext(t)
	take := func(n int) []Event {
		t.Helper()
		var got []Event
		for len(got) < n {
			batch, err := in.NextBatch(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, batch...)
			in.Recycle(batch)
		}
		return got
	}
	topics := func(evs []Event) []string {
		var out []string
		for _, ev := range evs {
			out = append(out, ev.Topic+"="+string(ev.Payload))
		}
		return out
	}
	pub("sensors", "1")
	pub("sensors/a/private", "no")
	pub("sensors/debug/x", "no")
	pub("sensors/a/t", "2")
	first := take(2)
	// Topics published after, into the recycled slice.
	pub("sensors/b/t", "3")
	pub("sensors/debug", "no")
	pub("sensors/b/privately", "4")
	second := take(2)
	if diff := cmp.Diff([]string{"sensors=1", "sensors/a/t=2"}, topics(first)); diff != "" {
		t.Errorf("first events (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"sensors/b/t=3", "sensors/b/privately=4"}, topics(second)); diff != "" {
		t.Errorf("events after the recycle (-want +got):\n%s", diff)
	}
	if q := in.Queued(); len(q) != 0 {
		t.Errorf("excluded events reached the intake: %v", topics(q))
	}
}
