// Package e2e holds the end-to-end tests: real processes of the built deviceless binary
// (engine with its embedded broker, two edge agents on the project's podman service),
// mosquitto_pub/mosquitto_sub as devices and observers, Node-RED 4.1.15 running the example
// flow, an MQTT.js 5.16.0 application over the WebSocket listener, and mosquitto 2.0.11 with
// an ACL file as the external broker of the engine and an agent. Everything binds to
// 127.0.0.1 on free ports and lives in temporary folders.
//
// Prerequisites come from `go tool task setup` (scripts/setup*.sh). A missing one fails the
// tests that need it with a message saying so; nothing is skipped.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// bin is the deviceless binary TestMain builds once for every test.
var bin string

// repoRoot is the repository's top folder (the tests run in test/).
var repoRoot string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	repoRoot = filepath.Dir(wd)
	dir, err := os.MkdirTemp("", "deviceless-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "deviceless")
	// GOFLAGS (from the Taskfile or the caller) carries the build tags the podman bindings need.
	start := time.Now()
	build := exec.Command("go", "build", "-o", bin, "./cmd/deviceless")
	build.Dir = repoRoot
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building deviceless: %v\n%s", err, out)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "e2e: built %s in %s\n", bin, time.Since(start).Round(time.Millisecond))
	}
	return m.Run()
}
