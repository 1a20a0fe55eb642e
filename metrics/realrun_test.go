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
	"runtime"
	"syscall"
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
	"github.com/deviceless/deviceless/protocol"
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
// actuations; then every dashboard panel must show what the run is known to have produced
// (checkPanels): exact counts of events, invocations and actuations, bounds on the rest.
func TestDashboardAfterARealRun(t *testing.T) {
	began := time.Now()
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

	// The rate panels start from the counts of the first second with a sample of them: keep
	// that second free of events (its samples all say 0), so that they show every event.
	waitFor("an events sample of 0 in an earlier second", func() bool {
		res := srv.Query("deviceless", fmt.Sprintf(`SELECT count(received), max(received) FROM deviceless_events WHERE time < %d`, time.Now().Truncate(time.Second).UnixNano()))
		if len(res) == 0 || len(res[0].Series) == 0 {
			return false
		}
		r := res[0].Series[0].Rows()[0]
		return fmt.Sprint(r["count"]) != "0" && fmt.Sprint(r["max"]) == "0"
	})
	// Three rounds, each: cold-fn (actuates fan), warm-fn twice, failing, a direct
	// actuation of heater, and an event no rule matches. Each invocation is awaited before
	// the next event, so warm-fn's first run is its only cold start.
	facts := runFacts{events: map[string][2]metrics.EventCounts{}, agents: []string{"dash-edge"}}
	want := 0
	for round := 0; round < 3; round++ {
		for _, topic := range []string{"run/cold", "run/warm", "run/warm", "run/fail", "run/direct", "run/nothing"} {
			if _, err := dev.Publish(ctx, &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(fmt.Sprintf(`{"round": %d}`, round))}); err != nil {
				t.Fatal(err)
			}
			switch topic {
			case "run/cold":
				facts.invocations = append(facts.invocations, invocationFact{function: "cold-fn", rule: "cold", status: protocol.StatusOK, cold: true})
				facts.actuations = append(facts.actuations, actuationFact{agent: "dash-edge", line: "fan", value: 1})
			case "run/warm":
				facts.invocations = append(facts.invocations, invocationFact{function: "warm-fn", rule: "warm", status: protocol.StatusOK, cold: want == 1})
			case "run/fail":
				facts.invocations = append(facts.invocations, invocationFact{function: "failing", rule: "fail", status: protocol.StatusError, cold: true})
			case "run/direct":
				facts.actuations = append(facts.actuations, actuationFact{agent: "dash-edge", line: "heater", value: 1})
			}
			if topic != "run/direct" && topic != "run/nothing" {
				want++
				waitFor(fmt.Sprintf("%d invocations", want), func() bool { return finished() >= want })
			}
		}
	}
	// Every actuation applied before the agent stops (the last direct one follows the last
	// invocation); the engine counts every event when it stops.
	applied := func(line string) int {
		mfs, err := agent.Metrics().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "deviceless_actuations_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "line" && l.GetValue() == line {
						return int(m.GetCounter().GetValue())
					}
				}
			}
		}
		return 0
	}
	waitFor("3 fan and 3 heater actuations applied", func() bool { return applied("fan") >= 3 && applied("heater") >= 3 })
	stop()

	// Events: 18 from the device (15 match a rule, each firing once). The engine's own 12
	// results on deviceless/results/+ come back into the rules only where a rule's `on`
	// matches them, and no rule here does.
	facts.events["dash-engine"] = [2]metrics.EventCounts{{}, {Received: 18, Matched: 15, Fired: 15}}
	facts.latencyMs = float64(time.Since(began).Milliseconds())
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	facts.cpu = span{lo: 0, hi: 100 * float64(runtime.NumCPU())}
	facts.rss = span{lo: 1 << 20, hi: float64(si.Totalram) * float64(si.Unit)}
	// One invocation at a time: at most one running or waiting, and cold starts last
	// several of the agent's 100 ms reports.
	facts.running = span{lo: 0, hi: 1, reached: true}
	facts.que = span{lo: 0, hi: 1}
	// The run lasts seconds: the view Grafana shows for "last 5 minutes", 1 s resolution.
	checkPanels(t, srv, d, "5m", time.Second, facts)
}
