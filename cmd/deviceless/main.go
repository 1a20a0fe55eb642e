// Command deviceless is the one Deviceless binary: engine, edge agent, demo and tools.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `deviceless — serverless functions and closed control loops at the edge

Usage:
  deviceless demo                  the closed loop on one machine: engine, agent, simulated greenhouses
  deviceless engine [-c deviceless.yaml] [--rules PATH] [--listen ADDR] [--http ADDR]
                                   broker + rules engine + HTTP API
  deviceless agent [-c agent.yaml]  an edge agent (podman functions, GPIO)
  deviceless invoke FUNCTION --args JSON   invoke a function through the engine
  deviceless passwd [PASSWORD]     print a bcrypt hash for the broker's users
  deviceless rules check PATH...   validate rule files and folders
  deviceless rules test PATH...    run rule test files (*_test.yaml)
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
	case "rules":
		return rulesCmd(args[1:], stdout, stderr)
	case "engine":
		return engineCmd(ctx, args[1:], stdout, stderr)
	case "demo":
		return demoCmd(ctx, args[1:], stdout, stderr)
	case "agent":
		return agentCmd(ctx, args[1:], stdout, stderr)
	case "invoke":
		return invokeCmd(ctx, args[1:], stdout, stderr)
	case "passwd":
		return passwdCmd(args[1:], os.Stdin, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "deviceless", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "deviceless: unknown command %q\n\n%s", args[0], usage)
	return 2
}
