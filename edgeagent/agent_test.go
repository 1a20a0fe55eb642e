package edgeagent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/edgeagent/gpio/sim"
	"github.com/deviceless/deviceless/protocol"
)

func TestInvokeAndStatus(t *testing.T) {
	broker := startBroker(t)
	cl := newClient(t, broker, "deviceless/agents/+/status", "test/replies/#", "deviceless/agents/+/result")
	cfg := testConfig(t, broker)
	startAgent(t, cfg, cl)

	st := cl.status(cfg.ID, func(s protocol.Status) bool { return s.Online })
	if !st.Healthy || st.Labels["zone"] != "test" || !slices.Equal(st.Runtimes, []string{"python3", "sh", "wasm"}) ||
		st.Lines["fan"].Direction != "output" || st.Lines["button"].Direction != "input" || st.StartedAt.IsZero() {
		t.Fatalf("status %+v", st)
	}

	res := cl.invoke(cfg.ID, shInvocation("hello-1",
		`read -r inv; echo "{\"got\":$inv,\"fn\":\"$DEVICELESS_FUNCTION\",\"id\":\"$DEVICELESS_INVOCATION_ID\"}"`))
	if res.Status != protocol.StatusOK || !res.Cold || res.Agent != cfg.ID || res.Function != "fn-hello-1" {
		t.Fatalf("result %+v", res)
	}
	var out struct {
		Got protocol.Invocation
		Fn  string
		ID  string
	}
	if err := json.Unmarshal(res.Output, &out); err != nil {
		t.Fatalf("output %s: %v", res.Output, err)
	}
	if out.Got.ID != "hello-1" || out.Got.Args["celsius"] != 31.0 || out.Fn != "fn-hello-1" || out.ID != "hello-1" {
		t.Fatalf("function saw %+v", out)
	}
	if res.Timings.Total <= 0 || res.Timings.Run <= 0 || res.Timings.Total < res.Timings.Run {
		t.Fatalf("timings %+v", res.Timings)
	}

	// Without a response topic the result goes to the agent's result topic.
	payload, _ := json.Marshal(shInvocation("plain-1", `echo 7`))
	cl.publish(protocol.Topics{}.AgentInvoke(cfg.ID), payload, nil)
	m := cl.await(protocol.Topics{}.AgentResult(cfg.ID), nil)
	var plain protocol.Result
	if err := json.Unmarshal(m.Payload, &plain); err != nil || plain.ID != "plain-1" || string(plain.Output) != "7" {
		t.Fatalf("result topic: %s (%v)", m.Payload, err)
	}

	res = cl.invoke(cfg.ID, protocol.Invocation{ID: "image-1", Function: "image-fn",
		Spec: protocol.FunctionSpec{Image: "localhost/deviceless/sh", Command: []string{"sh", "-c", `read -r inv; echo "[\"$DEVICELESS_FUNCTION\"]"`}}})
	if res.Status != protocol.StatusOK || string(res.Output) != `["image-fn"]` {
		t.Fatalf("image function: %+v", res)
	}

	res = cl.invoke(cfg.ID, protocol.Invocation{ID: "py-1", Function: "double",
		Args: map[string]any{"n": 21},
		Spec: protocol.FunctionSpec{Runtime: "python3", Code: "import json, sys\ninv = json.load(sys.stdin)\nprint(json.dumps({'n': inv['args']['n'] * 2}))\n"}})
	if res.Status != protocol.StatusOK || string(res.Output) != `{"n":42}` {
		t.Fatalf("python: %+v", res)
	}
}

func TestFaults(t *testing.T) {
	broker := startBroker(t)
	cl := newClient(t, broker, "deviceless/agents/+/status", "test/replies/#")
	cfg := testConfig(t, broker)
	cfg.Concurrency = 8 // nothing waits in the queue
	cfg.Limits.Output = 64 << 10
	startAgent(t, cfg, cl)

	hang := shInvocation("hang", `sleep 600`)
	hang.Spec.Timeout = protocol.Duration(500 * time.Millisecond)
	oom := shInvocation("oom", `x=a; while true; do x="$x$x"; done`)
	oom.Spec.Memory = 16 << 20
	missing := shInvocation("missing", "")
	missing.Spec = protocol.FunctionSpec{Image: "localhost/deviceless/no-such-image", Command: []string{"true"}}
	unknownRuntime := shInvocation("unknown-runtime", "true")
	unknownRuntime.Spec.Runtime = "cobol"
	deadline := shInvocation("deadline", `sleep 600`)
	deadline.Spec.Timeout = protocol.Duration(time.Minute)

	tests := []struct {
		name    string
		raw     []byte
		inv     protocol.Invocation
		status  string
		errPart string
	}{
		{name: "malformed json", raw: []byte(`{"id":"bad-1","function":`), status: protocol.StatusError, errPart: "malformed invocation"},
		{name: "wrong types", raw: []byte(`{"id":"bad-2","attempt":"first"}`), status: protocol.StatusError, errPart: "malformed invocation"},
		{name: "no id", raw: []byte(`{"function":"x"}`), status: protocol.StatusError, errPart: "no id"},
		{name: "unknown function", inv: protocol.Invocation{ID: "unknown-fn", Function: "nope"}, status: protocol.StatusError, errPart: `unknown function "nope"`},
		{name: "unknown runtime", inv: unknownRuntime, status: protocol.StatusError, errPart: `unknown runtime "cobol"`},
		{name: "missing image", inv: missing, status: protocol.StatusError, errPart: "not present locally"},
		{name: "crash", inv: shInvocation("crash", `echo dying >&2; exit 3`), status: protocol.StatusError, errPart: "exit status 3: dying"},
		{name: "segfault", inv: shInvocation("segv", `sh -c 'kill -SEGV $$'`), status: protocol.StatusError, errPart: "exit status 139"},
		{name: "hang past timeout", inv: hang, status: protocol.StatusTimeout, errPart: "killed after 500ms"},
		{name: "hang past deadline", inv: deadline, status: protocol.StatusTimeout, errPart: "killed after"},
		{name: "oom", inv: oom, status: protocol.StatusOOM, errPart: "memory limit"},
		{name: "megabytes", inv: shInvocation("mega", `head -c 5000000 /dev/zero | tr '\0' 7`), status: protocol.StatusError, errPart: "exceeds the 65536 byte limit"},
		{name: "non-json", inv: shInvocation("nonjson", `echo hello world`), status: protocol.StatusError, errPart: "not one JSON value"},
		{name: "two values", inv: shInvocation("twovalues", `echo 1; echo 2`), status: protocol.StatusError, errPart: "not one JSON value"},
		{name: "bad actuate shape", inv: shInvocation("badshape", `echo '{"actuate":"fan"}'`), status: protocol.StatusError, errPart: "actuate/publish"},
		{name: "expired", inv: protocol.Invocation{ID: "expired", Function: "x", Deadline: time.Now().Add(-time.Second)}, status: protocol.StatusExpired, errPart: "passed before"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.inv.ID == "deadline" {
				tt.inv.Deadline = time.Now().Add(8 * time.Second) // far enough to start even on a loaded machine
			}
			var res protocol.Result
			if tt.raw != nil {
				res = cl.invokeRaw(cfg.ID, "", tt.raw)
			} else {
				res = cl.invoke(cfg.ID, tt.inv)
			}
			if res.Status != tt.status || !strings.Contains(res.Error, tt.errPart) {
				t.Fatalf("got %s %q, want %s with %q", res.Status, res.Error, tt.status, tt.errPart)
			}
		})
	}
}

func TestFunctionIsolated(t *testing.T) {
	broker := startBroker(t)
	cl := newClient(t, broker, "deviceless/agents/+/status", "test/replies/#")
	cfg := testConfig(t, broker)
	startAgent(t, cfg, cl)
	_, port, _ := net.SplitHostPort(broker)
	// The agent's own broker is listening on 127.0.0.1: the function must not reach it, nor
	// write its root filesystem, nor keep any capability.
	res := cl.invoke(cfg.ID, shInvocation("isolated", fmt.Sprintf(`
r=""
if nc -w 2 127.0.0.1 %s </dev/null >/dev/null 2>&1; then r="$r broker-reachable"; fi
if touch /bin/x 2>/dev/null || touch /x 2>/dev/null; then r="$r rootfs-writable"; fi
if touch /code/x 2>/dev/null; then r="$r code-writable"; fi
grep -q '^CapEff:\s*0000000000000000' /proc/self/status || r="$r capabilities"
echo "\"ok$r\""`, port)))
	if res.Status != protocol.StatusOK || string(res.Output) != `"ok"` {
		t.Fatalf("isolation broken: %+v", res)
	}
	// Sanity check of the probe: the broker port is reachable from the host.
	c, err := net.Dial("tcp", broker)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestDedupe(t *testing.T) {
	broker := startBroker(t)
	cl := newClient(t, broker, "deviceless/agents/+/status", "test/replies/#")
	cfg := testConfig(t, broker)
	startAgent(t, cfg, cl)
	inv := shInvocation("once", `echo "\"$(cat /proc/sys/kernel/random/uuid)\""`)
	first := cl.invoke(cfg.ID, inv)
	second := cl.invoke(cfg.ID, inv)
	if first.Status != protocol.StatusOK || string(first.Output) != string(second.Output) {
		t.Fatalf("repeated id ran again: %s then %s", first.Output, second.Output)
	}
	other := cl.invoke(cfg.ID, shInvocation("twice", inv.Spec.Code))
	if string(other.Output) == string(first.Output) {
		t.Fatal("different ids gave the same output")
	}
}

func TestQueueRejectsAndExpires(t *testing.T) {
	broker := startBroker(t)
	cl := newClient(t, broker, "deviceless/agents/+/status", "test/replies/#", "deviceless/agents/+/result")
	cfg := testConfig(t, broker)
	cfg.Concurrency = 1
	cfg.Queue = 1
	a := startAgent(t, cfg, cl)

	send := func(inv protocol.Invocation) {
		payload, _ := json.Marshal(inv)
		cl.publish(protocol.Topics{}.AgentInvoke(cfg.ID), payload, nil)
	}
	busy := shInvocation("busy", `sleep 600`)
	busy.Spec.Timeout = protocol.Duration(3 * time.Second)
	send(busy)
	waitFor(t, "the busy invocation to start", func() bool { return len(a.queue) == 0 && a.dedupe.inFlight("busy") })
	queued := shInvocation("queued", `echo 1`)
	queued.Deadline = time.Now().Add(time.Second) // passes while "busy" holds the only slot
	send(queued)
	waitFor(t, "the queue to fill", func() bool { return len(a.queue) == 1 })
	send(shInvocation("overflow", `echo 1`))

	results := map[string]protocol.Result{}
	for len(results) < 3 {
		cl.await(protocol.Topics{}.AgentResult(cfg.ID), func(p *paho.Publish) bool {
			var r protocol.Result
			if json.Unmarshal(p.Payload, &r) != nil {
				return false
			}
			if _, seen := results[r.ID]; seen {
				return false
			}
			results[r.ID] = r
			return true
		})
	}
	if r := results["overflow"]; r.Status != protocol.StatusRejected || !strings.Contains(r.Error, "queue full") {
		t.Fatalf("overflow: %+v", r)
	}
	if r := results["queued"]; r.Status != protocol.StatusExpired {
		t.Fatalf("queued: %+v", r)
	}
	if r := results["busy"]; r.Status != protocol.StatusTimeout {
		t.Fatalf("busy: %+v", r)
	}
	// A rejected id is not remembered: once there is room it runs.
	if r := cl.invoke(cfg.ID, shInvocation("overflow", `echo 2`)); r.Status != protocol.StatusOK || string(r.Output) != "2" {
		t.Fatalf("retry of rejected id: %+v", r)
	}
}

func TestActuation(t *testing.T) {
	broker := startBroker(t)
	cl := newClient(t, broker, "deviceless/agents/+/status", "test/replies/#", "alerts/#", "sensors/#")
	cfg := testConfig(t, broker)
	a := startAgent(t, cfg, cl)
	lines := a.Lines().(*sim.Lines)
	topics := protocol.Topics{}

	// From the engine: actuate topic, reverting after `for`.
	act, _ := json.Marshal(protocol.Actuation{ID: "a1", Line: "fan", Value: 1, For: protocol.Duration(300 * time.Millisecond)})
	cl.publish(topics.AgentActuate(cfg.ID), act, &paho.PublishProperties{ResponseTopic: "test/replies/act", CorrelationData: []byte("a1")})
	ack := cl.await("test/replies/act", nil)
	if !strings.Contains(string(ack.Payload), `"status":"ok"`) {
		t.Fatalf("actuation answer %s", ack.Payload)
	}
	waitFor(t, "fan to revert", func() bool { return slices.Equal(lines.History("fan"), []int{1, 0}) })

	// The same id again (QoS 1 redelivery, or the engine evaluating an event again after
	// a crash): answered with the first outcome, not applied again.
	cl.publish(topics.AgentActuate(cfg.ID), act, &paho.PublishProperties{ResponseTopic: "test/replies/act-again", CorrelationData: []byte("a1")})
	if again := cl.await("test/replies/act-again", nil); !strings.Contains(string(again.Payload), `"status":"ok"`) {
		t.Fatalf("repeated actuation answer %s", again.Payload)
	}
	fresh, _ := json.Marshal(protocol.Actuation{ID: "a1b", Line: "fan", Value: 1})
	cl.publish(topics.AgentActuate(cfg.ID), fresh, &paho.PublishProperties{ResponseTopic: "test/replies/act-b", CorrelationData: []byte("a1b")})
	cl.await("test/replies/act-b", nil)
	if h := lines.History("fan"); !slices.Equal(h, []int{1, 0, 1}) {
		t.Fatalf("fan history %v: want [1 0 1] (the repeated a1 not applied)", h)
	}

	// Unknown line: refused with an error.
	bad, _ := json.Marshal(protocol.Actuation{ID: "a2", Line: "heater", Value: 1})
	cl.publish(topics.AgentActuate(cfg.ID), bad, &paho.PublishProperties{ResponseTopic: "test/replies/act2", CorrelationData: []byte("a2")})
	if m := cl.await("test/replies/act2", nil); !strings.Contains(string(m.Payload), `unknown line \"heater\"`) {
		t.Fatalf("unknown line answer %s", m.Payload)
	}
	// Input lines cannot be driven.
	in, _ := json.Marshal(protocol.Actuation{ID: "a3", Line: "button", Value: 1})
	cl.publish(topics.AgentActuate(cfg.ID), in, &paho.PublishProperties{ResponseTopic: "test/replies/act3", CorrelationData: []byte("a3")})
	if m := cl.await("test/replies/act3", nil); !strings.Contains(string(m.Payload), "not an output") {
		t.Fatalf("input line answer %s", m.Payload)
	}

	// From a function: actuate and publish lists, result as output; the publishes carry
	// the invocation's hop + 1.
	cool := shInvocation("cool", `read -r ev; echo '{"actuate":[{"line":"alarm","value":1}],"publish":[{"topic":"alerts/gh1","payload":{"t":31}},{"topic":"alerts/text","payload":"hot"}],"result":"alarm on"}'`)
	cool.Hop = 4
	res := cl.invoke(cfg.ID, cool)
	if res.Status != protocol.StatusOK || string(res.Output) != `"alarm on"` {
		t.Fatalf("function actuation: %+v", res)
	}
	if v, _ := lines.Get("alarm"); v != 1 {
		t.Fatalf("alarm = %d", v)
	}
	if m := cl.await("alerts/gh1", nil); string(m.Payload) != `{"t":31}` || m.Properties == nil || m.Properties.User.Get(protocol.HopProperty) != "5" {
		t.Fatalf("published %s (properties %+v), want hop 5", m.Payload, m.Properties)
	}
	if m := cl.await("alerts/text", nil); string(m.Payload) != `hot` {
		t.Fatalf("published %s", m.Payload)
	}

	// A function naming an unknown line: error result, nothing applied.
	res = cl.invoke(cfg.ID, shInvocation("bad-line", `echo '{"actuate":[{"line":"alarm","value":0},{"line":"ghost","value":1}]}'`))
	if res.Status != protocol.StatusError || !strings.Contains(res.Error, `unknown line "ghost"`) {
		t.Fatalf("unknown line from function: %+v", res)
	}
	if v, _ := lines.Get("alarm"); v != 1 {
		t.Fatal("alarm changed although the actuation list was refused")
	}
	// Publishing inside the prefix is refused.
	res = cl.invoke(cfg.ID, shInvocation("bad-topic", `echo '{"publish":[{"topic":"deviceless/agents/x/invoke","payload":1}]}'`))
	if res.Status != protocol.StatusError || !strings.Contains(res.Error, "inside the deviceless/ prefix") {
		t.Fatalf("internal publish: %+v", res)
	}

	// Input edges publish events.
	if err := lines.Inject("button", 1); err != nil {
		t.Fatal(err)
	}
	m := cl.await("sensors/button", nil)
	var ev struct {
		Agent, Line string
		Value       int
	}
	if err := json.Unmarshal(m.Payload, &ev); err != nil || ev.Agent != cfg.ID || ev.Line != "button" || ev.Value != 1 {
		t.Fatalf("edge event %s (%v)", m.Payload, err)
	}
}

func TestWarmFunction(t *testing.T) {
	broker := startBroker(t)
	cl := newClient(t, broker, "deviceless/agents/+/status", "test/replies/#")
	cfg := testConfig(t, broker)
	cfg.Functions = map[string]protocol.FunctionSpec{
		"counter": {Runtime: "sh", Code: `read -r inv; echo "{\"pid\":$$,\"id\":\"$DEVICELESS_INVOCATION_ID\"}"`,
			Warm: &protocol.Warm{Idle: protocol.Duration(time.Minute), MaxUses: 100}},
	}
	startAgent(t, cfg, cl)
	var pids []int
	for i := range 3 {
		id := fmt.Sprintf("warm-%d", i)
		res := cl.invoke(cfg.ID, protocol.Invocation{ID: id, Function: "counter"})
		var out struct {
			PID int
			ID  string
		}
		if res.Status != protocol.StatusOK || json.Unmarshal(res.Output, &out) != nil || out.ID != id {
			t.Fatalf("warm %d: %+v", i, res)
		}
		if res.Cold != (i == 0) {
			t.Fatalf("invocation %d cold=%v", i, res.Cold)
		}
		pids = append(pids, out.PID)
	}
}

func TestReconnectKeepsInvocations(t *testing.T) {
	broker := startBroker(t)
	px := newProxy(t, "tcp", "127.0.0.1:0", broker)
	cl := newClient(t, broker, "deviceless/agents/+/status", "deviceless/agents/+/result")
	cfg := testConfig(t, px.addr())
	startAgent(t, cfg, cl)
	topics := protocol.Topics{}

	// One round trip: the agent's subscriptions are in place.
	payload, _ := json.Marshal(shInvocation("online-0", "echo 0"))
	cl.publish(topics.AgentInvoke(cfg.ID), payload, nil)
	cl.await(topics.AgentResult(cfg.ID), nil)

	// The broker becomes unreachable for the agent; the engine keeps sending.
	px.setUp(false)
	cl.status(cfg.ID, func(s protocol.Status) bool { return !s.Online }) // its last will
	for i := range 3 {
		payload, _ := json.Marshal(shInvocation(fmt.Sprintf("offline-%d", i), fmt.Sprintf("echo %d", i)))
		cl.publish(topics.AgentInvoke(cfg.ID), payload, nil)
	}
	px.setUp(true)
	got := map[string]bool{}
	for len(got) < 3 {
		cl.await(topics.AgentResult(cfg.ID), func(p *paho.Publish) bool {
			var r protocol.Result
			if json.Unmarshal(p.Payload, &r) != nil || !strings.HasPrefix(r.ID, "offline-") || got[r.ID] || r.Status != protocol.StatusOK {
				return false
			}
			got[r.ID] = true
			return true
		})
	}
	cl.status(cfg.ID, func(s protocol.Status) bool { return s.Online })
}

func TestPodmanOutageAndRecovery(t *testing.T) {
	broker := startBroker(t)
	cl := newClient(t, broker, "deviceless/agents/+/status", "test/replies/#")
	cfg := testConfig(t, broker)
	real := cfg.Podman.Socket
	sock := filepath.Join(t.TempDir(), "podman.sock") // nothing listens yet: the service is down
	cfg.Podman.Socket = sock
	_, stop := startAgentStop(t, cfg, cl)
	cl.status(cfg.ID, func(s protocol.Status) bool { return s.Online && !s.Healthy && s.Problem != "" })
	res := cl.invoke(cfg.ID, shInvocation("down-1", `echo 1`))
	if res.Status != protocol.StatusError || !strings.Contains(res.Error, "podman") {
		t.Fatalf("with podman down: %+v", res)
	}
	// The service comes back.
	newProxy(t, "unix", sock, real)
	res = cl.invoke(cfg.ID, shInvocation("up-1", `echo 1`))
	if res.Status != protocol.StatusOK {
		t.Fatalf("after recovery: %+v", res)
	}
	cl.status(cfg.ID, func(s protocol.Status) bool { return s.Online && s.Healthy })
	stop() // while the service is still reachable, so the agent removes its containers
}

func TestShutdownGoesOffline(t *testing.T) {
	broker := startBroker(t)
	cl := newClient(t, broker, "deviceless/agents/+/status")
	cfg := testConfig(t, broker)
	a, err := New(cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	cl.status(cfg.ID, func(s protocol.Status) bool { return s.Online })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
	cl.status(cfg.ID, func(s protocol.Status) bool { return !s.Online })
	if err := a.Run(context.Background()); err == nil {
		t.Fatal("second Run accepted")
	}
}

// hungPodman is a podman socket that accepts connections and never answers.
func hungPodman(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "podman.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return sock
}

// A podman service that stops answering fails each invocation within podman.timeout's
// bound instead of holding the worker forever: with one worker, the invocations behind
// the first one are answered too.
func TestHungPodmanFreesTheWorker(t *testing.T) {
	broker := startBroker(t)
	cl := newClient(t, broker, "deviceless/agents/+/status", "test/replies/#")
	cfg := testConfig(t, broker)
	cfg.Podman.Socket = hungPodman(t)
	cfg.Podman.Timeout = 500 * time.Millisecond
	cfg.Concurrency = 1
	startAgent(t, cfg, cl)
	const bound = 20 * time.Second // a few calls of 500ms (the bindings retry each 3 times) on a loaded machine
	for i := range 3 {
		t0 := time.Now()
		res := cl.invoke(cfg.ID, shInvocation(fmt.Sprintf("hung-%d", i), `echo 1`))
		if took := time.Since(t0); res.Status != protocol.StatusError || !strings.Contains(res.Error, "podman") || took > bound {
			t.Fatalf("invocation %d: %s %q after %s, want an error naming podman within %s", i, res.Status, res.Error, took, bound)
		}
	}
}
