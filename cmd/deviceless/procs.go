package main

import (
	"context"
	"log/slog"
	"os"
	"runtime"

	"github.com/deviceless/deviceless/internal/procs"
)

// startProcs applies --procs: "auto" runs a controller (internal/procs) until the returned
// function is called; a number sets GOMAXPROCS; 0 leaves it. GOMAXPROCS in the
// environment wins over both: whoever set it chose.
func startProcs(ctx context.Context, flag string, log *slog.Logger) (stop func(), err error) {
	auto, n, err := procs.ParseFlag(flag)
	if err != nil {
		return nil, err
	}
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
