// Package testenv finds the real services the edge agent's tests run against: the
// project-owned podman service (scripts/setup-podman.sh) and an in-process MQTT broker.
// A missing service fails the test with the command that starts it; nothing is skipped.
package testenv

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// PodmanSocket returns the podman service socket, failing t if it does not answer.
// It is $DEVICELESS_PODMAN_SOCKET, else $DEVICELESS_STATE/podman/podman.sock, else
// <repo>/.state/podman/podman.sock.
func PodmanSocket(t testing.TB) string {
	t.Helper()
	sock := os.Getenv("DEVICELESS_PODMAN_SOCKET")
	if sock == "" {
		state := os.Getenv("DEVICELESS_STATE")
		if state == "" {
			state = filepath.Join(repoRoot(t), ".state")
		}
		sock = filepath.Join(state, "podman", "podman.sock")
	}
	if err := ping(sock); err != nil {
		t.Fatalf("podman service not answering on %s: %v\n"+
			"start it with `bash scripts/setup-podman.sh` (or `go tool task setup`), or set DEVICELESS_PODMAN_SOCKET", sock, err)
	}
	return sock
}

func ping(sock string) error {
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
	resp, err := client.Get("http://podman/_ping")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &statusError{resp.Status}
	}
	return nil
}

type statusError struct{ status string }

func (e *statusError) Error() string { return "ping: " + e.status }

func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", dir)
		}
	}
}

// WasmExamples builds the example WebAssembly functions (examples/wasm, with
// scripts/wasm-examples.sh) into a folder of the test's and returns it: go-echo.wasm
// (≈ 3 MB) and c-echo.wasm (≈ 30 KB). A missing toolchain fails the test.
func WasmExamples(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(repoRoot(t), "scripts", "wasm-examples.sh"), dir)
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the wasm examples: %v\n%s\ninstall the toolchain with `bash scripts/setup.sh` (or `go tool task setup`)", err, out)
	}
	return dir
}
