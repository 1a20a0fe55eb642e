package engine

import (
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/rules"
)

// orderRules fire `order` when a device's event follows its previous one (its seq one
// more), `disorder` when it does not: with per-key order kept, disorder never fires.
const orderRules = `rules:
  - name: order
    on: dev/+/seq
    key: payload.dev
    if: prev == nil || payload.seq == prev.seq + 1
    do: [{publish: {topic: '"order/ok"'}}]
  - name: disorder
    on: dev/+/seq
    key: payload.dev
    if: prev != nil && payload.seq != prev.seq + 1
    do: [{publish: {topic: '"order/bad"', payload: 'string(payload.dev) + ": " + string(prev.seq) + " then " + string(payload.seq)'}}]
`

// TestParallelEvaluationKeepsPerKeyOrder floods four workers with 32 devices' numbered
// events from four `mosquitto_pub -l` (one per group of devices, so each device's events
// arrive in order) while the rule file is reloaded again and again: every device's
// events are evaluated in the order they were published, none twice, none lost, and the
// events did go through the workers.
func TestParallelEvaluationKeepsPerKeyOrder(t *testing.T) {
	// The workers run only with more than one P (parallelBatch.takes), whatever the
	// machine's CPUs.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0))))
	dir := t.TempDir()
	writeRules(t, dir, orderRules)
	cfg := testConfig(t, dir)
	cfg.Workers = 4
	e := startEngine(t, cfg)
	host, port, _ := net.SplitHostPort(e.BrokerAddr())

	const publishers, devicesPer, per = 4, 8, 600
	stopReload := make(chan struct{})
	reloads := make(chan int, 1)
	go func() {
		// Another rule comes and goes: order and disorder are kept, with their state.
		n := 0
		defer func() { reloads <- n }()
		for {
			select {
			case <-stopReload:
				return
			case <-time.After(30 * time.Millisecond):
			}
			n++
			extra := ""
			if n%2 == 1 {
				extra = fmt.Sprintf("  - name: extra\n    on: dev/+/seq\n    if: payload.seq > %d\n    do: [{publish: {topic: '\"extra\"'}}]\n", n)
			}
			writeRules(t, dir, orderRules+extra)
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		var lines bytes.Buffer
		for seq := range per {
			for d := p * devicesPer; d < (p+1)*devicesPer; d++ {
				fmt.Fprintf(&lines, `{"dev":%d,"seq":%d}`+"\n", d, seq)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pub := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-u", "dev", "-P", "pw-dev", "-t", fmt.Sprintf("dev/%d/seq", p), "-q", "0", "-l")
			pub.Stdin = &lines
			if out, err := pub.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("mosquitto_pub: %v: %s (run go tool task setup)", err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const total = publishers * devicesPer * per
	order := func() uint64 { return e.ruleSet().Rules[0].Counters().Fired.Load() }
	disorder := func() uint64 { return e.ruleSet().Rules[1].Counters().Fired.Load() }
	eventually(t, "every event evaluated", func() bool { return order()+disorder() >= total })
	close(stopReload)
	n := <-reloads
	if order() != total || disorder() != 0 {
		t.Fatalf("%d events in order and %d out of order, want %d and 0", order(), disorder(), total)
	}
	if e.parallelChunks.Load() == 0 {
		t.Fatal("no chunk of events went through the workers: the test did not load them")
	}
	if d := e.events.Stats().Dropped; d != 0 {
		t.Fatalf("%d events shed", d)
	}
	t.Logf("%d events in order over %d chunks on the workers, %d reloads", total, e.parallelChunks.Load(), n)
}

// TestWorkersConfig: workers defaults to GOMAXPROCS, 1 is the sequential event loop, and
// values out of range are refused.
func TestWorkersConfig(t *testing.T) {
	if c := (Config{}).withDefaults(); c.Workers < 1 {
		t.Fatalf("default workers %d", c.Workers)
	}
	for _, n := range []int{-1, maxWorkers + 1} {
		c := Config{Workers: n}.withDefaults()
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), "workers") {
			t.Fatalf("workers %d: %v", n, err)
		}
	}
}

// TestOneProcEvaluatesOnTheLoop: at one P (--procs auto at low load) a batch does not go to
// the workers, whose goroutines would only take turns on that P.
func TestOneProcEvaluatesOnTheLoop(t *testing.T) {
	p := parallelBatch{workers: &rules.Workers{}}
	batch := make([]broker.Event, parallelMin)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	if !p.takes(batch) {
		t.Fatal("two Ps: the batch does not go to the workers")
	}
	runtime.GOMAXPROCS(1)
	if p.takes(batch) {
		t.Fatal("one P: the batch goes to the workers")
	}
}
