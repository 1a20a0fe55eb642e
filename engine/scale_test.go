package engine

import (
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// deadLetters collects what a real client reads on deviceless/deadletter.
type deadLetters struct {
	mu  sync.Mutex
	got []DeadLetter
}

func (d *deadLetters) list() []DeadLetter {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]DeadLetter(nil), d.got...)
}

func watchDeadLetters(t *testing.T, addr, user string) *deadLetters {
	t.Helper()
	d := &deadLetters{}
	c := connect(t, addr, user, nil, func(_ *paho.Client, m *paho.Publish) {
		var dl DeadLetter
		if err := json.Unmarshal(m.Payload, &dl); err != nil {
			t.Errorf("dead letter %q: %v", m.Payload, err)
			return
		}
		d.mu.Lock()
		d.got = append(d.got, dl)
		d.mu.Unlock()
	})
	c.sub(t, "deviceless/deadletter")
	return d
}

func (a *scriptedAgent) actuations() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.actuate)
}

// An engine on an external broker that restarts with its persistent session gets the
// events the broker kept for it as soon as it connects, before the agents' retained
// statuses: it must evaluate none before it knows the agents (issue 18: 9 to 56 of 400
// were evaluated against an empty registry, "no online agent matches", acknowledged and
// gone). Every kept event actuates; the one whose agent does not exist is dead-lettered
// with its event, not only logged.
func TestExternalRestartKnowsTheAgentsFirst(t *testing.T) {
	addr := startMosquittoConf(t, "max_queued_messages 0\n")
	agent := startAgent(t, addr, "a1", nil, ok(`"x"`))
	dls := watchDeadLetters(t, addr, "ops")
	dir := t.TempDir()
	writeRules(t, dir, `
rules:
  - name: fan
    on: sensors/+
    do: [{actuate: {target: {agent: a1}, line: fan, value: 1}}]
  - name: ghost
    on: ghost/+
    do: [{actuate: {target: {agent: nobody}, line: fan, value: 1}}]
`)
	cfg := Config{HTTP: "off", Rules: []string{dir}}
	cfg.Broker.External = "mqtt://" + addr
	cfg.Broker.SharedGroup = "deviceless"
	cfg.Broker.ClientID = "engine-restart"
	_, stop := runEngine(t, cfg) // the session, with its shared subscription
	stop()

	const n = 300
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"seq": %d}`, i)
	}
	host, port, _ := net.SplitHostPort(addr)
	pub := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-V", "mqttv5", "-t", "sensors/x", "-q", "1", "-l")
	pub.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := pub.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
	mosquittoPubAnon(t, addr, "-t", "ghost/x", "-m", `{"seq": -1}`, "-q", "1")

	e, stop2 := runEngine(t, cfg)
	defer stop2()
	eventually(t, "the ghost event's dead letter", func() bool { return len(dls.list()) > 0 })
	eventually(t, fmt.Sprintf("%d actuations", n), func() bool { return agent.actuations() >= n })
	if got := agent.actuations(); got != n {
		t.Errorf("%d actuations, want %d", got, n)
	}
	got := dls.list()
	if len(got) != 1 {
		t.Fatalf("%d dead letters, want the ghost's only: %+v", len(got), got)
	}
	dl := got[0]
	if dl.Rule != "ghost" || dl.Action == nil || dl.Action.Kind != "actuate" || dl.Action.Line != "fan" ||
		dl.Event == nil || dl.Event.Topic != "ghost/x" || string(dl.Event.Payload) != `{"seq":-1}` ||
		!strings.Contains(dl.Reason, "no online agent matches") || dl.Invocation != nil {
		t.Fatalf("dead letter %+v (action %+v, event %+v)", dl, dl.Action, dl.Event)
	}
	if v := testutilValue(e, "deviceless_action_errors_total", "actuate"); v != 1 {
		t.Errorf("action errors %v, want 1", v)
	}
}

// Actions that cannot be carried out are dead-lettered with their event in the embedded
// mode too, through the same path: no agent has the line, a value that is no line value,
// a payload that cannot be encoded (NaN). The dead letter leaves the unencodable values out.
func TestFailedActionsAreDeadLettered(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, `
rules:
  - name: no-agent
    on: e/none
    do: [{actuate: {target: {labels: {zone: mars}}, line: fan, value: 1}}]
  - name: bad-value
    on: e/value
    do: [{actuate: {target: {agent: a1}, line: fan, value: payload.v}}]
  - name: bad-payload
    on: e/payload
    do: [{publish: {topic: '"out"', payload: '{"v": payload.a / payload.b}'}}]
`)
	e := startEngine(t, testConfig(t, dir))
	startAgent(t, e.BrokerAddr(), "a1", nil, ok(`"x"`))
	waitAgents(t, e, 1)
	dls := watchDeadLetters(t, e.BrokerAddr(), "ops")
	mosquittoPub(t, e.BrokerAddr(), "-t", "e/none", "-m", `{"n": 1}`, "-q", "1")
	mosquittoPub(t, e.BrokerAddr(), "-t", "e/value", "-m", `{"v": 1.5}`, "-q", "1")
	mosquittoPub(t, e.BrokerAddr(), "-t", "e/payload", "-m", `{"a": 0, "b": 0}`, "-q", "1")
	waitFor(t, "three dead letters", func() bool { return len(dls.list()) >= 3 }, func() string { return fmt.Sprintf("%+v", dls.list()) })
	want := map[string]struct{ kind, reason, topic string }{
		"no-agent":    {"actuate", "no online agent matches", "e/none"},
		"bad-value":   {"actuate", "is not an integer or boolean", "e/value"},
		"bad-payload": {"publish", "unsupported value: NaN", "e/payload"},
	}
	for _, dl := range dls.list() {
		w, found := want[dl.Rule]
		if !found || dl.Action == nil || dl.Action.Kind != w.kind || !strings.Contains(dl.Reason, w.reason) ||
			dl.Event == nil || dl.Event.Topic != w.topic || dl.At.IsZero() || time.Since(dl.At) > time.Hour {
			t.Errorf("dead letter %+v (action %+v, event %+v); want %+v", dl, dl.Action, dl.Event, w)
		}
		delete(want, dl.Rule)
	}
	if len(want) > 0 {
		t.Errorf("no dead letter for %v", want)
	}
}

// waitFor is eventually with what there is when it times out.
func waitFor(t *testing.T, what string, cond func() bool, got func() string) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s; have %s", what, got())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The session settings of an external engine are checked up front.
func TestExternalSessionConfig(t *testing.T) {
	d := func(v time.Duration) *time.Duration { return &v }
	for _, c := range []struct {
		name   string
		broker BrokerConfig
		err    string // "" valid
	}{
		{"defaults", BrokerConfig{External: "mqtt://h:1883", ClientID: "engine-A"}, ""},
		{"no session", BrokerConfig{External: "mqtt://h:1883", ClientID: "engine-A", SessionExpiry: d(0), ReceiveMaximum: 20}, ""},
		{"client id with a level", BrokerConfig{External: "mqtt://h:1883", ClientID: "site/engine-A"}, "broker.client_id"},
		{"client id with a wildcard", BrokerConfig{External: "mqtt://h:1883", ClientID: "engine-+"}, "broker.client_id"},
		{"expiry without client id", BrokerConfig{External: "mqtt://h:1883", SessionExpiry: d(time.Hour)}, "broker.session_expiry"},
		{"negative expiry", BrokerConfig{External: "mqtt://h:1883", ClientID: "e", SessionExpiry: d(-time.Second)}, "broker.session_expiry"},
		{"receive maximum too big", BrokerConfig{External: "mqtt://h:1883", ReceiveMaximum: 70000}, "broker.receive_maximum"},
		{"receive maximum embedded", BrokerConfig{ReceiveMaximum: 20}, "broker.receive_maximum"},
	} {
		cfg := Config{HTTP: "off", Broker: c.broker}
		cfg = cfg.withDefaults()
		err := cfg.validate()
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one about %s", c.name, err, c.err)
		}
	}
	if got := (BrokerConfig{ClientID: "e"}).sessionExpiry(); got != DefaultSessionExpiry {
		t.Errorf("default session expiry %v", got)
	}
	if got := (BrokerConfig{SessionExpiry: d(time.Minute)}).sessionExpiry(); got != 0 {
		t.Errorf("session expiry without client id %v, want 0", got)
	}
}
