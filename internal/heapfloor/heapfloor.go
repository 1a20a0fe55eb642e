// Package heapfloor keeps the Go heap's GC goal at or above a floor while the live heap
// is small, and caps it close to the floor meanwhile.
//
// Why: Go's default (GOGC=100) starts a collection when the heap is twice the live heap,
// and never below 4 MB. An engine with a small live heap (about 1 MB in the paced
// benchmark of issue 13) that allocates a kilobyte or so per event then collects six
// times a second at 10,000 events/s, each cycle scanning stacks and globals and
// restarting the sweep: about 1 µs of CPU per event (gctrace, BENCHMARKS.md). Raising
// GOGC so that the goal is the floor cuts the cycles by floor/4 MB while the live heap is
// small; once the live heap is half the floor or more, GOGC is back to 100 and the heap
// grows as Go's default lets it.
//
// GOGC alone is not a ceiling: the runtime sets each cycle's goal with the GOGC of that
// moment, from a live heap that counts everything allocated while the cycle marked. In a
// burst at one P that reading is many times the true live heap, and at GOGC 400 the goal
// it gives was five times the floor until the next look. So while GOGC is raised, a
// memory limit (debug.SetMemoryLimit) caps the goal between looks: the floor and a
// quarter, plus the runtime's memory outside the heap. The quarter is room for the
// heap's fragmentation and free pages, which the limit counts: without it the runtime
// would return pages to the system at every cycle near the floor and fault them in
// again. The memory this costs is at most the floor and a quarter over Go's default.
package heapfloor

import (
	"context"
	"errors"
	"math"
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
// globals) × GOGC/100. The memory limit counts all the runtime's memory but the pages it
// returned to the system: total − released − the heap's (objects, unused, free) is what
// it holds outside the heap.
var names = []string{
	"/gc/heap/live:bytes", "/gc/scan/stack:bytes", "/gc/scan/globals:bytes",
	"/memory/classes/total:bytes", "/memory/classes/heap/released:bytes",
	"/memory/classes/heap/objects:bytes", "/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
}

const (
	live = iota
	stack
	globals
	total
	released
	objects
	unused
	free
)

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

// Run sets GOGC and the memory limit at once and after each interval until ctx ends;
// it then restores the GOGC and memory limit it found. A GOGC environment variable wins:
// whoever set it chose, and Run only waits for ctx. A memory limit the process already
// has (GOMEMLIMIT) stays the most Run sets.
func (c *Controller) Run(ctx context.Context) {
	if os.Getenv("GOGC") != "" {
		<-ctx.Done()
		return
	}
	initial := debug.SetGCPercent(100)
	debug.SetGCPercent(initial)
	defer debug.SetGCPercent(initial)
	initialLimit := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(initialLimit)
	cur, curLimit := initial, initialLimit
	tick := time.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	for {
		metrics.Read(c.samples)
		v := func(i int) uint64 { return c.samples[i].Value.Uint64() }
		next, nextLimit := Percent(c.cfg.Floor, v(live), v(stack)+v(globals), initial), initialLimit
		if next != initial {
			var outside uint64
			if heap := v(released) + v(objects) + v(unused) + v(free); v(total) > heap {
				outside = v(total) - heap
			}
			nextLimit = min(initialLimit, int64(min(c.cfg.Floor+c.cfg.Floor/4+outside, math.MaxInt64)))
		}
		// The tighter setting first, so no moment between two calls has neither: a
		// lower limit before GOGC moves, a higher one after.
		if nextLimit < curLimit && limitChanged(curLimit, nextLimit, initialLimit, c.cfg.Floor) {
			curLimit = nextLimit
			debug.SetMemoryLimit(curLimit)
		}
		if changed(cur, next) {
			cur = next
			debug.SetGCPercent(cur)
		}
		if nextLimit > curLimit && limitChanged(curLimit, nextLimit, initialLimit, c.cfg.Floor) {
			curLimit = nextLimit
			debug.SetMemoryLimit(curLimit)
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

// limitChanged reports whether the limit moves by more than a sixteenth of the floor, or
// back to the process's own.
func limitChanged(cur, next, own int64, floor uint64) bool {
	d := next - cur
	return d != 0 && (next == own || uint64(max(d, -d))*16 > floor)
}
