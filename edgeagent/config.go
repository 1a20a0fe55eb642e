package edgeagent

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/deviceless/deviceless/edgeagent/gpio"
	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/protocol"
)

// Config is the agent configuration (agent.yaml). Every key has a default; see docs/agent.md.
type Config struct {
	ID            string                           `yaml:"id"`             // agent id; default the host name
	Broker        string                           `yaml:"broker"`         // mqtt://, mqtts://, ws:// or wss:// URL
	Username      string                           `yaml:"username"`       // default the id
	Password      string                           `yaml:"password"`       //
	TLS           TLSConfig                        `yaml:"tls"`            // for mqtts:// and wss://
	Prefix        string                           `yaml:"prefix"`         // topic prefix; default "deviceless"
	SessionExpiry time.Duration                    `yaml:"session_expiry"` // how long the broker keeps invocations for an offline agent
	Labels        map[string]string                `yaml:"labels"`         // advertised in the status; rules target them
	Podman        PodmanConfig                     `yaml:"podman"`         //
	Runtimes      map[string]string                `yaml:"runtimes"`       // runtime name → image
	Functions     map[string]protocol.FunctionSpec `yaml:"functions"`      // functions defined on the agent itself
	Concurrency   int                              `yaml:"concurrency"`    // invocations running at once
	Queue         int                              `yaml:"queue"`          // invocations waiting; beyond it: rejected
	Limits        Limits                           `yaml:"limits"`         // defaults for functions that set none
	State         string                           `yaml:"state"`          // folder for inline code
	GPIO          GPIOConfig                       `yaml:"gpio"`           //
	Influx        *InfluxConfig                    `yaml:"influx"`         // absent: no metrics to InfluxDB
}

// TLSConfig configures the broker connection's TLS.
type TLSConfig struct {
	CA                 string `yaml:"ca"`   // PEM file of the CA that signed the broker's certificate
	Cert               string `yaml:"cert"` // client certificate (PEM), with key
	Key                string `yaml:"key"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// PodmanConfig selects the podman service.
type PodmanConfig struct {
	Socket  string `yaml:"socket"`  // socket path or unix:// URI
	Runtime string `yaml:"runtime"` // OCI runtime (runc, crun); default the service's
	Pull    bool   `yaml:"pull"`    // pull images missing locally from a registry
	User    string `yaml:"user"`    // user functions run as; default 65534:65534 (nobody)
	// Prepare creates the next container of a runtime function ahead of its invocation
	// (default true); every invocation still gets a fresh container.
	Prepare *bool `yaml:"prepare"`
}

// Limits are the defaults and caps applied to every function.
type Limits struct {
	Timeout time.Duration `yaml:"timeout"` // default run deadline (protocol.DefaultTimeout)
	Memory  protocol.Size `yaml:"memory"`  // default memory limit (protocol.DefaultMemory)
	Pids    int64         `yaml:"pids"`    // pids limit (64)
	Output  protocol.Size `yaml:"output"`  // stdout kept (1Mi); more is an error
	Sweep   time.Duration `yaml:"sweep"`   // how often orphan containers are removed (1m)
}

// GPIOConfig declares the agent's lines.
type GPIOConfig struct {
	Driver string                     `yaml:"driver"` // gpiocdev or sim (default)
	Chip   string                     `yaml:"chip"`   // gpiocdev chip (default gpiochip0)
	Lines  map[string]gpio.LineConfig `yaml:"lines"`
}

// InfluxConfig is where agent metrics go: the metrics sink's settings, plus how often
// the agent reports its CPU, memory, running and queued invocations.
type InfluxConfig struct {
	metrics.Config `yaml:",inline"`
	Interval       time.Duration `yaml:"interval"` // default 10s
}

// LoadConfig reads and validates an agent config file. Unknown keys are errors.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("agent config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes agent YAML strictly and validates it (see Config.Validate).
func ParseConfig(data []byte) (Config, error) {
	var cfg Config
	if len(bytes.TrimSpace(data)) > 0 {
		if err := yaml.NewDecoder(bytes.NewReader(data), yaml.Strict()).Decode(&cfg); err != nil {
			return Config{}, errors.New(yaml.FormatError(err, false, true))
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// DefaultRuntimes maps the built-in runtime names to the images scripts/images.sh builds.
var DefaultRuntimes = map[string]string{
	"sh":      "localhost/deviceless/sh",
	"python3": "localhost/deviceless/python3",
}

// Validate fills defaults in place and rejects anything the agent could not honour.
func (c *Config) Validate() error {
	if c.ID == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("id: not set and no host name: %w", err)
		}
		c.ID = host
	}
	if strings.ContainsAny(c.ID, "/+#") || strings.TrimSpace(c.ID) != c.ID {
		return fmt.Errorf("id %q: must not contain '/', '+', '#' or surrounding spaces", c.ID)
	}
	if c.Broker == "" {
		c.Broker = "mqtt://127.0.0.1:1883"
	}
	if _, err := protocol.ParseBrokerURL(c.Broker); err != nil {
		return fmt.Errorf("broker %q: %w", c.Broker, err)
	}
	if c.Username == "" {
		c.Username = c.ID
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return errors.New("tls: cert and key go together")
	}
	if c.Prefix == "" {
		c.Prefix = protocol.DefaultPrefix
	}
	if strings.ContainsAny(c.Prefix, "+#") || strings.HasSuffix(c.Prefix, "/") {
		return fmt.Errorf("prefix %q: no wildcards or trailing '/'", c.Prefix)
	}
	if c.SessionExpiry == 0 {
		c.SessionExpiry = 24 * time.Hour
	}
	if c.SessionExpiry < time.Second {
		return fmt.Errorf("session_expiry %s: want at least 1s", c.SessionExpiry)
	}
	if c.Podman.Socket == "" {
		c.Podman.Socket = DefaultPodmanSocket()
	}
	if c.Podman.Prepare == nil {
		c.Podman.Prepare = new(true)
	}
	if c.Podman.User == "" {
		c.Podman.User = "65534:65534"
	}
	if c.Runtimes == nil {
		c.Runtimes = map[string]string{}
		for k, v := range DefaultRuntimes {
			c.Runtimes[k] = v
		}
	}
	for name, image := range c.Runtimes {
		if name == "" || strings.ContainsAny(name, "/ ") || image == "" {
			return fmt.Errorf("runtimes: %q: want a name without '/' or spaces and an image", name)
		}
	}
	if c.Concurrency == 0 {
		c.Concurrency = 2
	}
	if c.Concurrency < 1 {
		return fmt.Errorf("concurrency %d: want at least 1", c.Concurrency)
	}
	if c.Queue == 0 {
		c.Queue = 16
	}
	if c.Queue < 0 {
		return fmt.Errorf("queue %d: want 0 (default) or more", c.Queue)
	}
	if c.Limits.Timeout == 0 {
		c.Limits.Timeout = protocol.DefaultTimeout
	}
	if c.Limits.Memory == 0 {
		c.Limits.Memory = protocol.DefaultMemory
	}
	if c.Limits.Pids == 0 {
		c.Limits.Pids = 64
	}
	if c.Limits.Output == 0 {
		c.Limits.Output = 1 << 20
	}
	if c.Limits.Sweep == 0 {
		c.Limits.Sweep = time.Minute
	}
	if c.Limits.Timeout < 0 || c.Limits.Memory < protocol.MinMemory || c.Limits.Pids < 1 || c.Limits.Output < 1 || c.Limits.Sweep < 0 {
		return errors.New("limits: timeout and sweep must be positive, memory at least 4Mi, pids and output at least 1")
	}
	for name, f := range c.Functions {
		if err := c.checkFunction(name, f); err != nil {
			return fmt.Errorf("functions: %w", err)
		}
	}
	if c.State == "" {
		if s := os.Getenv("DEVICELESS_STATE"); s != "" {
			c.State = filepath.Join(s, "agent", c.ID)
		} else {
			c.State = filepath.Join(os.TempDir(), "deviceless-agent-"+c.ID)
		}
	}
	switch c.GPIO.Driver {
	case "":
		c.GPIO.Driver = "sim"
	case "sim", "gpiocdev":
	default:
		return fmt.Errorf("gpio: driver %q: want gpiocdev or sim", c.GPIO.Driver)
	}
	if c.GPIO.Driver == "gpiocdev" && c.GPIO.Chip == "" {
		c.GPIO.Chip = "gpiochip0"
	}
	if c.GPIO.Lines == nil {
		c.GPIO.Lines = map[string]gpio.LineConfig{}
	}
	if err := gpio.Validate(c.GPIO.Lines); err != nil {
		return err
	}
	topics := protocol.Topics{Prefix: c.Prefix}
	for name, l := range c.GPIO.Lines {
		if l.Publish != "" {
			if err := checkPublishTopic(topics, l.Publish); err != nil {
				return fmt.Errorf("gpio: line %s: %w", name, err)
			}
		}
	}
	return nil
}

// checkFunction validates a function definition, and that this agent has its runtime.
func (c *Config) checkFunction(name string, s protocol.FunctionSpec) error {
	err := s.Validate()
	if s.Runtime != "" && c.Runtimes[s.Runtime] == "" {
		err = errors.Join(err, fmt.Errorf("unknown runtime %q (this agent has %s)", s.Runtime, strings.Join(sortedKeys(c.Runtimes), ", ")))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// DefaultPodmanSocket is $DEVICELESS_PODMAN_SOCKET, else the project service's socket under
// $DEVICELESS_STATE, else podman's system socket.
func DefaultPodmanSocket() string {
	if s := os.Getenv("DEVICELESS_PODMAN_SOCKET"); s != "" {
		return s
	}
	if s := os.Getenv("DEVICELESS_STATE"); s != "" {
		return filepath.Join(s, "podman", "podman.sock")
	}
	return "/run/podman/podman.sock"
}

// checkPublishTopic accepts topics a function or an input line may publish to: concrete
// (no wildcards) and outside the Deviceless prefix.
func checkPublishTopic(t protocol.Topics, topic string) error {
	switch {
	case topic == "":
		return errors.New("empty publish topic")
	case strings.ContainsAny(topic, "+#"):
		return fmt.Errorf("publish topic %q has wildcards", topic)
	case t.Internal(topic):
		return fmt.Errorf("publish topic %q is inside the %s/ prefix", topic, t.Prefix)
	}
	return nil
}
