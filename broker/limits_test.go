package broker

import (
	"context"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// The "Done when" list: an oversized packet disconnects only its sender.
func TestOversizedPacketDisconnectsOnlySender(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.Limits.MaxPacketSize = 1024
	b := start(t, cfg)
	addr := b.Addr(ListenerTCP)
	watcher := mustConnect(t, addr, connOpts{clientID: "watcher", user: "root"})
	watcher.mustSubscribe(t, "sensors/#", 1)
	bystander := mustConnect(t, addr, connOpts{clientID: "bystander", user: "sensor1"})
	offender := mustConnect(t, addr, connOpts{clientID: "offender", user: "sensor1"})

	_, _ = offender.publish(t, "sensors/big", []byte(strings.Repeat("x", 4096)), 0, false)
	offender.waitDone(t)

	bystander.mustPublish(t, "sensors/ok", "still here", 1)
	watcher.expect(t, "sensors/ok", "still here")
	select {
	case <-bystander.Done():
		t.Fatal("bystander was disconnected")
	case <-watcher.Done():
		t.Fatal("watcher was disconnected")
	default:
	}
	// The counter is updated after the connection is closed: wait for it.
	waitFor(t, "oversized_packets_total = 1", func() bool {
		return counterValue(t, b.Server, "deviceless_broker_oversized_packets_total", "", "") == 1
	})
	// The offender can come back and behave.
	again := mustConnect(t, addr, connOpts{clientID: "offender", user: "sensor1"})
	again.mustPublish(t, "sensors/ok", "sorry", 1)
	watcher.expect(t, "sensors/ok", "sorry")
}

// mochi #340: a persistent subscriber that stays offline keeps at most max_queued QoS 1
// messages; the rest are dropped and counted, and other clients are unaffected.
func TestOfflineQueueIsBounded(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.Limits.MaxQueued = 5
	b := start(t, cfg)
	addr := b.Addr(ListenerTCP)
	off := mustConnect(t, addr, connOpts{clientID: "offline", user: "root", persistent: true})
	off.mustSubscribe(t, "sensors/#", 1)
	if err := off.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
	// max_queued also bounds a connected client's unacknowledged QoS 1 window, so the
	// bystander reads at QoS 0.
	online := mustConnect(t, addr, connOpts{clientID: "online", user: "root"})
	online.mustSubscribe(t, "sensors/#", 0)
	pub := mustConnect(t, addr, connOpts{clientID: "pub", user: "sensor1"})
	const n = 50
	for i := range n {
		pub.mustPublish(t, "sensors/q", itoa(i), 1)
	}
	for i := range n {
		online.expect(t, "sensors/q", itoa(i))
	}
	back := mustConnect(t, addr, connOpts{clientID: "offline", user: "root", persistent: true})
	got := 0
	for range 5 {
		back.next(t)
		got++
	}
	// Everything queued has arrived once a message published after the reconnection
	// arrives. (It may itself be dropped while the five are still unacknowledged, so
	// publish it until it arrives.)
	stop := time.After(deadline)
	for done := false; !done; {
		pub.mustPublish(t, "sensors/q", "last", 1)
		select {
		case m := <-back.msgs:
			if string(m.Payload) == "last" {
				done = true
			} else {
				got++
			}
		case <-time.After(50 * time.Millisecond):
		case <-stop:
			t.Fatal("no message after reconnection")
		}
	}
	if got != 5 {
		t.Errorf("offline subscriber got %d queued messages, want max_queued = 5", got)
	}
	if d := counterValue(t, b.Server, "deviceless_broker_messages_dropped_total", "reason", "queue_full"); d < n-5 {
		t.Errorf("messages_dropped_total{reason=queue_full} = %v, want at least %d", d, n-5)
	}
}

// max_keepalive: MQTT 5 clients are told the cap (server keepalive); MQTT 3.1.1 clients
// asking for more are refused, as mosquitto does.
func TestKeepaliveCap(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.Limits.MaxKeepalive = 30 * time.Second
	b := start(t, cfg)
	addr := b.Addr(ListenerTCP)
	c := mustConnect(t, addr, connOpts{clientID: "ka", user: "sensor1", keepalive: 600})
	if p := c.connack.Properties; p == nil || p.ServerKeepAlive == nil || *p.ServerKeepAlive != 30 {
		t.Fatalf("connack properties %+v: want server keepalive 30", p)
	}
	host, port := hostPort(t, addr)
	if out, err := mosquitto(t, "mosquitto_pub", "-h", host, "-p", port, "-u", "sensor1", "-P", "pw-sensor1", "-t", "sensors/k", "-m", "1", "-k", "600"); err == nil {
		t.Fatalf("MQTT 3.1.1 keepalive 600 accepted with max_keepalive 30s: %s", out)
	}
	if out, err := mosquitto(t, "mosquitto_pub", "-h", host, "-p", port, "-u", "sensor1", "-P", "pw-sensor1", "-t", "sensors/k", "-m", "1", "-k", "20"); err != nil {
		t.Fatalf("keepalive 20 refused: %v: %s", err, out)
	}
}

// A connection that never sends CONNECT is closed after connect_timeout, and Run returns
// promptly even while such connections are open.
func TestConnectTimeoutAndShutdown(t *testing.T) {
	t.Parallel()
	cfg := baseConfig(t)
	cfg.Limits.ConnectTimeout = 200 * time.Millisecond
	cfg.WebSocket = "127.0.0.1:0"
	b := start(t, cfg)
	silent := dialTCP(t, b.Addr(ListenerTCP))
	_ = silent.SetReadDeadline(time.Now().Add(deadline))
	if _, err := silent.Read(make([]byte, 1)); err == nil {
		t.Fatal("silent connection got data")
	} else if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
		t.Fatal("silent connection was not closed by the broker")
	}

	cfg2 := baseConfig(t)
	cfg2.WebSocket = "127.0.0.1:0"
	b2 := start(t, cfg2)
	_ = dialTCP(t, b2.Addr(ListenerTCP)) // half-open: no CONNECT yet
	ws := dialWS(t, b2.Addr(ListenerWebSocket))
	defer ws.Close()
	c := mustConnect(t, b2.Addr(ListenerTCP), connOpts{clientID: "c", user: "sensor1"})
	b2.stop()
	c.waitDone(t)
	if err := b2.Publish(Message{Topic: "x"}); err != ErrServerStopped {
		t.Fatalf("Publish after stop: %v", err)
	}
	if _, err := b2.Intake("late", IntakeOptions{}); err == nil {
		t.Fatal("Intake after stop succeeded")
	}
	if err := b2.Run(context.Background()); err == nil {
		t.Fatal("second Run succeeded")
	}
}

// Run cleans up after itself: once it returns, the goroutines it started (listeners,
// clients, mochi's loop, the store) are gone. Not parallel, so the count is ours alone.
func TestRunLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		dir := t.TempDir()
		crt := newCerts(t, dir, "leak")
		cfg := baseConfig(t)
		cfg.WebSocket = "127.0.0.1:0"
		cfg.TLS = &TLSConfig{Listen: "127.0.0.1:0", Cert: crt.certFile, Key: crt.keyFile}
		cfg.Store = filepath.Join(dir, "store")
		srv, err := New(cfg, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		in, err := srv.Intake("all", IntakeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		r := startServer(t, srv)
		c := mustConnect(t, r.Addr(ListenerTCP), connOpts{clientID: "tcp", user: "root", persistent: true})
		c.mustSubscribe(t, "sensors/#", 1)
		w, err := connectConn(t, dialWS(t, r.Addr(ListenerWebSocket)), connOpts{clientID: "ws", user: "sensor1"})
		if err != nil {
			t.Fatal(err)
		}
		w.mustPublish(t, "sensors/x", "1", 1)
		c.expect(t, "sensors/x", "1")
		if _, err := in.Next(testContext(t)); err != nil {
			t.Fatal(err)
		}
		_ = dialTCP(t, r.Addr(ListenerTLS)) // never handshakes
		r.stop()
		c.waitDone(t)
		w.waitDone(t)
	}()
	stop := time.After(deadline)
	for runtime.NumGoroutine() > before {
		select {
		case <-stop:
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after Run returned:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		case <-time.After(20 * time.Millisecond):
		}
	}
}
