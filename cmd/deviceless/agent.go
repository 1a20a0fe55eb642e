package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/deviceless/deviceless/edgeagent"
)

func agentCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("c", "agent.yaml", "agent configuration file")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := edgeagent.LoadConfig(*config)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	a, err := edgeagent.New(cfg, newLogger(stderr, *logLevel))
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}
