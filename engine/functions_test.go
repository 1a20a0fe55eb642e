package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/bcrypt"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/protocol"
)

// faasConfig is testConfig with a state folder (deployed functions, usage), developers alice and bob (password
// "pw-" + name) and a developer token for carol.
func faasConfig(t *testing.T, rulesDir, store string) Config {
	t.Helper()
	cfg := testConfig(t, rulesDir)
	for _, name := range []string{"alice", "bob"} {
		h, err := bcrypt.GenerateFromPassword([]byte("pw-"+name), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Broker.Users = append(cfg.Broker.Users, broker.User{Username: name, PasswordHash: string(h), Role: broker.RoleDeveloper})
	}
	cfg.API.Tokens = append(cfg.API.Tokens, APIToken{Name: "carol", Hash: HashAPIToken(carolToken), Role: broker.RoleDeveloper})
	cfg.State = store
	return cfg
}

const carolToken = "carol-developer-token-0123"

// call sends an API request as who ("user" for HTTP basic with the test password, or
// "token:T") and returns the status and body.
func call(t *testing.T, method, url, who, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok, ok := strings.CutPrefix(who, "token:"); ok {
		req.Header.Set("Authorization", "Bearer "+tok)
	} else {
		req.SetBasicAuth(who, "pw-"+who)
	}
	if method == http.MethodPost || method == http.MethodPut {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func decodeAs[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

// versionAgent answers with the function and code it was sent, so a test sees which
// version ran; code "fail" fails with a stderr tail.
func versionAgent(run float64) func(protocol.Invocation) *protocol.Result {
	return func(inv protocol.Invocation) *protocol.Result {
		if inv.Spec.Code == "fail" {
			return &protocol.Result{Status: protocol.StatusError, Error: "exit status 1: Traceback: boom", ExitCode: 1, Timings: protocol.Timings{Run: run}}
		}
		out, _ := json.Marshal(map[string]string{"function": inv.Function, "code": inv.Spec.Code})
		return &protocol.Result{Status: protocol.StatusOK, Output: out, Cold: strings.HasSuffix(inv.ID, "1"), Timings: protocol.Timings{Run: run, Total: run + 1}}
	}
}

type ranOutput struct {
	Function, Code string
}

func invokeAs(t *testing.T, base, who, ref, body string) (int, protocol.Result, ranOutput) {
	t.Helper()
	code, b := call(t, http.MethodPost, base+"/api/v1/invoke/"+ref, who, body)
	if code != http.StatusOK {
		return code, protocol.Result{Error: string(b)}, ranOutput{}
	}
	res := decodeAs[protocol.Result](t, b)
	var out ranOutput
	_ = json.Unmarshal(res.Output, &out)
	return code, res, out
}

// TestFunctionLifecycle deploys, versions, pins, invokes over HTTP, MQTT and from a rule,
// meters, deletes, and finds the functions and their usage again after a restart.
func TestFunctionLifecycle(t *testing.T) {
	rulesDir, store := t.TempDir(), t.TempDir()
	writeRules(t, rulesDir, echoRules)
	cfg := faasConfig(t, rulesDir, store)
	e, stop := startStoppable(t, cfg)
	base := "http://" + e.HTTPAddr()
	startAgent(t, e.BrokerAddr(), "a1", map[string]string{"tenants": "alice,carol"}, versionAgent(5.2))
	startAgent(t, e.BrokerAddr(), "a2", map[string]string{"zone": "south"}, versionAgent(7))
	waitAgents(t, e, 2)

	// A first version; the same body again changes nothing.
	v1 := `{"runtime":"sh","code":"v1","description":"fan speed","timeout":"2s"}`
	code, b := call(t, http.MethodPut, base+"/api/v1/functions/alice.fan", "alice", v1)
	if d := decodeAs[DeployResult](t, b); code != http.StatusCreated || d.Version != 1 || d.Ref != "alice.fan@1" || !d.Created {
		t.Fatalf("deploy v1: %d %s", code, b)
	}
	code, b = call(t, http.MethodPut, base+"/api/v1/functions/alice.fan", "alice", v1)
	if d := decodeAs[DeployResult](t, b); code != http.StatusOK || d.Version != 1 || d.Created {
		t.Fatalf("deploy v1 again: %d %s", code, b)
	}
	// Only a1 admits tenant alice: every invocation runs there.
	for range 3 {
		code, res, out := invokeAs(t, base, "alice", "alice.fan", `{"args":{"x":1}}`)
		if code != 200 || res.Status != "ok" || res.Agent != "a1" || out != (ranOutput{"alice.fan@1", "v1"}) {
			t.Fatalf("invoke v1: %d %+v %+v", code, res, out)
		}
	}

	// A second version is what the name means now; @1 stays v1.
	code, b = call(t, http.MethodPut, base+"/api/v1/functions/alice.fan", "alice", `{"runtime":"sh","code":"v2","timeout":"2s"}`)
	if d := decodeAs[DeployResult](t, b); code != http.StatusCreated || d.Version != 2 {
		t.Fatalf("deploy v2: %d %s", code, b)
	}
	if _, res, out := invokeAs(t, base, "alice", "alice.fan", ""); res.Status != "ok" || out != (ranOutput{"alice.fan@2", "v2"}) {
		t.Fatalf("invoke after v2: %+v %+v", res, out)
	}
	if _, res, out := invokeAs(t, base, "token:"+testToken, "alice.fan@1", ""); res.Status != "ok" || out != (ranOutput{"alice.fan@1", "v1"}) {
		t.Fatalf("invoke @1: %+v %+v", res, out)
	}
	if code, _, _ := invokeAs(t, base, "alice", "alice.fan@3", ""); code != http.StatusNotFound {
		t.Fatalf("invoke @3: %d", code)
	}

	// Over MQTT v5, as the developer alice.
	cl := connect(t, e.BrokerAddr(), "alice", nil, nil)
	reply := "deviceless/responses/alice"
	cl.sub(t, reply)
	cl.pub(t, &paho.Publish{Topic: "deviceless/invoke/alice.fan@2", QoS: 1, Payload: []byte(`{}`),
		Properties: &paho.PublishProperties{ResponseTopic: reply, CorrelationData: []byte("m1")}})
	var res protocol.Result
	if err := json.Unmarshal(cl.next(t, reply).Payload, &res); err != nil || res.Status != "ok" || res.Function != "alice.fan@2" {
		t.Fatalf("MQTT invoke: %+v %v", res, err)
	}
	// bob, another developer, may not invoke alice's function over MQTT either.
	bob := connect(t, e.BrokerAddr(), "bob", nil, nil)
	bob.sub(t, "deviceless/responses/bob")
	bob.pub(t, &paho.Publish{Topic: "deviceless/invoke/alice.fan", QoS: 1, Payload: []byte(`{}`),
		Properties: &paho.PublishProperties{ResponseTopic: "deviceless/responses/bob", CorrelationData: []byte("b1")}})
	if err := json.Unmarshal(bob.next(t, "deviceless/responses/bob").Payload, &res); err != nil || res.Status != "error" || !strings.Contains(res.Error, "may not invoke") {
		t.Fatalf("bob's MQTT invoke: %+v %v", res, err)
	}

	// From rules: one pins @1, one follows the latest.
	writeRules(t, rulesDir, echoRules+`
  - name: pinned
    on: fans/pinned
    do: [{invoke: alice.fan@1}]
  - name: latest
    on: fans/latest
    do: [{invoke: alice.fan}]
`)
	eventually(t, "the rules reloaded", func() bool { return e.ruleSet().Rule("latest") != nil })
	mosquittoPub(t, e.BrokerAddr(), "-t", "fans/pinned", "-m", "{}", "-q", "1")
	mosquittoPub(t, e.BrokerAddr(), "-t", "fans/latest", "-m", "{}", "-q", "1")
	eventually(t, "the rules' invocations", func() bool {
		n := 0
		for _, r := range e.history.list(0) {
			if r.Rule == "pinned" && r.Function == "alice.fan@1" && r.Caller == "rule:pinned" || r.Rule == "latest" && r.Function == "alice.fan@2" {
				n++
			}
		}
		return n == 2
	})

	// A failing invocation shows in the function's logs with the agent's error.
	code, _ = call(t, http.MethodPut, base+"/api/v1/functions/alice.fan", "alice", `{"runtime":"sh","code":"fail","timeout":"2s"}`)
	if code != http.StatusCreated {
		t.Fatalf("deploy v3: %d", code)
	}
	if _, res, _ := invokeAs(t, base, "alice", "alice.fan", ""); res.Status != "error" {
		t.Fatalf("v3: %+v", res)
	}
	code, b = call(t, http.MethodGet, base+"/api/v1/functions/alice.fan/logs", "alice", "")
	logs := decodeAs[struct{ Invocations []LogEntry }](t, b)
	if code != 200 || len(logs.Invocations) < 8 || logs.Invocations[0].Function != "alice.fan@3" || !strings.Contains(logs.Invocations[0].Error, "Traceback: boom") {
		t.Fatalf("logs: %d %s", code, b)
	}
	if code, _ := call(t, http.MethodGet, base+"/api/v1/functions/alice.fan/logs", "bob", ""); code != http.StatusForbidden {
		t.Fatalf("bob reads alice's logs: %d", code)
	}

	// The list shows the rule file's function read-only beside the deployed one; the
	// detail lists the versions, with the code for alice only.
	code, b = call(t, http.MethodGet, base+"/api/v1/functions", "app", "")
	list := decodeAs[struct{ Functions []FunctionView }](t, b)
	if code != 200 || len(list.Functions) != 2 || list.Functions[0].Name != "alice.fan" || list.Functions[0].Version != 3 ||
		list.Functions[0].ReadOnly || list.Functions[1].Name != "echo" || !list.Functions[1].ReadOnly || list.Functions[0].Spec.Code != "" {
		t.Fatalf("list: %d %s", code, b)
	}
	code, b = call(t, http.MethodGet, base+"/api/v1/functions/alice.fan@2", "alice", "")
	det := decodeAs[FunctionDetail](t, b)
	if code != 200 || det.Version != 2 || det.Spec.Code != "v2" || det.Spec.Memory != protocol.DefaultMemory || len(det.Versions) != 3 || det.Versions[0].Description != "fan speed" {
		t.Fatalf("show @2: %d %s", code, b)
	}
	_, b = call(t, http.MethodGet, base+"/api/v1/functions/alice.fan", "bob", "")
	if det := decodeAs[FunctionDetail](t, b); det.Spec.Code != "" || !det.Redacted {
		t.Fatalf("bob sees alice's code: %s", b)
	}

	// Usage equals the history, by function, version and caller (the rule invocations
	// count as their rules').
	checkUsageMatchesHistory(t, e, base)

	// A function the loaded rules invoke cannot be deleted; once they stop, it can.
	if code, b := call(t, http.MethodDelete, base+"/api/v1/functions/alice.fan", "alice", ""); code != http.StatusConflict || !strings.Contains(string(b), "rule pinned") {
		t.Fatalf("delete while invoked by rules: %d %s", code, b)
	}
	writeRules(t, rulesDir, echoRules)
	eventually(t, "the rules reloaded", func() bool { return e.ruleSet().Rule("latest") == nil })
	if code, b := call(t, http.MethodPut, base+"/api/v1/functions/alice.tmp", "alice", `{"runtime":"sh","code":"x"}`); code != http.StatusCreated {
		t.Fatalf("deploy tmp: %d %s", code, b)
	}
	if code, b := call(t, http.MethodDelete, base+"/api/v1/functions/alice.tmp", "bob", ""); code != http.StatusForbidden {
		t.Fatalf("bob deletes alice's: %d %s", code, b)
	}
	if code, b := call(t, http.MethodDelete, base+"/api/v1/functions/alice.tmp", "alice", ""); code != http.StatusOK {
		t.Fatalf("delete: %d %s", code, b)
	}
	if code, _, _ := invokeAs(t, base, "alice", "alice.tmp", ""); code != http.StatusNotFound {
		t.Fatalf("invoke deleted: %d", code)
	}
	_, before := call(t, http.MethodGet, base+"/api/v1/usage?by=function,version,agent,rule,caller", "token:"+testToken, "")

	// After a restart: alice.fan at version 3, alice.tmp gone, and a new deploy of
	// alice.tmp continues its numbering; the usage figures are the same.
	stop()
	e = startEngine(t, cfg)
	base = "http://" + e.HTTPAddr()
	code, b = call(t, http.MethodGet, base+"/api/v1/functions/alice.fan", "alice", "")
	if det := decodeAs[FunctionDetail](t, b); code != 200 || det.Version != 3 || len(det.Versions) != 3 || det.Versions[1].Ref != "alice.fan@2" {
		t.Fatalf("after restart: %d %s", code, b)
	}
	if code, _ := call(t, http.MethodGet, base+"/api/v1/functions/alice.tmp", "alice", ""); code != http.StatusNotFound {
		t.Fatalf("deleted function after restart: %d", code)
	}
	code, b = call(t, http.MethodPut, base+"/api/v1/functions/alice.tmp", "alice", `{"runtime":"sh","code":"y"}`)
	if d := decodeAs[DeployResult](t, b); code != http.StatusCreated || d.Version != 2 {
		t.Fatalf("deploy after delete: %d %s", code, b)
	}
	_, after := call(t, http.MethodGet, base+"/api/v1/usage?by=function,version,agent,rule,caller", "token:"+testToken, "")
	type report struct {
		Usage []UsageRow
		Total UsageRow
	}
	if diff := cmp.Diff(decodeAs[report](t, before), decodeAs[report](t, after)); diff != "" {
		t.Fatalf("usage after a restart (-before +after):\n%s", diff)
	}
}

// checkUsageMatchesHistory compares /api/v1/usage with the sums of /api/v1/invocations.
func checkUsageMatchesHistory(t *testing.T, e *running, base string) {
	t.Helper()
	_, b := call(t, http.MethodGet, base+"/api/v1/invocations?limit=1000", "token:"+testToken, "")
	hist := decodeAs[struct{ Invocations []Record }](t, b)
	want := map[string]*UsageRow{}
	total := UsageRow{ByStatus: map[string]int64{}}
	for _, r := range hist.Invocations {
		name, v, err := splitRef(r.Function)
		if err != nil {
			t.Fatal(err)
		}
		mem := int64(protocol.DefaultMemory)
		if fn := e.ruleSet().Functions[name]; fn != nil {
			mem = int64(fn.Spec.Memory)
		}
		k := fmt.Sprintf("%s@%d %s", name, v, r.Caller)
		row := want[k]
		if row == nil {
			row = &UsageRow{Function: name, Version: v, Caller: r.Caller, ByStatus: map[string]int64{}}
			want[k] = row
		}
		ms := int64(math.Ceil(r.Timings.Run))
		for _, x := range []*UsageRow{row, &total} {
			x.Invocations++
			x.ByStatus[r.Status]++
			x.RunMS += ms
			x.GBMS += float64((mem>>20)*ms) / 1024
			if r.Cold {
				x.ColdStarts++
			}
		}
	}
	var rows []UsageRow
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range want {
			if !yield(k) {
				return
			}
		}
	}) {
		rows = append(rows, *want[k])
	}
	_, b = call(t, http.MethodGet, base+"/api/v1/usage?by=version,caller", "token:"+testToken, "")
	got := decodeAs[UsageReport](t, b)
	if total.Invocations < 9 {
		t.Fatalf("only %d invocations in the history", total.Invocations)
	}
	if diff := cmp.Diff(rows, got.Usage); diff != "" {
		t.Errorf("usage by version and caller (-history +usage):\n%s", diff)
	}
	if diff := cmp.Diff(total, got.Total); diff != "" {
		t.Errorf("usage total (-history +usage):\n%s", diff)
	}
	// A developer reads the usage of what it may invoke: alice her function and echo,
	// bob only echo.
	_, b = call(t, http.MethodGet, base+"/api/v1/usage", "bob", "")
	for _, r := range decodeAs[UsageReport](t, b).Usage {
		if r.Function != "echo" {
			t.Errorf("bob reads the usage of %s", r.Function)
		}
	}
}

// startStoppable starts an engine that the test stops itself (to start another on the
// same store).
func startStoppable(t *testing.T, cfg Config) (*running, func()) {
	t.Helper()
	e, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Engine: e, done: make(chan error, 1)}
	go func() { r.done <- e.Run(ctx) }()
	select {
	case <-e.Ready():
	case err := <-r.done:
		t.Fatalf("engine stopped: %v", err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-r.done; err != nil {
			t.Errorf("engine Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return r, stop
}

// TestDeployChecks: who may deploy what, where, and bad specs answered with field paths.
func TestDeployChecks(t *testing.T) {
	rulesDir := t.TempDir()
	writeRules(t, rulesDir, echoRules)
	e := startEngine(t, faasConfig(t, rulesDir, t.TempDir()))
	base := "http://" + e.HTTPAddr()
	startAgent(t, e.BrokerAddr(), "a1", map[string]string{"tenants": "alice"}, versionAgent(1))
	startAgent(t, e.BrokerAddr(), "a2", nil, versionAgent(1))
	waitAgents(t, e, 2)
	good := `{"runtime":"sh","code":"x"}`
	for _, c := range []struct {
		name, who, fn, body string
		status              int
		fields              []string
	}{
		{"developer in its namespace", "alice", "alice.ok", good, 201, nil},
		{"developer token in its namespace", "token:" + carolToken, "carol.ok", good, 201, nil},
		{"admin anywhere", "ops", "shared", good, 201, nil},
		{"developer outside its namespace", "alice", "bob.fan", good, 403, []string{"name"}},
		{"developer without a namespace", "alice", "fan", good, 403, []string{"name"}},
		{"client", "app", "app.fan", good, 403, nil},
		{"viewer-less device", "dev", "dev.fan", good, 403, nil},
		{"developer targets an agent that does not admit it", "alice", "alice.t", `{"runtime":"sh","code":"x","target":{"agent":"a2"}}`, 403, []string{"target.agent"}},
		{"admin too", "ops", "alice.t", `{"runtime":"sh","code":"x","target":{"agent":"a2"}}`, 403, []string{"target.agent"}},
		{"an agent that admits it", "alice", "alice.t", `{"runtime":"sh","code":"x","target":{"agent":"a1"}}`, 201, nil},
		{"a rule file's function", "ops", "echo", good, 409, []string{"name"}},
		{"a version", "alice", "alice.ok@2", good, 400, []string{"name"}},
		{"a bad name", "alice", "alice..x", good, 400, []string{"name"}},
		{"no runtime or image", "alice", "alice.b", `{"code":"x"}`, 400, []string{"runtime"}},
		// wasm: the module travels with the deploy (module_wasm, base64), else its digest
		// must be one the engine has.
		{"a wasm module", "alice", "alice.w", `{"runtime":"wasm","module_wasm":"AGFzbQEAAAA="}`, 201, nil},
		{"the same module by digest", "alice", "alice.w2", `{"runtime":"wasm","module":"` + protocol.ModuleDigest([]byte("\x00asm\x01\x00\x00\x00")) + `"}`, 201, nil},
		{"a digest the engine lacks", "alice", "alice.w3", `{"runtime":"wasm","module":"` + protocol.ModuleDigest([]byte("other")) + `"}`, 400, []string{"module"}},
		{"a module path", "alice", "alice.w3", `{"runtime":"wasm","module":"fn.wasm"}`, 400, []string{"module"}},
		{"no WebAssembly", "alice", "alice.w3", `{"runtime":"wasm","module_wasm":"aGVsbG8="}`, 400, []string{"module_wasm"}},
		{"a module without runtime wasm", "alice", "alice.w3", `{"runtime":"sh","code":"x","module_wasm":"AGFzbQEAAAA="}`, 400, []string{"module_wasm"}},
		{"a digest that is not the module's", "alice", "alice.w3", `{"runtime":"wasm","module":"` + protocol.ModuleDigest([]byte("other")) + `","module_wasm":"AGFzbQEAAAA="}`, 400, []string{"module"}},
		{"wasm without a module", "alice", "alice.w3", `{"runtime":"wasm"}`, 400, []string{"module"}},
		{"bad values", "alice", "alice.b", `{"runtime":"sh","code":"x","timeout":"5x","memory":"lots","colour":"red","warm":{"idle":"-1s","max_uses":-2,"size":1},"target":{"pick":"some","agnt":"a1"},"env":{"A":1}}`,
			400, []string{"colour", "env", "memory", "target.agnt", "timeout", "warm.size"}},
		{"checks after decoding", "alice", "alice.b", `{"runtime":"sh","code":"x","memory":1024,"warm":{"idle":"-1s","max_uses":-2},"target":{"pick":"some"},"invokers":[""]}`,
			400, []string{"memory", "warm.idle", "warm.max_uses", "target", "invokers[0]"}},
		{"malformed", "alice", "alice.b", `{"runtime":`, 400, []string{""}},
		{"not an object", "alice", "alice.b", `[1]`, 400, []string{""}},
	} {
		code, b := call(t, http.MethodPut, base+"/api/v1/functions/"+c.fn, c.who, c.body)
		if code != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, code, b, c.status)
			continue
		}
		if c.fields == nil {
			continue
		}
		var got struct {
			Error  string
			Errors []FieldProblem
		}
		_ = json.Unmarshal(b, &got)
		var fields []string
		for _, p := range got.Errors {
			fields = append(fields, p.Field)
		}
		if !slices.Equal(fields, c.fields) {
			t.Errorf("%s: fields %q, want %q (%s)", c.name, fields, c.fields, b)
		}
	}
	// A client may invoke shared functions but not alice's; alice's listed invokers may.
	if code, _, _ := invokeAs(t, base, "app", "shared", ""); code != 200 {
		t.Errorf("client invokes a shared function: %d", code)
	}
	if code, _, _ := invokeAs(t, base, "app", "alice.ok", ""); code != http.StatusForbidden {
		t.Errorf("client invokes alice's function: %d", code)
	}
	if code, b := call(t, http.MethodPut, base+"/api/v1/functions/alice.ok", "alice", `{"runtime":"sh","code":"x","invokers":["app"]}`); code != 201 {
		t.Fatalf("invokers: %d %s", code, b)
	}
	if code, res, _ := invokeAs(t, base, "app", "alice.ok", ""); code != 200 || res.Agent != "a1" {
		t.Errorf("listed invoker invokes alice's function: %d %+v", code, res)
	}
	// Nor may a request send alice's function to an agent that does not admit her.
	if code, res, _ := invokeAs(t, base, "alice", "alice.ok", `{"target":{"agent":"a2"}}`); code != http.StatusForbidden {
		t.Errorf("invoke on a2: %d %+v", code, res)
	}
}

// A scheduled rule invokes a deployed function like an event's rule: its latest version,
// on an agent that admits its namespace, as the rule's caller.
func TestScheduledRuleInvokesDeployed(t *testing.T) {
	rulesDir := t.TempDir()
	writeRules(t, rulesDir, echoRules)
	e := startEngine(t, faasConfig(t, rulesDir, t.TempDir()))
	base := "http://" + e.HTTPAddr()
	a1 := startAgent(t, e.BrokerAddr(), "a1", map[string]string{"tenants": "*"}, versionAgent(1))
	startAgent(t, e.BrokerAddr(), "a2", nil, versionAgent(1))
	waitAgents(t, e, 2)
	if code, b := call(t, http.MethodPut, base+"/api/v1/functions/alice.tick", "alice", `{"runtime":"sh","code":"tick"}`); code != http.StatusCreated {
		t.Fatalf("deploy: %d %s", code, b)
	}
	writeRules(t, rulesDir, echoRules+"  - {name: every-second, schedule: {every: 1s}, do: [{invoke: alice.tick}]}\n")
	eventually(t, "a scheduled invocation", func() bool {
		for _, r := range e.history.list(0) {
			if r.Function == "alice.tick@1" && r.Caller == "rule:every-second" && r.Agent == "a1" && r.Status == "ok" {
				return true
			}
		}
		return false
	})
	for _, inv := range a1.invocations() {
		if inv.Function == "alice.tick@1" && (inv.Rule != "every-second" || inv.Event != nil) {
			t.Fatalf("scheduled invocation %+v", inv)
		}
	}
}
