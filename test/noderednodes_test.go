package e2e

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
	"testing"
	"time"
)

// noderedPackage is the Deviceless nodes' npm package in the repository.
const noderedPackage = "integrations/node-red"

// installNodes packs integrations/node-red as npm would publish it and installs the
// tarball into a fresh Node-RED user folder, as a user installs a node package.
func installNodes(t testing.TB, dir string) string {
	t.Helper()
	if _, err := exec.LookPath("npm"); err != nil {
		t.Fatalf("npm is not installed: %s", setupHint)
	}
	packs := filepath.Join(dir, "npm-pack")
	userDir := filepath.Join(dir, "node-red-user")
	for _, d := range []string{packs, userDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	npm := func(wd string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", append(args, "--no-audit", "--no-fund", "--no-update-notifier", "--loglevel=error")...)
		cmd.Dir = wd
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("npm %v in %s: %v\n%s%s", args, wd, err, out.String(), errb.String())
		}
		return strings.TrimSpace(out.String())
	}
	tarball := npm(filepath.Join(repoRoot, noderedPackage), "pack", "--pack-destination", packs)
	if err := os.WriteFile(filepath.Join(userDir, "package.json"), []byte(`{"name":"node-red-user","private":true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// The package has no dependencies of its own: the install needs no registry.
	npm(userDir, "install", "--offline", filepath.Join(packs, filepath.Base(tarball)))
	if _, err := os.Stat(filepath.Join(userDir, "node_modules", "node-red-contrib-deviceless", "nodes", "function.js")); err != nil {
		t.Fatalf("node-red-contrib-deviceless not installed in %s: %v", userDir, err)
	}
	return userDir
}

// nodesRules has a rule whose firings an event node of the flow reports.
const nodesRules = `
functions:
  echo:
    runtime: sh
    code: 'read -r inv; echo "{\"pong\": true}"'
rules:
  - name: ping
    on: e2e/ping
    do: [{invoke: echo}]
`

// edgeCode is the test's python3 function: it says its version, and sleeps when asked.
func edgeCode(version string) string {
	return fmt.Sprintf(`import json, socket, sys, time
inv = json.load(sys.stdin)
args = inv.get("args", {})
time.sleep(float(args.get("sleep", 0)))
print(json.dumps({"version": %q, "ran_on": socket.gethostname(), "celsius": args.get("celsius")}))
`, version)
}

// examplePackageFlow reads the package's example flow and points it at the cluster: the
// engine node at its API as developer alice (credentials, as the editor would store
// them), plus an MQTT broker node and mqtt out nodes that publish what the nodes send
// (results, failures, events) for the test's observer, through a function node that keeps
// msg.deviceless.
func examplePackageFlow(t testing.TB, c *cluster, code string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, noderedPackage, "examples", "python-on-the-edge.json"))
	if err != nil {
		t.Fatal(err)
	}
	var nodes []map[string]any
	if err := json.Unmarshal(raw, &nodes); err != nil {
		t.Fatalf("python-on-the-edge.json: %v", err)
	}
	byID := map[string]map[string]any{}
	for _, n := range nodes {
		byID[n["id"].(string)] = n
	}
	eng, fn, events, mild := byID["dlx.engine"], byID["dlx.fan"], byID["dlx.events"], byID["dlx.mild"]
	if eng == nil || fn == nil || events == nil || mild == nil || fn["mode"] != "inline" || fn["runtime"] != "python3" {
		t.Fatalf("python-on-the-edge.json: want the engine, an inline python3 function, an event node and two injects: %s", raw)
	}
	eng["url"], eng["namespace"] = "http://"+c.http, "alice"
	eng["credentials"] = map[string]string{"user": "alice", "password": password("alice")}
	if code != "" {
		fn["code"] = code
	}
	mild["payload"] = `{"celsius":22,"sleep":4}` // slow: the redeploy below catches it running
	events["function"] = "alice.nr-dlx-fan"
	host, port, _ := net.SplitHostPort(c.mqtt)
	keep := "return {topic: msg.topic, payload: {payload: msg.payload, deviceless: msg.deviceless, error: msg.error && msg.error.message}};"
	wrap := func(id, topic string) []map[string]any {
		return []map[string]any{
			{"id": id + ".wrap", "type": "function", "z": "dlx.tab", "func": keep, "outputs": 1, "x": 900, "y": 300, "wires": [][]string{{id}}},
			{"id": id, "type": "mqtt out", "z": "dlx.tab", "topic": topic, "qos": "1", "retain": "false", "broker": "e2e.broker", "x": 1100, "y": 300, "wires": []any{}},
		}
	}
	fn["wires"] = [][]string{{"dlx.result", "e2e.ok.wrap"}, {"dlx.failure", "e2e.failed.wrap"}}
	events["wires"] = [][]string{{"dlx.seen", "e2e.events.wrap"}}
	nodes = append(nodes, map[string]any{"id": "e2e.broker", "type": "mqtt-broker", "name": "e2e", "broker": host, "port": port,
		"protocolVersion": "5", "keepalive": "30", "cleansession": true, "autoConnect": true,
		"credentials": map[string]string{"user": "nodered", "password": password("nodered")}})
	nodes = append(nodes, wrap("e2e.ok", "nodered/out")...)
	nodes = append(nodes, wrap("e2e.failed", "nodered/failed")...)
	nodes = append(nodes, wrap("e2e.events", "nodered/events")...)
	// An inject whose msg.target asks every greenhouse agent.
	nodes = append(nodes, map[string]any{"id": "e2e.all", "type": "inject", "z": "dlx.tab", "props": []map[string]string{
		{"p": "payload", "v": `{"celsius":30}`, "vt": "json"}, {"p": "target", "v": `{"labels":{"site":"greenhouse"},"pick":"all"}`, "vt": "json"}},
		"payload": `{"celsius":30}`, "payloadType": "json", "x": 100, "y": 500, "wires": [][]string{{"dlx.fan"}}})
	// An event node for one rule's firings.
	nodes = append(nodes, map[string]any{"id": "e2e.rule", "type": "deviceless event", "z": "dlx.tab", "engine": "dlx.engine",
		"function": "", "rule": "ping", "status": "all", "x": 200, "y": 400, "wires": [][]string{{"e2e.rules.wrap"}}})
	nodes = append(nodes, wrap("e2e.rules", "nodered/rules")...)
	out, _ := json.Marshal(nodes)
	return out
}

// nodeOut is what the flow's mqtt out nodes publish.
type nodeOut struct {
	Payload struct {
		Version string  `json:"version"`
		Speed   int     `json:"speed"`
		RanOn   string  `json:"ran_on"`
		Celsius float64 `json:"celsius"`
	} `json:"payload"`
	Deviceless struct {
		ID       string `json:"id"`
		Agent    string `json:"agent"`
		Function string `json:"function"`
		Status   string `json:"status"`
		Rule     string `json:"rule"`
		Cold     bool   `json:"cold"`
		Timings  struct {
			Run float64 `json:"run"`
		} `json:"timings_ms"`
		Ms struct {
			Run float64 `json:"run"`
		} `json:"ms"`
	} `json:"deviceless"`
	Error string `json:"error"`
}

// TestNodeREDNodes installs node-red-contrib-deviceless into a fresh Node-RED 4.1.15 user
// folder and deploys the package's example flow through the admin API against a real
// engine and agent on podman: the inline python3 code is deployed as alice.nr-dlx-fan@1,
// runs on the agent, and its result reaches the next node with the invocation's details;
// the event node reports the same result; msg.target with pick all gives a message per
// agent; new code and a redeploy make @2, which the next
// message runs; an invocation running while the flow is redeployed is not lost silently;
// going back to earlier code makes a new version again;
// the engine login stays in Node-RED's credentials file. Then the editor, in headless
// Chromium, shows the node's form with its code and lists the engine's functions.
func TestNodeREDNodes(t *testing.T) {
	noderedDir(t) // fail early, before starting anything
	browser(t)
	suffix := randHex(3)
	agent, agent2 := "e2e-nr-"+suffix, "e2e-nr2-"+suffix
	c := newCluster(t, nodesRules, agent, agent2)
	c.users = append(c.users, user{"alice", "developer"})
	c.startEngine()
	c.addAgent(agent, map[string]string{"site": "greenhouse", "zone": "gh1", "tenants": "alice"})
	c.addAgent(agent2, map[string]string{"site": "greenhouse", "zone": "gh2", "tenants": "alice"})
	c.waitAgents(true, agent, agent2)
	sub := c.mosquittoSub("observer", "obs", nil, "nodered/#", "e2e/probe")
	c.waitSubscribed(sub, "e2e/probe")

	userDir := installNodes(t, c.dir)
	nr, base := startNodeREDIn(t, c, userDir)
	deploy := func(code string) {
		t.Helper()
		postNodeRED(t, base+"/flows", examplePackageFlow(t, c, code), map[string]string{"Node-RED-Deployment-Type": "full"})
	}
	const name = "alice.nr-dlx-fan"
	versions := func() int {
		var fn struct {
			Versions []struct{ Ref string } `json:"versions"`
		}
		if err := getJSON("http://"+c.http+"/api/v1/functions/"+name, &fn); err != nil {
			return 0
		}
		return len(fn.Versions)
	}
	// ask injects and returns the first result on topic after the ones seen before.
	ask := func(inject, topic string, subs ...string) nodeOut {
		t.Helper()
		before := len(messages(sub, topic))
		postNodeRED(t, base+"/inject/"+inject, nil, nil)
		var got string
		waitFor(t, 90*time.Second, "a message on "+topic, func() bool {
			for _, m := range messages(sub, topic)[before:] {
				if containsAll(m, subs...) {
					got = m
					return true
				}
			}
			return false
		})
		return decode[nodeOut](t, got)
	}

	// The example is in Node-RED's import menu (Import → Examples), as the file ships it.
	resp, err := http.Get(base + "/library/examples/flows/node-red-contrib-deviceless/python-on-the-edge")
	if err != nil {
		t.Fatal(err)
	}
	listed, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	shipped, _ := os.ReadFile(filepath.Join(repoRoot, noderedPackage, "examples", "python-on-the-edge.json"))
	if resp.StatusCode != http.StatusOK || compact(listed) != compact(shipped) {
		t.Fatalf("the example in Node-RED's library: %s\n%.300s", resp.Status, listed)
	}

	// The example flow as it is: its own fan-speed code.
	deploy("")
	nr.out.WaitLine(t, 30*time.Second, "Connected to broker")
	waitFor(t, 30*time.Second, name+"@1 deployed by the node", func() bool { return versions() == 1 })
	r1 := ask("dlx.hot", "nodered/out")
	if r1.Payload.Speed != 2 || r1.Payload.Version != "v1" || r1.Payload.RanOn == "" || (r1.Deviceless.Agent != agent && r1.Deviceless.Agent != agent2) ||
		r1.Deviceless.Function != name+"@1" || r1.Deviceless.Status != "ok" || r1.Deviceless.ID == "" || !r1.Deviceless.Cold || r1.Deviceless.Timings.Run <= 0 {
		t.Fatalf("result of the example's python3 code: %+v", r1)
	}
	outs := len(messages(sub, "nodered/out"))
	ev := ask("dlx.hot", "nodered/events", `"status":"ok"`)
	if ev.Deviceless.Function != name+"@1" || ev.Deviceless.Agent == "" || ev.Payload.Version != "v1" {
		t.Fatalf("event node: %+v", ev)
	}
	// That invocation's result also goes to nodered/out, and may come after the event
	// node's: wait for it, so that it is not counted among pick all's results below.
	waitFor(t, 30*time.Second, "the result of the event node's invocation on nodered/out", func() bool {
		return len(messages(sub, "nodered/out")) > outs
	})

	// msg.target with pick all: one message per agent.
	before := len(messages(sub, "nodered/out"))
	postNodeRED(t, base+"/inject/e2e.all", nil, nil)
	var both []nodeOut
	waitFor(t, 60*time.Second, "a result from each agent", func() bool {
		both = both[:0]
		for _, m := range messages(sub, "nodered/out")[before:] {
			both = append(both, decode[nodeOut](t, m))
		}
		return len(both) >= 2
	})
	if len(both) != 2 || both[0].Deviceless.Agent == both[1].Deviceless.Agent || both[0].Payload.Celsius != 30 || both[1].Payload.Celsius != 30 {
		t.Fatalf("pick all: %+v", both)
	}

	// A rule fires: the event node for that rule reports its invocation.
	before = len(messages(sub, "nodered/rules"))
	c.pub("dev", "e2e/ping", `{"n": 1}`, 1)
	pong := decode[nodeOut](t, waitMessage(t, sub, 60*time.Second, "nodered/rules", `"rule":"ping"`))
	if pong.Deviceless.Function != "echo" || pong.Deviceless.Status != "ok" || pong.Deviceless.Agent == "" || len(messages(sub, "nodered/rules")) != before+1 {
		t.Fatalf("the rule's firing as the event node saw it: %+v", pong)
	}

	// New code, redeploy: the next message runs @2 in a container of its own.
	deploy(edgeCode("v2"))
	waitFor(t, 30*time.Second, name+"@2 deployed by the node", func() bool { return versions() == 2 })
	r2 := ask("dlx.hot", "nodered/out", `"version":"v2"`)
	if r2.Deviceless.Function != name+"@2" || r2.Payload.RanOn == r1.Payload.RanOn || r2.Payload.Celsius != 31 {
		t.Fatalf("after the redeploy: %+v (v1 ran on %s)", r2, r1.Payload.RanOn)
	}
	// Deploying the same flow again deploys no new version.
	deploy(edgeCode("v2"))
	nr.out.WaitLine(t, 30*time.Second, "unchanged "+name+"@2")

	// A slow invocation while the flow is redeployed: the node waits for it and logs its
	// result instead of dropping it.
	postNodeRED(t, base+"/inject/dlx.mild", nil, nil)
	waitFor(t, 30*time.Second, "the slow invocation in flight", func() bool {
		var inv struct {
			InFlight int `json:"in_flight"`
		}
		return getJSON("http://"+c.http+"/api/v1/invocations", &inv) == nil && inv.InFlight > 0
	})
	deploy(edgeCode("v3"))
	nr.out.WaitLine(t, 60*time.Second, name+"@2 answered after the flow stopped", `ok on e2e-nr`, `"version":"v2"`)
	waitFor(t, 30*time.Second, name+"@3 deployed by the node", func() bool { return versions() == 3 })
	r3 := ask("dlx.hot", "nodered/out", `"version":"v3"`)
	if r3.Deviceless.Function != name+"@3" {
		t.Fatalf("after the third deploy: %+v", r3)
	}

	// Back to the example's code: a new version again (@1's number is never reused).
	deploy("")
	waitFor(t, 30*time.Second, name+"@4 deployed by the node", func() bool { return versions() == 4 })
	if r4 := ask("dlx.hot", "nodered/out", `"version":"v1"`); r4.Deviceless.Function != name+"@4" || r4.Payload.Speed != 2 {
		t.Fatalf("back to the example's code: %+v", r4)
	}

	// The engine login is in the credentials file, not in the flow file.
	flows, _ := os.ReadFile(filepath.Join(userDir, "flows.json"))
	creds, _ := os.ReadFile(filepath.Join(userDir, "flows_cred.json"))
	if bytes.Contains(flows, []byte(password("alice"))) || !bytes.Contains(creds, []byte(password("alice"))) {
		t.Fatalf("alice's password: in flows.json %v, in flows_cred.json %v",
			bytes.Contains(flows, []byte(password("alice"))), bytes.Contains(creds, []byte(password("alice"))))
	}
	if m := nr.out.Match("[error]"); len(m) > 0 {
		t.Fatalf("Node-RED logged errors:\n%s", strings.Join(m, "\n"))
	}

	// The editor, as a user opens it: the node's form with its code, the engine's
	// functions in its list, the engine node's connection test.
	rep := runEditor(t, base, "DLX_FUNCTION_NODE=dlx.fan", "DLX_ENGINE_NODE=dlx.engine",
		"DLX_EXPECT_FUNCTIONS=echo,"+name+","+name+"@4,"+name+"@1", "DLX_EXPECT_CODE=humidity > 80", "DLX_PASSWORD="+password("alice"))
	t.Logf("editor: %d functions listed, connection test: %s", len(rep.Functions), rep.Test)
}

// editorReport is the JSON line test/nodered/editor.mjs prints.
type editorReport struct {
	browserReport
	Functions []string `json:"functions"`
	Test      string   `json:"test"`
}

// runEditor runs test/nodered/editor.mjs against the Node-RED at base.
func runEditor(t *testing.T, base string, env ...string) editorReport {
	t.Helper()
	env = append([]string{"NODERED_URL=" + base}, env...)
	if shot := os.Getenv("DEVICELESS_NODERED_SCREENSHOT"); shot != "" {
		env = append(env, "SCREENSHOT="+shot) // scripts/nodered-screenshot.sh
	}
	var rep editorReport
	runBrowser(t, "Node-RED editor", "nodered/editor.mjs", 3*time.Minute, env, &rep)
	return rep
}
