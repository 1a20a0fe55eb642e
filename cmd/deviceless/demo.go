//go:build !agentonly

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/deviceless/deviceless/demo"
)

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:1883", "MQTT listen address of the embedded broker")
	httpAddr := fs.String("http", "127.0.0.1:8080", "HTTP API address")
	var rules stringList
	fs.Var(&rules, "rules", "rule file or folder (repeatable); default the embedded greenhouse example")
	logLevel := fs.String("log-level", "warn", "the components' log level")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	err := demo.Run(ctx, demo.Config{Listen: *listen, HTTP: *httpAddr, Rules: rules, Out: stdout, Log: newLogger(stderr, *logLevel)})
	if err != nil {
		fmt.Fprintln(stderr, "deviceless demo:", err)
		if strings.Contains(err.Error(), "address already in use") {
			fmt.Fprintln(stderr, "another program uses the port: pick others with --listen 127.0.0.1:PORT --http 127.0.0.1:PORT")
		}
		return 1
	}
	return 0
}
