package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// setupHint ends every message about a missing prerequisite.
const setupHint = "run `go tool task setup` (or bash scripts/setup.sh) first"

// waitFor polls cond until it holds; the timeout is a failure deadline, never an assertion
// about speed.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// output collects a process's output line by line and lets tests wait for lines.
type output struct {
	mu    sync.Mutex
	lines []string
	part  []byte
	file  *os.File
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.file != nil {
		_, _ = o.file.Write(p)
	}
	o.part = append(o.part, p...)
	for {
		i := bytes.IndexByte(o.part, '\n')
		if i < 0 {
			break
		}
		o.lines = append(o.lines, string(o.part[:i]))
		o.part = o.part[i+1:]
	}
	return len(p), nil
}

// Lines returns a copy of the complete lines so far.
func (o *output) Lines() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.lines...)
}

// Match returns the lines containing every one of subs.
func (o *output) Match(subs ...string) []string {
	var out []string
	for _, l := range o.Lines() {
		if containsAll(l, subs...) {
			out = append(out, l)
		}
	}
	return out
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// WaitLine waits for a line containing every one of subs and returns the first such line.
func (o *output) WaitLine(t testing.TB, timeout time.Duration, subs ...string) string {
	t.Helper()
	var line string
	waitFor(t, timeout, fmt.Sprintf("a line with %q", subs), func() bool {
		m := o.Match(subs...)
		if len(m) > 0 {
			line = m[0]
			return true
		}
		return false
	})
	return line
}

// proc is a started process whose output is collected; t.Cleanup kills it.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *output
	done chan struct{}
	err  error
}

// startProc starts name (a label for logs) running argv, with its output in a file under dir.
func startProc(t testing.TB, dir, name string, env []string, argv ...string) *proc {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{name: name, out: &output{file: f}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			var lines []string
			for _, l := range p.out.Lines() {
				// mochi's per-packet debug lines would push everything else out.
				if !strings.Contains(l, "component=mochi") {
					lines = append(lines, l)
				}
			}
			if len(lines) > 80 {
				lines = lines[len(lines)-80:]
			}
			t.Logf("--- last output of %s:\n%s", name, strings.Join(lines, "\n"))
		}
		f.Close()
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Kill sends SIGKILL to the process group and waits for the process.
func (p *proc) Kill() {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM and waits for the exit; it returns the exit error.
func (p *proc) Stop(t testing.TB, timeout time.Duration) error {
	t.Helper()
	if p.exited() {
		return p.err
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.Kill()
		t.Fatalf("%s did not stop within %s of SIGTERM", p.name, timeout)
		return nil
	}
}

// cluster is one engine (embedded broker) with its users, and the agents of a test.
type cluster struct {
	t      testing.TB
	dir    string
	mqtt   string // broker host:port
	http   string // API host:port
	store  string
	rules  string // rules folder
	engine *proc
	runs   int // engine starts, for log names
	agents map[string]*proc
	conf   map[string]string // agent id → config file
	socket string            // podman socket
	users  []user
	extra  string   // more engine YAML (top level)
	paths  []string // rule files or folders instead of the test's own rules
	ws     string   // the embedded broker's WebSocket listener (host:port), if any

	// external: the broker is a mosquitto started by useMosquitto at mqtt, and the engine
	// connects to it as user engine.
	external bool
}

type user struct{ name, role string }

// password is every test user's password.
func password(name string) string { return name + "-secret" }

// newCluster writes the engine config with the given rules file and users for the agents
// (role agent), a device "dev", a client "nodered" and an admin "obs"; it does not start
// anything.
func newCluster(t testing.TB, rulesYAML string, agentIDs ...string) *cluster {
	t.Helper()
	for _, tool := range []string{"mosquitto_pub", "mosquitto_sub"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: %s", tool, setupHint)
		}
	}
	c := &cluster{
		t: t, dir: t.TempDir(), mqtt: freeAddr(t), http: freeAddr(t),
		agents: map[string]*proc{}, conf: map[string]string{},
	}
	c.store = filepath.Join(c.dir, "store")
	c.rules = filepath.Join(c.dir, "rules")
	if err := os.MkdirAll(c.rules, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.rules, "e2e.yaml"), []byte(rulesYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	c.users = []user{{"dev", "device"}, {"nodered", "client"}, {"obs", "admin"}}
	for _, id := range agentIDs {
		c.users = append(c.users, user{id, "agent"})
	}
	return c
}

func (c *cluster) writeEngineConfig() string {
	var b strings.Builder
	switch {
	case c.external:
		fmt.Fprintf(&b, "broker:\n  external: mqtt://%s\n  username: engine\n  password: %s\n", c.mqtt, password("engine"))
	case c.ws != "":
		fmt.Fprintf(&b, "broker:\n  listen: %s\n  websocket: %s\n  store: %s\n  allow_anonymous: false\n  users:\n", c.mqtt, c.ws, c.store)
	default:
		fmt.Fprintf(&b, "broker:\n  listen: %s\n  store: %s\n  allow_anonymous: false\n  users:\n", c.mqtt, c.store)
	}
	for _, u := range c.users {
		if c.external {
			break // mosquitto has them
		}
		// MinCost: the broker accepts any bcrypt cost, and the tests start many brokers.
		h, err := bcrypt.GenerateFromPassword([]byte(password(u.name)), bcrypt.MinCost)
		if err != nil {
			c.t.Fatal(err)
		}
		fmt.Fprintf(&b, "    - {username: %s, password_hash: %q, role: %s}\n", u.name, h, u.role)
	}
	paths := c.paths
	if len(paths) == 0 {
		paths = []string{c.rules}
	}
	fmt.Fprintf(&b, "rules: [%s]\nhttp: %s\n", strings.Join(paths, ", "), c.http)
	fmt.Fprintf(&b, "api: {tokens: [{name: e2e, hash: %q, role: admin}]}\n", "sha256:"+hex.EncodeToString(tokenSum[:]))
	// Short budgets keep the fault tests quick: a lost attempt is retried after the
	// function's timeout plus 1s.
	b.WriteString("dispatch: {attempts: 3, backoff: 50ms, start_grace: 1s}\nshutdown_grace: 3s\n")
	b.WriteString(c.extra)
	path := filepath.Join(c.dir, "deviceless.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// useMosquitto makes the cluster's broker a mosquitto 2.0.11 on a free port, with every
// user of the cluster (and "engine") in its password file and acl as its ACL file; the
// engine connects to it (broker.external) as user engine. Call it before startEngine.
func (c *cluster) useMosquitto(acl string) *proc {
	c.t.Helper()
	for _, tool := range []string{"mosquitto", "mosquitto_passwd"} {
		if _, err := exec.LookPath(tool); err != nil {
			c.t.Fatalf("%s is not installed: %s", tool, setupHint)
		}
	}
	dir := filepath.Join(c.dir, "mosquitto")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	pw, aclFile, conf := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl"), filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(pw, nil, 0o600); err != nil {
		c.t.Fatal(err)
	}
	for _, u := range append([]user{{"engine", "admin"}}, c.users...) {
		if out, err := exec.Command("mosquitto_passwd", "-b", pw, u.name, password(u.name)).CombinedOutput(); err != nil {
			c.t.Fatalf("mosquitto_passwd %s: %v: %s", u.name, err, out)
		}
	}
	if err := os.WriteFile(aclFile, []byte(acl), 0o600); err != nil {
		c.t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(c.mqtt)
	// user root: mosquitto would otherwise drop to user mosquitto before reading the
	// password file in this private folder. Log to stderr: its stdout is block-buffered
	// into the pipe, and tests wait for log lines.
	cfg := fmt.Sprintf("user root\nlistener %s 127.0.0.1\nallow_anonymous false\npassword_file %s\nacl_file %s\npersistence false\nlog_dest stderr\nlog_type all\n",
		port, pw, aclFile)
	if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
		c.t.Fatal(err)
	}
	p := startProc(c.t, c.dir, "mosquitto", nil, "mosquitto", "-c", conf)
	waitFor(c.t, 10*time.Second, "mosquitto listening on "+c.mqtt, func() bool {
		if p.exited() {
			c.t.Fatalf("mosquitto exited: %v\n%s", p.err, strings.Join(p.out.Lines(), "\n"))
		}
		conn, err := net.Dial("tcp", c.mqtt)
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
	c.external = true
	return p
}

// startEngine starts (or restarts, with the same store) the engine and waits for /readyz.
func (c *cluster) startEngine() *proc {
	c.t.Helper()
	conf := c.writeEngineConfig()
	c.runs++
	c.engine = startProc(c.t, c.dir, fmt.Sprintf("engine-%d", c.runs), nil,
		bin, "engine", "-c", conf, "--log-level", "debug")
	waitFor(c.t, 30*time.Second, "the engine's /readyz", func() bool {
		if c.engine.exited() {
			c.t.Fatalf("engine exited: %v\n%s", c.engine.err, strings.Join(c.engine.out.Lines(), "\n"))
		}
		resp, err := http.Get("http://" + c.http + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return c.engine
}

// podmanSocket finds the project's podman service and fails the test when it does not
// answer or the function images are missing.
func podmanSocket(t testing.TB) string {
	t.Helper()
	sock := os.Getenv("DEVICELESS_PODMAN_SOCKET")
	if sock == "" {
		state := os.Getenv("DEVICELESS_STATE")
		if state == "" {
			state = filepath.Join(repoRoot, ".state")
		}
		sock = filepath.Join(state, "podman", "podman.sock")
	}
	pc := podmanClient(sock)
	resp, err := pc.Get("http://d/_ping")
	if err != nil {
		t.Fatalf("the podman service does not answer on %s (%v): %s", sock, err, setupHint)
	}
	resp.Body.Close()
	for _, img := range []string{"localhost/deviceless/sh", "localhost/deviceless/python3"} {
		resp, err := pc.Get("http://d/v4.0.0/libpod/images/" + url.PathEscape(img) + "/exists")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("image %s is missing from the podman service on %s: %s", img, sock, setupHint)
		}
	}
	return sock
}

func podmanClient(sock string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

type container struct {
	ID     string            `json:"Id"`
	State  string            `json:"State"`
	Labels map[string]string `json:"Labels"`
}

// containers lists the containers the agent created (label io.deviceless.agent).
func containers(t testing.TB, sock, agent string) []container {
	t.Helper()
	f, _ := json.Marshal(map[string][]string{"label": {"io.deviceless.agent=" + agent}})
	resp, err := podmanClient(sock).Get("http://d/v4.0.0/libpod/containers/json?all=true&filters=" + url.QueryEscape(string(f)))
	if err != nil {
		t.Fatalf("listing containers: %v", err)
	}
	defer resp.Body.Close()
	var cs []container
	if err := json.NewDecoder(resp.Body).Decode(&cs); err != nil {
		t.Fatalf("listing containers: %v", err)
	}
	return cs
}

// removeContainers force-removes every container of the agent.
func removeContainers(t testing.TB, sock, agent string) {
	var wg sync.WaitGroup
	for _, c := range containers(t, sock, agent) {
		wg.Go(func() {
			pc := podmanClient(sock)
			// SIGKILL first: a force removal waits 10s for a process that ignores SIGTERM.
			for _, r := range []struct{ method, path string }{
				{http.MethodPost, "/kill?signal=KILL"},
				{http.MethodDelete, "?force=true"},
			} {
				req, _ := http.NewRequest(r.method, "http://d/v4.0.0/libpod/containers/"+c.ID+r.path, nil)
				if resp, err := pc.Do(req); err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
}

// waitContainer waits for a running container of agent for invocation id and returns it.
func waitContainer(t testing.TB, sock, agent, invocation string, timeout time.Duration) container {
	t.Helper()
	var found container
	waitFor(t, timeout, fmt.Sprintf("a running container of invocation %s on %s", invocation, agent), func() bool {
		for _, c := range containers(t, sock, agent) {
			if c.State == "running" && (invocation == "" || c.Labels["io.deviceless.invocation"] == invocation) {
				found = c
				return true
			}
		}
		return false
	})
	return found
}

// addAgent writes an agent config (sim GPIO lines fan and heater) and starts it.
func (c *cluster) addAgent(id string, labels map[string]string) *proc {
	c.t.Helper()
	if c.socket == "" {
		c.socket = podmanSocket(c.t)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "id: %s\nbroker: mqtt://%s\npassword: %s\nconcurrency: 2\n", id, c.mqtt, password(id))
	fmt.Fprintf(&b, "state: %s\npodman: {socket: %s}\nlabels:\n", filepath.Join(c.dir, "agent-"+id), c.socket)
	for k, v := range labels {
		fmt.Fprintf(&b, "  %s: %s\n", k, v)
	}
	b.WriteString("gpio:\n  driver: sim\n  lines:\n    fan: {offset: 17, direction: output}\n    heater: {offset: 27, direction: output}\n")
	path := filepath.Join(c.dir, "agent-"+id+".yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.conf[id] = path
	sock := c.socket
	if _, ok := c.agents[id]; !ok {
		// Registered first, so it runs after the agent's own cleanup (kill) and removes
		// what a killed agent left running.
		c.t.Cleanup(func() { removeContainers(c.t, sock, id) })
	}
	return c.startAgent(id)
}

// startAgent starts (or restarts) an agent whose config addAgent wrote.
func (c *cluster) startAgent(id string) *proc {
	c.t.Helper()
	n := 1
	for _, err := os.Stat(filepath.Join(c.dir, fmt.Sprintf("agent-%s-%d.log", id, n))); err == nil; _, err = os.Stat(filepath.Join(c.dir, fmt.Sprintf("agent-%s-%d.log", id, n))) {
		n++
	}
	p := startProc(c.t, c.dir, fmt.Sprintf("agent-%s-%d", id, n), nil, bin, "agent", "-c", c.conf[id], "--log-level", "debug")
	c.agents[id] = p
	return p
}

// agentView is what /api/v1/agents lists.
type agentView struct {
	Agent    string            `json:"agent"`
	Online   bool              `json:"online"`
	Healthy  bool              `json:"healthy"`
	Labels   map[string]string `json:"labels"`
	InFlight int               `json:"in_flight"`
}

func (c *cluster) agentsView() map[string]agentView {
	out := map[string]agentView{}
	var list struct {
		Agents []agentView `json:"agents"`
	}
	if err := getJSON("http://"+c.http+"/api/v1/agents", &list); err != nil {
		return out
	}
	for _, a := range list.Agents {
		out[a.Agent] = a
	}
	return out
}

// waitAgents waits until the engine's registry shows every id online (and healthy) or
// offline.
func (c *cluster) waitAgents(online bool, ids ...string) {
	c.t.Helper()
	waitFor(c.t, 30*time.Second, fmt.Sprintf("agents %v online=%v in the registry", ids, online), func() bool {
		v := c.agentsView()
		for _, id := range ids {
			a, ok := v[id]
			if online && (!ok || !a.Online || !a.Healthy) {
				return false
			}
			if !online && ok && a.Online {
				return false
			}
		}
		return true
	})
}

// apiToken is the e2e engines' admin API token (a program's credentials, as users run them).
const apiToken = "e2e-api-token-0123456789abcdef"

var tokenSum = sha256.Sum256([]byte(apiToken))

func getJSON(u string, v any) error {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// invocationRecord is an entry of /api/v1/invocations.
type invocationRecord struct {
	ID       string          `json:"id"`
	Agent    string          `json:"agent"`
	Function string          `json:"function"`
	Rule     string          `json:"rule"`
	Status   string          `json:"status"`
	Output   json.RawMessage `json:"output"`
	Error    string          `json:"error"`
	Attempts int             `json:"attempts"`
}

// mosquittoSub starts mosquitto_sub as user (MQTT v5, QoS 1) printing "topic payload" lines.
func (c *cluster) mosquittoSub(name, username string, extra []string, topics ...string) *proc {
	c.t.Helper()
	host, port, _ := net.SplitHostPort(c.mqtt)
	argv := []string{"mosquitto_sub", "-h", host, "-p", port, "-u", username, "-P", password(username),
		"-V", "mqttv5", "-q", "1", "-v", "-i", name}
	argv = append(argv, extra...)
	for _, tp := range topics {
		argv = append(argv, "-t", tp)
	}
	p := startProc(c.t, c.dir, name, nil, argv...)
	return p
}

// waitSubscribed makes sure a mosquitto_sub is subscribed by publishing probes on topic
// until one arrives.
func (c *cluster) waitSubscribed(sub *proc, topic string) {
	c.t.Helper()
	probe := "probe-" + randHex(4)
	waitFor(c.t, 20*time.Second, "mosquitto_sub "+sub.name+" subscribed", func() bool {
		if sub.exited() {
			c.t.Fatalf("%s exited: %v\n%s", sub.name, sub.err, strings.Join(sub.out.Lines(), "\n"))
		}
		c.pub("obs", topic, probe, 0)
		deadline := time.Now().Add(500 * time.Millisecond)
		for time.Now().Before(deadline) {
			if len(sub.out.Match(probe)) > 0 {
				return true
			}
			time.Sleep(20 * time.Millisecond)
		}
		return false
	})
}

// pub publishes one message with mosquitto_pub and fails the test unless it succeeds.
func (c *cluster) pub(username, topic, payload string, qos int) {
	c.t.Helper()
	if err := c.tryPub(username, "", topic, payload, qos); err != nil {
		c.t.Fatal(err)
	}
}

// tryPub publishes one message with mosquitto_pub (MQTT v5); with clientID set the session is
// persistent (clean start off). It returns an error unless the broker acknowledged it (QoS 1).
func (c *cluster) tryPub(username, clientID, topic, payload string, qos int) error {
	host, port, _ := net.SplitHostPort(c.mqtt)
	argv := []string{"-h", host, "-p", port, "-u", username, "-P", password(username),
		"-V", "mqttv5", "-q", fmt.Sprint(qos), "-t", topic, "-m", payload}
	if clientID != "" {
		argv = append(argv, "-i", clientID, "-c", "-x", "3600")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mosquitto_pub", argv...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mosquitto_pub -t %s: %v: %s", topic, err, out)
	}
	return nil
}

// messages parses "topic payload" lines of a mosquitto_sub -v on topic.
func messages(sub *proc, topic string) []string {
	var out []string
	for _, l := range sub.out.Lines() {
		if t, payload, ok := strings.Cut(l, " "); ok && t == topic {
			out = append(out, payload)
		}
	}
	return out
}

// waitMessage waits for a message on topic whose payload contains every one of subs.
func waitMessage(t testing.TB, sub *proc, timeout time.Duration, topic string, subs ...string) string {
	t.Helper()
	var msg string
	waitFor(t, timeout, fmt.Sprintf("a message on %s with %q", topic, subs), func() bool {
		for _, m := range messages(sub, topic) {
			if containsAll(m, subs...) {
				msg = m
				return true
			}
		}
		return false
	})
	return msg
}

// result is a finished invocation as the engine publishes it on deviceless/results/{fn}.
type result struct {
	ID       string          `json:"id"`
	Agent    string          `json:"agent"`
	Function string          `json:"function"`
	Rule     string          `json:"rule"`
	Status   string          `json:"status"`
	Output   json.RawMessage `json:"output"`
	Error    string          `json:"error"`
	Cold     bool            `json:"cold"`
}

func decode[T any](t testing.TB, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
	return v
}

// scanLines is a small helper for parsing a log's key=value pairs.
func logValue(line, key string) string {
	sc := bufio.NewScanner(strings.NewReader(line))
	sc.Split(bufio.ScanWords)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// invocations returns /api/v1/invocations (newest first).
func (c *cluster) invocations() []invocationRecord {
	c.t.Helper()
	var v struct {
		Invocations []invocationRecord `json:"invocations"`
	}
	if err := getJSON("http://"+c.http+"/api/v1/invocations?limit=1000", &v); err != nil {
		c.t.Fatal(err)
	}
	return v.Invocations
}

// compact returns raw JSON without insignificant spaces.
func compact(raw []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}
