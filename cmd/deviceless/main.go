// Command deviceless is the one Deviceless binary: engine, edge agent, demo and tools.
// Built with the tag agentonly it holds the edge agent alone (bin/deviceless-agent,
// `go tool task build:agent`): half the packages, for the RAM of a small device.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/deviceless/deviceless/internal/version"
)

const usage = `deviceless — serverless functions and closed control loops at the edge

Usage:
` + otherUsage + `  deviceless agent [-c agent.yaml]  an edge agent (podman functions, GPIO)
  deviceless version               print the version

Run 'deviceless COMMAND -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "agent":
		return agentCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "deviceless", version.String())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	if code, ok := otherCommand(ctx, args, stdout, stderr); ok {
		return code
	}
	fmt.Fprintf(stderr, "deviceless: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}
