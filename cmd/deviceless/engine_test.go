//go:build !agentonly

package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/deviceless/deviceless/edgeagent"
	"github.com/deviceless/deviceless/engine"
	"github.com/deviceless/deviceless/internal/version"
)

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// `deviceless engine -c FILE --http ADDR` serves until it is told to stop, then exits 0.
func TestEngineCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "deviceless.yaml")
	abs, _ := filepath.Abs("../../examples/greenhouse/rules")
	os.WriteFile(cfg, []byte("broker: {listen: 127.0.0.1:0, allow_anonymous: true}\nrules: ["+abs+"]\n"), 0o644)
	httpAddr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb bytes.Buffer
	done := make(chan int, 1)
	before, gogcBefore := runtime.GOMAXPROCS(0), gogc()
	go func() { done <- run(ctx, []string{"engine", "-c", cfg, "--http", httpAddr}, &out, &errb) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("engine not ready: %s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// --procs auto (the default): an idle engine runs on one P, and GOMAXPROCS is given
	// back when it stops (GOMAXPROCS in the environment would turn the controller off).
	if os.Getenv("GOMAXPROCS") == "" && runtime.NumCPU() > 1 {
		for runtime.GOMAXPROCS(0) != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("GOMAXPROCS %d in an idle engine, want 1 (--procs auto)", runtime.GOMAXPROCS(0))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// --heap-floor 16 (the default): the idle engine's small live heap gets a GOGC above
	// 100, so the GC lets the heap reach 16 MiB; given back when it stops.
	if os.Getenv("GOGC") == "" {
		for gogc() <= 100 {
			if time.Now().After(deadline) {
				t.Fatalf("GOGC %d in an idle engine, want above 100 (--heap-floor 16)", gogc())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("engine did not stop")
	}
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("GOMAXPROCS %d after the engine stopped, want %d restored", got, before)
	}
	if got := gogc(); got != gogcBefore {
		t.Errorf("GOGC %d after the engine stopped, want %d restored", got, gogcBefore)
	}
	var bad bytes.Buffer
	if code := run(context.Background(), []string{"engine", "--heap-floor", "-1"}, &out, &bad); code != 2 || !strings.Contains(bad.String(), "--heap-floor -1") {
		t.Errorf("--heap-floor -1: exit %d: %s", code, bad.String())
	}
	bad.Reset()
	if code := run(context.Background(), []string{"engine", "--procs", "many"}, &out, &bad); code != 2 || !strings.Contains(bad.String(), `--procs "many"`) {
		t.Errorf("--procs many: exit %d: %s", code, bad.String())
	}
	if !strings.Contains(errb.String(), "engine running") || !strings.Contains(errb.String(), "rules=8") ||
		!strings.Contains(errb.String(), `msg="deviceless engine" version=`+version.String()) {
		t.Fatalf("log: %s", errb.String())
	}
	// A config with an unknown key is refused with its position.
	os.WriteFile(cfg, []byte("broker: {listen: 127.0.0.1:0}\nrulez: []\n"), 0o644)
	var e2 bytes.Buffer
	if code := run(context.Background(), []string{"engine", "-c", cfg}, &out, &e2); code != 1 || !strings.Contains(e2.String(), "rulez") {
		t.Fatalf("exit %d: %s", code, e2.String())
	}
}

// The example configurations load and validate.
func TestExampleConfigs(t *testing.T) {
	for _, dir := range []string{"greenhouse", "door-alarm"} {
		base := filepath.Join("..", "..", "examples", dir)
		ecfg, err := engine.LoadConfig(filepath.Join(base, "deviceless.yaml"))
		if err != nil {
			t.Fatalf("%s engine config: %v", dir, err)
		}
		ecfg.Broker.Listen, ecfg.HTTP, ecfg.Broker.Store = "127.0.0.1:0", "off", t.TempDir()
		if _, err := engine.New(ecfg, nil); err != nil {
			t.Fatalf("%s engine: %v", dir, err)
		}
		acfg, err := edgeagent.LoadConfig(filepath.Join(base, "agent.yaml"))
		if err != nil {
			t.Fatalf("%s agent config: %v", dir, err)
		}
		if err := acfg.Validate(); err != nil {
			t.Fatalf("%s agent config: %v", dir, err)
		}
	}
}

// `deviceless token` prints a token and a config entry the engine loads, whose hash is
// the token's.
func TestTokenCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := tokenCmd([]string{"ci", "viewer"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	tok, entry, ok := strings.Cut(out.String(), "\n")
	tok = strings.TrimPrefix(tok, "token: ")
	if !ok || !strings.HasPrefix(tok, "dl_") {
		t.Fatalf("output %q", out.String())
	}
	path := filepath.Join(t.TempDir(), "deviceless.yaml")
	if err := os.WriteFile(path, []byte("http: 127.0.0.1:0\n"+entry), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := engine.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.API.Tokens) != 1 || cfg.API.Tokens[0].Hash != engine.HashAPIToken(tok) || cfg.API.Tokens[0].Role != engine.RoleViewer {
		t.Fatalf("tokens %+v for token %s", cfg.API.Tokens, tok)
	}
	if code := tokenCmd([]string{"x", "device"}, &out, &errOut); code != 2 {
		t.Errorf("role device: exit %d, want 2", code)
	}
}

// gogc is the GOGC in force (runtime/metrics).
func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}
