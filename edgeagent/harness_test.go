package edgeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/deviceless/deviceless/edgeagent/gpio"
	"github.com/deviceless/deviceless/edgeagent/internal/testenv"
	"github.com/deviceless/deviceless/protocol"
)

// wait is the failure deadline for anything a test waits for; never a timing assertion.
const wait = 60 * time.Second

func quietLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("DEVICELESS_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

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

var agentSeq struct {
	sync.Mutex
	n int
}

// testConfig is an agent config against the test broker and the project's podman service.
func testConfig(t testing.TB, broker string) Config {
	agentSeq.Lock()
	agentSeq.n++
	n := agentSeq.n
	agentSeq.Unlock()
	return Config{
		ID:          fmt.Sprintf("t%d-%d", os.Getpid(), n),
		Broker:      "mqtt://" + broker,
		Labels:      map[string]string{"zone": "test"},
		Podman:      PodmanConfig{Socket: testenv.PodmanSocket(t), Runtime: "runc"},
		State:       t.TempDir(),
		Concurrency: 2,
		GPIO: GPIOConfig{Driver: "sim", Lines: map[string]gpio.LineConfig{
			"fan":    {Offset: 17},
			"alarm":  {Offset: 18, Initial: 0},
			"button": {Offset: 4, Direction: "input", Edge: "rising", Publish: "sensors/button"},
		}},
	}
}

// startAgent runs an agent until the test ends and waits for its online status.
func startAgent(t testing.TB, cfg Config, cl *client) *Agent {
	t.Helper()
	a, _ := startAgentStop(t, cfg, cl)
	return a
}

// startAgentStop is startAgent that also returns a function stopping the agent early.
func startAgentStop(t testing.TB, cfg Config, cl *client) (*Agent, func()) {
	t.Helper()
	a, err := New(cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Error(err)
				}
			case <-time.After(wait):
				t.Error("agent did not stop")
			}
		})
	}
	t.Cleanup(stop)
	if cl != nil {
		cl.status(cfg.ID, func(s protocol.Status) bool { return s.Online })
	}
	return a, stop
}

// shInvocation invokes inline sh code.
func shInvocation(id, code string) protocol.Invocation {
	return protocol.Invocation{ID: id, Function: "fn-" + id, Attempt: 1,
		Event: &protocol.Event{Topic: "sensors/gh1/temperature", Payload: json.RawMessage(`{"celsius":31}`)},
		Args:  map[string]any{"celsius": 31},
		Spec:  protocol.FunctionSpec{Runtime: "sh", Code: code, Timeout: protocol.Duration(20 * time.Second)}}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var errProxyDown = errors.New("proxy down")

// proxy forwards TCP (or unix) connections to a target and can cut them, standing in for a
// broker or a podman service that goes away and comes back.
type proxy struct {
	network, target string
	l               net.Listener
	mu              sync.Mutex
	up              bool
	conns           []net.Conn
}

func newProxy(t testing.TB, network, listen, target string) *proxy {
	t.Helper()
	l, err := net.Listen(network, listen)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{network: network, target: target, l: l, up: true}
	go p.serve()
	t.Cleanup(func() { l.Close(); p.setUp(false) })
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		up := p.up
		p.mu.Unlock()
		if !up {
			c.Close()
			continue
		}
		up2, err := net.Dial(p.network, p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up2)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up2, c); up2.Close(); c.Close() }()
		go func() { _, _ = io.Copy(c, up2); up2.Close(); c.Close() }()
	}
}

// setUp(false) drops every connection and refuses new ones until setUp(true).
func (p *proxy) setUp(up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = up
	if !up {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
