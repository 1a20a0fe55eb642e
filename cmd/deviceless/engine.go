//go:build !agentonly

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/deviceless/deviceless/engine"
	"github.com/deviceless/deviceless/internal/procs"
	"github.com/deviceless/deviceless/internal/version"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func engineCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("engine", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("c", "", "configuration file (deviceless.yaml); every key has a default")
	var rulesPaths stringList
	fs.Var(&rulesPaths, "rules", "rule file or folder (repeatable; replaces the file's `rules`)")
	listen := fs.String("listen", "", "MQTT TCP listen address (overrides broker.listen)")
	httpAddr := fs.String("http", "", "HTTP API address, or off (overrides http)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	procsFlag := fs.String("procs", "auto", "Go Ps (GOMAXPROCS): auto is one while the engine needs under a core and every core under load; a number fixes them; 0 leaves Go's. GOMAXPROCS in the environment wins")
	heapFloor := fs.Int("heap-floor", 16, "MiB: while the live heap is small, the Go GC lets the heap grow to this before it collects (fewer collections at low load), and a memory limit keeps it within a quarter over this; 0 is Go's default. GOGC in the environment wins, GOMEMLIMIT stays the most it sets")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *heapFloor < 0 || *heapFloor > 1<<20 {
		fmt.Fprintf(stderr, "--heap-floor %d: want 0 (Go's default) to %d MiB\n", *heapFloor, 1<<20)
		return 2
	}
	procsAuto, procsN, err := procs.ParseFlag(*procsFlag)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	var cfg engine.Config
	if *config != "" {
		if cfg, err = engine.LoadConfig(*config); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	if len(rulesPaths) > 0 {
		cfg.Rules = rulesPaths
	}
	if *listen != "" {
		cfg.Broker.Listen = *listen
	}
	if *httpAddr != "" {
		cfg.HTTP = *httpAddr
	}
	log := newLogger(stderr, *logLevel)
	log.Info("deviceless engine", "version", version.String())
	e, err := engine.New(cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	stopProcs, err := startProcs(ctx, procsAuto, procsN, log)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	defer stopProcs()
	defer startHeapFloor(ctx, *heapFloor)()
	if err := e.Run(ctx); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
