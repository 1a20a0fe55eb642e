//go:build agentonly

package main

import (
	"context"
	"io"
)

// The agent-only build (bin/deviceless-agent) leaves out the engine, the broker, the
// rules and the demo, and their dependencies: see docs/agent.md "Memory".
const otherUsage = ""

func otherCommand(context.Context, []string, io.Writer, io.Writer) (int, bool) { return 0, false }
