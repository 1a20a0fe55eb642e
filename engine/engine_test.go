package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"golang.org/x/crypto/bcrypt"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/protocol"
)

const deadline = 20 * time.Second

// Users of every test engine: name, role; the password is "pw-" + name.
var testUsers = [][2]string{{"a1", "agent"}, {"a2", "agent"}, {"dev", "device"}, {"app", "client"}, {"ops", "admin"}}

func testConfig(t *testing.T, rulesDir string) Config {
	t.Helper()
	var users []broker.User
	for _, u := range testUsers {
		h, err := bcrypt.GenerateFromPassword([]byte("pw-"+u[0]), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, broker.User{Username: u[0], PasswordHash: string(h), Role: broker.Role(u[1])})
	}
	cfg := Config{HTTP: "127.0.0.1:0", Rules: []string{rulesDir}, ReloadDelay: 50 * time.Millisecond}
	cfg.Broker.Listen = "127.0.0.1:0"
	cfg.Broker.Users = users
	cfg.API.Tokens = []APIToken{{Name: "tests", Hash: HashAPIToken(testToken), Role: broker.RoleAdmin}}
	cfg.Dispatch = DispatchConfig{Attempts: 3, Backoff: 10 * time.Millisecond, StartGrace: 200 * time.Millisecond}
	cfg.ShutdownGrace = time.Second
	return cfg
}

func writeRules(t *testing.T, dir, body string) {
	t.Helper()
	// Write then rename, as editors do, so the watcher never sees half a file.
	tmp := filepath.Join(dir, ".rules.tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "rules.yaml")); err != nil {
		t.Fatal(err)
	}
}

type running struct {
	*Engine
	done chan error
}

func startEngine(t *testing.T, cfg Config) *running {
	t.Helper()
	r, _ := runEngine(t, cfg)
	return r
}

// mqttClient is a real MQTT v5 client on the engine's broker.
type mqttClient struct {
	*paho.Client
	conn  net.Conn
	msgs  chan *paho.Publish
	stash []*paho.Publish // received, not yet asked for
}

func connect(t *testing.T, addr, user string, will *paho.WillMessage, handler func(*paho.Client, *paho.Publish)) *mqttClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, deadline)
	if err != nil {
		t.Fatal(err)
	}
	c := &mqttClient{conn: conn, msgs: make(chan *paho.Publish, 1000)}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			if handler != nil {
				go handler(c.Client, pr.Packet)
			} else {
				c.msgs <- pr.Packet
			}
			return true, nil
		}},
	})
	cp := &paho.Connect{ClientID: user + "-" + fmt.Sprint(time.Now().UnixNano()), KeepAlive: 30, CleanStart: true,
		Username: user, UsernameFlag: true, Password: []byte("pw-" + user), PasswordFlag: true}
	if will != nil {
		cp.WillMessage, cp.WillProperties = will, &paho.WillProperties{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if _, err := c.Connect(ctx, cp); err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

func (c *mqttClient) sub(t *testing.T, filter string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}}); err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
}

func (c *mqttClient) pub(t *testing.T, p *paho.Publish) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if _, err := c.Publish(ctx, p); err != nil {
		t.Fatalf("publish %s: %v", p.Topic, err)
	}
}

// next returns the next message on a topic starting with topicPrefix; messages on other
// topics are kept for later calls.
func (c *mqttClient) next(t *testing.T, topicPrefix string) *paho.Publish {
	t.Helper()
	for i, m := range c.stash {
		if strings.HasPrefix(m.Topic, topicPrefix) {
			c.stash = append(c.stash[:i], c.stash[i+1:]...)
			return m
		}
	}
	timeout := time.After(deadline)
	for {
		select {
		case m := <-c.msgs:
			if strings.HasPrefix(m.Topic, topicPrefix) {
				return m
			}
			c.stash = append(c.stash, m)
		case <-timeout:
			t.Fatalf("no message on %s*", topicPrefix)
			return nil
		}
	}
}

// scriptedAgent speaks the agent side of the protocol: retained status with a last will,
// invocations answered on the response topic with the correlation data. answer returns
// the result to send, or nil to stay silent.
type scriptedAgent struct {
	id      string
	mu      sync.Mutex
	invokes []protocol.Invocation
	actuate []protocol.Actuation
	client  *mqttClient
}

func startAgent(t *testing.T, addr, id string, labels map[string]string, answer func(protocol.Invocation) *protocol.Result) *scriptedAgent {
	t.Helper()
	a := &scriptedAgent{id: id}
	topics := protocol.Topics{}
	offline, _ := json.Marshal(protocol.Status{Agent: id, Online: false})
	will := &paho.WillMessage{Topic: topics.AgentStatus(id), Payload: offline, QoS: 1, Retain: true}
	a.client = connect(t, addr, id, will, func(c *paho.Client, m *paho.Publish) {
		switch {
		case strings.HasSuffix(m.Topic, "/invoke"):
			var inv protocol.Invocation
			if err := json.Unmarshal(m.Payload, &inv); err != nil {
				t.Errorf("agent %s: bad invocation: %v", id, err)
				return
			}
			a.mu.Lock()
			a.invokes = append(a.invokes, inv)
			a.mu.Unlock()
			res := answer(inv)
			if res == nil {
				return
			}
			res.ID, res.Agent = inv.ID, id
			b, _ := json.Marshal(res)
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			_, _ = c.Publish(ctx, &paho.Publish{Topic: m.Properties.ResponseTopic, Payload: b, QoS: 1,
				Properties: &paho.PublishProperties{CorrelationData: m.Properties.CorrelationData}})
		case strings.HasSuffix(m.Topic, "/actuate"):
			var act protocol.Actuation
			_ = json.Unmarshal(m.Payload, &act)
			a.mu.Lock()
			a.actuate = append(a.actuate, act)
			a.mu.Unlock()
		}
	})
	a.client.sub(t, topics.AgentAll(id))
	st, _ := json.Marshal(protocol.Status{Agent: id, Online: true, Labels: labels, Runtimes: []string{"sh"},
		Lines: map[string]protocol.LineInfo{"fan": {Direction: "output"}, "button": {Direction: "input"}}})
	a.client.pub(t, &paho.Publish{Topic: topics.AgentStatus(id), Payload: st, QoS: 1, Retain: true})
	return a
}

func (a *scriptedAgent) invocations() []protocol.Invocation {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]protocol.Invocation(nil), a.invokes...)
}

func ok(output string) func(protocol.Invocation) *protocol.Result {
	return func(protocol.Invocation) *protocol.Result {
		return &protocol.Result{Status: protocol.StatusOK, Output: json.RawMessage(output), Cold: true, Timings: protocol.Timings{Run: 5, Total: 9}}
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testToken is the admin API token of testConfig's engines.
const testToken = "test-token-of-engine-tests"

// apiDo sends an API request with the test token.
func apiDo(t *testing.T, method, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp := apiDo(t, http.MethodGet, url, "")
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode
}

func postJSON(t *testing.T, url, body string, v any) int {
	t.Helper()
	resp := apiDo(t, http.MethodPost, url, body)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("POST %s: %v: %s", url, err, b)
	}
	return resp.StatusCode
}

func waitAgents(t *testing.T, e *running, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d agents online", n), func() bool { return e.registry.online() == n })
}

// mosquittoPub publishes with the real mosquitto client as the device "dev".
func mosquittoPub(t *testing.T, addr string, args ...string) {
	t.Helper()
	mosquittoPubAs(t, addr, "dev", args...)
}

// mosquittoPubAs publishes with the real mosquitto client (MQTT 5) as one of testUsers.
func mosquittoPubAs(t *testing.T, addr, user string, args ...string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		t.Fatal("mosquitto_pub not found: run `go tool task setup` to install mosquitto-clients")
	}
	cmd := exec.Command(bin, append([]string{"-h", host, "-p", port, "-V", "mqttv5", "-u", user, "-P", "pw-" + user}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub %v: %v: %s", args, err, out)
	}
}

const echoRules = `
functions:
  echo:
    runtime: sh
    code: cat
    timeout: 1s
rules:
  - name: hot
    on: sensors/+/t
    if: payload.c > 30
    do:
      - invoke: echo
        target: {labels: {zone: north}}
        args: {c: payload.c, room: 'topic_parts[1]'}
      - publish: {topic: '"alerts/" + topic_parts[1]', payload: '{"c": payload.c}', qos: 1}
      - actuate: {target: {labels: {zone: north}, pick: all}, line: fan, value: 1, for: 30s}
`

func TestEventToInvocationToResult(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, echoRules)
	e := startEngine(t, testConfig(t, dir))
	addr := e.BrokerAddr()
	a1 := startAgent(t, addr, "a1", map[string]string{"zone": "north"}, ok(`{"echo": true}`))
	startAgent(t, addr, "a2", map[string]string{"zone": "south"}, ok(`{}`))
	waitAgents(t, e, 2)
	watcher := connect(t, addr, "ops", nil, nil)
	watcher.sub(t, "deviceless/results/#")
	watcher.sub(t, "alerts/#")

	// A device below the threshold, then above it, from the real mosquitto client.
	mosquittoPub(t, addr, "-t", "sensors/gh1/t", "-m", `{"c": 20}`, "-q", "1")
	mosquittoPub(t, addr, "-t", "sensors/gh1/t", "-m", `{"c": 35}`, "-q", "1")

	alert := watcher.next(t, "alerts/")
	if alert.Topic != "alerts/gh1" || string(alert.Payload) != `{"c":35}` {
		t.Fatalf("alert %s %s", alert.Topic, alert.Payload)
	}
	res := watcher.next(t, "deviceless/results/")
	var r protocol.Result
	if err := json.Unmarshal(res.Payload, &r); err != nil {
		t.Fatal(err)
	}
	if res.Topic != "deviceless/results/echo" || r.Status != "ok" || r.Agent != "a1" || r.Rule != "hot" || string(r.Output) != `{"echo":true}` {
		t.Fatalf("result on %s: %+v", res.Topic, r)
	}
	invs := a1.invocations()
	if len(invs) != 1 {
		t.Fatalf("agent a1 got %d invocations, want 1", len(invs))
	}
	inv := invs[0]
	if inv.Function != "echo" || inv.Args["c"] != 35.0 || inv.Args["room"] != "gh1" || inv.Event.Topic != "sensors/gh1/t" ||
		string(inv.Event.Payload) != `{"c":35}` || inv.Spec.Runtime != "sh" || inv.Spec.Code != "cat" || inv.Attempt != 1 || inv.Deadline.IsZero() {
		t.Fatalf("invocation %+v", inv)
	}
	eventually(t, "actuation", func() bool {
		a1.mu.Lock()
		defer a1.mu.Unlock()
		return len(a1.actuate) == 1 && a1.actuate[0].Line == "fan" && a1.actuate[0].Value == 1 && a1.actuate[0].For.D() == 30*time.Second
	})

	var hist struct{ Invocations []Record }
	getJSON(t, "http://"+e.HTTPAddr()+"/api/v1/invocations", &hist)
	if len(hist.Invocations) != 1 || hist.Invocations[0].ID != r.ID || hist.Invocations[0].Attempts != 1 {
		t.Fatalf("history %+v", hist)
	}
	var rl struct {
		Rules []RuleView
	}
	getJSON(t, "http://"+e.HTTPAddr()+"/api/v1/rules", &rl)
	if len(rl.Rules) != 1 || rl.Rules[0].Matched != 2 || rl.Rules[0].Fired != 1 {
		t.Fatalf("rules %+v", rl)
	}
	resp := apiDo(t, http.MethodGet, "http://"+e.HTTPAddr()+"/metrics", "")
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`deviceless_invocations_total{cold="true",function="echo",status="ok"} 1`, `deviceless_rule_firings_total{rule="hot"} 1`, "deviceless_agents_online 2", `deviceless_events_total{stage="matched"} 1`} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestRetryOnAnotherAgentThenDeadLetter(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, echoRules)
	e := startEngine(t, testConfig(t, dir))
	addr := e.BrokerAddr()
	silent := startAgent(t, addr, "a1", map[string]string{"zone": "north"}, func(protocol.Invocation) *protocol.Result { return nil })
	good := startAgent(t, addr, "a2", map[string]string{"zone": "north"}, ok(`"done"`))
	waitAgents(t, e, 2)
	watcher := connect(t, addr, "ops", nil, nil)
	watcher.sub(t, "deviceless/deadletter")

	// Two invocations at once: ties are broken round-robin, so one of them starts on the
	// silent agent, times out, and is retried on the other with the same id.
	var wg sync.WaitGroup
	results := make([]protocol.Result, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code := postJSON(t, "http://"+e.HTTPAddr()+"/api/v1/invoke/echo", `{"args":{"n":1},"target":{"labels":{"zone":"north"}}}`, &results[i]); code != 200 {
				t.Errorf("invoke: HTTP %d", code)
			}
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r.Status != "ok" || r.Agent != "a2" {
			t.Fatalf("results %+v", results)
		}
	}
	if len(silent.invocations()) != 1 {
		t.Fatalf("silent agent got %d invocations, want 1", len(silent.invocations()))
	}
	retried := silent.invocations()[0]
	var second *protocol.Invocation
	for _, inv := range good.invocations() {
		if inv.ID == retried.ID {
			second = &inv
		}
	}
	if second == nil || second.Attempt != 2 {
		t.Fatalf("invocation %s was not retried on a2 as attempt 2: %+v", retried.ID, good.invocations())
	}

	// With the good agent gone (its last will marks it offline), nothing is left to try.
	good.client.conn.Close() // no DISCONNECT: the broker sends the last will
	waitAgents(t, e, 1)
	var r protocol.Result
	postJSON(t, "http://"+e.HTTPAddr()+"/api/v1/invoke/echo", `{"target":{"labels":{"zone":"north"}}}`, &r)
	if r.Status != "timeout" || !strings.Contains(r.Error, "no other eligible agent") {
		t.Fatalf("result %+v", r)
	}
	var dl DeadLetter
	if err := json.Unmarshal(watcher.next(t, "deviceless/deadletter").Payload, &dl); err != nil {
		t.Fatal(err)
	}
	if dl.Invocation.ID != r.ID || len(dl.Tried) != 1 || dl.Tried[0] != "a1" {
		t.Fatalf("dead letter %+v", dl)
	}
	// No agent matches at all: dead-lettered at once.
	postJSON(t, "http://"+e.HTTPAddr()+"/api/v1/invoke/echo", `{"target":{"agent":"nobody"}}`, &r)
	if r.Status != "error" || !strings.Contains(r.Error, "no online agent") {
		t.Fatalf("result %+v", r)
	}
	if code := postJSON(t, "http://"+e.HTTPAddr()+"/api/v1/invoke/nope", `{}`, &map[string]any{}); code != 404 {
		t.Fatalf("unknown function: HTTP %d", code)
	}
	if code := postJSON(t, "http://"+e.HTTPAddr()+"/api/v1/invoke/echo", `{"args": [1]}`, &map[string]any{}); code != 400 {
		t.Fatalf("malformed request: HTTP %d", code)
	}
}

// POST /api/v1/invoke/{fn}?all=true with a `pick: all` target answers every agent's
// result; without it, the first one's (unchanged). A bad value is a 400.
func TestHTTPInvokePickAllResults(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, echoRules)
	e := startEngine(t, testConfig(t, dir))
	addr := e.BrokerAddr()
	for _, id := range []string{"a1", "a2"} {
		startAgent(t, addr, id, map[string]string{"zone": "north"}, ok(`"`+id+`"`))
	}
	waitAgents(t, e, 2)
	url := "http://" + e.HTTPAddr() + "/api/v1/invoke/echo"
	var all struct {
		Results []protocol.Result `json:"results"`
	}
	if code := postJSON(t, url+"?all=true", `{"target":{"labels":{"zone":"north"},"pick":"all"}}`, &all); code != 200 || len(all.Results) != 2 {
		t.Fatalf("pick all, all=true: HTTP %d %+v", code, all)
	}
	seen := map[string]bool{}
	for _, r := range all.Results {
		if r.Status != "ok" || string(r.Output) != `"`+r.Agent+`"` || seen[r.ID] {
			t.Fatalf("results %+v", all.Results)
		}
		seen[r.ID], seen[r.Agent] = true, true
	}
	if !seen["a1"] || !seen["a2"] {
		t.Fatalf("results %+v: want one of each of a1 and a2", all.Results)
	}
	// pick one with all=true: one result in the list; nobody: the dead letter's.
	if code := postJSON(t, url+"?all=1", `{"target":{"agent":"a2"}}`, &all); code != 200 || len(all.Results) != 1 || all.Results[0].Agent != "a2" {
		t.Fatalf("pick one, all=true: HTTP %d %+v", code, all)
	}
	if code := postJSON(t, url+"?all=true", `{"target":{"labels":{"zone":"east"},"pick":"all"}}`, &all); code != 200 || len(all.Results) != 1 || all.Results[0].Status != "error" {
		t.Fatalf("no agent, all=true: HTTP %d %+v", code, all)
	}
	var one protocol.Result
	if code := postJSON(t, url, `{"target":{"labels":{"zone":"north"},"pick":"all"}}`, &one); code != 200 || one.Status != "ok" {
		t.Fatalf("pick all without all=true: HTTP %d %+v", code, one)
	}
	var refused struct{ Error string }
	if code := postJSON(t, url+"?all=maybe", `{}`, &refused); code != 400 || !strings.Contains(refused.Error, "true or false") {
		t.Fatalf("all=maybe: HTTP %d %q", code, refused.Error)
	}
}

func TestExternalInvokeOverMQTT(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, echoRules)
	e := startEngine(t, testConfig(t, dir))
	addr := e.BrokerAddr()
	startAgent(t, addr, "a1", nil, func(inv protocol.Invocation) *protocol.Result {
		out, _ := json.Marshal(inv.Args)
		return &protocol.Result{Status: "ok", Output: out}
	})
	waitAgents(t, e, 1)
	app := connect(t, addr, "app", nil, nil)
	reply := "deviceless/responses/app/replies"
	app.sub(t, reply)
	app.pub(t, &paho.Publish{Topic: "deviceless/invoke/echo", QoS: 1, Payload: []byte(`{"args":{"x":42}}`),
		Properties: &paho.PublishProperties{ResponseTopic: reply, CorrelationData: []byte("req-1")}})
	m := app.next(t, reply)
	var r protocol.Result
	_ = json.Unmarshal(m.Payload, &r)
	if string(m.Properties.CorrelationData) != "req-1" || r.Status != "ok" || string(r.Output) != `{"x":42}` {
		t.Fatalf("reply %s %+v", m.Properties.CorrelationData, r)
	}
	app.pub(t, &paho.Publish{Topic: "deviceless/invoke/missing", QoS: 1, Payload: []byte(`{}`),
		Properties: &paho.PublishProperties{ResponseTopic: reply, CorrelationData: []byte("req-2")}})
	m = app.next(t, reply)
	_ = json.Unmarshal(m.Payload, &r)
	if string(m.Properties.CorrelationData) != "req-2" || r.Status != "error" || !strings.Contains(r.Error, "unknown function") {
		t.Fatalf("reply %s %+v", m.Properties.CorrelationData, r)
	}
	app.pub(t, &paho.Publish{Topic: "deviceless/invoke/echo", QoS: 1, Payload: []byte(`not json`),
		Properties: &paho.PublishProperties{ResponseTopic: reply, CorrelationData: []byte("req-3")}})
	m = app.next(t, reply)
	_ = json.Unmarshal(m.Payload, &r)
	if string(m.Properties.CorrelationData) != "req-3" || !strings.Contains(r.Error, "malformed request") {
		t.Fatalf("reply %s %+v", m.Properties.CorrelationData, r)
	}
}

// Issue 12: agent a2, publishing with mosquitto_pub on its own result topic, can neither
// answer the invocation another agent was sent (naming that agent in the result) nor pull
// it onto itself by answering "rejected": a result counts only from the agent the
// invocation went to, and its agent is the topic's.
func TestForgedResultsAreIgnored(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "functions:\n  echo: {runtime: sh, code: cat, timeout: 10s}\n")
	e := startEngine(t, testConfig(t, dir))
	addr := e.BrokerAddr()
	var mu sync.Mutex
	gate := make(chan struct{})
	honest := func(protocol.Invocation) *protocol.Result {
		mu.Lock()
		g := gate
		mu.Unlock()
		<-g
		return &protocol.Result{Status: "ok", Output: json.RawMessage(`"genuine"`)}
	}
	agents := map[string]*scriptedAgent{
		"a1": startAgent(t, addr, "a1", map[string]string{"zone": "north"}, honest),
		"a2": startAgent(t, addr, "a2", map[string]string{"zone": "north"}, honest),
	}
	waitAgents(t, e, 2)
	seen := map[string]bool{}
	for i, forged := range []string{
		`{"id":%q,"agent":%q,"function":"echo","status":"ok","output":"forged"}`,
		`{"id":%q,"agent":%q,"function":"echo","status":"rejected","error":"busy"}`,
	} {
		got := make(chan protocol.Result, 1)
		go func() {
			var r protocol.Result
			postJSON(t, "http://"+e.HTTPAddr()+"/api/v1/invoke/echo", `{"target":{"labels":{"zone":"north"}}}`, &r)
			got <- r
		}()
		var inv protocol.Invocation
		var owner, rogue string
		eventually(t, "the invocation", func() bool {
			for id, a := range agents {
				for _, v := range a.invocations() {
					if !seen[v.ID] {
						inv, owner = v, id
					}
				}
			}
			return owner != ""
		})
		seen[inv.ID] = true
		rogue = map[string]string{"a1": "a2", "a2": "a1"}[owner]
		mosquittoPubAs(t, addr, rogue, "-t", "deviceless/agents/"+rogue+"/result", "-q", "1",
			"-m", fmt.Sprintf(forged, inv.ID, owner), "-D", "publish", "correlation-data", inv.ID)
		time.Sleep(300 * time.Millisecond) // the forged result is handled by now
		mu.Lock()
		close(gate)
		gate = make(chan struct{})
		mu.Unlock()
		r := <-got
		if r.ID != inv.ID || r.Agent != owner || r.Status != "ok" || string(r.Output) != `"genuine"` {
			t.Fatalf("forged result %d from %s for %s's invocation %s: the engine answered %+v", i+1, rogue, owner, inv.ID, r)
		}
		for _, v := range agents[rogue].invocations() {
			if v.ID == inv.ID {
				t.Fatalf("forged rejection: invocation %s of %s was retried on %s", inv.ID, owner, rogue)
			}
		}
		if n := testutilValue(e, "deviceless_dispatch_foreign_results_total", ""); n != float64(i+1) {
			t.Fatalf("foreign results counted %v, want %d", n, i+1)
		}
	}
}

// Issue 12: the engine answers an invoke request only in the requester's response space,
// {prefix}/responses/{username}/...: never outside the prefix (every device reads and
// writes there: a device sniffing "#" read other clients' results), never on the results
// topic (it feeds the rules), another's space or any other topic inside the prefix. The
// requests are mosquitto_pub's, as the client "app"; such a request is not run at all.
func TestInvokeAnswersOnlyInTheRequestersSpace(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, echoRules)
	e := startEngine(t, testConfig(t, dir))
	addr := e.BrokerAddr()
	a1 := startAgent(t, addr, "a1", map[string]string{"zone": "north"}, ok(`"ran"`))
	waitAgents(t, e, 1)
	sniffer := connect(t, addr, "dev", nil, nil) // a device reads everything outside the prefix
	sniffer.sub(t, "#")
	ops := connect(t, addr, "ops", nil, nil)
	ops.sub(t, "deviceless/#")
	for i, to := range []string{
		"app/replies",                    // outside the prefix: the device space
		"deviceless/results/echo",        // the results topic, which feeds the rules
		"deviceless/responses/ops/x",     // another user's response space
		"deviceless/agents/a1/status",    // an agent's status
		"deviceless/responses/app/+",     // not a topic name
		"deviceless/results/replies/app", // inside the prefix, no topic of the layout
	} {
		mosquittoPubAs(t, addr, "app", "-t", "deviceless/invoke/echo", "-q", "1", "-m", `{"args":{"n":1}}`,
			"-D", "publish", "response-topic", to, "-D", "publish", "correlation-data", fmt.Sprintf("bad-%d", i))
	}
	mosquittoPubAs(t, addr, "app", "-t", "deviceless/invoke/echo", "-q", "1", "-m", `{"args":{"n":2}}`,
		"-D", "publish", "response-topic", "deviceless/responses/app/replies", "-D", "publish", "correlation-data", "good")
	m := ops.next(t, "deviceless/responses/")
	if m.Topic != "deviceless/responses/app/replies" || string(m.Properties.CorrelationData) != "good" {
		t.Fatalf("answer on %s (correlation %q), want deviceless/responses/app/replies (good)", m.Topic, m.Properties.CorrelationData)
	}
	for {
		select {
		case m := <-sniffer.msgs:
			if m.Properties != nil && len(m.Properties.CorrelationData) > 0 {
				t.Fatalf("a device read an answer on %s: %s", m.Topic, m.Payload)
			}
			continue
		case <-time.After(200 * time.Millisecond):
		}
		break
	}
	for _, m := range append(ops.stash, queued(ops.msgs)...) {
		if m.Properties != nil && strings.HasPrefix(string(m.Properties.CorrelationData), "bad-") && !strings.HasPrefix(m.Topic, "deviceless/invoke/") {
			t.Fatalf("answered on %s: %s", m.Topic, m.Payload)
		}
	}
	if n := len(a1.invocations()); n != 1 {
		t.Fatalf("the agent ran %d invocations, want 1 (refused requests are not run)", n)
	}
	if n := testutilValue(e, "deviceless_invoke_refused_total", "response_topic"); n != 6 {
		t.Fatalf("refusals counted: %v, want 6", n)
	}
}

// queued returns what waits in ch, without waiting.
func queued(ch chan *paho.Publish) []*paho.Publish {
	var out []*paho.Publish
	for {
		select {
		case m := <-ch:
			out = append(out, m)
		default:
			return out
		}
	}
}

// Issue 12: actuations used to carry no expiry: queued for an agent that was away, they
// were all applied when it came back, their `for` timers starting late. Now each carries
// MQTT message expiry and expires_at: the rule's `expire`, or a minute. Agent a1 drops its
// connection without a will (the registry still has it online) while two actuations are
// sent; it comes back after the short one expired and gets only the other.
func TestActuationsExpire(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, `
rules:
  - name: short
    on: act/short
    do: [{actuate: {target: {agent: a1}, line: fan, value: 1, expire: 1s}}]
  - name: default
    on: act/default
    do: [{actuate: {target: {agent: a1}, line: fan, value: 0}}]
  - name: sentinel
    on: act/sentinel
    do: [{actuate: {target: {agent: a1}, line: fan, value: 2}}]
`)
	e := startEngine(t, testConfig(t, dir))
	addr := e.BrokerAddr()
	topics := protocol.Topics{}
	session := func() *mqttClient {
		t.Helper()
		conn, err := net.DialTimeout("tcp", addr, deadline)
		if err != nil {
			t.Fatal(err)
		}
		c := &mqttClient{conn: conn, msgs: make(chan *paho.Publish, 100)}
		c.Client = paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn),
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				c.msgs <- pr.Packet
				return true, nil
			}}})
		expiry := uint32(3600)
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		defer cancel()
		if _, err := c.Connect(ctx, &paho.Connect{ClientID: "a1", KeepAlive: 30, Username: "a1", UsernameFlag: true,
			Password: []byte("pw-a1"), PasswordFlag: true, Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}); err != nil {
			t.Fatal(err)
		}
		return c
	}
	a1 := session()
	// Only the actuation topic: with the whole agent subtree the agent's own retained status
	// comes back to it, and that echo may still be queued in the session when it goes away.
	a1.sub(t, topics.AgentActuate("a1"))
	st, _ := json.Marshal(protocol.Status{Agent: "a1", Online: true, Lines: map[string]protocol.LineInfo{"fan": {Direction: "output"}}})
	a1.pub(t, &paho.Publish{Topic: topics.AgentStatus("a1"), Payload: st, QoS: 1, Retain: true})
	waitAgents(t, e, 1)
	a1.conn.Close() // away, no will: still online in the registry
	time.Sleep(100 * time.Millisecond)
	sent := time.Now()
	mosquittoPub(t, addr, "-t", "act/short", "-m", "{}", "-q", "1")
	mosquittoPub(t, addr, "-t", "act/default", "-m", "{}", "-q", "1")
	eventually(t, "both rules fired", func() bool {
		return e.ruleSet().Rule("short").Counters().Fired.Load() == 1 && e.ruleSet().Rule("default").Counters().Fired.Load() == 1
	})
	// The short one expires; the broker's once-a-second sweep has removed it by then.
	time.Sleep(3500 * time.Millisecond)

	back := session()
	t.Cleanup(func() { _ = back.Disconnect(&paho.Disconnect{}) })
	m := back.next(t, topics.AgentActuate("a1"))
	var act protocol.Actuation
	if err := json.Unmarshal(m.Payload, &act); err != nil {
		t.Fatal(err)
	}
	if act.Value != 0 {
		t.Fatalf("got the actuation %s, which expired after 1s, after 3.5s away", m.Payload)
	}
	if act.ExpiresAt.Before(sent.Add(59*time.Second)) || act.ExpiresAt.After(time.Now().Add(61*time.Second)) {
		t.Errorf("expires_at %v, want a minute after %v", act.ExpiresAt, sent)
	}
	if m.Properties == nil || m.Properties.MessageExpiry == nil || *m.Properties.MessageExpiry == 0 || *m.Properties.MessageExpiry > 60 {
		t.Errorf("MQTT message expiry %+v, want at most 60s", m.Properties)
	}
	// Ordering sentinel: the session's queue is delivered before anything new, so the next
	// actuation must be the sentinel's; the expired one, had it survived, would come first.
	mosquittoPub(t, addr, "-t", "act/sentinel", "-m", "{}", "-q", "1")
	m = back.next(t, topics.AgentActuate("a1"))
	if err := json.Unmarshal(m.Payload, &act); err != nil {
		t.Fatal(err)
	}
	if act.Value != 2 {
		t.Fatalf("another actuation after the reconnect: %s", m.Payload)
	}
}

func TestHotReloadAndDryRun(t *testing.T) {
	dir := t.TempDir()
	rule := func(out string) string {
		return `
rules:
  - name: count
    on: in/+
    window: {count: 100, of: "1"}
    do:
      - publish: {topic: '"` + out + `"', payload: window.count}
`
	}
	writeRules(t, dir, rule("out/v1"))
	e := startEngine(t, testConfig(t, dir))
	addr := e.BrokerAddr()
	w := connect(t, addr, "ops", nil, nil)
	w.sub(t, "out/#")
	mosquittoPub(t, addr, "-t", "in/a", "-m", "x")
	if m := w.next(t, "out/"); m.Topic != "out/v1" || string(m.Payload) != "1" {
		t.Fatalf("got %s %s", m.Topic, m.Payload)
	}

	// A valid change: swapped in, and the window (unchanged definition) keeps counting.
	writeRules(t, dir, rule("out/v2"))
	eventually(t, "reload", func() bool {
		return strings.Contains(e.ruleSet().Rules[0].Filters[0], "in/+") && e.rulesErr.Load() != nil
	})
	mosquittoPub(t, addr, "-t", "in/a", "-m", "x")
	if m := w.next(t, "out/"); m.Topic != "out/v2" || string(m.Payload) != "2" {
		t.Fatalf("after reload got %s %s, want out/v2 2", m.Topic, m.Payload)
	}

	// An invalid change keeps the running rules and reports file:line:col.
	writeRules(t, dir, "rules:\n  - name: count\n    on: in/+\n    if: nosuch > 1\n    do: [{publish: {topic: '\"x\"'}}]\n")
	var st struct {
		LastReload *reloadStatus `json:"last_reload"`
		Rules      []RuleView
	}
	eventually(t, "reload error", func() bool {
		getJSON(t, "http://"+e.HTTPAddr()+"/api/v1/rules", &st)
		return st.LastReload != nil && st.LastReload.Error != ""
	})
	if !strings.Contains(st.LastReload.Error, "rules.yaml:4:9: unknown name nosuch") || len(st.Rules) != 1 {
		t.Fatalf("rules API: %+v %+v", st.LastReload, st.Rules)
	}
	mosquittoPub(t, addr, "-t", "in/a", "-m", "x")
	if m := w.next(t, "out/"); m.Topic != "out/v2" || string(m.Payload) != "3" {
		t.Fatalf("after a bad reload got %s %s, want out/v2 3", m.Topic, m.Payload)
	}

	// Dry run against a fresh copy of the rules on disk: nothing is published, state untouched.
	writeRules(t, dir, rule("out/v3"))
	eventually(t, "reload", func() bool { return e.rulesErr.Load().Error == "" })
	var dry struct{ Firings []FiringView }
	if code := postJSON(t, "http://"+e.HTTPAddr()+"/api/v1/dryrun", `{"topic": "in/b", "payload": {"any": 1}}`, &dry); code != 200 {
		t.Fatalf("dryrun HTTP %d", code)
	}
	if len(dry.Firings) != 1 || dry.Firings[0].Rule != "count" || dry.Firings[0].Actions[0].Topic != "out/v3" || dry.Firings[0].Actions[0].Payload != 1.0 {
		t.Fatalf("dry run %+v", dry)
	}
	if code := postJSON(t, "http://"+e.HTTPAddr()+"/api/v1/dryrun", `{"topic": "in/#"}`, &map[string]any{}); code != 400 {
		t.Fatalf("dry run with a filter as topic: HTTP %d", code)
	}
}

func TestRulePublishLoopIsBounded(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "rules:\n  - name: echo\n    on: loop/#\n    do: [{publish: {topic: 'topic + \"/x\"'}}]\n")
	e := startEngine(t, testConfig(t, dir))
	fired := func() uint64 { return e.ruleSet().Rules[0].Counters().Fired.Load() }
	mosquittoPub(t, e.BrokerAddr(), "-t", "loop/a", "-m", "1")
	eventually(t, "the chain to stop", func() bool { return fired() == maxHops })
	time.Sleep(100 * time.Millisecond) // the chain must not go on (checked below)
	if n := fired(); n != maxHops {
		t.Fatalf("rule fired %d times, want %d", n, maxHops)
	}
	// Issue 12: a device's own deviceless-hop is not trusted (one event with -100000 made
	// the rule fire 100,008 times): its chain is as long as any other.
	mosquittoPub(t, e.BrokerAddr(), "-t", "loop/b", "-m", "1", "-D", "publish", "user-property", hopProperty, "-100000")
	eventually(t, "the second chain to stop", func() bool { return fired() >= 2*maxHops })
	time.Sleep(300 * time.Millisecond)
	if n := fired(); n != 2*maxHops {
		t.Fatalf("with deviceless-hop -100000 from the device the rule fired %d times, want %d", n-maxHops, maxHops)
	}
}

// Issue 12: results and dead letters go back into the rules too, and they used to carry no
// hop count: a rule on deviceless/results/echo invoking echo fired 3,653 times in 2 s. The
// engine counts hops on every path: an invocation carries its event's hop, its result and
// its dead letter come back with one more.
func TestResultAndDeadLetterLoopsAreBounded(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, `
functions:
  echo: {runtime: sh, code: cat, timeout: 5s}
  lost: {runtime: sh, code: cat, timeout: 5s}
rules:
  - name: again
    on: deviceless/results/echo
    do: [{invoke: echo}]
  - name: nowhere
    on: [start/nowhere, deviceless/deadletter]
    do: [{invoke: lost, target: {agent: nobody}}]
`)
	e := startEngine(t, testConfig(t, dir))
	a1 := startAgent(t, e.BrokerAddr(), "a1", nil, ok(`1`))
	waitAgents(t, e, 1)
	fired := func(rule string) uint64 { return e.ruleSet().Rule(rule).Counters().Fired.Load() }

	// An invocation from outside (hop 0): its result is hop 1, ..., the rule fires on the
	// results of hops 1 to maxHops-1.
	var r protocol.Result
	postJSON(t, "http://"+e.HTTPAddr()+"/api/v1/invoke/echo", `{}`, &r)
	eventually(t, "the result chain to stop", func() bool { return fired("again") >= maxHops-1 })
	time.Sleep(300 * time.Millisecond)
	if n := fired("again"); n != maxHops-1 {
		t.Fatalf("the rule on results fired %d times, want %d", n, maxHops-1)
	}
	if n, hops := len(a1.invocations()), a1.invocations()[len(a1.invocations())-1].Hop; n != maxHops || hops != maxHops-1 {
		t.Fatalf("%d invocations, the last at hop %d; want %d, the last at hop %d", n, hops, maxHops, maxHops-1)
	}
	// A device's event (hop 0) dead-letters (no agent "nobody"): the dead letter is hop 1, ...
	mosquittoPub(t, e.BrokerAddr(), "-t", "start/nowhere", "-m", "1", "-D", "publish", "user-property", hopProperty, "-100000")
	eventually(t, "the dead-letter chain to stop", func() bool { return fired("nowhere") >= maxHops })
	time.Sleep(300 * time.Millisecond)
	if n := fired("nowhere"); n != maxHops {
		t.Fatalf("the rule on dead letters fired %d times, want %d (the event and %d dead letters)", n, maxHops, maxHops-1)
	}
}

func TestShutdownDeadLettersWhatIsInFlight(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, echoRules)
	cfg := testConfig(t, dir)
	cfg.ShutdownGrace = 300 * time.Millisecond
	e, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	<-e.Ready()
	startAgent(t, e.BrokerAddr(), "a1", map[string]string{"zone": "north"}, func(protocol.Invocation) *protocol.Result { return nil })
	eventually(t, "agent online", func() bool { return e.registry.online() == 1 })
	got := make(chan protocol.Result, 1)
	go func() {
		var r protocol.Result
		postJSON(t, "http://"+e.HTTPAddr()+"/api/v1/invoke/echo", `{}`, &r)
		got <- r
	}()
	eventually(t, "invocation in flight", func() bool { return e.dispatch.inFlight() == 1 })
	cancel()
	select {
	case r := <-got:
		if r.Status != "error" || !strings.Contains(r.Error, "engine stopped") {
			t.Fatalf("result %+v", r)
		}
	case <-time.After(deadline):
		t.Fatal("the waiting request got no answer")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(deadline):
		t.Fatal("engine did not stop")
	}
}

func TestMalformedControlMessagesAreCounted(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, echoRules)
	e := startEngine(t, testConfig(t, dir))
	startAgent(t, e.BrokerAddr(), "a1", map[string]string{"zone": "north"}, ok(`1`))
	waitAgents(t, e, 1)
	ops := connect(t, e.BrokerAddr(), "ops", nil, nil)
	ops.pub(t, &paho.Publish{Topic: "deviceless/agents/a2/status", Payload: []byte("{not json"), QoS: 1})
	ops.pub(t, &paho.Publish{Topic: "deviceless/agents/a3/status", Payload: []byte(`{"agent":"someone-else","online":true}`), QoS: 1})
	ops.pub(t, &paho.Publish{Topic: "deviceless/agents/a1/result", Payload: []byte("garbage"), QoS: 1})
	ops.pub(t, &paho.Publish{Topic: "deviceless/agents/a1/result", Payload: []byte(`{"id":"unknown","status":"ok"}`), QoS: 1})
	eventually(t, "counters", func() bool {
		return testutilValue(e, "deviceless_malformed_messages_total", "status") == 2 &&
			testutilValue(e, "deviceless_malformed_messages_total", "result") == 1 &&
			testutilValue(e, "deviceless_dispatch_late_results_total", "") == 1
	})
	// The registry still holds exactly the one good agent, and it still works.
	var r protocol.Result
	postJSON(t, "http://"+e.HTTPAddr()+"/api/v1/invoke/echo", `{}`, &r)
	if r.Status != "ok" || e.registry.online() != 1 {
		t.Fatalf("result %+v, online %d", r, e.registry.online())
	}
}

// Issue 12: metric labels never come from what an agent writes. The function, rule and
// agent of a finished invocation are the engine's own (a result from an agent the
// invocation was not sent to is ignored), and a status outside the contract's is counted
// as "other": an agent answering each invocation with a new status cannot grow
// deviceless_invocations_total by one series per answer.
func TestMetricLabelsAreBounded(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, echoRules)
	e := startEngine(t, testConfig(t, dir))
	n := 0
	var mu sync.Mutex
	startAgent(t, e.BrokerAddr(), "a1", map[string]string{"zone": "north"}, func(protocol.Invocation) *protocol.Result {
		mu.Lock()
		defer mu.Unlock()
		n++
		return &protocol.Result{Status: fmt.Sprintf("status-%d", n), Function: fmt.Sprintf("fn-%d", n), Timings: protocol.Timings{Total: 1}}
	})
	waitAgents(t, e, 1)
	for range 3 {
		var r protocol.Result
		postJSON(t, "http://"+e.HTTPAddr()+"/api/v1/invoke/echo", `{}`, &r)
	}
	mfs, err := e.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.HasPrefix(l.GetValue(), "status-") || strings.HasPrefix(l.GetValue(), "fn-") {
					t.Errorf("%s has the label %s=%q from an agent's result", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	if got := testutilLabels(e, "deviceless_invocations_total", map[string]string{"function": "echo", "status": "other"}); got != 3 {
		t.Errorf(`deviceless_invocations_total{function="echo",status="other"} = %v, want 3`, got)
	}
}

// testutilLabels reads the counter of the series with these labels (among others).
func testutilLabels(e *running, name string, labels map[string]string) float64 {
	mfs, _ := e.metrics.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// testutilValue reads a counter from the engine's registry (label value "" for none).
func testutilValue(e *running, name, label string) float64 {
	mfs, _ := e.metrics.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || (len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
