package edgeagent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/edgeagent/internal/testenv"
	"github.com/deviceless/deviceless/protocol"
)

// moduleServer stands in for the engine's side of module transfers (engine/modules.go) on
// a real broker: it answers requests on deviceless/modules/+ with the module's chunks, as
// the engine does, or with what a test makes it send instead.
type moduleServer struct {
	t  testing.TB
	c  *paho.Client
	mu sync.Mutex
	// modules by digest; answer, when set, replaces the engine's answer for a digest.
	modules  map[string][]byte
	answer   func(digest string) (payloads [][]byte, props [][]paho.UserProperty)
	requests map[string]int
}

func newModuleServer(t testing.TB, addr string) *moduleServer {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &moduleServer{t: t, modules: map[string][]byte{}, requests: map[string]int{}}
	reqs := make(chan *paho.Publish, 64)
	s.c = paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(pr paho.PublishReceived) (bool, error) { reqs <- pr.Packet; return true, nil }}})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := s.c.Connect(ctx, &paho.Connect{KeepAlive: 30, ClientID: fmt.Sprintf("modules-%p", s), CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "deviceless/modules/+", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case p := <-reqs:
				s.serve(p)
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done; _ = s.c.Disconnect(&paho.Disconnect{}) })
	return s
}

func (s *moduleServer) put(b []byte) string {
	d := protocol.ModuleDigest(b)
	s.mu.Lock()
	s.modules[d] = b
	s.mu.Unlock()
	return d
}

func (s *moduleServer) count(d string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[d]
}

// chunks splits b as the engine does.
func chunks(b []byte) ([][]byte, [][]paho.UserProperty) {
	n := (len(b) + protocol.ModuleChunkSize - 1) / protocol.ModuleChunkSize
	var ps [][]byte
	var props [][]paho.UserProperty
	for i := range n {
		ps = append(ps, b[i*protocol.ModuleChunkSize:min(len(b), (i+1)*protocol.ModuleChunkSize)])
		props = append(props, []paho.UserProperty{{Key: protocol.ChunkProperty, Value: fmt.Sprintf("%d/%d", i, n)},
			{Key: protocol.ModuleSizeProperty, Value: strconv.Itoa(len(b))}})
	}
	return ps, props
}

func (s *moduleServer) serve(p *paho.Publish) {
	d := strings.TrimPrefix(p.Topic, "deviceless/modules/")
	s.mu.Lock()
	s.requests[d]++
	b, answer := s.modules[d], s.answer
	s.mu.Unlock()
	var payloads [][]byte
	var props [][]paho.UserProperty
	switch {
	case answer != nil:
		payloads, props = answer(d)
	case b != nil:
		payloads, props = chunks(b)
	default:
		payloads, props = [][]byte{nil}, [][]paho.UserProperty{{{Key: protocol.ModuleErrorProperty, Value: "the engine has no module " + d}}}
	}
	if p.Properties == nil {
		return
	}
	for i := range payloads {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		_, err := s.c.Publish(ctx, &paho.Publish{Topic: p.Properties.ResponseTopic, QoS: 1, Payload: payloads[i],
			Properties: &paho.PublishProperties{CorrelationData: p.Properties.CorrelationData, User: props[i]}})
		cancel()
		if err != nil {
			s.t.Errorf("sending a module chunk: %v", err)
			return
		}
	}
}

func wasmInvocation(id, digest string) protocol.Invocation {
	return protocol.Invocation{ID: id, Function: "fan-" + id, Attempt: 1,
		Event: &protocol.Event{Topic: "sensors/gh1/temperature", Payload: json.RawMessage(`{"celsius":31}`)},
		Args:  map[string]any{"celsius": 31},
		Spec:  protocol.FunctionSpec{Runtime: protocol.RuntimeWasm, Module: digest, Timeout: protocol.Duration(time.Minute)}}
}

// withFiller returns module with a custom section of n filler bytes appended: a valid
// module of its own digest, as quick to compile as module (custom sections are skipped).
func withFiller(module []byte, n int) []byte {
	body := append([]byte{6, 'f', 'i', 'l', 'l', 'e', 'r'}, bytes.Repeat([]byte{'x'}, n)...)
	out := append(slices.Clone(module), 0)
	for size := len(body); ; {
		b := byte(size & 0x7f)
		if size >>= 7; size == 0 {
			out = append(out, b)
			break
		}
		out = append(out, b|0x80)
	}
	return append(out, body...)
}

// An agent with podman disabled (and no podman service at all) starts, advertises only
// wasm, and serves wasm functions whose modules it fetches from the engine over the
// project's broker (1 MiB packets): c-echo with 1.5 MiB of filler travels in chunks (the
// real 3 MB Go module does in test/wasm_test.go; compiling it under -race takes minutes);
// eight concurrent invocations of a module it lacks cost one transfer; the module is kept
// across a restart. A container function is refused with the reason.
func TestWasmAgentWithoutPodman(t *testing.T) {
	examples := testenv.WasmExamples(t)
	cMod, err := os.ReadFile(filepath.Join(examples, "c-echo.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	bigMod := withFiller(cMod, 3<<19)
	cfg := testConfig(t, "")
	cfg.Podman = PodmanConfig{Enabled: new(false), Socket: filepath.Join(t.TempDir(), "no-podman.sock")}
	cfg.Concurrency = 8
	startDevicelessBroker(t, &cfg)
	addr := strings.TrimPrefix(cfg.Broker, "mqtt://")
	cl := newClient(t, addr, "deviceless/agents/+/status", "test/replies/#")
	engine := newModuleServer(t, addr)
	d := engine.put(bigMod)
	a, stop := startAgentStop(t, cfg, cl)

	st := cl.status(cfg.ID, func(s protocol.Status) bool { return s.Online })
	if !st.Healthy || !slices.Equal(st.Runtimes, []string{"wasm"}) || st.Containers == nil || *st.Containers {
		t.Fatalf("status of an agent without podman: %+v", st)
	}

	var wg sync.WaitGroup
	results := make([]protocol.Result, 8)
	for i := range results {
		wg.Go(func() {
			inv := wasmInvocation(fmt.Sprintf("big-%d", i), d)
			payload, _ := json.Marshal(inv)
			m, ok := cl.wait(cl.send(cfg.ID, payload))
			if !ok {
				t.Errorf("no result for %s", inv.ID)
				return
			}
			_ = json.Unmarshal(m.Payload, &results[i])
		})
	}
	wg.Wait()
	for i, res := range results {
		if res.Status != protocol.StatusOK || !strings.Contains(string(res.Output), fmt.Sprintf(`"big-%d"`, i)) {
			t.Errorf("invocation %d: %s %q, output %s", i, res.Status, res.Error, res.Output)
		}
	}
	if n := engine.count(d); n != 1 {
		t.Errorf("%d module requests for 8 concurrent invocations, want 1", n)
	}
	if v, err := a.Lines().Get("fan"); err != nil || v != 1 {
		t.Errorf("fan = %d, %v after the function asked for it", v, err)
	}

	// A container function: this agent has none to run it with.
	res := cl.invoke(cfg.ID, shInvocation("sh-1", "echo 1"))
	if res.Status != protocol.StatusError || !strings.Contains(res.Error, "runs no containers") {
		t.Errorf("container function on an agent without podman: %s %q", res.Status, res.Error)
	}

	// Restarted, the agent has the module on disk: no new request.
	stop()
	startAgent(t, cfg, cl)
	if res := cl.invoke(cfg.ID, wasmInvocation("big-again", d)); res.Status != protocol.StatusOK {
		t.Errorf("after a restart: %s %q", res.Status, res.Error)
	}
	if n := engine.count(d); n != 1 {
		t.Errorf("%d module requests after a restart, want still 1 (the store keeps it)", n)
	}
}

// A module the agent cannot get or verify is rejected with the reason, and nothing runs:
// bytes that do not hash to the digest (tampered on the way, or by a lying engine), an
// engine that has no such module, a malformed transfer, and an engine that never answers
// (the wasm.fetch deadline). A later invocation of the same digest fetches again.
func TestWasmModuleRefused(t *testing.T) {
	examples := testenv.WasmExamples(t)
	cMod, err := os.ReadFile(filepath.Join(examples, "c-echo.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "")
	cfg.Podman.Enabled = new(false)
	cfg.Wasm.Fetch = 2 * time.Second
	startDevicelessBroker(t, &cfg)
	addr := strings.TrimPrefix(cfg.Broker, "mqtt://")
	cl := newClient(t, addr, "deviceless/agents/+/status", "test/replies/#")
	engine := newModuleServer(t, addr)
	a := startAgent(t, cfg, cl)

	d := protocol.ModuleDigest(cMod)
	tampered := slices.Clone(cMod)
	tampered[len(tampered)/2] ^= 0xff
	silent := protocol.ModuleDigest([]byte("\x00asm\x01\x00\x00\x00never sent"))
	for _, tc := range []struct {
		name   string
		digest string
		answer func(string) ([][]byte, [][]paho.UserProperty)
		want   string
	}{
		{"tampered", d, func(string) ([][]byte, [][]paho.UserProperty) { return chunks(tampered) }, "hash to " + protocol.ModuleDigest(tampered)},
		{"unknown", protocol.ModuleDigest([]byte("no such module")), nil, "the engine refused it: the engine has no module"},
		{"bad chunk", d, func(string) ([][]byte, [][]paho.UserProperty) {
			ps, props := chunks(cMod)
			props[0][0].Value = "7/1"
			return ps, props
		}, "malformed transfer"},
		{"oversized", d, func(string) ([][]byte, [][]paho.UserProperty) {
			return [][]byte{cMod}, [][]paho.UserProperty{{{Key: protocol.ChunkProperty, Value: "0/1"}, {Key: protocol.ModuleSizeProperty, Value: "999999999999"}}}
		}, "malformed transfer"},
		{"no answer", silent, func(string) ([][]byte, [][]paho.UserProperty) { return nil, nil }, "not received from the engine within 2s"},
	} {
		engine.mu.Lock()
		engine.answer = tc.answer
		engine.mu.Unlock()
		res := cl.invoke(cfg.ID, wasmInvocation("refused-"+strings.ReplaceAll(tc.name, " ", "-"), tc.digest))
		if res.Status != protocol.StatusRejected || !strings.Contains(res.Error, tc.want) {
			t.Errorf("%s: %s %q, want rejected with %q", tc.name, res.Status, res.Error, tc.want)
		}
	}
	if a.wasm.Store().Has(d) {
		t.Fatal("a module that failed verification was stored")
	}
	// A transfer that ends after the invocation's deadline: stored, but not run (expired).
	late := wasmInvocation("late", protocol.ModuleDigest(withFiller(cMod, 10)))
	late.Deadline = time.Now().Add(300 * time.Millisecond)
	engine.mu.Lock()
	engine.answer = func(string) ([][]byte, [][]paho.UserProperty) {
		for !time.Now().After(late.Deadline) { // the engine is slow: it answers past the deadline
			time.Sleep(10 * time.Millisecond)
		}
		return chunks(withFiller(cMod, 10))
	}
	engine.mu.Unlock()
	if res := cl.invoke(cfg.ID, late); res.Status != protocol.StatusExpired || !strings.Contains(res.Error, "passed while the module was fetched") {
		t.Errorf("late module: %s %q", res.Status, res.Error)
	}
	if !a.wasm.Store().Has(late.Spec.Module) {
		t.Error("the late module was not kept for the next invocation")
	}
	// The real module, asked again under a new id: fetched and run.
	engine.mu.Lock()
	engine.answer = nil
	engine.mu.Unlock()
	engine.put(cMod)
	if res := cl.invoke(cfg.ID, wasmInvocation("c-ok", d)); res.Status != protocol.StatusOK || !strings.Contains(string(res.Output), "c-ok") {
		t.Errorf("the real module after the refusals: %s %q %s", res.Status, res.Error, res.Output)
	}
}

// wasm.enabled: false: the agent advertises no wasm and refuses wasm functions; both
// runtimes off is a config error.
func TestWasmDisabled(t *testing.T) {
	broker := startBroker(t)
	cl := newClient(t, broker, "deviceless/agents/+/status", "test/replies/#")
	cfg := testConfig(t, broker)
	cfg.Wasm.Enabled = new(false)
	startAgent(t, cfg, cl)
	st := cl.status(cfg.ID, func(s protocol.Status) bool { return s.Online })
	if slices.Contains(st.Runtimes, "wasm") || st.Containers == nil || !*st.Containers {
		t.Errorf("runtimes %v with wasm disabled", st.Runtimes)
	}
	res := cl.invoke(cfg.ID, wasmInvocation("off", protocol.ModuleDigest([]byte("x"))))
	if res.Status != protocol.StatusError || !strings.Contains(res.Error, "wasm.enabled: false") {
		t.Errorf("wasm function with wasm off: %s %q", res.Status, res.Error)
	}

	both := testConfig(t, broker)
	both.Wasm.Enabled, both.Podman.Enabled = new(false), new(false)
	if _, err := New(both, quietLogger()); err == nil || !strings.Contains(err.Error(), "both off") {
		t.Errorf("both runtimes off: %v", err)
	}
}

// buildC compiles edgeagent/wasm/testdata/c/<name>.c to a module with clang and wasi-libc.
func buildC(t testing.TB, name string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), name+".wasm")
	cmd := exec.Command("clang", "--target=wasm32-wasi", "-O2", "-Wall", "-Werror", "-Wl,--strip-all",
		"-o", out, filepath.Join("wasm", "testdata", "c", name+".c"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clang %s: %v\n%s\n(the C toolchain comes with scripts/setup.sh)", name, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Through the agent, a wasm function's failures get the container statuses: a trap is
// `error` with the trap in the message, an endless loop is `timeout` at its deadline, a
// memory.grow past the spec's memory is `oom`, a module trying files and sockets gets
// nothing and says so, 10 MiB of stdout is `error` at limits.output; and the worker is
// free for the next invocation each time.
func TestWasmOutcomesThroughAgent(t *testing.T) {
	cfg := testConfig(t, "")
	cfg.Podman.Enabled = new(false)
	startDevicelessBroker(t, &cfg)
	addr := strings.TrimPrefix(cfg.Broker, "mqtt://")
	cl := newClient(t, addr, "deviceless/agents/+/status", "test/replies/#")
	engine := newModuleServer(t, addr)
	startAgent(t, cfg, cl)
	for _, tc := range []struct {
		module  string
		timeout time.Duration
		memory  protocol.Size
		status  string
		want    string
	}{
		{"trap", 0, 0, protocol.StatusError, "wasm trap"},
		{"loop", 500 * time.Millisecond, 0, protocol.StatusTimeout, "killed after 500ms"},
		{"grow", 0, 8 << 20, protocol.StatusOOM, "memory limit"},
		{"bigout", 0, 0, protocol.StatusError, "output exceeds the 1048576 byte limit"},
		{"escape", 0, 0, protocol.StatusOK, ""},
	} {
		d := engine.put(buildC(t, tc.module))
		inv := wasmInvocation(tc.module, d)
		inv.Spec.Timeout, inv.Spec.Memory = protocol.Duration(20*time.Second), tc.memory
		if tc.timeout > 0 {
			inv.Spec.Timeout = protocol.Duration(tc.timeout)
		}
		res := cl.invoke(cfg.ID, inv)
		if res.Status != tc.status || !strings.Contains(res.Error, tc.want) {
			t.Errorf("%s: %s %q, want %s with %q", tc.module, res.Status, res.Error, tc.status, tc.want)
		}
		if tc.module == "escape" && strings.Contains(string(res.Output), `"ok"`) {
			t.Errorf("escape reached the host: %s", res.Output)
		}
	}
}

// podman on (the default) but absent, as on a device without it: the agent starts,
// reports the problem (unhealthy, the reason in its status) and still serves wasm.
func TestWasmWithPodmanAbsent(t *testing.T) {
	cMod, err := os.ReadFile(filepath.Join(testenv.WasmExamples(t), "c-fan.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "")
	cfg.Podman.Socket = filepath.Join(t.TempDir(), "absent.sock")
	startDevicelessBroker(t, &cfg)
	addr := strings.TrimPrefix(cfg.Broker, "mqtt://")
	cl := newClient(t, addr, "deviceless/agents/+/status", "test/replies/#")
	d := newModuleServer(t, addr).put(cMod)
	a := startAgent(t, cfg, cl)
	st := cl.status(cfg.ID, func(s protocol.Status) bool { return s.Online && !s.Healthy })
	if !strings.Contains(st.Problem, "absent.sock") {
		t.Errorf("problem %q does not name the podman socket", st.Problem)
	}
	inv := wasmInvocation("absent", d)
	inv.Args = map[string]any{"value": 1}
	if res := cl.invoke(cfg.ID, inv); res.Status != protocol.StatusOK || string(res.Output) != "1" {
		t.Fatalf("wasm with podman absent: %s %q %s", res.Status, res.Error, res.Output)
	}
	if v, _ := a.Lines().Get("fan"); v != 1 {
		t.Errorf("fan = %d", v)
	}
	// A wasm run says nothing of podman: the agent is still unhealthy, for the same reason.
	if st := a.Status(); st.Healthy || !strings.Contains(st.Problem, "absent.sock") {
		t.Errorf("after a wasm run: healthy %v, problem %q", st.Healthy, st.Problem)
	}
}
