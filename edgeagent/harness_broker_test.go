package edgeagent

// The test harness's MQTT side: a real broker and a test client standing in for the engine
// and for devices.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"golang.org/x/crypto/bcrypt"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/protocol"
)

// startBroker runs a real MQTT broker (mochi) on a free loopback port and returns its address.
func startBroker(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		t.Fatal(err)
	}
	if err := s.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return addr
}

// startDevicelessBroker runs the project's own broker (package broker: mochi with the
// engine's limits and ACLs, among them 1 MiB packets) with cfg's agent as an agent user
// (password set in cfg) and anonymous clients as admins, and returns the server (for
// its metrics); cfg's broker is set to its address.
func startDevicelessBroker(t testing.TB, cfg *Config) *broker.Server {
	t.Helper()
	cfg.Password = "pw-" + cfg.ID
	hash, err := bcrypt.GenerateFromPassword([]byte(cfg.Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := broker.New(broker.Config{Listen: "127.0.0.1:0", AllowAnonymous: true, AnonymousRole: broker.RoleAdmin,
		Users: []broker.User{{Username: cfg.ID, PasswordHash: string(hash), Role: broker.RoleAgent}}},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(wait):
			t.Error("the broker did not stop")
		}
	})
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("broker: %v", err)
	case <-time.After(wait):
		t.Fatal("broker not ready")
	}
	cfg.Broker = "mqtt://" + srv.Addr(broker.ListenerTCP)
	return srv
}

// client is an MQTT v5 test client standing in for the engine and for devices.
type client struct {
	t    testing.TB
	c    *paho.Client
	mu   sync.Mutex
	msgs map[string][]*paho.Publish
	cond chan struct{}
}

func newClient(t testing.TB, addr string, filters ...string) *client {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cl := &client{t: t, msgs: map[string][]*paho.Publish{}, cond: make(chan struct{})}
	cl.c = paho.NewClient(paho.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			cl.mu.Lock()
			cl.msgs[pr.Packet.Topic] = append(cl.msgs[pr.Packet.Topic], pr.Packet)
			close(cl.cond)
			cl.cond = make(chan struct{})
			cl.mu.Unlock()
			return true, nil
		}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := cl.c.Connect(ctx, &paho.Connect{KeepAlive: 30, ClientID: fmt.Sprintf("tester-%p", cl), CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.c.Disconnect(&paho.Disconnect{}) })
	if len(filters) > 0 {
		sub := &paho.Subscribe{}
		for _, f := range filters {
			sub.Subscriptions = append(sub.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: 1})
		}
		if _, err := cl.c.Subscribe(ctx, sub); err != nil {
			t.Fatal(err)
		}
	}
	return cl
}

func (cl *client) publish(topic string, payload []byte, props *paho.PublishProperties) {
	cl.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := cl.c.Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: 1, Properties: props}); err != nil {
		cl.t.Fatal(err)
	}
}

// await returns the first message on topic that match accepts, failing after the deadline.
func (cl *client) await(topic string, match func(*paho.Publish) bool) *paho.Publish {
	cl.t.Helper()
	deadline := time.After(wait)
	for {
		cl.mu.Lock()
		for _, m := range cl.msgs[topic] {
			if match == nil || match(m) {
				cl.mu.Unlock()
				return m
			}
		}
		ch := cl.cond
		cl.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			cl.t.Fatalf("no matching message on %s within %s", topic, wait)
		}
	}
}

// invoke sends inv as the engine does (response topic + correlation data) and returns the result.
func (cl *client) invoke(agent string, inv protocol.Invocation) protocol.Result {
	cl.t.Helper()
	payload, err := json.Marshal(inv)
	if err != nil {
		cl.t.Fatal(err)
	}
	return cl.invokeRaw(agent, inv.ID, payload)
}

var replySeq struct {
	sync.Mutex
	n int
}

func (cl *client) invokeRaw(agent, id string, payload []byte) protocol.Result {
	cl.t.Helper()
	m, ok := cl.wait(cl.send(agent, payload))
	if !ok {
		cl.t.Fatalf("no result for invocation %q within %s", id, wait)
	}
	var res protocol.Result
	if err := json.Unmarshal(m.Payload, &res); err != nil {
		cl.t.Fatalf("result %q: %v", m.Payload, err)
	}
	if id != "" && res.ID != id {
		cl.t.Fatalf("result id %q, want %q", res.ID, id)
	}
	return res
}

// pendingReply identifies the answer to one request.
type pendingReply struct{ topic, corr string }

// send publishes an invocation with a response topic and fresh correlation data.
func (cl *client) send(agent string, payload []byte) pendingReply {
	cl.t.Helper()
	replySeq.Lock()
	replySeq.n++
	corr := fmt.Sprintf("corr-%d", replySeq.n)
	replySeq.Unlock()
	topic := "test/replies/" + agent
	cl.publish(protocol.Topics{}.AgentInvoke(agent), payload, &paho.PublishProperties{ResponseTopic: topic, CorrelationData: []byte(corr)})
	return pendingReply{topic, corr}
}

// wait returns the reply to a send; safe from any goroutine (it does not fail the test).
func (cl *client) wait(p pendingReply) (*paho.Publish, bool) {
	deadline := time.After(wait)
	for {
		cl.mu.Lock()
		for _, m := range cl.msgs[p.topic] {
			if m.Properties != nil && string(m.Properties.CorrelationData) == p.corr {
				cl.mu.Unlock()
				return m, true
			}
		}
		ch := cl.cond
		cl.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return nil, false
		}
	}
}

// status returns the agent's latest retained status matching accept.
func (cl *client) status(agent string, accept func(protocol.Status) bool) protocol.Status {
	cl.t.Helper()
	var st protocol.Status
	cl.await(protocol.Topics{}.AgentStatus(agent), func(p *paho.Publish) bool {
		var s protocol.Status
		if json.Unmarshal(p.Payload, &s) != nil || !accept(s) {
			return false
		}
		st = s
		return true
	})
	return st
}
