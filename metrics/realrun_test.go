package metrics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/edgeagent"
	"github.com/deviceless/deviceless/edgeagent/gpio"
	"github.com/deviceless/deviceless/engine"
	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/metrics/influxtest"
)

const realRunRules = `
functions:
  cold-fn:
    runtime: sh
    code: 'read -r inv; echo "{\"actuate\":[{\"line\":\"fan\",\"value\":1}],\"result\":1}"'
  warm-fn:
    runtime: sh
    code: 'read -r inv; echo 2'
    warm: {idle: 1m}
  failing:
    runtime: sh
    code: 'read -r inv; exit 3'
rules:
  - {name: cold, on: run/cold, do: [{invoke: cold-fn}]}
  - {name: warm, on: run/warm, do: [{invoke: warm-fn}]}
  - {name: fail, on: run/fail, do: [{invoke: failing}]}
  - {name: direct, on: run/direct, do: [{actuate: {target: {agent: dash-edge}, line: heater, value: 1}}]}
`

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestDashboardAfterARealRun: a real engine and a real agent (podman, simulated GPIO)
// write to a real InfluxDB while events cause cold, warm and failing invocations and
// actuations; then every dashboard panel's query must return data.
func TestDashboardAfterARealRun(t *testing.T) {
	d := loadDashboard(t)
	srv := influxtest.Start(t)
	srv.CreateDatabase("deviceless")
	fast := metrics.Config{URL: srv.URL, Bucket: "deviceless", FlushInterval: 50 * time.Millisecond}
	quiet := slog.New(slog.DiscardHandler)

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "run.yaml"), []byte(realRunRules), 0o644); err != nil {
		t.Fatal(err)
	}
	hash, err := broker.HashPassword("dash-secret")
	if err != nil {
		t.Fatal(err)
	}
	ecfg := engine.Config{Rules: []string{dir}, HTTP: freeAddr(t), Name: "dash-engine", Influx: &fast, MetricsInterval: 100 * time.Millisecond,
		API: engine.APIConfig{Open: true}}
	ecfg.Broker.Listen = "127.0.0.1:0"
	ecfg.Broker.AllowAnonymous, ecfg.Broker.AnonymousRole = true, broker.RoleAdmin
	ecfg.Broker.Users = []broker.User{{Username: "dash-edge", PasswordHash: hash, Role: broker.RoleAgent}}
	eng, err := engine.New(ecfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	engDone := make(chan error, 1)
	go func() { engDone <- eng.Run(ctx) }()
	<-eng.Ready()

	acfg := edgeagent.Config{ID: "dash-edge", Broker: "mqtt://" + eng.BrokerAddr(), Password: "dash-secret",
		Influx: &edgeagent.InfluxConfig{Config: fast, Interval: 100 * time.Millisecond}}
	acfg.GPIO.Driver = "sim"
	acfg.GPIO.Lines = map[string]gpio.LineConfig{"fan": {Offset: 1, Direction: "output"}, "heater": {Offset: 2, Direction: "output"}}
	agent, err := edgeagent.New(acfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	agentCtx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan error, 1)
	go func() { agentDone <- agent.Run(agentCtx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		stopAgent() // flushes its points
		if err := <-agentDone; err != nil {
			t.Error(err)
		}
		cancel()
		if err := <-engDone; err != nil {
			t.Error(err)
		}
	}
	defer stop()

	conn, err := net.Dial("tcp", eng.BrokerAddr())
	if err != nil {
		t.Fatal(err)
	}
	dev := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn)})
	if _, err := dev.Connect(ctx, &paho.Connect{ClientID: "dash-device", KeepAlive: 30, CleanStart: true}); err != nil {
		t.Fatal(err)
	}
	defer dev.Disconnect(&paho.Disconnect{})
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		end := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(end) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	finished := func() int {
		resp, err := http.Get("http://" + eng.HTTPAddr() + "/api/v1/invocations")
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		var v struct{ Invocations []json.RawMessage }
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return len(v.Invocations)
	}
	online := func() bool {
		resp, err := http.Get("http://" + eng.HTTPAddr() + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var v struct {
			AgentsOnline int `json:"agents_online"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return v.AgentsOnline == 1
	}
	waitFor("the agent online", online)
	want := 0
	for round := 0; round < 3; round++ {
		for _, topic := range []string{"run/cold", "run/warm", "run/warm", "run/fail", "run/direct", "run/nothing"} {
			if _, err := dev.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(fmt.Sprintf(`{"round": %d}`, round))}); err != nil {
				t.Fatal(err)
			}
			if topic != "run/direct" && topic != "run/nothing" {
				want++
				waitFor(fmt.Sprintf("%d invocations", want), func() bool { return finished() >= want })
			}
		}
	}
	time.Sleep(300 * time.Millisecond) // a few more agent and event samples
	stop()
	// The run lasts seconds: the view Grafana shows for "last 5 minutes", 1 s resolution.
	checkPanels(t, srv, d, "5m", "1s")
}
