package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"
)

// loopRules drive two agents by label: zone north runs an sh function that actuates and
// publishes, zone south a python3 function; frost actuates every agent directly.
const loopRules = `
functions:
  cool:
    runtime: sh
    code: |
      read -r inv
      echo '{"actuate":[{"line":"fan","value":1,"for":"1s"}],"publish":[{"topic":"e2e/cmd/fan","payload":{"fan":"on"}}],"result":"fan on"}'
    timeout: 20s
    memory: 16Mi
  fan-speed:
    runtime: python3
    code: |
      import json, sys
      a = json.load(sys.stdin)["args"]
      speed = 0 if a["celsius"] < 28 else 1 if a["humidity"] < 80 else 2
      print(json.dumps({"zone": a["zone"], "speed": speed}))
    timeout: 20s
    memory: 64Mi
  echo:
    runtime: sh
    code: |
      read -r inv
      echo "{\"function\":\"$DEVICELESS_FUNCTION\"}"
    timeout: 20s
    memory: 16Mi
rules:
  - name: hot-north
    on: e2e/north/climate
    if: payload.celsius > 28
    do:
      - invoke: cool
        target: {labels: {zone: north}}
  - name: hot-south
    on: e2e/south/climate
    if: payload.celsius > 28
    do:
      - invoke: fan-speed
        target: {labels: {zone: south}}
        args: {zone: 'topic_parts[1]', celsius: payload.celsius, humidity: payload.humidity}
  - name: frost
    on: e2e/+/climate
    if: payload.celsius < 3
    do:
      - actuate: {target: {labels: {site: e2e}, pick: all}, line: heater, value: 1, for: 2s}
      - publish: {topic: '"alerts/" + topic_parts[1]', payload: '{"alert": "frost", "celsius": payload.celsius}', qos: 1}
`

// TestClosedLoopTwoAgents: devices publish with mosquitto_pub; rules pick agents by label;
// functions run in podman containers on the agent the label selects and act (actuation,
// publish); direct actuations reach every agent; pick: one spreads over both agents.
func TestClosedLoopTwoAgents(t *testing.T) {
	suffix := randHex(3)
	north, south := "e2e-north-"+suffix, "e2e-south-"+suffix
	c := newCluster(t, loopRules, north, south)
	c.startEngine()
	c.addAgent(north, map[string]string{"site": "e2e", "zone": "north"})
	c.addAgent(south, map[string]string{"site": "e2e", "zone": "south"})
	c.waitAgents(true, north, south)

	agents := c.agentsView()
	if agents[north].Labels["zone"] != "north" || agents[south].Labels["zone"] != "south" {
		t.Fatalf("registry labels: %+v", agents)
	}

	sub := c.mosquittoSub("observer", "obs", nil, "deviceless/results/#", "alerts/#", "e2e/cmd/#", "e2e/probe")
	c.waitSubscribed(sub, "e2e/probe")

	// Heat in the north: the sh function runs on the north agent, turns its fan on and
	// publishes a command.
	c.pub("dev", "e2e/north/climate", `{"celsius": 31}`, 1)
	res := decode[result](t, waitMessage(t, sub, time.Minute, "deviceless/results/cool", `"status"`))
	if res.Status != "ok" || res.Agent != north || res.Rule != "hot-north" || string(res.Output) != `"fan on"` {
		t.Fatalf("cool result: %+v (output %s)", res, res.Output)
	}
	waitMessage(t, sub, 10*time.Second, "e2e/cmd/fan", `"fan":"on"`)

	// Heat and humidity in the south: the python3 function on the south agent decides.
	c.pub("dev", "e2e/south/climate", `{"celsius": 33, "humidity": 85}`, 1)
	res = decode[result](t, waitMessage(t, sub, time.Minute, "deviceless/results/fan-speed", `"status"`))
	var speed struct {
		Zone  string `json:"zone"`
		Speed int    `json:"speed"`
	}
	if err := json.Unmarshal(res.Output, &speed); err != nil || res.Status != "ok" || res.Agent != south || speed != (struct {
		Zone  string `json:"zone"`
		Speed int    `json:"speed"`
	}{"south", 2}) {
		t.Fatalf("fan-speed result: %+v (output %s, %v)", res, res.Output, err)
	}

	// Frost: a direct actuation on every agent of the site, and an alert.
	c.pub("dev", "e2e/north/climate", `{"celsius": 1.5}`, 1)
	waitMessage(t, sub, 10*time.Second, "alerts/north", `"alert":"frost"`)
	for _, id := range []string{north, south} {
		c.agents[id].out.WaitLine(t, 10*time.Second, "actuated", "line=heater", "value=1")
	}

	// pick: one over both agents, through the CLI and the HTTP API.
	seen := map[string]int{}
	for range 4 {
		cmd := exec.Command(bin, "invoke", "echo", "--http", c.http, "--target", `{"labels":{"site":"e2e"},"pick":"one"}`)
		cmd.Env = append(os.Environ(), "DEVICELESS_TOKEN="+apiToken)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("deviceless invoke echo: %v: %s", err, out)
		}
		r := decode[result](t, string(out))
		if r.Status != "ok" || compact(r.Output) != `{"function":"echo"}` {
			t.Fatalf("echo result: %+v (output %s)", r, r.Output)
		}
		seen[r.Agent]++
	}
	if seen[north] == 0 || seen[south] == 0 || len(seen) != 2 {
		t.Fatalf("pick: one over two idle agents used %v; want both", seen)
	}

	// The API lists what ran.
	byFn := map[string]int{}
	for _, r := range c.invocations() {
		if r.Status == "ok" {
			byFn[r.Function]++
		}
	}
	if byFn["cool"] != 1 || byFn["fan-speed"] != 1 || byFn["echo"] != 4 {
		t.Fatalf("invocations by function: %v", byFn)
	}

	// Agents stop cleanly and leave no container behind.
	for _, id := range []string{north, south} {
		if err := c.agents[id].Stop(t, 30*time.Second); err != nil {
			t.Fatalf("agent %s exit: %v", id, err)
		}
		if cs := containers(t, c.socket, id); len(cs) != 0 {
			t.Fatalf("agent %s left containers: %+v", id, cs)
		}
	}
	c.waitAgents(false, north, south)
	if err := c.engine.Stop(t, 30*time.Second); err != nil {
		t.Fatalf("engine exit: %v", err)
	}
}
