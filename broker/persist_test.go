package broker

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
)

// The "Done when" list: a QoS 1 message for an offline persistent-session subscriber
// survives a broker restart and is delivered once it reconnects; retained messages
// survive too. Both an MQTT 5 (paho) and an MQTT 3.1.1 (mosquitto_sub -c) subscriber.
func TestPersistenceAcrossRestart(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.Store = filepath.Join(t.TempDir(), "broker")

	b1 := start(t, cfg)
	addr := b1.Addr(ListenerTCP)
	host, port := hostPort(t, addr)
	sub := mustConnect(t, addr, connOpts{clientID: "edge-a1", user: "a1", persistent: true})
	sub.mustSubscribe(t, "deviceless/agents/a1/invoke", 1)
	if err := sub.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	// mosquitto_sub: persistent MQTT 3.1.1 session, then gone.
	if out, err := mosquitto(t, "mosquitto_sub", "-h", host, "-p", port, "-u", "root", "-P", "pw-root", "-i", "v3-sub", "-c", "-q", "1",
		"-t", "sensors/queued", "-E"); err != nil {
		t.Fatalf("mosquitto_sub -E: %v: %s", err, out)
	}

	pub := mustConnect(t, addr, connOpts{clientID: "pub", user: "root"})
	if _, err := pub.publish(t, "deviceless/agents/a1/invoke", []byte("queued-1"), 1, false); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.publish(t, "sensors/queued", []byte("queued-v3"), 1, false); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.publish(t, "deviceless/agents/a1/status", []byte(`{"online":true}`), 1, true); err != nil {
		t.Fatal(err)
	}
	if err := b1.Publish(Message{Topic: "deviceless/agents/a1/invoke", Payload: []byte("queued-2"), QoS: 1}); err != nil {
		t.Fatal(err)
	}
	b1.stop()

	// Restart on the same store (new ports). An intake created before Run sees the
	// restored retained status.
	srv, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	status, err := srv.Intake("status", IntakeOptions{Filters: []string{"deviceless/agents/+/status"}})
	if err != nil {
		t.Fatal(err)
	}
	b2 := startServer(t, srv)
	addr2 := b2.Addr(ListenerTCP)
	host2, port2 := hostPort(t, addr2)
	ev, err := status.Next(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Topic != "deviceless/agents/a1/status" || string(ev.Payload) != `{"online":true}` || !ev.Retain {
		t.Fatalf("restored retained via intake: %+v", ev)
	}

	again := mustConnect(t, addr2, connOpts{clientID: "edge-a1", user: "a1", persistent: true})
	if !again.connack.SessionPresent {
		t.Error("session not present after restart")
	}
	got := map[string]bool{}
	for range 2 {
		m := again.next(t)
		if m.Topic != "deviceless/agents/a1/invoke" {
			t.Fatalf("unexpected %q", m.Topic)
		}
		got[string(m.Payload)] = true
	}
	if !got["queued-1"] || !got["queued-2"] {
		t.Fatalf("after restart received %v, want queued-1 and queued-2", got)
	}

	out, err := mosquitto(t, "mosquitto_sub", "-h", host2, "-p", port2, "-u", "root", "-P", "pw-root", "-i", "v3-sub", "-c", "-q", "1",
		"-t", "sensors/queued", "-C", "1", "-W", "15")
	if err != nil || strings.TrimSpace(out) != "queued-v3" {
		t.Fatalf("mosquitto_sub after restart: %v: %q", err, out)
	}

	// Retained survives for a new subscriber.
	fresh := mustConnect(t, addr2, connOpts{clientID: "fresh", user: "root"})
	fresh.mustSubscribe(t, "deviceless/agents/+/status", 1)
	m := fresh.next(t)
	if m.Topic != "deviceless/agents/a1/status" || string(m.Payload) != `{"online":true}` || !m.Retain {
		t.Fatalf("retained after restart: %q %q retain=%v", m.Topic, m.Payload, m.Retain)
	}
}

// With a store, the broker skips storing the PUBACK of an incoming QoS 1 publish. When
// writing that PUBACK fails, the skipped entry must go with the client on disconnect, or
// it keeps the disconnected client in memory for good.
func TestStoreForgetsAnUnwrittenPuback(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.Store = filepath.Join(t.TempDir(), "broker")
	b := start(t, cfg)
	dev, srv := net.Pipe()
	conn := &failingConn{Conn: srv}
	served := make(chan error, 1)
	go func() { served <- b.mqtt.EstablishConnection(ListenerTCP, conn) }()
	c, err := connectConn(t, dev, connOpts{clientID: "dev", user: "root"})
	if err != nil {
		t.Fatal(err)
	}
	freed := func() weak.Pointer[mqtt.Client] { // no strong reference left in the test
		cl, ok := b.mqtt.Clients.Get("dev")
		if !ok {
			t.Fatal("client dev not connected")
		}
		return weak.Make(cl)
	}()
	conn.fail.Store(true)
	ctx, cancel := context.WithCancel(testContext(t))
	published := make(chan error, 1)
	go func() {
		_, err := c.Publish(ctx, &paho.Publish{Topic: "sensors/x", QoS: 1, Payload: []byte("1")})
		published <- err
	}()
	select {
	case err := <-served:
		if !errors.Is(err, errWriteFailed) {
			t.Fatalf("the connection ended with %v, want the failed PUBACK write", err)
		}
	case <-time.After(deadline):
		t.Fatal("the broker kept the connection after its write failed")
	}
	cancel() // paho waits for the PUBACK until its packet timeout
	if err := <-published; err == nil {
		t.Fatal("the publish was acknowledged; want the PUBACK write to fail")
	}
	waitFor(t, "the disconnected client to be garbage collected", func() bool {
		runtime.GC()
		return freed.Value() == nil
	})
}

var errWriteFailed = errors.New("test: write failed")

// failingConn is a connection whose writes fail once fail is set, as they do to a client
// that has gone away.
type failingConn struct {
	net.Conn
	fail atomic.Bool
}

func (c *failingConn) Write(b []byte) (int, error) {
	if c.fail.Load() {
		return 0, errWriteFailed
	}
	return c.Conn.Write(b)
}
