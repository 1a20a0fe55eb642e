// Package heapfloor keeps the Go heap's GC goal at or above a floor while the live heap
// is small.
//
// Why: Go's default (GOGC=100) starts a collection when the heap is twice the live heap,
// and never below 4 MB. An engine with a small live heap (about 1 MB in the paced
// benchmark of issue 13) that allocates a kilobyte or so per event then collects six
// times a second at 10,000 events/s, each cycle scanning stacks and globals and
// restarting the sweep: about 1 µs of CPU per event (gctrace, BENCHMARKS.md). Raising
// GOGC so that the goal is the floor cuts the cycles by floor/4 MB while the live heap is
// small; once the live heap is half the floor or more, GOGC is back to 100 and the heap
// grows as Go's default lets it. The memory this costs is at most the floor.
package heapfloor

import (
	"context"
	"errors"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Config is the controller's configuration.
type Config struct {
	// Floor is the smallest heap goal, in bytes (> 0).
	Floor uint64
	// Interval between two looks at the live heap; 0 is 250 ms.
	Interval time.Duration
}

// Controller sets GOGC from the live heap.
type Controller struct {
	cfg     Config
	samples []metrics.Sample
}

// The runtime/metrics the goal is computed from: Go's goal is live + (live + stacks +
// globals) × GOGC/100.
var names = []string{"/gc/heap/live:bytes", "/gc/scan/stack:bytes", "/gc/scan/globals:bytes"}

// New validates cfg.
func New(cfg Config) (*Controller, error) {
	if cfg.Floor == 0 || cfg.Interval < 0 {
		return nil, errors.New("heapfloor: Floor must be positive and Interval not negative")
	}
	if cfg.Interval == 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	c := &Controller{cfg: cfg, samples: make([]metrics.Sample, len(names))}
	for i, n := range names {
		c.samples[i].Name = n
	}
	return c, nil
}

// Start runs Run on a goroutine of its own; stop ends it and waits for it.
func (c *Controller) Start(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	return func() { cancel(); <-done }
}

// Run sets GOGC at once and after each interval until ctx ends; it then restores the
// GOGC it found. A GOGC environment variable wins: whoever set it chose, and Run only
// waits for ctx.
func (c *Controller) Run(ctx context.Context) {
	if os.Getenv("GOGC") != "" {
		<-ctx.Done()
		return
	}
	initial := debug.SetGCPercent(100)
	debug.SetGCPercent(initial)
	defer debug.SetGCPercent(initial)
	cur := initial
	tick := time.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	for {
		metrics.Read(c.samples)
		if next := Percent(c.cfg.Floor, c.samples[0].Value.Uint64(), c.samples[1].Value.Uint64()+c.samples[2].Value.Uint64(), initial); changed(cur, next) {
			cur = next
			debug.SetGCPercent(cur)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Percent is the GOGC that puts the heap goal at floor, given the live heap and the
// stacks and globals the GC scans; never below base (the process's own GOGC). Go's goal
// is the larger of live + (live + roots) × GOGC/100 and its minimum heap, 4 MB ×
// GOGC/100: both must stay within the floor.
func Percent(floor, live, roots uint64, base int) int {
	if live >= floor {
		return base
	}
	p := min(floor*100/minimumHeap, (floor-live)*100/max(live+roots, 1))
	if p <= uint64(base) {
		return base
	}
	return int(p)
}

// minimumHeap is Go's smallest heap goal at GOGC=100 (runtime.defaultHeapMinimum); it
// scales with GOGC.
const minimumHeap = 4 << 20

// changed reports whether next differs from cur by more than a tenth: the goal need not
// follow every small move of the live heap.
func changed(cur, next int) bool {
	d := next - cur
	return d*10 > cur || -d*10 > cur
}
