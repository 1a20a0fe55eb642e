// Package procs sizes GOMAXPROCS to the process's load: one P while the process needs
// well under a core, every core as soon as it needs more.
//
// Why: with two or more Ps and little work, every goroutine hand-off (a device's
// connection to the event loop, the loop to a subscriber's write loop) readies a goroutine
// while a P is idle, and the Go scheduler wakes a thread to spin for it: at 10,000 events/s
// that scheduling was a quarter of the engine's CPU (BENCHMARKS.md, issue 13). With one P
// the hand-off is a switch on the same thread. Under load the controller gives back every
// core within one interval, for the parallel evaluation and the broker.
package procs

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// Config is the controller's configuration.
type Config struct {
	// Max is the most Ps; 0 takes GOMAXPROCS as the process started with it (the CPUs,
	// or the cgroup's limit).
	Max int
	// Interval between two looks at the process's CPU time; 0 is 25 ms.
	Interval time.Duration
	// Calm is how many intervals in a row the process must stay below Low before it goes
	// back to one P; 0 is 40 (a second at the default interval).
	Calm int
}

// The thresholds, in cores used over an interval.
const (
	// High: at one P, this much of its core in use sends the process to Max at once (a
	// burst wants every core now, not one more per interval).
	High = 0.7
	// Low: below this many cores in use, for Calm intervals, back to one P.
	Low = 0.35
)

// Controller sets GOMAXPROCS from the process's CPU time (getrusage).
type Controller struct {
	cfg Config
}

// ParseFlag reads a --procs value: "auto" (a controller), or a number of Ps (0: leave
// GOMAXPROCS as it is; no controller).
func ParseFlag(v string) (auto bool, n int, err error) {
	if v == "auto" {
		return true, 0, nil
	}
	n, err = strconv.Atoi(v)
	if err != nil || n < 0 {
		return false, 0, fmt.Errorf("--procs %q: want auto or a number of Ps (0 leaves GOMAXPROCS)", v)
	}
	return false, n, nil
}

// New validates cfg.
func New(cfg Config) (*Controller, error) {
	if cfg.Max < 0 || cfg.Interval < 0 || cfg.Calm < 0 {
		return nil, errors.New("procs: negative Max, Interval or Calm")
	}
	if cfg.Max == 0 {
		cfg.Max = runtime.GOMAXPROCS(0)
	}
	if cfg.Interval == 0 {
		cfg.Interval = 25 * time.Millisecond
	}
	if cfg.Calm == 0 {
		cfg.Calm = 40
	}
	return &Controller{cfg: cfg}, nil
}

// Start runs Run on a goroutine of its own; stop ends it, waits for it and returns Run's
// error.
func (c *Controller) Start(ctx context.Context) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

// Run starts at one P and adjusts until ctx ends; it then restores the GOMAXPROCS it
// found and returns nil (or the error of reading the CPU time, after restoring).
func (c *Controller) Run(ctx context.Context) error {
	initial := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(initial)
	if c.cfg.Max <= 1 {
		<-ctx.Done()
		return nil
	}
	cur := 1
	runtime.GOMAXPROCS(cur)
	last, err := CPUTime()
	if err != nil {
		return err
	}
	lastAt := time.Now()
	tick := time.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	var d decision
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-tick.C:
			used, err := CPUTime()
			if err != nil {
				return err
			}
			cores := float64(used-last) / float64(now.Sub(lastAt))
			last, lastAt = used, now
			if next := d.next(cur, c.cfg.Max, c.cfg.Calm, cores); next != cur {
				cur = next
				runtime.GOMAXPROCS(cur)
			}
		}
	}
}

// decision is the controller's pure logic: the next number of Ps from the current one
// and the cores used over the last interval.
type decision struct{ calm int }

func (d *decision) next(cur, max, calm int, cores float64) int {
	switch {
	case cur < max && cores >= High*float64(cur):
		d.calm = 0
		return max
	case cur > 1 && cores < Low:
		d.calm++
		if d.calm >= calm {
			d.calm = 0
			return 1
		}
	default:
		d.calm = 0
	}
	return cur
}

// CPUTime is the process's user + system CPU time, all threads.
func CPUTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("procs: getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
