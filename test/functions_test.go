package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// faasRules is the engine's rule file before any function is deployed; faasRulesInvoking
// adds rules that invoke the deployed function, the latest and a pinned version.
const faasRules = `
functions:
  echo:
    runtime: sh
    code: 'read -r inv; echo 1'
rules: []
`

const faasRulesInvoking = `
functions:
  echo:
    runtime: sh
    code: 'read -r inv; echo 1'
rules:
  - name: fan-latest
    on: e2e/fan/latest
    do: [{invoke: alice.fan, args: {celsius: payload.celsius}}]
  - name: fan-pinned
    on: e2e/fan/pinned
    do: [{invoke: alice.fan@1, args: {celsius: payload.celsius}}]
`

// fanCode is a python3 function that says which version it is and which container it
// runs in (the hostname is the container's).
func fanCode(version string) string {
	return fmt.Sprintf(`import json, os, socket, sys
inv = json.load(sys.stdin)
print(json.dumps({"version": %q, "host": socket.gethostname(), "fn": os.environ["DEVICELESS_FUNCTION"],
                  "speed": 2 if inv.get("args", {}).get("celsius", 0) > 28 else 1}))
`, version)
}

type fanOutput struct {
	Version, Host, Fn string
	Speed             int
}

// faasResult is a result with what the functions tests look at.
type faasResult struct {
	ID       string          `json:"id"`
	Agent    string          `json:"agent"`
	Function string          `json:"function"`
	Rule     string          `json:"rule"`
	Status   string          `json:"status"`
	Output   json.RawMessage `json:"output"`
	Error    string          `json:"error"`
	Cold     bool            `json:"cold"`
	Caller   string          `json:"caller"`
	Timings  struct {
		Run float64 `json:"run"`
	} `json:"timings_ms"`
}

func (r faasResult) fan(t testing.TB) fanOutput {
	t.Helper()
	var o fanOutput
	if err := json.Unmarshal(r.Output, &o); err != nil {
		t.Fatalf("output of %+v: %v", r, err)
	}
	return o
}

// cli runs the deviceless binary as a user of the cluster and returns its exit code,
// stdout and stderr.
func (c *cluster) cli(user string, args ...string) (int, string, string) {
	c.t.Helper()
	cmd := exec.Command(bin, append(args, "--http", c.http)...)
	cmd.Env = append(os.Environ(), "DEVICELESS_TOKEN=", "DEVICELESS_USER="+user+":"+password(user))
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("deviceless %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// api sends an API request as a broker user.
func (c *cluster) api(method, path, user string, body string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, "http://"+c.http+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.SetBasicAuth(user, password(user))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// mqttInvoke sends an MQTT v5 request with mosquitto_rr as user and returns the response.
func (c *cluster) mqttInvoke(user, function, payload string) faasResult {
	c.t.Helper()
	host, port, _ := net.SplitHostPort(c.mqtt)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mosquitto_rr", "-h", host, "-p", port, "-u", user, "-P", password(user), "-V", "mqttv5",
		"-q", "1", "-t", "deviceless/invoke/"+function, "-e", "deviceless/responses/"+user+"/"+randHex(3), "-m", payload, "-W", "60").CombinedOutput()
	if err != nil {
		c.t.Fatalf("mosquitto_rr %s: %v: %s", function, err, out)
	}
	return decode[faasResult](c.t, strings.TrimSpace(string(out)))
}

// TestFunctionsAsAService: a developer deploys a python3 function over HTTP and invokes it
// from a rule, over HTTP and over MQTT v5; a second version runs at the next invocation in a
// container of its own (v1's warm one is not reused), a pinned @1 runs v1; a deleted function
// is gone, and after a restart v2 is still deployed with the same usage figures, which equal
// the invocation history's. Developers stay in their namespace and on agents that admit it;
// clients deploy nothing; bad specs are answered with their fields.
func TestFunctionsAsAService(t *testing.T) {
	suffix := randHex(3)
	tenant, other := "fa-"+suffix, "fb-"+suffix
	c := newCluster(t, faasRules, tenant, other)
	c.users = append(c.users, user{"alice", "developer"}, user{"bob", "developer"})
	c.startEngine()
	c.addAgent(tenant, map[string]string{"site": "e2e", "tenants": "alice"})
	c.addAgent(other, map[string]string{"site": "e2e"})
	c.waitAgents(true, tenant, other)
	sub := c.mosquittoSub("observer", "obs", nil, "deviceless/results/#", "e2e/probe")
	c.waitSubscribed(sub, "e2e/probe")

	// v1 over HTTP (the CLI, from a file with its code beside it), warm.
	write := func(name, body string) string {
		p := filepath.Join(c.dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("fan1.py", fanCode("v1"))
	write("fan2.py", fanCode("v2"))
	deployFile := write("fan.yaml", "name: alice.fan\nruntime: python3\ncode_file: fan1.py\ntimeout: 20s\nmemory: 64Mi\nwarm: {idle: 5m}\ntarget: {labels: {site: e2e}}\ndescription: fan speed\n")
	if code, out, errs := c.cli("alice", "functions", "deploy", deployFile); code != 0 || !strings.HasPrefix(out, "deployed alice.fan@1") {
		t.Fatalf("deploy v1: %d %q %q", code, out, errs)
	}
	invokeCLI := func(user, ref, args string) faasResult {
		t.Helper()
		code, out, errs := c.cli(user, "invoke", ref, "--args", args)
		if code != 0 {
			t.Fatalf("deviceless invoke %s as %s: %d %s %s", ref, user, code, out, errs)
		}
		return decode[faasResult](t, out)
	}
	// The label target takes in both agents; only the tenant's runs alice's function.
	r1 := invokeCLI("alice", "alice.fan", `{"celsius": 31}`)
	r2 := invokeCLI("alice", "alice.fan", `{"celsius": 20}`)
	o1, o2 := r1.fan(t), r2.fan(t)
	if r1.Agent != tenant || r2.Agent != tenant || o1.Version != "v1" || o1.Fn != "alice.fan@1" || o1.Speed != 2 || o2.Speed != 1 {
		t.Fatalf("v1 invocations: %+v %+v / %+v %+v", r1, o1, r2, o2)
	}
	if !r1.Cold || r2.Cold || o2.Host != o1.Host {
		t.Fatalf("v1 runs warm from its second invocation: cold %v %v, hosts %s %s", r1.Cold, r2.Cold, o1.Host, o2.Host)
	}

	// v2: the next invocation runs it, in a new container; @1 still runs in v1's.
	if code, out, errs := c.cli("alice", "functions", "deploy", deployFile, "--code-file", filepath.Join(c.dir, "fan2.py")); code != 0 || !strings.HasPrefix(out, "deployed alice.fan@2") {
		t.Fatalf("deploy v2: %d %q %q", code, out, errs)
	}
	r3 := invokeCLI("alice", "alice.fan", `{"celsius": 31}`)
	o3 := r3.fan(t)
	if o3.Version != "v2" || r3.Function != "alice.fan@2" || !r3.Cold || o3.Host == o1.Host {
		t.Fatalf("after v2: %+v %+v (v1 ran in %s)", r3, o3, o1.Host)
	}
	r4 := invokeCLI("alice", "alice.fan@1", `{}`)
	if o4 := r4.fan(t); o4.Version != "v1" || o4.Host != o1.Host || r4.Cold {
		t.Fatalf("pinned @1: %+v %+v", r4, o4)
	}
	fns := map[string]bool{}
	for _, ct := range containers(t, c.socket, tenant) {
		fns[ct.Labels["io.deviceless.function"]] = true
	}
	if !fns["alice.fan@1"] || !fns["alice.fan@2"] {
		t.Fatalf("containers by function label: %v", fns)
	}

	// Over MQTT v5, as the developer (request/response with mosquitto_rr).
	if r := c.mqttInvoke("alice", "alice.fan", `{"args":{"celsius": 30}}`); r.Status != "ok" || r.fan(t).Version != "v2" || r.Agent != tenant {
		t.Fatalf("MQTT invoke: %+v", r)
	}
	if r := c.mqttInvoke("alice", "alice.fan@1", `{}`); r.Status != "ok" || r.fan(t).Version != "v1" {
		t.Fatalf("MQTT invoke @1: %+v", r)
	}
	// A client may not invoke alice's function, over MQTT or HTTP.
	if r := c.mqttInvoke("nodered", "alice.fan", `{}`); r.Status != "error" || !strings.Contains(r.Error, "may not invoke") {
		t.Fatalf("client's MQTT invoke: %+v", r)
	}
	if code, _, errs := c.cli("nodered", "invoke", "alice.fan"); code != 1 || !strings.Contains(errs, "403") {
		t.Fatalf("client's HTTP invoke: %d %s", code, errs)
	}

	// From rules: a rule file that waits for no function any more loads; one rule follows
	// the latest version, one pins @1.
	if err := os.WriteFile(filepath.Join(c.rules, "e2e.yaml"), []byte(faasRulesInvoking), 0o644); err != nil {
		t.Fatal(err)
	}
	c.engine.out.WaitLine(t, 20*time.Second, "rules reloaded", "fan-latest fan-pinned")
	c.pub("dev", "e2e/fan/latest", `{"celsius": 35}`, 1)
	c.pub("dev", "e2e/fan/pinned", `{"celsius": 10}`, 1)
	latest := decode[faasResult](t, waitMessage(t, sub, time.Minute, "deviceless/results/alice.fan@2", `"rule":"fan-latest"`))
	pinned := decode[faasResult](t, waitMessage(t, sub, time.Minute, "deviceless/results/alice.fan@1", `"rule":"fan-pinned"`))
	if latest.Status != "ok" || latest.fan(t).Speed != 2 || pinned.Status != "ok" || pinned.fan(t).Version != "v1" || pinned.fan(t).Speed != 1 {
		t.Fatalf("rule invocations: %+v %+v", latest, pinned)
	}

	// Who may deploy what, where; bad specs.
	if code, _, errs := c.cli("bob", "functions", "deploy", "--name", "alice.evil", "--runtime", "sh", "--code-file", deployFile); code != 1 || !strings.Contains(errs, "deploys only under its namespace: bob.<name>") {
		t.Fatalf("bob deploys into alice's namespace: %d %s", code, errs)
	}
	if code, _, errs := c.cli("alice", "functions", "deploy", "--name", "alice.pinned", "--runtime", "sh", "--code-file", deployFile,
		"--target", fmt.Sprintf(`{"agent":%q}`, other)); code != 1 || !strings.Contains(errs, "target.agent: agent "+other+" does not run functions of namespace alice") {
		t.Fatalf("alice targets an agent that does not admit her: %d %s", code, errs)
	}
	if code, _, errs := c.cli("nodered", "functions", "deploy", "--name", "nodered.x", "--runtime", "sh", "--code-file", deployFile); code != 1 || !strings.Contains(errs, "Forbidden") {
		t.Fatalf("a client deploys: %d %s", code, errs)
	}
	bad := write("bad.yaml", "name: alice.bad\nruntime: python3\ncode: 'print(1)'\nmemory: 1Mi\ntimeout: 5s\nwarm: {idle: 1m, max_uses: -3}\n")
	if code, _, errs := c.cli("alice", "functions", "deploy", bad); code != 1 || !strings.Contains(errs, "bad.yaml:4:9: memory: ") || !strings.Contains(errs, "bad.yaml:6:28: warm.max_uses: ") {
		t.Fatalf("bad spec: %d %s", code, errs)
	}
	status, body := c.api(http.MethodPut, "/api/v1/functions/alice.bad", "alice", `{"runtime":"python3","code":"x","timeout":"soon","target":{"agnt":"x"}}`)
	var problems struct {
		Errors []struct{ Field, Error string }
	}
	_ = json.Unmarshal(body, &problems)
	if status != http.StatusBadRequest || len(problems.Errors) != 2 || problems.Errors[0].Field != "target.agnt" || problems.Errors[1].Field != "timeout" {
		t.Fatalf("bad JSON spec: %d %s", status, body)
	}

	// Logs: a failing version shows its stderr tail.
	write("fail.py", "import sys\nprint('the sensor is gone', file=sys.stderr)\nsys.exit(3)\n")
	if code, out, errs := c.cli("alice", "functions", "deploy", "--name", "alice.broken", "--runtime", "python3", "--code-file", filepath.Join(c.dir, "fail.py")); code != 0 {
		t.Fatalf("deploy broken: %d %s %s", code, out, errs)
	}
	if r := invokeCLIStatus(t, c, "alice", "alice.broken"); r.Status != "error" {
		t.Fatalf("broken: %+v", r)
	}
	if code, out, _ := c.cli("alice", "logs", "alice.broken"); code != 0 || !strings.Contains(out, "alice.broken@1 on "+tenant+" by user:alice: error exit=3") || !strings.Contains(out, "the sensor is gone") {
		t.Fatalf("logs: %d\n%s", code, out)
	}

	// Usage equals the history's sums, exactly; the CLI prints it.
	before := checkUsage(t, c)
	if code, out, _ := c.cli("alice", "usage", "--by", "version,caller"); code != 0 || !strings.Contains(out, "alice.fan@2") || !strings.Contains(out, "rule:fan-pinned") {
		t.Fatalf("deviceless usage: %d\n%s", code, out)
	} else {
		t.Logf("deviceless usage --by version,caller:\n%s", out)
	}

	// Delete; restart; v2 still deployed and the usage the same.
	if code, out, errs := c.cli("alice", "functions", "rm", "alice.broken"); code != 0 {
		t.Fatalf("rm: %d %s %s", code, out, errs)
	}
	if code, _, errs := c.cli("alice", "invoke", "alice.broken"); code != 1 || !strings.Contains(errs, "404") {
		t.Fatalf("invoke deleted: %d %s", code, errs)
	}
	if err := c.engine.Stop(t, 30*time.Second); err != nil {
		t.Fatalf("engine stop: %v", err)
	}
	c.startEngine()
	if code, out, _ := c.cli("alice", "functions", "versions", "alice.fan"); code != 0 || !strings.Contains(out, "alice.fan@2") {
		t.Fatalf("after restart: %d\n%s", code, out)
	}
	if code, _, errs := c.cli("alice", "functions", "show", "alice.broken"); code != 1 || !strings.Contains(errs, "Not Found") {
		t.Fatalf("deleted after restart: %d %s", code, errs)
	}
	after := usageReport(t, c, "by=version,caller")
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("usage changed across the restart:\nbefore %+v\nafter  %+v", before, after)
	}
	c.waitAgents(true, tenant)
	if r := invokeCLI("alice", "alice.fan", `{}`); r.fan(t).Version != "v2" {
		t.Fatalf("after restart: %+v", r)
	}
}

func invokeCLIStatus(t *testing.T, c *cluster, user, ref string) faasResult {
	t.Helper()
	_, out, errs := c.cli(user, "invoke", ref)
	if out == "" {
		t.Fatalf("invoke %s: %s", ref, errs)
	}
	return decode[faasResult](t, out)
}

type usageRow struct {
	Function    string           `json:"function"`
	Version     int              `json:"version"`
	Caller      string           `json:"caller"`
	Invocations int64            `json:"invocations"`
	ByStatus    map[string]int64 `json:"by_status"`
	RunMS       int64            `json:"run_ms"`
	GBMS        float64          `json:"gb_ms"`
	ColdStarts  int64            `json:"cold_starts"`
}

type usageRep struct {
	Usage []usageRow `json:"usage"`
	Total usageRow   `json:"total"`
}

func usageReport(t *testing.T, c *cluster, query string) usageRep {
	t.Helper()
	var rep usageRep
	if err := getJSON("http://"+c.http+"/api/v1/usage?"+query, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// checkUsage compares /api/v1/usage by version and caller with the sums over
// /api/v1/invocations (every function of this test has 64Mi, the default) and returns it.
func checkUsage(t *testing.T, c *cluster) usageRep {
	t.Helper()
	var hist struct {
		Invocations []faasResult `json:"invocations"`
	}
	if err := getJSON("http://"+c.http+"/api/v1/invocations?limit=1000", &hist); err != nil {
		t.Fatal(err)
	}
	rows := map[string]*usageRow{}
	var total usageRow
	total.ByStatus = map[string]int64{}
	for _, r := range hist.Invocations {
		name, v, _ := strings.Cut(r.Function, "@")
		version := 0
		if v != "" {
			fmt.Sscan(v, &version)
		}
		k := r.Function + " " + r.Caller
		row := rows[k]
		if row == nil {
			row = &usageRow{Function: name, Version: version, Caller: r.Caller, ByStatus: map[string]int64{}}
			rows[k] = row
		}
		ms := int64(math.Ceil(r.Timings.Run))
		for _, x := range []*usageRow{row, &total} {
			x.Invocations++
			x.ByStatus[r.Status]++
			x.RunMS += ms
			x.GBMS += float64(64*ms) / 1024
			if r.Cold {
				x.ColdStarts++
			}
		}
	}
	got := usageReport(t, c, "by=version,caller")
	var want []usageRow
	for _, r := range rows {
		want = append(want, *r)
	}
	sort.Slice(want, func(i, j int) bool {
		a, b := want[i], want[j]
		return fmt.Sprintf("%s\x00%09d\x00%s", a.Function, a.Version, a.Caller) < fmt.Sprintf("%s\x00%09d\x00%s", b.Function, b.Version, b.Caller)
	})
	if total.Invocations < 9 || fmt.Sprint(want) != fmt.Sprint(got.Usage) || fmt.Sprint(total) != fmt.Sprint(got.Total) {
		t.Fatalf("usage is not the history's:\nhistory %+v\n        %+v\nusage   %+v\n        %+v", want, total, got.Usage, got.Total)
	}
	t.Logf("usage = history: %d invocations, %d run ms, %.4f GB-ms, %d cold starts", total.Invocations, total.RunMS, total.GBMS, total.ColdStarts)
	return got
}

// TestDeployToFirstInvocation measures, 20 times, from the PUT of a new version of a python3
// function to the result of its first invocation over HTTP: the deploy, the dispatch and
// the cold start of a container for the new version (no warm runner or prepared container
// can serve it). The p50 goes to BENCHMARKS.md (target ≤ 1 s).
func TestDeployToFirstInvocation(t *testing.T) {
	agent := "bench-" + randHex(3)
	c := newCluster(t, faasRules, agent)
	c.users = append(c.users, user{"alice", "developer"})
	c.startEngine()
	c.addAgent(agent, map[string]string{"tenants": "alice"})
	c.waitAgents(true, agent)
	const n = 20
	var took, puts []time.Duration
	for i := range n {
		body, _ := json.Marshal(map[string]any{"runtime": "python3", "code": fanCode(fmt.Sprintf("v%d", i+1)), "timeout": "20s"})
		start := time.Now()
		status, b := c.api(http.MethodPut, "/api/v1/functions/alice.bench", "alice", string(body))
		if status != http.StatusCreated {
			t.Fatalf("deploy %d: %d %s", i+1, status, b)
		}
		puts = append(puts, time.Since(start))
		status, b = c.api(http.MethodPost, "/api/v1/invoke/alice.bench", "alice", `{}`)
		d := time.Since(start)
		r := decode[faasResult](t, string(b))
		if status != http.StatusOK || r.Status != "ok" || r.fan(t).Version != fmt.Sprintf("v%d", i+1) || !r.Cold {
			t.Fatalf("invocation %d: %d %s", i+1, status, b)
		}
		took = append(took, d)
	}
	slices.Sort(took)
	slices.Sort(puts)
	t.Logf("deploy to first invocation (python3, cold), n=%d: p50 %s, min %s, p90 %s, max %s; the PUT alone: p50 %s",
		n, took[n/2].Round(time.Millisecond), took[0].Round(time.Millisecond), took[n*9/10].Round(time.Millisecond), took[n-1].Round(time.Millisecond),
		puts[n/2].Round(100*time.Microsecond))
}
