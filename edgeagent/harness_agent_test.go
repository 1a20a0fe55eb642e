package edgeagent

// The test harness's agent side: configs against the test broker and the project's podman
// service, agents run until the test ends, and waiting helpers.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deviceless/deviceless/edgeagent/gpio"
	"github.com/deviceless/deviceless/edgeagent/internal/testenv"
	"github.com/deviceless/deviceless/protocol"
)

// wait is the failure deadline for anything a test waits for; never a timing assertion.
const wait = 60 * time.Second

func quietLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("DEVICELESS_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

var agentSeq struct {
	sync.Mutex
	n int
}

// testConfig is an agent config against the test broker and the project's podman service.
func testConfig(t testing.TB, broker string) Config {
	agentSeq.Lock()
	agentSeq.n++
	n := agentSeq.n
	agentSeq.Unlock()
	return Config{
		ID:          fmt.Sprintf("t%d-%d", os.Getpid(), n),
		Broker:      "mqtt://" + broker,
		Labels:      map[string]string{"zone": "test"},
		Podman:      PodmanConfig{Socket: testenv.PodmanSocket(t), Runtime: "runc"},
		State:       t.TempDir(),
		Concurrency: 2,
		GPIO: GPIOConfig{Driver: "sim", Lines: map[string]gpio.LineConfig{
			"fan":    {Offset: 17},
			"alarm":  {Offset: 18, Initial: 0},
			"button": {Offset: 4, Direction: "input", Edge: "rising", Publish: "sensors/button"},
		}},
	}
}

// startAgent runs an agent until the test ends and waits for its online status.
func startAgent(t testing.TB, cfg Config, cl *client) *Agent {
	t.Helper()
	a, _ := startAgentStop(t, cfg, cl)
	return a
}

// startAgentStop is startAgent that also returns a function stopping the agent early.
func startAgentStop(t testing.TB, cfg Config, cl *client) (*Agent, func()) {
	t.Helper()
	a, err := New(cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Error(err)
				}
			case <-time.After(wait):
				t.Error("agent did not stop")
			}
		})
	}
	t.Cleanup(stop)
	if cl != nil {
		cl.status(cfg.ID, func(s protocol.Status) bool { return s.Online })
	}
	return a, stop
}

// shInvocation invokes inline sh code.
func shInvocation(id, code string) protocol.Invocation {
	return protocol.Invocation{ID: id, Function: "fn-" + id, Attempt: 1,
		Event: &protocol.Event{Topic: "sensors/gh1/temperature", Payload: json.RawMessage(`{"celsius":31}`)},
		Args:  map[string]any{"celsius": 31},
		Spec:  protocol.FunctionSpec{Runtime: "sh", Code: code, Timeout: protocol.Duration(20 * time.Second)}}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
