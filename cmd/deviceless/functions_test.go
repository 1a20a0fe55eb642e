//go:build !agentonly

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/engine"
)

// The functions commands against a running engine: deploy from a file (code from a code
// file) and from flags, list, show, versions, rm; a bad deploy file is answered with the
// positions of its problems; a developer is held to its namespace.
func TestFunctionsCommands(t *testing.T) {
	dir := t.TempDir()
	devTok := "dev-token-of-alice-0123456789"
	cfg := engine.Config{HTTP: freePort(t), State: filepath.Join(dir, "state"),
		API: engine.APIConfig{Tokens: []engine.APIToken{
			{Name: "root", Hash: engine.HashAPIToken("root-token-0123456789"), Role: broker.RoleAdmin},
			{Name: "alice", Hash: engine.HashAPIToken(devTok), Role: broker.RoleDeveloper}}}}
	cfg.Broker.Listen = "127.0.0.1:0"
	e, err := engine.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-e.Ready()

	cli := func(token string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append(args, "--http", cfg.HTTP, "--token", token), &out, &errb)
		return code, out.String(), errb.String()
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("fan.py", "import json, sys\nprint(json.dumps({'speed': 2}))\n")
	file := write("fan.yaml", "name: alice.fan\nruntime: python3\ncode_file: fan.py\ntimeout: 5s\nmemory: 32Mi\ndescription: fan speed\n")

	if code, out, errs := cli(devTok, "functions", "deploy", file); code != 0 || !strings.HasPrefix(out, "deployed alice.fan@1 (sha256:") {
		t.Fatalf("deploy: %d %q %q", code, out, errs)
	}
	if code, out, _ := cli(devTok, "functions", "deploy", file); code != 0 || !strings.HasPrefix(out, "unchanged: alice.fan@1") {
		t.Fatalf("deploy again: %d %q", code, out)
	}
	code, out, errs := cli(devTok, "functions", "deploy", "--name", "alice.fan", "--runtime", "sh", "--code-file", filepath.Join(dir, "fan.py"), "--memory", "16Mi", "--env", "A=1")
	if code != 0 || !strings.HasPrefix(out, "deployed alice.fan@2") {
		t.Fatalf("deploy from flags: %d %q %q", code, out, errs)
	}
	if code, out, _ := cli(devTok, "functions", "list"); code != 0 || !strings.Contains(out, "alice.fan  2        api     sh") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	if code, out, _ := cli(devTok, "functions", "versions", "alice.fan"); code != 0 || !strings.Contains(out, "alice.fan@1") ||
		!strings.Contains(out, "alice.fan@2") || !strings.Contains(out, "token:alice") || !strings.Contains(out, "fan speed") {
		t.Fatalf("versions: %d\n%s", code, out)
	}
	if code, out, _ := cli(devTok, "functions", "show", "alice.fan@1"); code != 0 || !strings.Contains(out, `"runtime": "python3"`) || !strings.Contains(out, "speed") {
		t.Fatalf("show: %d\n%s", code, out)
	}

	// Problems found by the engine point into the file; the file's own syntax errors too.
	bad := write("bad.yaml", "name: alice.bad\nruntime: sh\ncode: x\nmemory: 1Ki\nwarm:\n  max_uses: -1\n")
	code, _, errs = cli(devTok, "functions", "deploy", bad)
	if code != 1 || !strings.Contains(errs, "bad.yaml:4:9: memory: memory 1024 bytes is below") || !strings.Contains(errs, "bad.yaml:6:13: warm.max_uses:") {
		t.Fatalf("bad deploy: %d\n%s", code, errs)
	}
	syntax := write("syntax.yaml", "name: alice.bad\nruntime: sh\ntimeout: soon\n")
	if code, _, errs := cli(devTok, "functions", "deploy", syntax); code != 1 || !strings.Contains(errs, "syntax.yaml:") || !strings.Contains(errs, "soon") {
		t.Fatalf("syntax: %d\n%s", code, errs)
	}
	if code, _, errs := cli(devTok, "functions", "deploy", "--name", "bob.fan", "--runtime", "sh", "--code-file", filepath.Join(dir, "fan.py")); code != 1 || !strings.Contains(errs, "name: token:alice deploys only under its namespace") {
		t.Fatalf("outside the namespace: %d\n%s", code, errs)
	}

	if code, out, _ := cli(devTok, "usage", "--by", "function,caller"); code != 0 || !strings.Contains(out, "TOTAL") {
		t.Fatalf("usage: %d\n%s", code, out)
	}
	if code, _, errs := cli(devTok, "logs", "alice.fan"); code != 0 {
		t.Fatalf("logs: %d %s", code, errs)
	}
	if code, out, _ := cli(devTok, "functions", "rm", "alice.fan"); code != 0 || out != "deleted alice.fan\n" {
		t.Fatalf("rm: %d %q", code, out)
	}
	if code, _, errs := cli(devTok, "functions", "show", "alice.fan"); code != 1 || !strings.Contains(errs, "Not Found") {
		t.Fatalf("show after rm: %d %s", code, errs)
	}
}
