package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deviceless/deviceless/protocol"
)

const wasmRules = `
functions:
  fan-go:
    runtime: wasm
    module: go-echo.wasm
    timeout: 30s
  fan-c:
    runtime: wasm
    module: wasm/c-echo.wasm
    memory: 2Mi
  shell:
    runtime: sh
    code: echo '{"result":1}'
rules:
  - name: hot-wasm
    on: sensors/+/temperature
    if: payload.celsius > 28
    do:
      - invoke: fan-go
  - name: cold-shell
    on: sensors/+/cold
    do:
      - invoke: shell
`

// buildWasmExamples builds examples/wasm into dir (scripts/wasm-examples.sh).
func buildWasmExamples(t testing.TB, dir string) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(repoRoot, "scripts", "wasm-examples.sh"), dir)
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the wasm examples: %v\n%s\n%s", err, out, setupHint)
	}
}

// addWasmAgent starts an agent with podman disabled: it has nothing but the broker's
// address (no podman socket, no file shared with the engine).
func (c *cluster) addWasmAgent(id string) *proc {
	c.t.Helper()
	conf := fmt.Sprintf("id: %s\nbroker: mqtt://%s\npassword: %s\nstate: %s\npodman: {enabled: false, socket: %s}\n"+
		"gpio:\n  driver: sim\n  lines:\n    fan: {offset: 17, direction: output}\n",
		id, c.mqtt, password(id), filepath.Join(c.dir, "agent-"+id), filepath.Join(c.dir, "no-podman.sock"))
	path := filepath.Join(c.dir, "agent-"+id+".yaml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.conf[id] = path
	return c.startAgent(id)
}

// customSection returns module with a custom section appended: another valid module (its
// own digest) that runs the same.
func customSection(module []byte, name string) []byte {
	body := append(append([]byte{byte(len(name))}, name...), "e2e"...)
	return append(append(append([]byte{}, module...), 0, byte(len(body))), body...)
}

// The issue 17 path end to end, with the built binary: rule files name modules relative to
// themselves; an agent with podman disabled that reaches only the broker (the project's,
// 1 MiB packets) gets the 3 MB Go module from the engine in chunks and closes the loop
// event → rule → wasm function → GPIO line; a container function is not sent to it (no
// agent has podman: dead letter). `deviceless functions deploy --runtime wasm --module`
// sends a module with the deploy; one tampered with in the engine's state is refused by
// digest and the invocation answered rejected with the reason; `rules check` refuses a
// missing module and a file that is no WebAssembly.
func TestWasmEndToEnd(t *testing.T) {
	id := "wasm-" + randHex(3)
	c := newCluster(t, wasmRules, id)
	buildWasmExamples(t, c.rules)
	if err := os.MkdirAll(filepath.Join(c.rules, "wasm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(c.rules, "c-echo.wasm"), filepath.Join(c.rules, "wasm", "c-echo.wasm")); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(c.rules, "go-echo.wasm")); err != nil || st.Size() <= 1<<20 {
		t.Fatalf("go-echo.wasm: %v, %v: the test wants a module over the broker's 1 MiB packets", st, err)
	}
	c.startEngine()
	agent := c.addWasmAgent(id)
	c.waitAgents(true, id)
	sub := c.mosquittoSub("observer", "obs", nil, "deviceless/results/#", "deviceless/deadletter", "deviceless/agents/+/status", "e2e/probe")
	c.waitSubscribed(sub, "e2e/probe")

	st := decode[protocol.Status](t, waitMessage(t, sub, 30*time.Second, "deviceless/agents/"+id+"/status", `"online":true`))
	if len(st.Runtimes) != 1 || st.Runtimes[0] != "wasm" || !st.Healthy || st.Containers == nil || *st.Containers {
		t.Fatalf("status of the wasm-only agent: %+v", st)
	}

	// event → rule → wasm (fetched over the broker) → GPIO line.
	c.pub("dev", "sensors/gh1/temperature", `{"celsius":31}`, 1)
	res := decode[faasResult](t, waitMessage(t, sub, 60*time.Second, "deviceless/results/fan-go", `"rule":"hot-wasm"`))
	if res.Status != "ok" || res.Agent != id || !strings.Contains(string(res.Output), `"function":"fan-go"`) {
		t.Fatalf("fan-go result: %+v", res)
	}
	waitMessage(t, sub, 30*time.Second, "deviceless/agents/"+id+"/status", `"fan":{"direction":"output","value":1}`)
	agent.out.WaitLine(t, 10*time.Second, "wasm module fetched from the engine", "bytes=")

	// A container function: no agent with podman, so no agent for it.
	c.pub("dev", "sensors/gh1/cold", `{}`, 1)
	dl := waitMessage(t, sub, 30*time.Second, "deviceless/deadletter", `"shell"`)
	if !strings.Contains(dl, "no online agent matches") {
		t.Errorf("container function's dead letter: %s", dl)
	}

	// Deploy with the CLI: the module travels with the deploy.
	cMod, err := os.ReadFile(filepath.Join(c.rules, "wasm", "c-echo.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	variant := filepath.Join(c.dir, "variant.wasm")
	if err := os.WriteFile(variant, customSection(cMod, "deviceless-e2e"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := c.cli("obs", "functions", "deploy", "--name", "fan-variant", "--runtime", "wasm", "--module", variant); code != 0 || !strings.HasPrefix(out, "deployed fan-variant@1") {
		t.Fatalf("deploy: %d %s %s", code, out, errs)
	}
	status, body := c.api(http.MethodPost, "/api/v1/invoke/fan-variant", "obs", `{"args":{"n":1}}`)
	var inv faasResult
	if err := json.Unmarshal(body, &inv); status != http.StatusOK || err != nil || inv.Status != "ok" || !strings.Contains(string(inv.Output), `"fan-variant@1"`) {
		t.Fatalf("invoke fan-variant: %d %s", status, body)
	}

	// A deploy file names its module relative to itself; the same module: the same digest.
	deployFile := filepath.Join(c.dir, "fan-file.yaml")
	if err := os.WriteFile(deployFile, []byte("name: fan-file\nruntime: wasm\nmodule: variant.wasm\nmemory: 1Mi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := c.cli("obs", "functions", "deploy", deployFile); code != 0 || !strings.HasPrefix(out, "deployed fan-file@1") {
		t.Fatalf("deploy file: %d %s %s", code, out, errs)
	}
	status, body = c.api(http.MethodGet, "/api/v1/functions/fan-file", "obs", "")
	if status != http.StatusOK || !strings.Contains(string(body), protocol.ModuleDigest(customSection(cMod, "deviceless-e2e"))) {
		t.Fatalf("fan-file: %d %s", status, body)
	}

	// A second deploy whose module is tampered with in the engine's state before any
	// agent has it: refused by digest, and the invocation is rejected with the reason.
	other := customSection(cMod, "deviceless-e2e-tampered")
	otherPath := filepath.Join(c.dir, "other.wasm")
	if err := os.WriteFile(otherPath, other, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := c.cli("obs", "functions", "deploy", "--name", "fan-tampered", "--runtime", "wasm", "--module", otherPath); code != 0 {
		t.Fatalf("deploy: %d %s %s", code, out, errs)
	}
	d := protocol.ModuleDigest(other)
	stored := filepath.Join(c.store+"-engine", "modules", strings.TrimPrefix(d, "sha256:")+".wasm")
	bad := append([]byte{}, other...)
	bad[len(bad)-1] ^= 0xff
	if err := os.WriteFile(stored, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	status, body = c.api(http.MethodPost, "/api/v1/invoke/fan-tampered", "obs", `{}`)
	if err := json.Unmarshal(body, &inv); err != nil || inv.Status == "ok" || !strings.Contains(inv.Error, "hashes to") {
		t.Fatalf("invoke of a tampered module: %d %s", status, body)
	}
	agent.out.WaitLine(t, 10*time.Second, "wasm module not fetched", d, "hashes to")

	// rules check: a missing module and a file that is not WebAssembly.
	for name, tc := range map[string]struct{ module, want string }{
		"missing": {"nope.wasm", "no such file"},
		"text":    {"e2e.yaml", "not a WebAssembly binary module"},
	} {
		f := filepath.Join(c.dir, "check-"+name+".yaml")
		rules := fmt.Sprintf("functions:\n  f:\n    runtime: wasm\n    module: %s\n", filepath.Join(c.rules, tc.module))
		if err := os.WriteFile(f, []byte(rules), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "rules", "check", f).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), f+":2:") {
			t.Errorf("rules check with a %s module: %v\n%s", name, err, out)
		}
	}
	if out, err := exec.Command(bin, "rules", "check", filepath.Join(c.rules, "e2e.yaml")).CombinedOutput(); err != nil {
		t.Errorf("rules check of the test's rules: %v\n%s", err, out)
	}
}
