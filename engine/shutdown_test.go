package engine

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/deviceless/deviceless/broker"
)

// SIGTERM under a flood: a device keeps publishing as fast as mosquitto_pub -l goes, and the
// engine still stops within its drain budget (it used to keep taking the queued events
// without ever seeing that it was told to stop).
func TestShutdownUnderFlood(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "rules:\n  - name: hot\n    on: in/+\n    if: payload.t > 1\n    do: [{publish: {topic: '\"out/x\"'}}]\n")
	cfg := testConfig(t, dir)
	e, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	<-e.Ready()
	host, port, _ := net.SplitHostPort(e.BrokerAddr())
	// Four publishers keep the intake from ever running empty on two cores.
	for range 4 {
		pub := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-u", "dev", "-P", "pw-dev", "-t", "in/a", "-q", "0", "-l")
		in, err := pub.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Start(); err != nil {
			t.Fatalf("mosquitto_pub: %v (run go tool task setup)", err)
		}
		t.Cleanup(func() { _ = in.Close(); _ = pub.Process.Kill(); _ = pub.Wait() })
		go func() {
			lines := bytes.Repeat([]byte(`{"t":5}`+"\n"), 1000)
			for {
				if _, err := in.Write(lines); err != nil {
					return
				}
			}
		}()
	}
	eventually(t, "the flood reaching the rules", func() bool {
		return e.ruleSet().Rules[0].Counters().Fired.Load() > 1000
	})
	cancel()
	stopping := time.Now()
	budget := cfg.ShutdownGrace + 5*time.Second // drain grace, the bounded final drain, the broker's stop
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(budget):
		t.Fatalf("engine still running %v after it was told to stop, under a flood", budget)
	}
	// Every event the intake accepted was evaluated, or counted as left unevaluated.
	r := &running{Engine: e}
	evaluated := testutilValue(r, eventsTotal, "received") + testutilValue(r, eventsTotal, "skipped")
	dropped := testutilValue(r, unevaluatedTotal, "dropped")
	t.Logf("stopped in %v: %v events evaluated, %v dropped unevaluated, intake %+v", time.Since(stopping), evaluated, dropped, e.events.Stats())
	if accepted := float64(e.events.Stats().Received); evaluated+dropped != accepted {
		t.Errorf("%v events evaluated + %v dropped at the stop, want the %v the intake accepted", evaluated, dropped, accepted)
	}
	if got := testutilValue(r, unevaluatedTotal, "redelivered"); got != 0 {
		t.Errorf("%v events to be redelivered by an intake without a store", got)
	}
}

// A stop that spends its drain budget in the middle of a batch commits the durable
// intake's journal only up to the last event it evaluated: the others come again after
// the restart, each once and in order, and were counted as redelivered; the QoS 0 events
// left behind were counted as dropped.
func TestStopCommitsOnlyTheEventsItEvaluated(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, "rules:\n  - name: r\n    on: in/+\n    do: [{publish: {topic: '\"out/x\"'}}]\n")
	cfg := testConfig(t, dir)
	cfg.Broker.Store = filepath.Join(t.TempDir(), "store")
	noSync := false
	cfg.Broker.StoreSync = &noSync
	start := func() (*Engine, func()) {
		e, err := New(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.t.Run(ctx) }()
		select {
		case <-e.t.Ready():
		case err := <-done:
			t.Fatal(err)
		}
		return e, func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}

	e, stop := start()
	const n = 200
	for i := 1; i <= n; i++ {
		if err := e.t.Publish(broker.Message{Topic: "in/a", Payload: []byte(strconv.Itoa(i)), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the events queued", func() bool { return e.events.Stats().Backlog == n })
	// Told to stop with all of them queued, on a clock that moves 100 ms at every look:
	// the budget is spent after about ten events of the first batch.
	clock := time.Now()
	e.now = func() time.Time { clock = clock.Add(100 * time.Millisecond); return clock }
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	e.eventLoop(stopped)
	evaluated := int(e.ruleSet().Rule("r").Counters().Matched.Load())
	if evaluated == 0 || evaluated >= n {
		t.Fatalf("evaluated %d of %d events", evaluated, n)
	}
	r := &running{Engine: e}
	if got := testutilValue(r, unevaluatedTotal, "redelivered"); got != n-float64(evaluated) {
		t.Errorf("counted %v events to be redelivered, want %d", got, n-evaluated)
	}
	// Each evaluated event published one QoS 0 out/x; no rule matches it, so it does not
	// come back into the intake, and nothing is left there to drop.
	if got := testutilValue(r, unevaluatedTotal, "dropped"); got != 0 {
		t.Errorf("counted %v events dropped, want 0 (the out/x publications never enter the intake)", got)
	}
	stop()

	e2, stop2 := start()
	defer stop2()
	ctx, cancelNext := context.WithTimeout(context.Background(), deadline)
	defer cancelNext()
	var again []broker.Event
	for len(again) < n-evaluated {
		b, err := e2.events.Next(ctx)
		if err != nil {
			t.Fatalf("after the restart, %d of %d events: %v", len(again), n-evaluated, err)
		}
		again = append(again, b.Events...)
	}
	for i, ev := range again {
		if want := strconv.Itoa(evaluated + 1 + i); string(ev.Payload) != want || !ev.Redelivered {
			t.Fatalf("event %d after the restart: %q (redelivered %v), want %s", i, ev.Payload, ev.Redelivered, want)
		}
	}
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	if b, err := e2.events.Next(short); err == nil {
		t.Fatalf("more events after the restart: %d, the first %q", len(b.Events), b.Events[0].Payload)
	}
}
