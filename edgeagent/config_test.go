package edgeagent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/deviceless/deviceless/edgeagent/gpio"
	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/protocol"
)

func TestParseConfigFull(t *testing.T) {
	t.Setenv("DEVICELESS_STATE", "/var/lib/deviceless")
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
	want := Config{
		ID: "gh1-edge", Broker: "mqtts://broker.example:8883", Username: "gh1-edge", Password: "secret",
		Prefix: "deviceless", SessionExpiry: 24 * time.Hour, Labels: map[string]string{"zone": "north"},
		Podman:   PodmanConfig{Enabled: new(true), Socket: "/run/podman/podman.sock", Runtime: "runc", User: "65534:65534", Timeout: 30 * time.Second, Prepare: new(true)},
		Wasm:     WasmConfig{Enabled: new(true), Store: 256 << 20, Fetch: time.Minute},
		Runtimes: map[string]string{"sh": "localhost/deviceless/sh"},
		Functions: map[string]protocol.FunctionSpec{"blink": {Runtime: "sh", Code: "echo 1", Memory: 32 << 20,
			Warm: &protocol.Warm{Idle: protocol.Duration(time.Minute), MaxUses: 1000}}},
		Concurrency: 3, Queue: 5,
		Limits: Limits{Timeout: 10 * time.Second, Memory: 64 << 20, CPUs: 1, Pids: 64, Output: 256 << 10, MaxPacketSize: 1 << 20, Outbox: 1000, OutboxBytes: 16 << 20, Sweep: time.Minute},
		State:  "/var/lib/deviceless/agent/gh1-edge",
		GPIO: GPIOConfig{Driver: "gpiocdev", Chip: "gpiochip0", Lines: map[string]gpio.LineConfig{
			"fan": {Offset: 17, Direction: "output", Bias: "as-is", Edge: "none"},
			"button": {Offset: 4, Direction: "input", Edge: "falling", Bias: "pull-up", Debounce: 5 * time.Millisecond,
				Publish: "sensors/gh1/button"},
		}},
		Influx: &InfluxConfig{Config: metrics.Config{URL: "http://127.0.0.1:8086", Bucket: "deviceless"}},
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestParseConfigDefaults(t *testing.T) {
	host, _ := os.Hostname()
	// defaults is what an empty file gives with DEVICELESS_STATE=/state.
	defaults := func() Config {
		return Config{
			ID: host, Broker: "mqtt://127.0.0.1:1883", Username: host, Prefix: "deviceless",
			SessionExpiry: 24 * time.Hour,
			Podman:        PodmanConfig{Enabled: new(true), Socket: "/state/podman/podman.sock", User: "65534:65534", Timeout: 30 * time.Second, Prepare: new(true)},
			Wasm:          WasmConfig{Enabled: new(true), Store: 256 << 20, Fetch: time.Minute},
			Runtimes:      map[string]string{"sh": "localhost/deviceless/sh", "python3": "localhost/deviceless/python3"},
			Concurrency:   2, Queue: 16,
			Limits: Limits{Timeout: time.Minute, Memory: 256 << 20, CPUs: 1, Pids: 64, Output: 1 << 20, MaxPacketSize: 1 << 20, Outbox: 1000, OutboxBytes: 16 << 20,
				Sweep: time.Minute},
			State: filepath.Join("/state/agent", host),
			GPIO:  GPIOConfig{Driver: "sim", Lines: map[string]gpio.LineConfig{}},
		}
	}
	tests := []struct {
		name, yaml string
		env        map[string]string
		want       func(c *Config)
	}{
		{name: "empty", want: func(*Config) {}},
		{name: "podman socket from the environment", env: map[string]string{"DEVICELESS_PODMAN_SOCKET": "/tmp/x.sock"},
			want: func(c *Config) { c.Podman.Socket = "/tmp/x.sock" }},
		{name: "no state folder", yaml: "id: a1", env: map[string]string{"DEVICELESS_STATE": "", "XDG_CACHE_HOME": "/cache"},
			want: func(c *Config) {
				c.ID, c.Username, c.Podman.Socket = "a1", "a1", "/run/podman/podman.sock"
				c.State = "/cache/deviceless/agent/a1"
			}},
		{name: "username and state follow the id", yaml: "id: a1\nusername: u1",
			want: func(c *Config) { c.ID, c.Username, c.State = "a1", "u1", "/state/agent/a1" }},
		{name: "set values are kept", yaml: "podman: {prepare: false, user: '1000:1000'}\nruntimes: {}\nlimits: {pids: 8}",
			want: func(c *Config) {
				c.Podman.Prepare, c.Podman.User = new(false), "1000:1000"
				c.Runtimes, c.Limits.Pids = map[string]string{}, 8
			}},
		{name: "lines", yaml: "gpio: {driver: gpiocdev, lines: {fan: {offset: 17}, b: {offset: 4, direction: input, edge: both, publish: x}}}",
			want: func(c *Config) {
				c.GPIO = GPIOConfig{Driver: "gpiocdev", Chip: "gpiochip0", Lines: map[string]gpio.LineConfig{
					"fan": {Offset: 17, Direction: "output", Bias: "as-is", Edge: "none"},
					"b":   {Offset: 4, Direction: "input", Bias: "as-is", Edge: "both", Publish: "x"},
				}}
			}},
		{name: "functions keep their own defaults for run time", yaml: "functions: {f: {image: x}}",
			want: func(c *Config) { c.Functions = map[string]protocol.FunctionSpec{"f": {Image: "x"}} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DEVICELESS_STATE", "/state")
			t.Setenv("DEVICELESS_PODMAN_SOCKET", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := ParseConfig([]byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			want := defaults()
			tt.want(&want)
			if diff := cmp.Diff(want, cfg); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWithDefaultsCopiesLines(t *testing.T) {
	lines := map[string]gpio.LineConfig{"fan": {Offset: 17}}
	cfg := Config{GPIO: GPIOConfig{Lines: lines}}.withDefaults()
	if lines["fan"].Direction != "" || cfg.GPIO.Lines["fan"].Direction != gpio.Output {
		t.Fatalf("caller's %+v, defaulted %+v", lines["fan"], cfg.GPIO.Lines["fan"])
	}
	if again := cfg.withDefaults(); !cmp.Equal(again, cfg) {
		t.Errorf("defaults twice differ: %s", cmp.Diff(cfg, again))
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"top level", `
id: "a/b"
broker: "http://x"
tls: {cert: a.pem}
prefix: "dev/"
session_expiry: 1ms
runtimes: {sh: localhost/deviceless/sh, "a b": img, py: ""}
concurrency: -1
queue: -2
limits: {timeout: -1s, memory: 1Mi, sweep: -1s}
`, []string{
			`id: "a/b" must not contain '/', '+', '#' or surrounding spaces`,
			`broker "http://x": want mqtt://, mqtts://, ws:// or wss:// (or the aliases tcp://, tls://, ssl://)`,
			"tls: cert and key go together",
			`prefix "dev/": empty topic level (a leading, trailing or double '/')`,
			"session_expiry: 1ms is less than 1s",
			`runtimes: "a b": want a name without '/' or spaces`,
			"runtimes.py: no image",
			"concurrency: -1 is less than 1",
			"queue: -2 is negative",
			"limits.timeout: -1s is negative",
			"limits.memory: 1Mi is below the 4Mi a container needs",
			"limits.sweep: -1s is negative",
		}},
		{"functions and lines", `
functions:
  blink: {runtime: cobol, code: x, memory: 1Mi}
  alarm: {image: x, runtime: sh, warm: {max_uses: -1}}
  ok: {runtime: sh, code: x}
gpio:
  driver: sysfs
  lines:
    fan: {offset: 17, direction: sideways, initial: 2}
    heater: {offset: 17}
    button: {offset: 4, direction: input, edge: both, publish: deviceless/up}
    ok: {offset: 5}
`, []string{
			"functions.alarm: has both `runtime` and `image`; choose one",
			"functions.alarm: warm.max_uses must not be negative",
			"functions.blink: memory 1048576 bytes is below the 4Mi a container needs",
			`functions.blink: unknown runtime "cobol" (this agent has python3, sh, wasm)`,
			`gpio.driver: "sysfs": want gpiocdev or sim`,
			`gpio.lines.fan: direction "sideways": want output or input`,
			"gpio.lines.fan: initial: line value must be 0 or 1",
			"gpio.lines.heater: lines fan and heater share offset 17",
			`gpio.lines.button: publish topic "deviceless/up" is inside the deviceless/ prefix`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if diff := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
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
		{"prefix: a/#", "cannot contain wildcards"},
		{"gpio: {lines: {'': {offset: 1}}}", "gpio.lines: empty line name"},
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
