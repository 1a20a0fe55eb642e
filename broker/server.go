package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// engineClientID is the client id of messages the engine publishes through Server.Publish.
const engineClientID = "deviceless-engine"

var (
	// ErrServerStopped is returned when the server has stopped.
	ErrServerStopped = errors.New("broker: server stopped")
	// ErrNotRunning is returned by Publish before Run has started the server.
	ErrNotRunning = errors.New("broker: server not running")
)

// Server is the embedded MQTT broker. Create it with New, start it with Run.
type Server struct {
	cfg     Config
	log     *slog.Logger
	policy  *policy
	tls     *tls.Config
	mqtt    *mqtt.Server
	engine  *mqtt.Client
	metrics metrics

	invokePrefix string          // {prefix}/invoke/: no retained requests
	retained     *retainedOwners // retained topics per user
	failures     *FailureLimiter // failed CONNECTs per address
	dropped      func(Dropped)   // OnDropped's function, set before Run

	intakeMu  sync.Mutex
	intakes   map[string]*Intake
	intakeSeq atomic.Int64
	durable   *Intake // the durable intake, set before Run
	started   bool    // under intakeMu
	stopped   bool    // under intakeMu

	ran   atomic.Bool
	ready chan struct{}
	addrs map[string]string // set before ready is closed
}

// New validates cfg (after applying defaults) and prepares a server; nothing is opened or
// bound until Run. log may be nil (no logging).
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("broker config: %w", err)
	}
	s := &Server{
		cfg:          c,
		log:          log,
		policy:       newPolicy(&c),
		retained:     newRetainedOwners(c.Limits.MaxRetainedPerUser),
		failures:     NewFailureLimiter(c.Limits.MaxAuthFailures, time.Minute),
		invokePrefix: c.Prefix + "/invoke/",
		intakes:      map[string]*Intake{},
		ready:        make(chan struct{}),
		addrs:        map[string]string{},
	}
	if c.TLS != nil && c.TLS.Listen != "" {
		t, err := c.TLS.tlsConfig()
		if err != nil {
			return nil, fmt.Errorf("broker config: %w", err)
		}
		s.tls = t
	}
	if !c.AllowAnonymous && len(c.Users) == 0 {
		log.Warn("broker: no users and allow_anonymous is false: only the engine can use the broker")
	}

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = c.Limits.MaxPacketSize
	caps.ReceiveMaximum = c.Limits.MaxInflight
	caps.MaximumInflight = c.Limits.MaxQueued
	caps.MaximumClientWritesPending = c.Limits.MaxPending
	caps.MaximumClients = c.Limits.MaxClients
	caps.MaximumSessionExpiryInterval = uint32(c.Limits.SessionExpiry / time.Second)
	// No broker-imposed message age: retained messages (agent status) live until replaced,
	// and messages expire only when their publisher set an expiry.
	caps.MaximumMessageExpiryInterval = 0
	s.mqtt = mqtt.New(&mqtt.Options{
		Capabilities:           caps,
		Logger:                 slog.New(quietHandler{log.With("component", "mochi").Handler()}),
		SysTopicResendInterval: int64(c.SysInterval / time.Second),
		InlineClient:           true,
	})
	s.engine = s.mqtt.NewClient(nil, mqtt.LocalListener, engineClientID, true)
	s.engine.Properties.ProtocolVersion = 5 // so message expiry applies to what the engine queues
	if err := s.mqtt.AddHook(&guardHook{s: s}, nil); err != nil {
		return nil, fmt.Errorf("broker: add policy hook: %w", err)
	}
	if c.Store != "" {
		if err := s.mqtt.AddHook(&journalHook{s: s}, nil); err != nil {
			return nil, fmt.Errorf("broker: add journal hook: %w", err)
		}
	}
	if err := s.mqtt.AddHook(&dropHook{s: s}, nil); err != nil {
		return nil, fmt.Errorf("broker: add drop hook: %w", err)
	}
	return s, nil
}

// Run opens the store, binds the listeners and serves until ctx ends; then it disconnects
// every client, closes the intakes and the store, and returns nil. It returns an error
// if the server cannot start. Run may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("broker: Run called twice")
	}
	var store *storeHook
	if s.cfg.Store != "" {
		store = newStoreHook()
		opts, err := storeOptions(s.cfg.Store, s.cfg.StoreSync == nil || *s.cfg.StoreSync, s.log)
		if err != nil {
			s.markStopped()
			return fmt.Errorf("broker: %w", err)
		}
		if err := s.mqtt.AddHook(store, opts); err != nil {
			s.markStopped()
			return fmt.Errorf("broker: open store %q: %w", s.cfg.Store, err)
		}
	}
	// Serve loads the store and starts the $SYS loop; listeners come afterwards so the
	// intakes are subscribed (and see restored retained messages) before any client.
	if err := s.mqtt.Serve(); err != nil {
		s.shutdown()
		return fmt.Errorf("broker: start: %w", err)
	}
	if store != nil {
		store.dropInlineSubscriptions(s.mqtt)
	}
	if err := s.startIntakes(); err != nil {
		s.shutdown()
		return err
	}
	var ls []listeners.Listener
	if s.cfg.Listen != listenerDisabled {
		ls = append(ls, &netListener{id: ListenerTCP, address: s.cfg.Listen, connectTimeout: s.cfg.Limits.ConnectTimeout})
	}
	if s.tls != nil {
		ls = append(ls, &netListener{id: ListenerTLS, address: s.cfg.TLS.Listen, tls: s.tls, connectTimeout: s.cfg.Limits.ConnectTimeout})
	}
	if s.cfg.WebSocket != "" {
		ls = append(ls, &wsListener{id: ListenerWebSocket, address: s.cfg.WebSocket, connectTimeout: s.cfg.Limits.ConnectTimeout, origins: s.cfg.WebSocketOrigins})
	}
	for _, l := range ls {
		if err := s.mqtt.AddListener(l); err != nil {
			s.shutdown()
			return fmt.Errorf("broker: listen %s on %s: %w", l.ID(), l.Address(), err)
		}
		s.addrs[l.ID()] = l.Address()
	}
	for _, l := range ls {
		s.mqtt.Listeners.Serve(l.ID(), s.mqtt.EstablishConnection)
	}
	s.log.Info("broker listening", "tcp", s.addrs[ListenerTCP], "tls", s.addrs[ListenerTLS], "websocket", s.addrs[ListenerWebSocket], "store", s.cfg.Store, "prefix", s.cfg.Prefix)
	close(s.ready)

	<-ctx.Done()
	s.shutdown()
	s.log.Info("broker stopped")
	return nil
}

func (s *Server) startIntakes() error {
	s.intakeMu.Lock()
	defer s.intakeMu.Unlock()
	s.started = true
	for _, in := range s.intakes {
		if err := in.attach(); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) markStopped() []*Intake {
	s.intakeMu.Lock()
	defer s.intakeMu.Unlock()
	s.stopped = true
	var all []*Intake
	for _, in := range s.intakes {
		all = append(all, in)
	}
	return all
}

// shutdown closes intakes, listeners, clients and the store.
func (s *Server) shutdown() {
	for _, in := range s.markStopped() {
		in.shut()
	}
	_ = s.mqtt.Close()
}

// Ready is closed once Run has bound every listener.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the bound address ("127.0.0.1:41234") of a listener (ListenerTCP,
// ListenerTLS, ListenerWebSocket), or "" when it is not configured. Valid after Ready.
func (s *Server) Addr(listener string) string {
	select {
	case <-s.ready:
		return s.addrs[listener]
	default:
		return ""
	}
}

// Prefix returns the topic prefix.
func (s *Server) Prefix() string { return s.cfg.Prefix }

// Message is what the engine publishes through Publish.
type Message struct {
	Topic   string
	Payload []byte // not copied: do not modify it after Publish
	QoS     byte
	Retain  bool
	// MQTT 5 properties; MQTT 3.1.1 subscribers receive the message without them.
	ResponseTopic   string
	CorrelationData []byte
	ContentType     string
	Expiry          time.Duration // message expiry interval, whole seconds; 0: none
	UserProperties  []UserProperty
}

// Publish delivers m to subscribers as the engine, with no network hop and no ACL check
// (the engine is trusted). QoS 1 messages for offline persistent sessions are queued and
// stored. Publish is safe for concurrent use; it returns once m has been handed to every
// subscriber's queue.
func (s *Server) Publish(m Message) error {
	if m.Topic == "" || strings.ContainsAny(m.Topic, "+#") {
		return fmt.Errorf("broker: publish: invalid topic %q", m.Topic)
	}
	if m.QoS > 2 {
		return fmt.Errorf("broker: publish %q: invalid QoS %d", m.Topic, m.QoS)
	}
	s.intakeMu.Lock()
	started, stopped := s.started, s.stopped
	s.intakeMu.Unlock()
	switch {
	case stopped:
		return ErrServerStopped
	case !started:
		return ErrNotRunning
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.QoS, Retain: m.Retain},
		TopicName:   m.Topic,
		Payload:     m.Payload,
		Properties: packets.Properties{
			ResponseTopic:   m.ResponseTopic,
			CorrelationData: m.CorrelationData,
			ContentType:     m.ContentType,
		},
	}
	if m.QoS > 0 {
		pk.PacketID = 1 // required for validity; the engine's publish needs no acknowledgement
	}
	if m.Expiry > 0 {
		secs := (m.Expiry + time.Second - 1) / time.Second
		pk.Properties.MessageExpiryInterval = uint32(secs)
	}
	for _, u := range m.UserProperties {
		pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: u.Key, Val: u.Value})
	}
	if err := s.mqtt.InjectPacket(s.engine, pk); err != nil {
		return fmt.Errorf("broker: publish %q: %w", m.Topic, err)
	}
	return nil
}

// Permits reports whether the user may publish to topic (write) or read it (!write),
// following the role table. The engine uses it, for instance, to check that a client may
// read the response topic it asks the engine to answer on. An unknown username is
// refused; "" is the anonymous user.
func (s *Server) Permits(username, topic string, write bool) bool {
	role, ok := s.policy.role(username)
	return ok && s.policy.allowed(role, username, topic, write)
}
