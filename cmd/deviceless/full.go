//go:build !agentonly

package main

import (
	"context"
	"io"
	"os"
)

const otherUsage = `  deviceless demo                  the closed loop on one machine: engine, agent, simulated greenhouses
  deviceless engine [-c deviceless.yaml] [--rules PATH] [--listen ADDR] [--http ADDR]
                                   broker + rules engine + HTTP API
  deviceless invoke FUNCTION[@VERSION] --args JSON   invoke a function through the engine
  deviceless functions deploy|list|show|versions|rm   deployed functions (docs/functions.md)
  deviceless logs FUNCTION         a function's last invocations, with errors and stderr tails
  deviceless usage [--by function|agent|user]   metered usage of functions
  deviceless passwd [PASSWORD]     print a bcrypt hash for the broker's users
  deviceless token [NAME [ROLE]]   make an HTTP API token and its api.tokens entry
  deviceless rules check PATH...   validate rule files and folders
  deviceless rules test PATH...    run rule test files (*_test.yaml)
`

// otherCommand runs the commands besides agent and version.
func otherCommand(ctx context.Context, args []string, stdout, stderr io.Writer) (int, bool) {
	switch args[0] {
	case "rules":
		return rulesCmd(args[1:], stdout, stderr), true
	case "engine":
		return engineCmd(ctx, args[1:], stdout, stderr), true
	case "demo":
		return demoCmd(ctx, args[1:], stdout, stderr), true
	case "invoke":
		return invokeCmd(ctx, args[1:], stdout, stderr), true
	case "functions":
		return functionsCmd(ctx, args[1:], stdout, stderr), true
	case "logs":
		return logsCmd(ctx, args[1:], stdout, stderr), true
	case "usage":
		return usageCmd(ctx, args[1:], stdout, stderr), true
	case "passwd":
		return passwdCmd(args[1:], os.Stdin, stdout, stderr), true
	case "token":
		return tokenCmd(args[1:], stdout, stderr), true
	}
	return 0, false
}
