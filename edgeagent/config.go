package edgeagent

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
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
	Wasm          WasmConfig                       `yaml:"wasm"`           // the WebAssembly runtime (on by default)
	Runtimes      map[string]string                `yaml:"runtimes"`       // runtime name → image
	Functions     map[string]protocol.FunctionSpec `yaml:"functions"`      // functions defined on the agent itself
	Concurrency   int                              `yaml:"concurrency"`    // invocations running at once
	Queue         int                              `yaml:"queue"`          // invocations waiting; beyond it: rejected
	Limits        Limits                           `yaml:"limits"`         // defaults for functions that set none
	State         string                           `yaml:"state"`          // private folder: inline code, ids seen
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
	// Enabled runs container functions (default true). Off, the agent needs no podman: it
	// serves wasm functions only and advertises no container runtime.
	Enabled *bool  `yaml:"enabled"`
	Socket  string `yaml:"socket"`  // socket path or unix:// URI
	Runtime string `yaml:"runtime"` // OCI runtime (runc, crun); default the service's
	// Timeout bounds each call to the podman service (30s); a pull gets 10 minutes.
	Timeout time.Duration `yaml:"timeout"`
	Pull    bool          `yaml:"pull"` // pull images missing locally from a registry
	User    string        `yaml:"user"` // user functions run as; default 65534:65534 (nobody)
	// Prepare creates the next container of a runtime function ahead of its invocation
	// (default true); every invocation still gets a fresh container.
	Prepare *bool `yaml:"prepare"`
}

// WasmConfig configures the WebAssembly runtime: WASI preview 1 modules run in the agent's
// process with wazero, a fresh instance per invocation (docs/agent.md).
type WasmConfig struct {
	Enabled *bool         `yaml:"enabled"` // default true; it needs nothing installed
	Store   protocol.Size `yaml:"store"`   // module bytes kept on disk, least recently used dropped first (256Mi)
	// Fetch bounds getting a module the agent lacks from the engine over the broker (1m).
	Fetch time.Duration `yaml:"fetch"`
}

// Limits bound every function the agent runs. Timeout and Memory are caps: an invocation
// asking for more is rejected, and a function that asks nothing gets protocol's defaults
// (DefaultTimeout, DefaultMemory), lowered to the caps.
type Limits struct {
	Timeout time.Duration `yaml:"timeout"` // longest run deadline a function may ask (1m)
	Memory  protocol.Size `yaml:"memory"`  // most memory a function may ask (256Mi)
	CPUs    float64       `yaml:"cpus"`    // CPUs a container may use (1.0), as a CFS quota
	Pids    int64         `yaml:"pids"`    // pids limit (64)
	Output  protocol.Size `yaml:"output"`  // stdout kept (1Mi); more is an error
	// Outbox and OutboxBytes bound the messages kept for the broker while it is away
	// (1000, 16Mi); beyond them the oldest are dropped.
	Outbox      int           `yaml:"outbox"`
	OutboxBytes protocol.Size `yaml:"outbox_bytes"`
	// MaxPacketSize caps the MQTT packets the agent sends (1Mi, the Deviceless broker's
	// limit); a broker's CONNACK may lower it.
	MaxPacketSize protocol.Size `yaml:"max_packet_size"`
	Sweep         time.Duration `yaml:"sweep"` // how often orphan containers are removed (1m)
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
	cfg.resolveModules(filepath.Dir(path))
	return cfg, nil
}

// ParseConfig decodes agent YAML strictly, fills the defaults and validates the result
// (see Config.Validate).
func ParseConfig(data []byte) (Config, error) {
	var cfg Config
	if len(bytes.TrimSpace(data)) > 0 {
		if err := yaml.NewDecoder(bytes.NewReader(data), yaml.Strict()).Decode(&cfg); err != nil {
			return Config{}, errors.New(yaml.FormatError(err, false, true))
		}
	}
	cfg = cfg.withDefaults()
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

// Defaults of the agent's keys (a function's own are protocol's: DefaultTimeout, ...).
const (
	DefaultBroker        = "mqtt://127.0.0.1:1883"
	DefaultSessionExpiry = 24 * time.Hour
	DefaultUser          = "65534:65534" // nobody
	DefaultPodmanTimeout = 30 * time.Second
	DefaultConcurrency   = 2
	DefaultQueue         = 16
	DefaultMaxTimeout    = time.Minute
	DefaultMaxMemory     = protocol.Size(256 << 20)
	DefaultCPUs          = 1.0
	DefaultPids          = 64
	DefaultOutput        = protocol.Size(1 << 20)
	DefaultMaxPacketSize = protocol.Size(1 << 20)
	DefaultOutbox        = 1000
	DefaultOutboxBytes   = protocol.Size(16 << 20)
	DefaultSweep         = time.Minute
	DefaultWasmStore     = protocol.Size(256 << 20)
	DefaultWasmFetch     = time.Minute
	DefaultGPIODriver    = "sim"
	DefaultGPIOChip      = "gpiochip0" // gpiocdev only
)

// withDefaults returns c with every key left empty set to its default. Its maps are
// copies where defaults go into them.
func (c Config) withDefaults() Config {
	if c.ID == "" {
		c.ID, _ = os.Hostname() // none: Validate says so
	}
	if c.Broker == "" {
		c.Broker = DefaultBroker
	}
	if c.Username == "" {
		c.Username = c.ID
	}
	if c.Prefix == "" {
		c.Prefix = protocol.DefaultPrefix
	}
	if c.SessionExpiry == 0 {
		c.SessionExpiry = DefaultSessionExpiry
	}
	if c.Podman.Socket == "" {
		c.Podman.Socket = DefaultPodmanSocket()
	}
	if c.Podman.Timeout == 0 {
		c.Podman.Timeout = DefaultPodmanTimeout
	}
	if c.Podman.Enabled == nil {
		c.Podman.Enabled = new(true)
	}
	if c.Wasm.Enabled == nil {
		c.Wasm.Enabled = new(true)
	}
	if c.Wasm.Store == 0 {
		c.Wasm.Store = DefaultWasmStore
	}
	if c.Wasm.Fetch == 0 {
		c.Wasm.Fetch = DefaultWasmFetch
	}
	if c.Podman.Prepare == nil {
		c.Podman.Prepare = new(true)
	}
	if c.Podman.User == "" {
		c.Podman.User = DefaultUser
	}
	if c.Runtimes == nil {
		c.Runtimes = maps.Clone(DefaultRuntimes)
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Queue == 0 {
		c.Queue = DefaultQueue
	}
	if c.Limits.Timeout == 0 {
		c.Limits.Timeout = DefaultMaxTimeout
	}
	if c.Limits.Memory == 0 {
		c.Limits.Memory = DefaultMaxMemory
	}
	if c.Limits.CPUs == 0 {
		c.Limits.CPUs = DefaultCPUs
	}
	if c.Limits.Pids == 0 {
		c.Limits.Pids = DefaultPids
	}
	if c.Limits.Output == 0 {
		c.Limits.Output = DefaultOutput
	}
	if c.Limits.MaxPacketSize == 0 {
		c.Limits.MaxPacketSize = DefaultMaxPacketSize
	}
	if c.Limits.Outbox == 0 {
		c.Limits.Outbox = DefaultOutbox
	}
	if c.Limits.OutboxBytes == 0 {
		c.Limits.OutboxBytes = DefaultOutboxBytes
	}
	if c.Limits.Sweep == 0 {
		c.Limits.Sweep = DefaultSweep
	}
	if c.State == "" {
		c.State = defaultState(c.ID)
	}
	if c.GPIO.Driver == "" {
		c.GPIO.Driver = DefaultGPIODriver
	}
	if c.GPIO.Driver == "gpiocdev" && c.GPIO.Chip == "" {
		c.GPIO.Chip = DefaultGPIOChip
	}
	lines := make(map[string]gpio.LineConfig, len(c.GPIO.Lines))
	for name, l := range c.GPIO.Lines {
		lines[name] = l.WithDefaults()
	}
	c.GPIO.Lines = lines
	return c
}

// Validate reports everything in c the agent could not honour, each problem naming its
// key ("limits.memory: ..."). It checks c as it is: ParseConfig and New fill the defaults
// first.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case c.ID == "":
		add("id: not set, and no host name to default to")
	case strings.ContainsAny(c.ID, "/+#") || strings.TrimSpace(c.ID) != c.ID:
		add("id: %q must not contain '/', '+', '#' or surrounding spaces", c.ID)
	}
	if err := c.checkBroker(); err != nil {
		errs = append(errs, err)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		add("tls: cert and key go together")
	}
	if err := c.checkPrefix(); err != nil {
		errs = append(errs, err)
	}
	if c.SessionExpiry < time.Second {
		add("session_expiry: %s is less than 1s", c.SessionExpiry)
	}
	for _, name := range sortedKeys(c.Runtimes) {
		if name == "" || strings.ContainsAny(name, "/ ") {
			add("runtimes: %q: want a name without '/' or spaces", name)
		} else if name == protocol.RuntimeWasm {
			add("runtimes.%s: the name of the built-in WebAssembly runtime (configure it under wasm:)", name)
		} else if c.Runtimes[name] == "" {
			add("runtimes.%s: no image", name)
		}
	}
	if !c.podman() && !c.wasm() {
		add("podman.enabled and wasm.enabled: both off, the agent could run no function")
	}
	if c.Wasm.Store < 1<<20 {
		add("wasm.store: %s is less than 1Mi", c.Wasm.Store)
	}
	if c.Wasm.Fetch < 0 {
		add("wasm.fetch: %s is negative", c.Wasm.Fetch)
	}
	if c.Podman.Timeout < 0 {
		add("podman.timeout: %s is negative", c.Podman.Timeout)
	}
	if c.Concurrency < 1 {
		add("concurrency: %d is less than 1", c.Concurrency)
	}
	if c.Queue < 0 {
		add("queue: %d is negative", c.Queue)
	}
	if c.Limits.Timeout < 0 {
		add("limits.timeout: %s is negative", c.Limits.Timeout)
	}
	if c.Limits.Memory < protocol.MinMemory {
		add("limits.memory: %s is below the %s a container needs", c.Limits.Memory, protocol.MinMemory)
	}
	if c.Limits.CPUs < 0.01 {
		add("limits.cpus: %g is less than 0.01", c.Limits.CPUs)
	}
	if c.Limits.Pids < 1 {
		add("limits.pids: %d is less than 1", c.Limits.Pids)
	}
	if c.Limits.Output < 1 {
		add("limits.output: %d is less than 1 byte", c.Limits.Output)
	}
	if c.State == "" {
		add("state: not set, and neither $DEVICELESS_STATE nor a user cache folder to default to")
	}
	if c.Limits.MaxPacketSize < 1024 || c.Limits.MaxPacketSize > 268435455 {
		add("limits.max_packet_size: %d is not between 1Ki and MQTT's 268435455 bytes", c.Limits.MaxPacketSize)
	}
	if c.Limits.Outbox < 1 {
		add("limits.outbox: %d is less than 1", c.Limits.Outbox)
	}
	if c.Limits.OutboxBytes < c.Limits.MaxPacketSize {
		add("limits.outbox_bytes: %s is less than limits.max_packet_size (%s)", c.Limits.OutboxBytes, c.Limits.MaxPacketSize)
	}
	if c.Limits.Sweep < 0 {
		add("limits.sweep: %s is negative", c.Limits.Sweep)
	}
	for _, name := range sortedKeys(c.Functions) {
		f := c.Functions[name]
		for _, err := range joined(errors.Join(c.checkFunction(f), c.checkCaps(f, ""))) {
			add("functions.%s: %w", name, err)
		}
	}
	switch c.GPIO.Driver {
	case "sim", "gpiocdev":
	default:
		add("gpio.driver: %q: want gpiocdev or sim", c.GPIO.Driver)
	}
	for _, err := range joined(gpio.Check(c.GPIO.Lines)) {
		var le *gpio.LineError
		switch {
		case errors.As(err, &le) && le.Line != "":
			add("gpio.lines.%s: %w", le.Line, le.Err)
		case le != nil:
			add("gpio.lines: %w", le.Err)
		default:
			add("gpio.lines: %w", err)
		}
	}
	topics := protocol.Topics{Prefix: c.Prefix}
	for _, name := range sortedKeys(c.GPIO.Lines) {
		if l := c.GPIO.Lines[name]; l.Publish != "" {
			if err := checkPublishTopic(topics, l.Publish); err != nil {
				add("gpio.lines.%s: %w", name, err)
			}
		}
	}
	return errors.Join(errs...)
}

// checkBroker checks the broker URL.
func (c *Config) checkBroker() error {
	if _, err := protocol.ParseBrokerURL(c.Broker); err != nil {
		return fmt.Errorf("broker %q: %w", c.Broker, err)
	}
	return nil
}

// checkPrefix checks the topic prefix the way the engine and the broker do.
func (c *Config) checkPrefix() error {
	if err := protocol.ValidatePrefix(c.Prefix); err != nil {
		return fmt.Errorf("prefix %q: %w", c.Prefix, err)
	}
	return nil
}

// podman and wasm report whether the runtimes are on (defaults filled: nil is on).
func (c *Config) podman() bool { return c.Podman.Enabled == nil || *c.Podman.Enabled }
func (c *Config) wasm() bool   { return c.Wasm.Enabled == nil || *c.Wasm.Enabled }

// runtimeNames are the runtimes the agent advertises: its podman runtimes when podman is
// on, and wasm when it is on.
func (c *Config) runtimeNames() []string {
	var names []string
	if c.podman() {
		names = sortedKeys(c.Runtimes)
	}
	if c.wasm() {
		names = append(names, protocol.RuntimeWasm)
	}
	return names
}

// checkFunction reports every problem of a function definition (protocol.FunctionSpec's
// own), and whether this agent has its runtime.
func (c *Config) checkFunction(s protocol.FunctionSpec) error {
	err := s.Validate()
	switch {
	case s.Runtime == protocol.RuntimeWasm && !c.wasm():
		err = errors.Join(err, errors.New("runtime wasm is off on this agent (wasm.enabled: false)"))
	case s.Runtime == protocol.RuntimeWasm:
	case !c.podman():
		err = errors.Join(err, errors.New("this agent runs no containers (podman.enabled: false): only wasm functions"))
	case s.Runtime != "" && c.Runtimes[s.Runtime] == "":
		err = errors.Join(err, fmt.Errorf("unknown runtime %q (this agent has %s)", s.Runtime, strings.Join(c.runtimeNames(), ", ")))
	}
	return err
}

// checkCaps reports what s asks beyond limits.timeout and limits.memory; whose starts the
// name of the limit ("this agent's ").
func (c *Config) checkCaps(s protocol.FunctionSpec, whose string) error {
	var errs []error
	if s.Memory > c.Limits.Memory {
		errs = append(errs, fmt.Errorf("memory %s exceeds %slimits.memory of %s", s.Memory, whose, c.Limits.Memory))
	}
	if s.Timeout.D() > c.Limits.Timeout {
		errs = append(errs, fmt.Errorf("timeout %s exceeds %slimits.timeout of %s", s.Timeout.D(), whose, c.Limits.Timeout))
	}
	return errors.Join(errs...)
}

// joined returns the errors err joins (errors.Join, nested or not), or err alone.
func joined(err error) []error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		if err == nil {
			return nil
		}
		return []error{err}
	}
	var errs []error
	for _, e := range j.Unwrap() {
		errs = append(errs, joined(e)...)
	}
	return errs
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
