package edgeagent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfigFull(t *testing.T) {
	cfg, err := ParseConfig([]byte(`
id: gh1-edge
broker: mqtts://broker.example:8883
username: gh1-edge
password: secret
labels: {zone: north}
podman: {socket: /run/podman/podman.sock, runtime: runc}
runtimes: {sh: localhost/deviceless/sh}
concurrency: 3
queue: 5
limits: {timeout: 10s, memory: 64Mi, output: 256Ki}
functions:
  blink:
    runtime: sh
    code: echo 1
    memory: 32Mi
    warm: {idle: 60s, max_uses: 1000}
gpio:
  driver: gpiocdev
  lines:
    fan: {offset: 17, initial: 0}
    button: {offset: 4, direction: input, edge: falling, bias: pull-up, debounce: 5ms, publish: sensors/gh1/button}
influx: {url: "http://127.0.0.1:8086", bucket: deviceless}
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ID != "gh1-edge" || cfg.Concurrency != 3 || cfg.Queue != 5 || cfg.Limits.Timeout != 10*time.Second ||
		cfg.Limits.Memory != 64<<20 || cfg.Limits.Output != 256<<10 || cfg.GPIO.Chip != "gpiochip0" ||
		cfg.GPIO.Lines["button"].Debounce != 5*time.Millisecond || cfg.Functions["blink"].Memory != 32<<20 ||
		cfg.Functions["blink"].Warm.MaxUses != 1000 || cfg.Influx.Bucket != "deviceless" || cfg.GPIO.Lines["fan"].Direction != "output" {
		t.Fatalf("parsed %+v", cfg)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	t.Setenv("DEVICELESS_PODMAN_SOCKET", "/tmp/x.sock")
	cfg, err := ParseConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if cfg.ID != host || cfg.Broker != "mqtt://127.0.0.1:1883" || cfg.Username != host || cfg.Prefix != "deviceless" ||
		cfg.Podman.Socket != "/tmp/x.sock" || cfg.Runtimes["python3"] == "" || cfg.Concurrency != 2 || cfg.GPIO.Driver != "sim" {
		t.Fatalf("defaults %+v", cfg)
	}
}

func TestParseConfigErrors(t *testing.T) {
	tests := []struct{ yaml, want string }{
		{"idd: x", "unknown field"},
		{"podman: {sockett: x}", "unknown field"},
		{"broker: http://x", "want mqtt://"},
		{"broker: 'mqtt://'", "no host"},
		{"id: a/b", "must not contain"},
		{"concurrency: -1", "concurrency"},
		{"limits: {memory: lots}", "size"},
		{"limits: {timeout: soon}", "duration"},
		{"gpio: {driver: sysfs}", "driver"},
		{"gpio: {lines: {fan: {direction: sideways}}}", "direction"},
		{"gpio: {lines: {b: {direction: input, edge: both, publish: deviceless/x}}}", "inside the deviceless/ prefix"},
		{"functions: {f: {runtime: cobol, code: x}}", "unknown runtime"},
		{"functions: {f: {image: x, runtime: sh}}", "both"},
		{"functions: {f: {code: x}}", "needs `runtime`"},
		{"tls: {cert: a.pem}", "cert and key"},
	}
	for _, tt := range tests {
		_, err := ParseConfig([]byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.yaml, err, tt.want)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, []byte("id: a1\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v", err)
	}
	if _, err := LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
}
