package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scaleACL: as externalACL, and every agent may publish its functions' output on
// e2e/done (the function's publish list).
const scaleACL = externalACL + `
pattern write e2e/done
`

// scaleRules: each event runs a function on one of the two agents by its parity (a
// redelivered event's invocation goes to the same agent, whose memory of ids recognises
// it); the function publishes the event's seq once per run.
const scaleRules = `
functions:
  mark:
    runtime: sh
    code: |
      read -r inv
      seq=$(echo "$inv" | sed -n 's/.*"args":{"seq":\([-0-9]*\)}.*/\1/p')
      echo "{\"publish\":[{\"topic\":\"e2e/done\",\"payload\":{\"seq\":$seq},\"qos\":1}],\"result\":$seq}"
    timeout: 20s
    memory: 16Mi
    warm: {idle: 60s}
rules:
  - name: even
    on: e2e/scale
    if: int(payload.seq) % 2 == 0
    do: [{invoke: mark, target: {agent: AGENT_EVEN}, args: {seq: payload.seq}}]
  - name: odd
    on: e2e/scale
    if: int(payload.seq) % 2 == 1
    do: [{invoke: mark, target: {agent: AGENT_ODD}, args: {seq: payload.seq}}]
`

// scaleEngine is one engine of the shared group, a process of the built binary.
type scaleEngine struct {
	name, http, conf string
	runs             int
	p                *proc
}

func (c *cluster) scaleEngine(name string) *scaleEngine {
	c.t.Helper()
	e := &scaleEngine{name: name, http: freeAddr(c.t), conf: filepath.Join(c.dir, name+".yaml")}
	var b strings.Builder
	fmt.Fprintf(&b, "broker:\n  external: mqtt://%s\n  username: engine\n  password: %s\n  shared_group: deviceless\n  client_id: %s\n", c.mqtt, password("engine"), name)
	fmt.Fprintf(&b, "rules: [%s]\nhttp: %s\n", c.rules, e.http)
	fmt.Fprintf(&b, "api: {tokens: [{name: e2e, hash: %q, role: admin}]}\n", "sha256:"+fmt.Sprintf("%x", tokenSum[:]))
	b.WriteString("dispatch: {attempts: 3, backoff: 50ms, start_grace: 5s}\nshutdown_grace: 3s\n")
	if err := os.WriteFile(e.conf, []byte(b.String()), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return e
}

// start starts (or restarts, with its client id) the engine and waits for /readyz.
func (e *scaleEngine) start(c *cluster) {
	c.t.Helper()
	e.runs++
	e.p = startProc(c.t, c.dir, fmt.Sprintf("%s-%d", e.name, e.runs), nil, bin, "engine", "-c", e.conf, "--log-level", "debug")
	waitFor(c.t, 30*time.Second, e.name+"'s /readyz", func() bool {
		if e.p.exited() {
			c.t.Fatalf("%s exited: %v\n%s", e.name, e.p.err, strings.Join(e.p.out.Lines(), "\n"))
		}
		resp, err := http.Get("http://" + e.http + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// received is how many stream events the engine has evaluated: its rule firings (each
// event fires one of the two rules; 0 while it is down).
func (e *scaleEngine) received() int {
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.http+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	n := 0
	for _, l := range strings.Split(string(body), "\n") {
		for _, r := range []string{"even", "odd"} {
			if v, ok := strings.CutPrefix(l, `deviceless_rule_firings_total{rule="`+r+`"} `); ok {
				f, _ := strconv.ParseFloat(v, 64)
				n += int(f)
			}
		}
	}
	return n
}

// agents is the engine's registry, and idle whether it has no invocation in flight.
func (e *scaleEngine) agents() (online map[string]bool, idle bool) {
	var list struct {
		Agents []agentView `json:"agents"`
	}
	online, idle = map[string]bool{}, true
	if err := getJSON("http://"+e.http+"/api/v1/agents", &list); err != nil {
		return online, false
	}
	for _, a := range list.Agents {
		online[a.Agent] = a.Online && a.Healthy
		idle = idle && a.InFlight == 0
	}
	return online, idle
}

// addScaleAgent is addAgent with room for a stream: four invocations at a time and a
// queue that holds what the two engines send while containers start.
func (c *cluster) addScaleAgent(id string) *proc {
	c.t.Helper()
	if c.socket == "" {
		c.socket = podmanSocket(c.t)
	}
	conf := fmt.Sprintf("id: %s\nbroker: mqtt://%s\npassword: %s\nconcurrency: 4\nqueue: 1000\nstate: %s\npodman: {socket: %s}\nlabels: {pool: scale}\n",
		id, c.mqtt, password(id), filepath.Join(c.dir, "agent-"+id), c.socket)
	path := filepath.Join(c.dir, "agent-"+id+".yaml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.conf[id] = path
	sock := c.socket
	c.t.Cleanup(func() { removeContainers(c.t, sock, id) })
	return c.startAgent(id)
}

// TestScaleOutSurvivesAnEngineCrash: two engines (client ids engine-A and engine-B, shared
// group deviceless) on a real mosquitto 2.0.11 split a stream of QoS 1 events, and two real
// agents run a function per event in podman containers. Engine A is killed with SIGKILL in
// the middle of the stream and restarted with its client id after the events meant for it
// during the outage were queued in its session.
//
// Asserted:
//   - engine B keeps serving while A is down: events published after the kill are acted on
//     before A is back;
//   - every event mosquitto acknowledged to its publisher is acted on exactly once: the
//     function ran once per event (its one publication per run), although A evaluates again
//     the events it had received but not acknowledged at the kill (their invocations carry
//     the same ids, derived from the delivery, so the agent answers from its memory), and A
//     evaluates the events of its session only once it knows the agents.
func TestScaleOutSurvivesAnEngineCrash(t *testing.T) {
	suffix := randHex(3)
	even, odd := "e2e-scale-even-"+suffix, "e2e-scale-odd-"+suffix
	rules := strings.NewReplacer("AGENT_EVEN", even, "AGENT_ODD", odd).Replace(scaleRules)
	c := newCluster(t, rules, even, odd)
	c.useMosquitto(scaleACL)
	a, b := c.scaleEngine("engine-A"), c.scaleEngine("engine-B")
	a.start(c)
	b.start(c)
	c.addScaleAgent(even)
	c.addScaleAgent(odd)
	for _, e := range []*scaleEngine{a, b} {
		waitFor(t, 60*time.Second, e.name+" to see both agents", func() bool {
			on, _ := e.agents()
			return on[even] && on[odd]
		})
	}
	obs := c.observe("obs-scale-"+suffix, "e2e/done", "e2e/probe")
	obs.waitReady(c, "e2e/probe")

	done := func() map[int]int {
		out := map[int]int{}
		for _, m := range obs.messages("e2e/done") {
			var d struct {
				Seq int `json:"seq"`
			}
			if json.Unmarshal([]byte(m), &d) == nil {
				out[d.Seq]++
			}
		}
		return out
	}
	publish := func(from, to int) {
		for seq := from; seq <= to; seq++ {
			// mosquitto_pub returns once mosquitto acknowledged the QoS 1 event.
			c.pub("dev", "e2e/scale", fmt.Sprintf(`{"seq": %d}`, seq), 1)
		}
	}

	// One device streams the events, a line every 2 ms, through one mosquitto_pub -l
	// (QoS 1: it exits 0 once mosquitto acknowledged every line). A is killed once it has
	// received a quarter of them, mid-stream.
	const n = 400
	host, port, _ := net.SplitHostPort(c.mqtt)
	pub := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-u", "dev", "-P", password("dev"),
		"-V", "mqttv5", "-q", "1", "-t", "e2e/scale", "-l")
	in, err := pub.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var pubOut strings.Builder
	pub.Stdout, pub.Stderr = &pubOut, &pubOut
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	streamed := make(chan error, 1)
	go func() {
		for seq := 1; seq <= n; seq++ {
			if _, err := fmt.Fprintf(in, "{\"seq\": %d}\n", seq); err != nil {
				streamed <- err
				return
			}
			time.Sleep(2 * time.Millisecond) // the device's pace, not a synchronisation
		}
		streamed <- in.Close()
	}()
	waitFor(t, 60*time.Second, "engine A evaluating a quarter of the stream", func() bool { return a.received() >= n/4 })
	killedAt := a.received()
	a.p.Kill() // SIGKILL to the process group: no clean stop, no acknowledgement flushed
	if err := <-streamed; err != nil {
		t.Fatalf("streaming to mosquitto_pub: %v", err)
	}
	if err := pub.Wait(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, pubOut.String())
	}
	// Every event is acknowledged by mosquitto now: with B, or in A's session (mosquitto
	// keeps a dead member's queue for its session). B's are acted on while A is down.
	waitFor(t, 120*time.Second, "engine B acting on the stream while A is down", func() bool {
		_, idle := b.agents()
		return idle && b.received() > 0 && len(done()) > 0
	})
	servedDuringOutage := len(done())
	bDuringOutage := b.received()

	a.start(c)
	waitFor(t, 180*time.Second, fmt.Sprintf("all %d events acted on", n), func() bool { return len(done()) >= n })
	// Sentinels behind everything: once the ones A got are done, A has evaluated its whole
	// session (in order); once neither engine has an invocation in flight, every function
	// run has published.
	publish(n+1, n+4)
	waitFor(t, 60*time.Second, "the sentinels acted on", func() bool {
		d := done()
		return d[n+1] > 0 && d[n+2] > 0 && d[n+3] > 0 && d[n+4] > 0
	})
	for _, e := range []*scaleEngine{a, b} {
		waitFor(t, 60*time.Second, e.name+" with no invocation in flight", func() bool {
			_, idle := e.agents()
			return idle
		})
	}
	// The observer's own session must not have been resumed (a resumed session may repeat
	// deliveries to it, which would look like a second run).
	obs.mu.Lock()
	conns := obs.conns
	obs.mu.Unlock()
	if conns != 1 {
		t.Fatalf("the observer connected %d times", conns)
	}

	d := done()
	var lost, twice []int
	for seq := 1; seq <= n+4; seq++ {
		switch d[seq] {
		case 0:
			lost = append(lost, seq)
		case 1:
		default:
			twice = append(twice, seq)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged events were never acted on: %v", len(lost), lost)
	}
	if len(twice) > 0 {
		t.Errorf("%d events were acted on more than once: %v", len(twice), twice)
	}
	repeats := 0
	for _, id := range []string{even, odd} {
		repeats += len(c.agents[id].out.Match("repeated invocation: answering the stored result"))
	}
	noAgent := len(a.p.out.Match("no online agent matches"))
	if noAgent > 0 {
		t.Errorf("the restarted engine A found no agent for %d actions", noAgent)
	}
	t.Logf("%d events streamed; engine A SIGKILLed after evaluating %d, restarted after the stream; B evaluated %d and the agents "+
		"had acted on %d events before A came back; after the restart A evaluated %d (4 sentinels among them); repeated invocations the agents answered from "+
		"their memory of ids: %d; lost %d, twice %d",
		n, killedAt, bDuringOutage, servedDuringOutage, a.received(), repeats, len(lost), len(twice))
}
