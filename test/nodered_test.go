package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// noderedDir is where scripts/setup-nodered.sh installed Node-RED 4.1.15
// (DEVICELESS_NODERED, default ${XDG_CACHE_HOME:-$HOME/.cache}/deviceless/node-red-4.1.15).
func noderedDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("DEVICELESS_NODERED")
	if dir == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				t.Fatalf("no home folder to find Node-RED in (%v); set DEVICELESS_NODERED: %s", err, setupHint)
			}
			cache = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(cache, "deviceless", "node-red-4.1.15")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "node-red", "red.js")); err != nil {
		t.Fatalf("Node-RED 4.1.15 is not installed in %s (DEVICELESS_NODERED): %s", dir, setupHint)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node (Node.js) is not installed: %s", setupHint)
	}
	return dir
}

// startNodeRED starts a headless Node-RED with examples/node-red/settings.js in a temporary
// user folder on a free port and returns its base URL once the admin API answers.
func startNodeRED(t testing.TB, c *cluster) (*proc, string) {
	t.Helper()
	return startNodeREDIn(t, c, t.TempDir())
}

// startNodeREDIn is startNodeRED with a user folder prepared by the caller (nodes
// installed in its node_modules).
func startNodeREDIn(t testing.TB, c *cluster, userDir string) (*proc, string) {
	t.Helper()
	nr := noderedDir(t)
	settings, err := os.ReadFile(filepath.Join(repoRoot, "examples", "node-red", "settings.js"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(userDir, "settings.js"), settings, 0o644); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(freeAddr(t))
	p := startProc(t, c.dir, "node-red", []string{"NODE_RED_PORT=" + port, "NODE_RED_HOST=127.0.0.1"},
		"node", filepath.Join(nr, "node_modules", "node-red", "red.js"),
		"--userDir", userDir, "--settings", filepath.Join(userDir, "settings.js"))
	base := "http://127.0.0.1:" + port
	waitFor(t, 60*time.Second, "Node-RED's admin API", func() bool {
		if p.exited() {
			t.Fatalf("Node-RED exited: %v", p.err)
		}
		resp, err := http.Get(base + "/settings")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p, base
}

// exampleFlow reads examples/node-red/flow.json and points its broker node at addr.
func exampleFlow(t testing.TB, addr string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "examples", "node-red", "flow.json"))
	if err != nil {
		t.Fatal(err)
	}
	var nodes []map[string]any
	if err := json.Unmarshal(raw, &nodes); err != nil {
		t.Fatalf("flow.json: %v", err)
	}
	host, port, _ := net.SplitHostPort(addr)
	brokers := 0
	for _, n := range nodes {
		if n["type"] == "mqtt-broker" {
			brokers++
			if n["protocolVersion"] != "5" {
				t.Fatalf("flow.json: broker node %v: protocolVersion %v, want \"5\"", n["id"], n["protocolVersion"])
			}
			n["broker"], n["port"] = host, port
		}
	}
	if brokers != 1 {
		t.Fatalf("flow.json: %d mqtt-broker nodes, want 1", brokers)
	}
	out, _ := json.Marshal(nodes)
	return out
}

func postNodeRED(t testing.TB, url string, body []byte, header map[string]string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s: %s", url, resp.Status, b)
	}
}

// TestNodeREDFlow runs examples/node-red/flow.json in Node-RED 4.1.15 against the engine
// with the greenhouse rules and two agents: the flow's MQTT v5 request on
// deviceless/invoke/fan-speed (response topic in the response space
// deviceless/responses/nodered/, correlation data) runs the python3 function on an agent,
// the reply comes back correlated, and the flow publishes a fan command; a request no
// agent can serve comes back as an error and the flow raises an alert.
func TestNodeREDFlow(t *testing.T) {
	noderedDir(t) // fail early, before starting anything
	suffix := randHex(3)
	a, b := "e2e-gh-a-"+suffix, "e2e-gh-b-"+suffix
	c := newCluster(t, "", a, b)
	c.paths = []string{filepath.Join(repoRoot, "examples", "greenhouse", "rules", "greenhouse.yaml")}
	c.startEngine()
	c.addAgent(a, map[string]string{"site": "greenhouse", "zone": "gh1"})
	c.addAgent(b, map[string]string{"site": "greenhouse", "zone": "gh1"})
	c.waitAgents(true, a, b)

	sub := c.mosquittoSub("observer", "obs", nil,
		"greenhouse/+/fan/command", "nodered/#", "deviceless/responses/nodered/#", "deviceless/results/fan-speed", "e2e/probe")
	c.waitSubscribed(sub, "e2e/probe")

	nr, base := startNodeRED(t, c)
	postNodeRED(t, base+"/flows", exampleFlow(t, c.mqtt), map[string]string{"Node-RED-Deployment-Type": "full"})
	nr.out.WaitLine(t, 30*time.Second, "Connected to broker")

	// The flow subscribes to its reply topic right after connecting; ask until the first
	// answer comes back (each ask is a separate, correlated request).
	var command string
	asks := 0
	waitFor(t, 90*time.Second, "a fan command from the Node-RED flow", func() bool {
		postNodeRED(t, base+"/inject/dl.ask", nil, nil)
		asks++
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			if m := messages(sub, "greenhouse/gh1/fan/command"); len(m) > 0 {
				command = m[0]
				return true
			}
			time.Sleep(50 * time.Millisecond)
		}
		return false
	})
	cmd := decode[struct {
		Speed      int     `json:"speed"`
		Avg        float64 `json:"avg"`
		Request    string  `json:"request"`
		Invocation string  `json:"invocation"`
		Agent      string  `json:"agent"`
		Source     string  `json:"source"`
	}](t, command)
	if cmd.Speed != 2 || cmd.Avg != 30.5 || cmd.Source != "node-red" || cmd.Request == "" || (cmd.Agent != a && cmd.Agent != b) {
		t.Fatalf("fan command %s: want speed 2 (avg 30.5, humidity 85), a correlated request and one of the agents", command)
	}
	// The command answers an invocation the engine ran and published.
	res := decode[result](t, waitMessage(t, sub, 10*time.Second, "deviceless/results/fan-speed", fmt.Sprintf(`"id":%q`, cmd.Invocation)))
	if res.Status != "ok" || res.Agent != cmd.Agent || !res.Cold {
		t.Fatalf("fan-speed result %+v", res)
	}
	// The reply went to the flow's own response topic, in user nodered's response space.
	waitMessage(t, sub, 10*time.Second, "deviceless/responses/nodered/fan-speed", fmt.Sprintf(`"id":%q`, cmd.Invocation))

	// Every ask answered before the last one: the flow handles replies in the order they
	// arrive, so once the last one's alert is out, the flow has handled every reply.
	waitFor(t, 60*time.Second, fmt.Sprintf("replies to all %d asks", asks), func() bool {
		ids := map[string]bool{}
		for _, m := range messages(sub, "deviceless/responses/nodered/fan-speed") {
			ids[decode[result](t, m).ID] = true
		}
		return len(ids) >= asks
	})

	// A site without agents: the engine dead-letters at once and answers with an error;
	// the flow turns it into an alert.
	postNodeRED(t, base+"/inject/dl.ask-nowhere", nil, nil)
	alert := decode[struct {
		Alert      string `json:"alert"`
		Greenhouse string `json:"greenhouse"`
		Status     string `json:"status"`
		Error      string `json:"error"`
		Request    string `json:"request"`
	}](t, waitMessage(t, sub, 30*time.Second, "nodered/alerts", `"greenhouse":"gh9"`))
	if alert.Status != "error" || alert.Request == "" || alert.Alert != "fan-speed failed" {
		t.Fatalf("alert %+v", alert)
	}
	t.Logf("Node-RED fan command: %s", command)
	t.Logf("Node-RED alert: %s", messages(sub, "nodered/alerts")[0])
	// Ordered: the alert came after every reply (see above).
	if len(nr.out.Match("result for an unknown request")) > 0 {
		t.Fatalf("the flow received a reply it could not correlate:\n%v", nr.out.Match("unknown request"))
	}
}
