package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/deviceless/deviceless/edgeagent"
	"github.com/deviceless/deviceless/engine"
)

// examples/cluster cannot run here (no docker-compose, no network: docs/scale.md); what
// can be checked is: the compose file parses and names the engines' and agents' configs,
// which load and validate (the engines are built as they would start, without connecting),
// and the engines form one shared group with distinct client ids.
func TestClusterExampleConfigs(t *testing.T) {
	base := filepath.Join("..", "..", "examples", "cluster")
	raw, err := os.ReadFile(filepath.Join(base, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image   string   `yaml:"image"`
			Command []string `yaml:"command"`
			Restart string   `yaml:"restart"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, s := range []string{"emqx1", "emqx2", "engine-a", "engine-b", "influxdb", "agent-gh1", "agent-gh2"} {
		if _, ok := compose.Services[s]; !ok {
			t.Errorf("compose.yaml has no service %s", s)
		}
	}
	clientIDs := map[string]string{}
	for name, s := range compose.Services {
		if len(s.Command) < 4 || s.Command[0] != "deviceless" {
			continue
		}
		if s.Restart != "always" {
			t.Errorf("%s: restart %q; a supervisor must restart it (always)", name, s.Restart)
		}
		file := filepath.Join(base, strings.TrimPrefix(s.Command[3], "/etc/deviceless/"))
		switch s.Command[1] {
		case "engine":
			cfg, err := engine.LoadConfig(file)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if cfg.Broker.External == "" || cfg.Broker.SharedGroup != "deviceless" || cfg.Broker.ClientID == "" {
				t.Errorf("%s: broker %+v; want an external broker, shared group deviceless and a client id", name, cfg.Broker)
			}
			if other, dup := clientIDs[cfg.Broker.ClientID]; dup {
				t.Errorf("%s and %s share client id %s", name, other, cfg.Broker.ClientID)
			}
			clientIDs[cfg.Broker.ClientID] = name
			if !slices.Equal(cfg.Rules, []string{filepath.Join(base, "rules")}) {
				t.Errorf("%s: rules %v", name, cfg.Rules)
			}
			// The rules are the greenhouse example's, mounted at rules/ by compose.yaml.
			cfg.Rules, cfg.HTTP, cfg.State = []string{filepath.Join("..", "..", "examples", "greenhouse", "rules")}, "off", t.TempDir()
			if _, err := engine.New(cfg, nil); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		case "agent":
			cfg, err := edgeagent.LoadConfig(file)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		default:
			t.Errorf("%s: command %v", name, s.Command)
		}
	}
	if len(clientIDs) != 2 {
		t.Errorf("engines %v; want two", clientIDs)
	}
}
