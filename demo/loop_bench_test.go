package demo

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/edgeagent"
	"github.com/deviceless/deviceless/engine"
)

const loopRules = `
functions:
  set-fan-cold:
    runtime: sh
    code: |
      read -r inv
      case "$inv" in *'"v":1'*) v=1 ;; *) v=0 ;; esac
      echo "{\"actuate\":[{\"line\":\"fan\",\"value\":$v}]}"
  set-fan-warm:
    runtime: sh
    code: |
      read -r inv
      case "$inv" in *'"v":1'*) v=1 ;; *) v=0 ;; esac
      echo "{\"actuate\":[{\"line\":\"fan\",\"value\":$v}]}"
    warm: {idle: 5m, max_uses: 100000}
  set-fan-wasm-c:
    runtime: wasm
    module: c-fan.wasm
    memory: 2Mi
  set-fan-wasm-go:
    runtime: wasm
    module: go-echo.wasm
rules:
  - {name: cold, on: loop/cold, do: [{invoke: set-fan-cold, args: {v: payload.v}}]}
  - {name: warm, on: loop/warm, do: [{invoke: set-fan-warm, args: {v: payload.v}}]}
  - {name: wasm-c, on: loop/wasm-c, do: [{invoke: set-fan-wasm-c, args: {value: payload.v}}]}
  - {name: wasm-go, on: loop/wasm-go, do: [{invoke: set-fan-wasm-go, args: {value: payload.v, for: '""'}}]}
  - {name: direct, on: loop/direct, do: [{actuate: {target: {agent: loop-edge}, line: fan, value: payload.v}}]}
`

// BenchmarkClosedLoop measures sense → decide → compute → actuate with real processes in
// one: a device's MQTT publish, through the embedded broker and the rules, to the GPIO line
// of an edge agent changing (simulated driver), for a cold function (one container per
// call), a warm one (a runner kept in its container), WebAssembly functions (a fresh
// instance per call: c-fan in C, go-echo in Go, examples/wasm) and a direct actuation (no
// function). Run: go test ./demo -run '^$' -bench ClosedLoop -benchtime 30x
func BenchmarkClosedLoop(b *testing.B) {
	socket := edgeagent.DefaultPodmanSocket()
	if err := checkPodman(socket); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "loop.yaml"), []byte(loopRules), 0o644); err != nil {
		b.Fatal(err)
	}
	build := exec.Command("bash", "../scripts/wasm-examples.sh", dir) // c-fan.wasm, go-echo.wasm beside the rules
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building the wasm examples: %v\n%s", err, out)
	}
	quiet := slog.New(slog.DiscardHandler)
	ecfg := engine.Config{Rules: []string{dir}, HTTP: "off"}
	ecfg.Broker.Listen = "127.0.0.1:0"
	// As the examples run: a store (so the event intake is durable and every QoS 1 event and
	// message for the agent is on disk before it is acknowledged or sent).
	ecfg.Broker.Store = filepath.Join(dir, "store")
	ecfg.Broker.AllowAnonymous = true
	ecfg.Broker.AnonymousRole = broker.RoleAdmin // the device
	hash, err := broker.HashPassword("loop-secret")
	if err != nil {
		b.Fatal(err)
	}
	ecfg.Broker.Users = []broker.User{{Username: "loop-edge", PasswordHash: hash, Role: broker.RoleAgent}}
	eng, err := engine.New(ecfg, quiet)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	engDone := make(chan struct{})
	go func() { defer close(engDone); _ = eng.Run(ctx) }()
	<-eng.Ready()
	acfg := edgeagent.Config{ID: "loop-edge", Broker: "mqtt://" + eng.BrokerAddr(), Password: "loop-secret", Concurrency: 4}
	acfg.Podman.Socket = socket
	acfg.GPIO.Driver = "sim"
	acfg.GPIO.Lines = agentLines("fan")
	agent, err := edgeagent.New(acfg, quiet)
	if err != nil {
		b.Fatal(err)
	}
	agentCtx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan struct{})
	go func() { defer close(agentDone); _ = agent.Run(agentCtx) }()
	defer func() { stopAgent(); <-agentDone; cancel(); <-engDone }()

	conn, err := net.Dial("tcp", eng.BrokerAddr())
	if err != nil {
		b.Fatal(err)
	}
	dev := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn)})
	if _, err := dev.Connect(ctx, &paho.Connect{ClientID: "loop-device", KeepAlive: 30, CleanStart: true}); err != nil {
		b.Fatal(err)
	}
	defer dev.Disconnect(&paho.Disconnect{})
	loop := func(kind string, v int) (time.Duration, error) {
		start := time.Now()
		if _, err := dev.Publish(ctx, &paho.Publish{Topic: "loop/" + kind, QoS: 1, Payload: []byte(fmt.Sprintf(`{"v": %d}`, v))}); err != nil {
			return 0, err
		}
		for {
			if got, _ := agent.Lines().Get("fan"); got == v {
				return time.Since(start), nil
			}
			if time.Since(start) > 20*time.Second {
				return 0, fmt.Errorf("%s loop: fan did not become %d", kind, v)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}
	// Wait for the agent to be registered: a direct actuation gets through.
	deadline := time.Now().Add(30 * time.Second)
	for v := 1; ; v = 1 - v {
		if _, err := loop("direct", v); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("agent never actuated")
		}
	}
	v := 0
	// "cold" fires back to back: each event waits for its container, whose preparation
	// the previous call started. "prepared" leaves 500 ms between events, as a sensor
	// publishing twice a second would, so the container the previous call prepared is
	// ready and only started.
	for _, name := range []string{"direct", "wasm-c", "wasm-go", "warm", "cold", "prepared"} {
		kind, spaced := name, name == "prepared"
		if spaced {
			kind = "cold"
		}
		b.Run(name, func(b *testing.B) {
			if kind == "warm" || strings.HasPrefix(kind, "wasm") { // start the runner (fetch and compile the module) outside the measurement
				v = 1 - v
				if _, err := loop(kind, v); err != nil {
					b.Fatal(err)
				}
			}
			var ds []float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if spaced {
					time.Sleep(500 * time.Millisecond)
				}
				v = 1 - v
				d, err := loop(kind, v)
				if err != nil {
					b.Fatal(err)
				}
				ds = append(ds, float64(d.Microseconds())/1000)
			}
			b.StopTimer()
			slices.Sort(ds)
			b.ReportMetric(ds[len(ds)/2], "p50-ms")
			b.ReportMetric(ds[min(len(ds)-1, len(ds)*95/100)], "p95-ms")
		})
	}
}
