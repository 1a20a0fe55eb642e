package broker

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/deviceless/deviceless/protocol"
)

// Defaults applied by New to zero-valued fields.
const (
	DefaultListen             = "127.0.0.1:1883"
	DefaultMaxPacketSize      = 1 << 20 // 1 MiB
	DefaultMaxInflight        = 64
	DefaultMaxQueued          = 1000
	DefaultMaxPending         = 8192
	DefaultIntakeBuffer       = 8192
	DefaultMaxRetainedPerUser = 100
	DefaultMaxAuthFailures    = 10
	DefaultMaxClients         = 10000
	DefaultSysInterval        = 10 * time.Second
	DefaultConnectTimeout     = 10 * time.Second
	DefaultSessionExpiry      = 7 * 24 * time.Hour
	listenerDisabled          = "off"
	maxBcryptPasswordBytes    = 72
)

// Role is what a user may do on the broker (see docs/broker.md for the full table).
type Role string

// Roles, as DESIGN.md defines them.
const (
	RoleDevice Role = "device" // publishes outside the prefix, reads nothing inside it
	RoleAgent  Role = "agent"  // reads its own {prefix}/agents/{username}/#, writes its status and result
	RoleClient Role = "client" // publishes to {prefix}/invoke/#, reads {prefix}/results/# and {prefix}/responses/{username}/#
	// RoleDeveloper deploys functions under its own namespace through the engine's HTTP
	// API (docs/security.md); on the broker it is a client.
	RoleDeveloper Role = "developer"
	RoleAdmin     Role = "admin" // everything
)

func (r Role) valid() bool {
	switch r {
	case RoleDevice, RoleAgent, RoleClient, RoleDeveloper, RoleAdmin:
		return true
	}
	return false
}

// Config is the `broker:` block of deviceless.yaml. Zero values take the defaults
// documented on each field; New rejects anything inconsistent.
type Config struct {
	// Listen is the plain MQTT (TCP) address. Default 127.0.0.1:1883; "off" disables it.
	Listen string `yaml:"listen" json:"listen"`
	// WebSocket is the MQTT-over-WebSocket address (any path). Empty: disabled.
	WebSocket string `yaml:"websocket" json:"websocket"`
	// WebSocketOrigins are the web origins (scheme://host[:port]) whose pages may open an
	// MQTT WebSocket besides the listener's own; "*" allows any. Clients that send no Origin
	// (programs, not browsers) are not affected. Default: same origin only.
	WebSocketOrigins []string `yaml:"websocket_origins" json:"websocket_origins"`
	// TLS is the MQTT-over-TLS listener. Nil or empty Listen: disabled.
	TLS *TLSConfig `yaml:"tls" json:"tls"`
	// Store is the directory of the persistent store (sessions, retained and in-flight
	// messages). Empty: everything lives in memory only.
	Store string `yaml:"store" json:"store"`
	// StoreSync (default true) makes every store write wait for the write-ahead log's
	// fsync (pebble group-commits concurrent writes), so a crash or a power cut loses
	// nothing the broker acknowledged. false is faster, but pebble then keeps the last
	// log block (up to 32 KiB of writes) in memory, and a crash loses it.
	StoreSync *bool `yaml:"store_sync" json:"store_sync"`
	// AllowAnonymous admits clients that send no username; they get AnonymousRole.
	AllowAnonymous bool `yaml:"allow_anonymous" json:"allow_anonymous"`
	// AnonymousRole is the role of anonymous clients. Default device.
	AnonymousRole Role `yaml:"anonymous_role" json:"anonymous_role"`
	// Users are the accounts; passwords are bcrypt hashes (see HashPassword).
	Users []User `yaml:"users" json:"users"`
	// Prefix is the topic prefix of every Deviceless topic. Default "deviceless".
	Prefix string `yaml:"prefix" json:"prefix"`
	// Limits bound what one client can cost the broker.
	Limits Limits `yaml:"limits" json:"limits"`
	// SysInterval is the period of $SYS topic updates. Default 10s.
	SysInterval time.Duration `yaml:"sys_interval" json:"sys_interval"`
}

// TLSConfig configures the TLS listener.
type TLSConfig struct {
	Listen string `yaml:"listen" json:"listen"`
	Cert   string `yaml:"cert" json:"cert"` // PEM certificate chain file
	Key    string `yaml:"key" json:"key"`   // PEM private key file
	// ClientCA, when set, requires clients to present a certificate signed by this CA.
	ClientCA string `yaml:"client_ca" json:"client_ca"`
}

// User is one account.
type User struct {
	Username     string `yaml:"username" json:"username"`
	PasswordHash string `yaml:"password_hash" json:"password_hash"`
	Role         Role   `yaml:"role" json:"role"`
}

// Limits bound the resources of one client. Zero values take the defaults.
type Limits struct {
	// MaxPacketSize is the largest packet a client may send, in bytes. A client that
	// sends a bigger one is disconnected; nobody else is affected. Default 1 MiB.
	MaxPacketSize uint32 `yaml:"max_packet_size" json:"max_packet_size"`
	// MaxInflight is the receive maximum: how many QoS 1/2 messages a client may have
	// unacknowledged towards the broker. Default 64.
	MaxInflight uint16 `yaml:"max_inflight" json:"max_inflight"`
	// MaxQueued is how many QoS 1/2 messages the broker keeps for one client (offline or
	// not acknowledging); further ones for that client are dropped and counted. Default 1000.
	MaxQueued uint16 `yaml:"max_queued" json:"max_queued"`
	// MaxPending is the outbound buffer of one connected client, in packets; when a slow
	// reader fills it, further messages to it are dropped and counted. Default 8192.
	MaxPending int32 `yaml:"max_pending" json:"max_pending"`
	// MaxRetainedPerUser bounds the retained topics one user may hold; a retained publish
	// beyond it is refused (MQTT 5 QoS 1/2: PUBACK 0x97) or delivered without being
	// retained. Default 100; admins are not bounded.
	MaxRetainedPerUser int `yaml:"max_retained_per_user" json:"max_retained_per_user"`
	// MaxAuthFailures is how many failed authentications an address may make in a
	// minute; further CONNECTs from it are refused without checking. Default 10.
	MaxAuthFailures int `yaml:"max_auth_failures" json:"max_auth_failures"`
	// MaxClients is the number of simultaneous connections (each holds buffers from its
	// first byte). Default 10000.
	MaxClients int64 `yaml:"max_clients" json:"max_clients"`
	// MaxKeepalive caps the keepalive clients may ask for. MQTT 5 clients asking for more
	// (or for 0) are told to use MaxKeepalive; MQTT 3.1.1 clients are refused, as mosquitto
	// does. Zero: no cap. A client silent for 1.5x its keepalive is disconnected.
	MaxKeepalive time.Duration `yaml:"max_keepalive" json:"max_keepalive"`
	// SessionExpiry caps how long a disconnected persistent session is kept. Default 7 days.
	SessionExpiry time.Duration `yaml:"session_expiry" json:"session_expiry"`
	// ConnectTimeout is how long a new connection may take to send CONNECT. Default 10s.
	ConnectTimeout time.Duration `yaml:"connect_timeout" json:"connect_timeout"`
	// IntakeBuffer is the default number of events an Intake holds before it sheds QoS 0
	// events. Default 8192.
	IntakeBuffer int `yaml:"intake_buffer" json:"intake_buffer"`
}

// withDefaults returns a copy of c with defaults applied.
func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Prefix == "" {
		c.Prefix = protocol.DefaultPrefix
	}
	if c.AnonymousRole == "" {
		c.AnonymousRole = RoleDevice
	}
	if c.SysInterval == 0 {
		c.SysInterval = DefaultSysInterval
	}
	l := &c.Limits
	if l.MaxPacketSize == 0 {
		l.MaxPacketSize = DefaultMaxPacketSize
	}
	if l.MaxInflight == 0 {
		l.MaxInflight = DefaultMaxInflight
	}
	if l.MaxQueued == 0 {
		l.MaxQueued = DefaultMaxQueued
	}
	if l.MaxPending == 0 {
		l.MaxPending = DefaultMaxPending
	}
	if l.SessionExpiry == 0 {
		l.SessionExpiry = DefaultSessionExpiry
	}
	if l.ConnectTimeout == 0 {
		l.ConnectTimeout = DefaultConnectTimeout
	}
	if l.IntakeBuffer == 0 {
		l.IntakeBuffer = DefaultIntakeBuffer
	}
	if l.MaxAuthFailures == 0 {
		l.MaxAuthFailures = DefaultMaxAuthFailures
	}
	if l.MaxClients == 0 {
		l.MaxClients = DefaultMaxClients
	}
	if l.MaxRetainedPerUser == 0 {
		l.MaxRetainedPerUser = DefaultMaxRetainedPerUser
	}
	c.Users = append([]User(nil), c.Users...)
	if c.TLS != nil {
		t := *c.TLS
		c.TLS = &t
	}
	return c
}

// validate checks a config that already has its defaults.
func (c *Config) validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if err := protocol.ValidatePrefix(c.Prefix); err != nil {
		add("prefix %q: %v", c.Prefix, err)
	}
	listeners := 0
	if c.Listen != listenerDisabled {
		listeners++
		if err := validAddr(c.Listen); err != nil {
			add("listen %q: %v", c.Listen, err)
		}
	}
	if c.WebSocket != "" {
		listeners++
		if err := validAddr(c.WebSocket); err != nil {
			add("websocket %q: %v", c.WebSocket, err)
		}
	}
	if c.TLS != nil && (c.TLS.Listen != "" || c.TLS.Cert != "" || c.TLS.Key != "" || c.TLS.ClientCA != "") {
		listeners++
		if err := validAddr(c.TLS.Listen); err != nil {
			add("tls.listen %q: %v", c.TLS.Listen, err)
		}
		if c.TLS.Cert == "" || c.TLS.Key == "" {
			add("tls: cert and key are both required")
		}
	}
	if listeners == 0 {
		add("no listener: set listen, websocket or tls.listen")
	}
	if !c.AnonymousRole.valid() {
		add("anonymous_role %q: must be device, agent, client or admin", c.AnonymousRole)
	}
	if c.AnonymousRole == RoleDeveloper {
		add("anonymous_role developer: a developer's username is its namespace, anonymous clients have none")
	}
	if c.AllowAnonymous && c.AnonymousRole == RoleAgent {
		add("anonymous_role agent: an agent is identified by its username, anonymous clients have none")
	}
	seen := map[string]bool{}
	for i, u := range c.Users {
		where := fmt.Sprintf("users[%d] (%q)", i, u.Username)
		switch {
		case u.Username == "":
			add("users[%d]: username is empty", i)
		case seen[u.Username]:
			add("%s: duplicate username", where)
		}
		seen[u.Username] = true
		if !u.Role.valid() {
			add("%s: role %q: must be device, agent, client, developer or admin", where, u.Role)
		}
		switch u.Role {
		case RoleAgent:
			if err := validLevel(u.Username); err != nil {
				add("%s: an agent's username is its id and a topic level: %v", where, err)
			}
		case RoleClient:
			if err := validLevel(u.Username); err != nil {
				add("%s: a client's username names its response space {prefix}/responses/{username}, a topic level: %v", where, err)
			}
		}
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			add("%s: password_hash is not a bcrypt hash (use `deviceless passwd`): %v", where, err)
		}
	}
	l := c.Limits
	if l.MaxPacketSize < 64 {
		add("limits.max_packet_size %d: must be at least 64 bytes", l.MaxPacketSize)
	}
	if l.MaxPending < 1 {
		add("limits.max_pending %d: must be positive", l.MaxPending)
	}
	if l.MaxRetainedPerUser < 0 {
		add("limits.max_retained_per_user %d: must not be negative", l.MaxRetainedPerUser)
	}
	if l.MaxAuthFailures < 0 {
		add("limits.max_auth_failures %d: must not be negative", l.MaxAuthFailures)
	}
	if l.MaxClients < 0 {
		add("limits.max_clients %d: must not be negative", l.MaxClients)
	}
	if l.MaxKeepalive < 0 || l.MaxKeepalive > 65535*time.Second || l.MaxKeepalive%time.Second != 0 {
		add("limits.max_keepalive %s: must be whole seconds between 0 and 65535s", l.MaxKeepalive)
	}
	if l.SessionExpiry < time.Second || l.SessionExpiry > (1<<32-1)*time.Second {
		add("limits.session_expiry %s: must be between 1s and 136 years", l.SessionExpiry)
	}
	if l.ConnectTimeout < 0 {
		add("limits.connect_timeout %s: must not be negative", l.ConnectTimeout)
	}
	if l.IntakeBuffer < 1 {
		add("limits.intake_buffer %d: must be positive", l.IntakeBuffer)
	}
	if c.SysInterval < time.Second || c.SysInterval%time.Second != 0 {
		add("sys_interval %s: must be whole seconds, at least 1s", c.SysInterval)
	}
	return errors.Join(errs...)
}

// tlsConfig loads the certificate, key and optional client CA.
func (t *TLSConfig) tlsConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
	if err != nil {
		return nil, fmt.Errorf("tls: load cert %q and key %q: %w", t.Cert, t.Key, err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
	if t.ClientCA != "" {
		pem, err := os.ReadFile(t.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("tls: client_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: client_ca %q: no PEM certificate found", t.ClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func validAddr(addr string) error {
	if addr == "" {
		return errors.New("empty address")
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if port == "" {
		return errors.New("missing port")
	}
	return nil
}

// validLevel checks that s is one literal, non-empty topic level.
func validLevel(s string) error {
	if s == "" {
		return errors.New("empty topic level")
	}
	if strings.ContainsAny(s, "/+#\x00") {
		return fmt.Errorf("%q must not contain '/', '+', '#' or NUL", s)
	}
	return nil
}
