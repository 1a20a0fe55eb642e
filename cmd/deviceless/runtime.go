package main

import (
	"context"
	"log/slog"
	"os"
	"runtime"

	"github.com/deviceless/deviceless/internal/heapfloor"
	"github.com/deviceless/deviceless/internal/procs"
)

// startProcs applies --procs (procs.ParseFlag): auto runs a controller (internal/procs)
// until the returned function is called; a number n sets GOMAXPROCS; 0 leaves it.
// GOMAXPROCS in the environment wins over both: whoever set it chose.
func startProcs(ctx context.Context, auto bool, n int, log *slog.Logger) (stop func(), err error) {
	if os.Getenv("GOMAXPROCS") != "" {
		return func() {}, nil
	}
	if !auto {
		if n > 0 {
			runtime.GOMAXPROCS(n)
		}
		return func() {}, nil
	}
	c, err := procs.New(procs.Config{})
	if err != nil {
		return nil, err
	}
	stopRun := c.Start(ctx)
	return func() {
		if err := stopRun(); err != nil {
			log.Warn("procs: the controller stopped; GOMAXPROCS stays as the process started", "err", err)
		}
	}, nil
}

// startHeapFloor applies --heap-floor (MiB; internal/heapfloor) until the returned
// function is called. GOGC in the environment wins (heapfloor.Run), as GOMAXPROCS does
// over --procs.
func startHeapFloor(ctx context.Context, mib int) (stop func()) {
	if mib == 0 {
		return func() {}
	}
	c, err := heapfloor.New(heapfloor.Config{Floor: uint64(mib) << 20})
	if err != nil {
		panic(err) // the flag was validated
	}
	return c.Start(ctx)
}
