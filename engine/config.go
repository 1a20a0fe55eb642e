package engine

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/metrics"
)

// Config is the engine's configuration file (deviceless.yaml). Every key has a default:
// the zero Config runs an embedded broker on 127.0.0.1:1883 and the HTTP API on
// 127.0.0.1:8080.
type Config struct {
	Broker BrokerConfig    `yaml:"broker"`
	Rules  []string        `yaml:"rules"`
	HTTP   string          `yaml:"http"`
	API    APIConfig       `yaml:"api"`    // who may use the HTTP API (docs/security.md)
	Influx *metrics.Config `yaml:"influx"` // absent: metrics to InfluxDB off
	// Name tags this engine's points in InfluxDB; default the host name.
	Name string `yaml:"name"`
	// MetricsInterval is how often event counts go to InfluxDB.
	MetricsInterval time.Duration  `yaml:"metrics_interval"`
	Dispatch        DispatchConfig `yaml:"dispatch"`
	// History is how many finished invocations /api/v1/invocations keeps.
	History int `yaml:"history"`
	// ShutdownGrace is how long a stopping engine waits for invocations in flight.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// ReloadDelay debounces rule file changes.
	ReloadDelay time.Duration `yaml:"reload_delay"`
	// MaxKeys bounds each rule's state (see rules.Options).
	MaxKeys int `yaml:"max_keys"`
	// Intake is what the engine does when devices publish faster than it evaluates.
	Intake IntakeConfig `yaml:"intake"`
	// Workers is how many goroutines evaluate a batch of events (docs/engine.md,
	// "Ordering and overload"); every rule key still sees its events in arrival order.
	// Default GOMAXPROCS; 1 evaluates on the event loop's goroutine alone.
	Workers int `yaml:"workers"`
	// State is the engine's own state folder: the last runs of scheduled rules with
	// catch_up (docs/engine.md#schedules), deployed functions and usage figures
	// (docs/functions.md). Default: broker.store + "-engine"; without either, the engine
	// keeps no state of its own.
	State string `yaml:"state"`
	// Functions tunes the logs and usage of functions (functions.go).
	Functions FunctionsConfig `yaml:"functions"`
}

// IntakeConfig configures the event intake (docs/engine.md, "Ordering and overload").
type IntakeConfig struct {
	// Overflow: backpressure (default) holds a publisher's connection while the intake is
	// full, so nothing is lost; shed drops QoS 0 events beyond the buffer instead
	// (broker.limits.intake_buffer) and counts them.
	Overflow broker.Overflow `yaml:"overflow"`
}

// BrokerConfig is the embedded broker's configuration, or the address of an external one.
type BrokerConfig struct {
	broker.Config `yaml:",inline"`
	// External, when set (mqtt://host:1883), uses that broker instead of the embedded one.
	External    string `yaml:"external"`
	SharedGroup string `yaml:"shared_group"`
	// ClientID, when set, makes the engine's session persistent (QoS 1 events sent while
	// it restarts wait for it); each engine of a group needs its own.
	ClientID string `yaml:"client_id"`
	// SessionExpiry is how long the broker keeps the session of an engine that is gone
	// (with client_id; default DefaultSessionExpiry). 0 ends it with the connection: a
	// broker that re-dispatches a dead member's shared-subscription messages (EMQX) then
	// hands them to the other engines at once, while mosquitto drops them (docs/scale.md).
	SessionExpiry *time.Duration `yaml:"session_expiry"`
	// ReceiveMaximum, when set (1–65535), bounds the QoS 1/2 events the broker sends this
	// engine before it acknowledges them: what a crashed member holds in flight.
	ReceiveMaximum int    `yaml:"receive_maximum"`
	Username       string `yaml:"username"`
	Password       string `yaml:"password"`
}

// DispatchConfig tunes invocation delivery.
type DispatchConfig struct {
	// Attempts bounds deliveries of one invocation (pick: one retries on another agent).
	Attempts int `yaml:"attempts"`
	// Backoff is the wait before the first retry; it doubles per attempt.
	Backoff time.Duration `yaml:"backoff"`
	// StartGrace is added to a function's timeout for queueing and container start.
	StartGrace time.Duration `yaml:"start_grace"`
	// MaxInFlight bounds a rule's invocations out to one agent at once; one more waits
	// for a slot, holding the event loop (backpressure) rather than overflowing the agent's
	// queue in the broker, which would drop it. Default: half the embedded broker's
	// limits.max_queued (500 of 1000; the other half is room for actuations and module
	// chunks), 500 with an external broker.
	MaxInFlight int `yaml:"max_in_flight"`
}

// Defaults.
const (
	DefaultHTTP       = "127.0.0.1:8080"
	DefaultHistory    = 1000
	DefaultAttempts   = 3
	DefaultBackoff    = 100 * time.Millisecond
	DefaultStartGrace = 3 * time.Second
	// DefaultMaxInFlight is dispatch.max_in_flight: half the embedded broker's default
	// limits.max_queued.
	DefaultMaxInFlight   = broker.DefaultMaxQueued / 2
	DefaultShutdownGrace = 5 * time.Second
	// DefaultSessionExpiry is how long an external broker keeps an engine's persistent
	// session (broker.client_id set) after it went away.
	DefaultSessionExpiry = time.Hour
	DefaultReloadDelay   = 200 * time.Millisecond
)

func (c Config) withDefaults() Config {
	if c.HTTP == "" {
		c.HTTP = DefaultHTTP
	}
	if c.History <= 0 {
		c.History = DefaultHistory
	}
	if c.Dispatch.Attempts <= 0 {
		c.Dispatch.Attempts = DefaultAttempts
	}
	if c.Dispatch.Backoff <= 0 {
		c.Dispatch.Backoff = DefaultBackoff
	}
	if c.Dispatch.StartGrace <= 0 {
		c.Dispatch.StartGrace = DefaultStartGrace
	}
	if c.Dispatch.MaxInFlight == 0 {
		c.Dispatch.MaxInFlight = DefaultMaxInFlight
		if q := int(c.Broker.Limits.MaxQueued); c.Broker.External == "" && q > 0 {
			c.Dispatch.MaxInFlight = max(1, q/2)
		}
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.ReloadDelay <= 0 {
		c.ReloadDelay = DefaultReloadDelay
	}
	if c.MetricsInterval <= 0 {
		c.MetricsInterval = 10 * time.Second
	}
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.State == "" && c.Broker.Store != "" {
		c.State = c.Broker.Store + "-engine" // beside the intake's journal, store + "-intake-events"
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	c.Functions = c.Functions.withDefaults()
	return c
}

func (c *Config) validate() error {
	var errs []error
	if c.Broker.External == "" && (c.Broker.SharedGroup != "" || c.Broker.ClientID != "") {
		errs = append(errs, errors.New("broker.shared_group and broker.client_id apply to an external broker only"))
	}
	if c.Broker.ClientID != "" && !validClientID(c.Broker.ClientID) {
		// It names the engine's sync topic ({prefix}/engines/{client_id}/sync).
		errs = append(errs, fmt.Errorf("broker.client_id %q: want one topic level (no '/', '+', '#'), at most 128 bytes", c.Broker.ClientID))
	}
	if c.Broker.SessionExpiry != nil && (c.Broker.ClientID == "" || *c.Broker.SessionExpiry < 0 || *c.Broker.SessionExpiry > maxSessionExpiry) {
		errs = append(errs, fmt.Errorf("broker.session_expiry: needs broker.client_id and a duration from 0s to %v", maxSessionExpiry))
	}
	if c.Broker.ReceiveMaximum < 0 || c.Broker.ReceiveMaximum > 65535 || (c.Broker.ReceiveMaximum > 0 && c.Broker.External == "") {
		errs = append(errs, errors.New("broker.receive_maximum: 1 to 65535, with an external broker"))
	}
	if c.HTTP != "off" {
		if _, _, err := net.SplitHostPort(c.HTTP); err != nil {
			errs = append(errs, fmt.Errorf("http: %q is not host:port: %w", c.HTTP, err))
		}
	}
	switch c.Intake.Overflow {
	case "", broker.OverflowBackpressure, broker.OverflowShed:
	default:
		errs = append(errs, fmt.Errorf("intake.overflow: %q: want backpressure or shed", c.Intake.Overflow))
	}
	if err := c.API.validate(c.HTTP); err != nil {
		errs = append(errs, err)
	}
	if c.Broker.External != "" {
		// An external broker does not say who published an invoke request: its API token
		// does, and the token's name is its response space, one topic level.
		for i, t := range c.API.Tokens {
			if strings.ContainsAny(t.Name, "/+#\x00") {
				errs = append(errs, fmt.Errorf("api.tokens[%d] (%s): with broker.external a token's name is its response space {prefix}/responses/{name}: no '/', '+', '#' or NUL", i, t.Name))
			}
		}
	}
	if c.Workers < 0 || c.Workers > maxWorkers {
		errs = append(errs, fmt.Errorf("workers: %d: want 1 to %d (0: GOMAXPROCS)", c.Workers, maxWorkers))
	}
	if c.Dispatch.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("dispatch.max_in_flight: %d is negative", c.Dispatch.MaxInFlight))
	}
	if q := int(c.Broker.Limits.MaxQueued); c.Broker.External == "" && q > 0 && c.Dispatch.MaxInFlight > q {
		errs = append(errs, fmt.Errorf("dispatch.max_in_flight: %d is more than broker.limits.max_queued (%d): the broker would drop the rest", c.Dispatch.MaxInFlight, q))
	}
	if c.Dispatch.Attempts > 10 {
		errs = append(errs, fmt.Errorf("dispatch.attempts: %d is more than 10", c.Dispatch.Attempts))
	}
	if err := c.Functions.validate(); err != nil {
		errs = append(errs, err)
	}
	for i, u := range c.Broker.Users {
		if u.Role == broker.RoleDeveloper {
			if err := validNamespace(u.Username); err != nil {
				errs = append(errs, fmt.Errorf("broker.users[%d] (%s): a developer's username is its namespace: %w", i, u.Username, err))
			}
		}
	}
	return errors.Join(errs...)
}

// LoadConfig reads a configuration file strictly: unknown keys are errors with their
// position. Relative rule paths are relative to the file's folder.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("engine config: %w", err)
	}
	var c Config
	if err := yaml.UnmarshalWithOptions(data, &c, yaml.Strict()); err != nil {
		return Config{}, fmt.Errorf("engine config %s:%s", path, yaml.FormatError(err, false, true))
	}
	dir := dirOf(path)
	for i, r := range c.Rules {
		c.Rules[i] = joinPath(dir, r)
	}
	if c.Broker.Store != "" {
		c.Broker.Store = joinPath(dir, c.Broker.Store)
	}
	c.State = joinPath(dir, c.State)
	return c, nil
}

func dirOf(path string) string { return filepath.Dir(path) }

func joinPath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// maxSessionExpiry is the longest MQTT 5 session expiry interval short of "never"
// (0xFFFFFFFF seconds), which a crashed engine's session should not have.
const maxSessionExpiry = time.Duration(0xFFFFFFFE) * time.Second

// validClientID reports whether id can name the engine's topics: one topic level, short.
func validClientID(id string) bool {
	return id != "" && len(id) <= 128 && !strings.ContainsAny(id, "/+#\x00")
}

// sessionExpiry is the external session's expiry: 0 without client_id (a clean session
// that ends with the connection).
func (b BrokerConfig) sessionExpiry() time.Duration {
	switch {
	case b.ClientID == "":
		return 0
	case b.SessionExpiry == nil:
		return DefaultSessionExpiry
	}
	return *b.SessionExpiry
}
