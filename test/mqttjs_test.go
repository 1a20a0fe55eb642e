package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// mqttjsDir is where scripts/setup-mqttjs.sh installed MQTT.js 5.16.0 (DEVICELESS_MQTTJS,
// default ${XDG_CACHE_HOME:-$HOME/.cache}/deviceless/mqttjs-5.16.0).
func mqttjsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("DEVICELESS_MQTTJS")
	if dir == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				t.Fatalf("no home folder to find MQTT.js in (%v); set DEVICELESS_MQTTJS: %s", err, setupHint)
			}
			cache = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(cache, "deviceless", "mqttjs-5.16.0")
	}
	raw, err := os.ReadFile(filepath.Join(dir, "node_modules", "mqtt", "package.json"))
	var pkg struct{ Version string }
	if err != nil || json.Unmarshal(raw, &pkg) != nil || pkg.Version != "5.16.0" {
		t.Fatalf("MQTT.js 5.16.0 is not installed in %s (DEVICELESS_MQTTJS; found %q, %v): %s", dir, pkg.Version, err, setupHint)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node (Node.js) is not installed: %s", setupHint)
	}
	return dir
}

// mqttjsScript is an application written as users write them with MQTT.js: over the
// engine's WebSocket listener, an app (user nodered, role client) subscribes to a
// function's results; then a device (user dev) publishes an event that a rule turns into
// an invocation. It prints one JSON line per step and exits 0 once the result of the
// event it sent has arrived.
const mqttjsScript = `
const mqtt = require('mqtt');
const [url, fn, mark] = process.argv.slice(2);
const say = (o) => console.log(JSON.stringify(o));
const fail = (code, ...msg) => { console.error(...msg); process.exit(code); };
const options = (user) => ({
  username: user, password: user + '-secret', protocolVersion: 5, clean: true,
  clientId: 'mqttjs-' + user + '-' + mark, connectTimeout: 10000, reconnectPeriod: 0,
});
setTimeout(() => fail(4, 'no result within 90 s'), 90000);

const app = mqtt.connect(url, options('nodered'));
app.on('error', (e) => fail(2, 'app:', e.message));
app.on('message', (topic, payload) => {
  say({ topic, payload: payload.toString() });
  let r;
  try { r = JSON.parse(payload.toString()); } catch (e) { fail(5, 'not JSON:', payload.toString()); }
  if (r.output && r.output.mark === mark) {
    app.end(); process.exit(0);
  }
});
app.on('connect', () => {
  app.subscribe('deviceless/results/' + fn, { qos: 1 }, (err, granted) => {
    if (err || !granted.length || granted[0].qos >= 0x80) fail(3, 'subscribe refused:', err, JSON.stringify(granted));
    say({ subscribed: granted[0].topic, qos: granted[0].qos });
    const dev = mqtt.connect(url, options('dev'));
    dev.on('error', (e) => fail(2, 'device:', e.message));
    dev.on('connect', () => {
      dev.publish('e2e/ws/' + mark, JSON.stringify({ celsius: 31, mark }), { qos: 1 }, (err) => {
        if (err) fail(6, 'publish:', err.message);
        say({ published: 'e2e/ws/' + mark });
        dev.end();
      });
    });
  });
});
`

const wsRules = `
functions:
  ws-echo:
    runtime: sh
    code: |
      read -r inv
      mark=$(echo "$inv" | sed -n 's/.*"args":{"mark":"\([a-z0-9-]*\)"}.*/\1/p')
      echo "{\"mark\":\"$mark\",\"fn\":\"$DEVICELESS_FUNCTION\"}"
    timeout: 20s
    memory: 16Mi
rules:
  - name: ws
    on: e2e/ws/+
    if: payload.celsius > 28
    do:
      - invoke: ws-echo
        target: {labels: {zone: ws}}
        args: {mark: payload.mark}
`

// TestMQTTjsOverWebSocket: device → rule → function → result with the standard JavaScript
// client, MQTT.js 5.16.0 on Node.js, over the engine's MQTT-over-WebSocket listener
// (MQTT v5). The device publishes an event, a rule invokes a function on a real agent
// (podman), and the application, subscribed to the results topic as a client user,
// receives the result.
func TestMQTTjsOverWebSocket(t *testing.T) {
	dir := mqttjsDir(t) // fail early, before starting anything
	agent := "e2e-ws-" + randHex(3)
	c := newCluster(t, wsRules, agent)
	c.ws = freeAddr(t)
	c.startEngine()
	c.addAgent(agent, map[string]string{"zone": "ws"})
	c.waitAgents(true, agent)

	script := filepath.Join(c.dir, "app.js")
	if err := os.WriteFile(script, []byte(mqttjsScript), 0o644); err != nil {
		t.Fatal(err)
	}
	mark := "m-" + randHex(4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script, "ws://"+c.ws+"/mqtt", "ws-echo", mark)
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("MQTT.js app:\n%s", out)
	if err != nil {
		t.Fatalf("node app.js: %v\nstderr: %s", err, stderr.String())
	}

	var steps []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		steps = append(steps, decode[map[string]any](t, line))
	}
	if len(steps) < 3 || steps[0]["subscribed"] != "deviceless/results/ws-echo" || steps[0]["qos"] != float64(1) ||
		steps[1]["published"] != "e2e/ws/"+mark {
		t.Fatalf("steps %v: want subscribed (QoS 1), published, then the result", steps)
	}
	last := steps[len(steps)-1]
	if last["topic"] != "deviceless/results/ws-echo" {
		t.Fatalf("last message on %v", last["topic"])
	}
	res := decode[result](t, last["payload"].(string))
	if res.Status != "ok" || res.Agent != agent || res.Function != "ws-echo" || res.Rule != "ws" ||
		compact(res.Output) != `{"mark":"`+mark+`","fn":"ws-echo"}` {
		t.Fatalf("result %+v (output %s); want ok from %s for rule ws with the device's mark", res, res.Output, agent)
	}
	// The same invocation, as the engine recorded it.
	var rec invocationRecord
	for _, r := range c.invocations() {
		if r.ID == res.ID {
			rec = r
		}
	}
	if rec.Status != "ok" || rec.Agent != agent {
		t.Fatalf("/api/v1/invocations: %+v; want invocation %s ok on %s", rec, res.ID, agent)
	}
}
