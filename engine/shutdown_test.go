package engine

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os/exec"
	"testing"
	"time"
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
	eventually(t, "the flood reaching the rules", func() bool { return e.ruleSet().Rules[0].Counters().Fired.Load() > 1000 })
	cancel()
	budget := cfg.ShutdownGrace + 5*time.Second // drain grace, the bounded final drain, the broker's stop
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(budget):
		t.Fatalf("engine still running %v after it was told to stop, under a flood", budget)
	}
}
