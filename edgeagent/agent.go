// Package edgeagent is the device side of Deviceless: it keeps an outbound MQTT session to
// the broker, runs each invocation it is sent in an ephemeral podman container (or a warm
// runner), drives the GPIO lines declared in its config, and answers with results.
//
//	cfg, err := edgeagent.LoadConfig("agent.yaml")
//	a, err := edgeagent.New(cfg, slog.Default())
//	err = a.Run(ctx) // blocks until ctx ends, then cleans up
package edgeagent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/edgeagent/container"
	"github.com/deviceless/deviceless/edgeagent/gpio"
	"github.com/deviceless/deviceless/edgeagent/gpio/cdev"
	"github.com/deviceless/deviceless/edgeagent/gpio/sim"
	"github.com/deviceless/deviceless/edgeagent/podman"
	"github.com/deviceless/deviceless/edgeagent/wasm"
	"github.com/deviceless/deviceless/internal/version"
	"github.com/deviceless/deviceless/protocol"
)

// Agent is one edge agent. Create it with New and start it once with Run.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	topics  protocol.Topics
	podman  container.Runtime // nil: podman.enabled is false
	wasm    *wasm.Runtime     // nil: wasm.enabled is false
	modules *moduleFetcher    // nil without wasm
	lines   gpio.Lines
	tlsCfg  *tls.Config
	started time.Time
	version string

	queue   chan *task
	dedupe  *dedupe
	healthy atomic.Bool
	problem atomic.Value // string: why the agent is unhealthy

	edges   chan gpio.Edge
	reverts *reverter
	// linesChanged is signalled when a line may have changed: the status is published
	// again with the lines' values (publishLineValues).
	linesChanged chan struct{}
	outbox       *outbox
	metrics      *agentMetrics

	mu   sync.Mutex
	cm   *autopaho.ConnectionManager
	runs atomic.Bool
	// maxPacketSize is the broker's maximum packet size (the last CONNACK's).
	maxPacketSize atomic.Int64
	dropLog       struct {
		sync.Mutex
		n  int       // dropped since the last log line
		at time.Time // of the last log line
	}
	subscribed atomic.Bool    // a subscription was acknowledged (it lives on in the session)
	pending    sync.WaitGroup // goroutines started from MQTT callbacks
}

// New fills cfg's defaults and validates it, opens the GPIO lines and prepares the podman
// runtime. It does not connect anywhere: Run does.
func New(cfg Config, logger *slog.Logger) (*Agent, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("agent", cfg.ID)
	tlsCfg, err := cfg.TLS.build()
	if err != nil {
		return nil, err
	}
	if err := privateDir(cfg.State); err != nil {
		return nil, fmt.Errorf("agent state folder: %w", err)
	}
	seen, err := openDedupe(filepath.Join(cfg.State, dedupeFile), cfg.ID, dedupeMaxIDs, dedupeMaxBytes, logger)
	if err != nil {
		return nil, fmt.Errorf("agent state folder: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			seen.close()
		}
	}()
	var pod container.Runtime
	if cfg.podman() {
		pod, err = podman.New(podman.Config{
			Socket:      cfg.Podman.Socket,
			OCIRuntime:  cfg.Podman.Runtime,
			APITimeout:  cfg.Podman.Timeout,
			Agent:       cfg.ID,
			User:        cfg.Podman.User,
			Pids:        cfg.Limits.Pids,
			CPUs:        cfg.Limits.CPUs,
			OutputLimit: int(cfg.Limits.Output),
			Memory:      int64(cfg.Limits.Memory),
			CodeDir:     cfg.State + "/code",
			Pull:        cfg.Podman.Pull,
			Prepare:     *cfg.Podman.Prepare,
			Logger:      logger,
		})
		if err != nil {
			return nil, err
		}
	}
	var wrt *wasm.Runtime
	if cfg.wasm() {
		wrt, err = wasm.New(wasm.Config{
			Dir:         filepath.Join(cfg.State, "wasm"),
			StoreLimit:  int64(cfg.Wasm.Store),
			OutputLimit: int(cfg.Limits.Output),
			Memory:      int64(cfg.Limits.Memory),
			MaxMemory:   int64(cfg.Limits.Memory),
			Logger:      logger,
		})
		if err != nil {
			return nil, err
		}
		if cfg.Functions, err = storeOwnModules(wrt.Store(), cfg.Functions); err != nil {
			_ = wrt.Close(context.Background())
			return nil, fmt.Errorf("agent config: %w", err)
		}
	}
	a := &Agent{
		cfg:     cfg,
		log:     logger,
		topics:  protocol.Topics{Prefix: cfg.Prefix},
		podman:  pod,
		wasm:    wrt,
		tlsCfg:  tlsCfg,
		version: version.String(),
		queue:   make(chan *task, cfg.Queue),
		dedupe:  seen,
		edges:   make(chan gpio.Edge, 256),

		linesChanged: make(chan struct{}, 1),
	}
	a.healthy.Store(true)
	a.problem.Store("")
	a.maxPacketSize.Store(int64(cfg.Limits.MaxPacketSize))
	onEdge := func(e gpio.Edge) {
		a.lineChanged()
		select {
		case a.edges <- e:
		default:
			a.log.Warn("input edge dropped: publisher behind", "line", e.Line)
		}
	}
	switch cfg.GPIO.Driver {
	case "gpiocdev":
		a.lines, err = cdev.Open(cfg.GPIO.Chip, cfg.GPIO.Lines, onEdge)
	default:
		a.lines, err = sim.Open(cfg.GPIO.Lines, onEdge)
	}
	if err != nil {
		return nil, fmt.Errorf("gpio: %w", err)
	}
	if wrt != nil {
		a.modules = newModuleFetcher(a, wrt.Store())
	}
	a.reverts = newReverter(a.lines, logger, a.lineChanged)
	a.outbox = newOutbox(cfg.Limits.Outbox, int(cfg.Limits.OutboxBytes), a.maxPacket, a.outboxDrop)
	if a.metrics, err = newAgentMetrics(a); err != nil {
		_ = a.lines.Close()
		return nil, fmt.Errorf("influx: %w", err)
	}
	ok = true
	return a, nil
}

// Config returns the validated configuration, defaults filled in.
func (a *Agent) Config() Config { return a.cfg }

// Lines returns the agent's GPIO lines (a *sim.Lines with the sim driver, whose Inject
// presses a simulated button).
func (a *Agent) Lines() gpio.Lines { return a.lines }

// Run connects to the broker, serves invocations and actuations until ctx ends, then
// answers what is in flight, marks the agent offline, and releases containers and lines.
func (a *Agent) Run(ctx context.Context) error {
	if !a.runs.CompareAndSwap(false, true) {
		return errors.New("agent: Run called twice")
	}
	defer func() {
		if err := a.lines.Close(); err != nil {
			a.log.Warn("closing gpio lines", "err", err)
		}
	}()
	a.started = time.Now().UTC()
	a.startup(ctx)

	brokerURL, err := protocol.ParseBrokerURL(a.cfg.Broker)
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	offline, _ := json.Marshal(protocol.Status{Agent: a.cfg.ID, Online: false})
	connCtx, stopConn := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConn()
	cm, err := autopaho.NewConnection(connCtx, autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{brokerURL},
		TlsCfg:                        a.tlsCfg,
		KeepAlive:                     20,
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         uint32(a.cfg.SessionExpiry / time.Second),
		ReconnectBackoff:              autopaho.NewExponentialBackoff(100*time.Millisecond, 10*time.Second, 200*time.Millisecond, 2),
		ConnectTimeout:                10 * time.Second,
		Queue:                         a.outbox,
		ConnectUsername:               a.cfg.Username,
		ConnectPassword:               []byte(a.cfg.Password),
		WillMessage:                   &paho.WillMessage{Topic: a.topics.AgentStatus(a.cfg.ID), Payload: offline, QoS: 1, Retain: true},
		OnConnectionUp:                a.onConnectionUp,
		OnConnectError:                func(err error) { a.log.Warn("broker connection failed", "broker", a.cfg.Broker, "err", err) },
		OnConnectionDown: func() bool {
			a.log.Warn("broker connection lost; reconnecting", "broker", a.cfg.Broker)
			return true
		},
		ClientConfig: paho.ClientConfig{
			ClientID:          a.cfg.ID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){a.onPublish},
			OnClientError:     func(err error) { a.log.Warn("mqtt client error", "err", err) },
		},
	})
	if err != nil {
		return fmt.Errorf("broker %s: %w", a.cfg.Broker, err)
	}
	a.mu.Lock()
	a.cm = cm
	a.mu.Unlock()

	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for range a.cfg.Concurrency {
		wg.Go(func() { a.worker(workCtx) })
	}
	var bg sync.WaitGroup
	bg.Go(func() { a.publishEdges(workCtx) })
	bg.Go(func() { a.publishLineValues(workCtx) })
	bg.Go(func() { a.maintain(workCtx) })
	bg.Go(func() { a.reportStats(workCtx) })
	sinkCtx, stopSink := context.WithCancel(context.WithoutCancel(ctx))
	sinkDone := make(chan struct{})
	go func() {
		defer close(sinkDone)
		if a.metrics.influx != nil {
			_ = a.metrics.influx.Run(sinkCtx)
		}
	}()

	podmanSocket := "off"
	if a.podman != nil {
		podmanSocket = a.cfg.Podman.Socket
	}
	a.log.Info("agent running", "broker", a.cfg.Broker, "podman", podmanSocket, "wasm", a.wasm != nil,
		"concurrency", a.cfg.Concurrency, "lines", len(a.cfg.GPIO.Lines))
	<-ctx.Done()
	a.log.Info("agent stopping")

	// Answer what is queued and running, then go offline.
	stopWork()
	wg.Wait()
	a.drainQueue()
	bg.Wait()
	a.reverts.stop()

	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cm.Publish(shutdown, &paho.Publish{Topic: a.topics.AgentStatus(a.cfg.ID), Payload: offline, QoS: 1, Retain: true}); err != nil {
		a.log.Warn("publishing offline status", "err", err)
	}
	if err := cm.Disconnect(shutdown); err != nil && !errors.Is(err, autopaho.ConnectionDownError) {
		a.log.Warn("disconnecting", "err", err)
	}
	a.pending.Wait()
	stopConn()
	<-cm.Done()
	if a.podman != nil {
		if err := a.podman.Close(shutdown); err != nil {
			a.log.Warn("closing podman runtime", "err", err)
		}
	}
	if a.wasm != nil {
		if err := a.wasm.Close(shutdown); err != nil {
			a.log.Warn("closing wasm runtime", "err", err)
		}
	}
	stopSink() // flushes the last points
	<-sinkDone
	a.dedupe.close()
	return nil
}

// startup removes containers (and wasm temporary files) a previous run of this agent left
// behind.
func (a *Agent) startup(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if a.wasm != nil {
		if _, err := a.wasm.Sweep(pctx); err != nil {
			a.log.Warn("sweeping the wasm module store", "err", err)
		}
	}
	if a.podman == nil {
		return
	}
	if n, err := a.podman.Sweep(pctx); err != nil {
		a.setHealth(false, err.Error())
		a.log.Error("podman service unavailable; invocations will fail until it answers", "err", err)
	} else if n > 0 {
		a.log.Info("removed orphan containers", "count", n)
	}
}

// maintain watches the podman service and sweeps orphans until ctx ends.
func (a *Agent) maintain(ctx context.Context) {
	health := time.NewTicker(5 * time.Second)
	defer health.Stop()
	var sweep <-chan time.Time
	if a.cfg.Limits.Sweep > 0 {
		t := time.NewTicker(a.cfg.Limits.Sweep)
		defer t.Stop()
		sweep = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-health.C:
			a.checkHealth(ctx)
		case <-sweep:
			if a.podman == nil {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if n, err := a.podman.Sweep(pctx); err != nil {
				a.log.Warn("sweeping orphan containers", "err", err)
			} else if n > 0 {
				a.log.Info("removed orphan containers", "count", n)
			}
			cancel()
		}
	}
}

func (a *Agent) checkHealth(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := a.ping(pctx); err != nil {
		a.setHealth(false, err.Error())
		return
	}
	a.setHealth(true, "")
}

// ping checks the runtime the agent's health is about: podman when it is on (its service
// may go away), else the wasm runtime.
func (a *Agent) ping(ctx context.Context) error {
	if a.podman != nil {
		return a.podman.Ping(ctx)
	}
	return a.wasm.Ping(ctx)
}

// healthOf reports whether rt is the runtime the agent's health is about (see ping): a wasm
// run says nothing about podman's service.
func (a *Agent) healthOf(rt container.Runtime) bool {
	if a.podman != nil {
		return rt == a.podman
	}
	return rt == container.Runtime(a.wasm)
}

// setHealth records the podman service's health and republishes the status on a change.
func (a *Agent) setHealth(ok bool, problem string) {
	was := a.healthy.Swap(ok)
	a.problem.Store(problem)
	if was == ok {
		return
	}
	if ok {
		a.log.Info("podman service answers again")
	} else {
		a.log.Error("podman service unhealthy", "err", problem)
	}
	a.publishStatus()
}

// Status is the retained status message the agent publishes.
func (a *Agent) Status() protocol.Status {
	lines := map[string]protocol.LineInfo{}
	for name, l := range a.cfg.GPIO.Lines {
		info := protocol.LineInfo{Direction: l.Direction}
		if v, err := a.lines.Get(name); err == nil {
			info.Value = &v
		}
		lines[name] = info
	}
	return protocol.Status{
		Agent:      a.cfg.ID,
		Online:     true,
		Healthy:    a.healthy.Load(),
		Problem:    a.problem.Load().(string),
		Labels:     a.cfg.Labels,
		Runtimes:   a.cfg.runtimeNames(),
		Containers: new(a.podman != nil),
		Functions:  sortedKeys(a.cfg.Functions),
		Lines:      lines,
		Version:    a.version,
		StartedAt:  a.started,
	}
}

// onConnectionUp subscribes (unless the resumed session kept the subscriptions), then
// publishes the online status: online means ready to take invocations.
func (a *Agent) onConnectionUp(cm *autopaho.ConnectionManager, ack *paho.Connack) {
	a.log.Info("connected to broker", "broker", a.cfg.Broker, "session_present", ack.SessionPresent)
	a.setMaxPacket(ack)
	a.mu.Lock()
	a.cm = cm // NewConnection may not have returned yet
	a.mu.Unlock()
	a.pending.Go(func() {
		defer a.publishStatus()
		if ack.SessionPresent && a.subscribed.Load() {
			return // the broker kept our subscriptions with the session
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		suback, err := cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
			{Topic: a.topics.AgentInvoke(a.cfg.ID), QoS: 1},
			{Topic: a.topics.AgentActuate(a.cfg.ID), QoS: 1},
			{Topic: a.topics.AgentModules(a.cfg.ID), QoS: 1},
		}})
		if err != nil {
			var reasons []byte
			if suback != nil {
				reasons = suback.Reasons
			}
			a.log.Error("subscribing", "err", err, "reasons", reasons, "session_present", ack.SessionPresent)
			return
		}
		a.subscribed.Store(true)
	})
}

// lineChanged asks publishLineValues to publish the status again; it never blocks.
func (a *Agent) lineChanged() {
	select {
	case a.linesChanged <- struct{}{}:
	default:
	}
}

// statusEvery is the shortest interval between two statuses published for line changes:
// a line that flaps costs a status message per interval, not one per change.
const statusEvery = 200 * time.Millisecond

// publishLineValues publishes the status again when a line's value changed since the
// status this loop last published.
func (a *Agent) publishLineValues(ctx context.Context) {
	var last map[string]protocol.LineInfo
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.linesChanged:
		}
		st := a.Status()
		if !sameValues(st.Lines, last) {
			a.publishStatus()
			last = st.Lines
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(statusEvery):
		}
	}
}

func sameValues(a, b map[string]protocol.LineInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for name, x := range a {
		y, ok := b[name]
		if !ok || (x.Value == nil) != (y.Value == nil) || (x.Value != nil && *x.Value != *y.Value) {
			return false
		}
	}
	return true
}

func (a *Agent) publishStatus() {
	st := a.Status()
	payload, err := json.Marshal(st)
	if err != nil {
		a.log.Error("encoding status", "err", err)
		return
	}
	a.publish(&paho.Publish{Topic: a.topics.AgentStatus(a.cfg.ID), Payload: payload, QoS: 1, Retain: true})
}

// publish sends a message now, waiting for the broker's acknowledgement, or queues it
// until the connection is back. A message larger than the broker's maximum packet size is
// dropped (and logged): the broker would disconnect the agent for it, again at every
// reconnection.
func (a *Agent) publish(p *paho.Publish) {
	a.mu.Lock()
	cm := a.cm
	a.mu.Unlock()
	if cm == nil {
		return
	}
	if size, limit := packetSize(p), a.maxPacket(); size > limit {
		a.log.Error("message larger than the broker's maximum packet size: dropped", "topic", p.Topic,
			"bytes", size, "max_packet_size", limit)
		a.metrics.dropped("too_large")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cm.Publish(ctx, p); err == nil {
		return
	} else if !errors.Is(err, autopaho.ConnectionDownError) {
		a.log.Warn("publish failed; queueing it for the next connection", "topic", p.Topic, "err", err)
	}
	if err := cm.PublishViaQueue(context.Background(), &autopaho.QueuePublish{Publish: p}); err != nil {
		a.log.Error("queueing publish", "topic", p.Topic, "err", err)
	}
}

// outboxDrop counts a message the outbox dropped and logs it, at most once every 10
// seconds with the count since the last line (an outage may drop many).
func (a *Agent) outboxDrop(reason, topic string) {
	a.metrics.dropped(reason)
	a.dropLog.Lock()
	defer a.dropLog.Unlock()
	a.dropLog.n++
	if time.Since(a.dropLog.at) < 10*time.Second {
		return
	}
	msg := "outbox full while the broker is away: dropped the oldest messages"
	if reason == "too_large" {
		msg = "queued message larger than the broker's maximum packet size: dropped"
	}
	a.log.Warn(msg, "reason", reason, "topic", topic, "dropped", a.dropLog.n,
		"limit", a.cfg.Limits.Outbox, "limit_bytes", int64(a.cfg.Limits.OutboxBytes))
	a.dropLog.n, a.dropLog.at = 0, time.Now()
}

func (a *Agent) onPublish(pr paho.PublishReceived) (bool, error) {
	p := pr.Packet
	switch p.Topic {
	case a.topics.AgentInvoke(a.cfg.ID):
		a.receiveInvocation(p)
	case a.topics.AgentActuate(a.cfg.ID):
		a.receiveActuation(p)
	case a.topics.AgentModules(a.cfg.ID):
		if a.modules != nil {
			a.modules.receive(p)
		}
	default:
		return false, nil
	}
	return true, nil
}

// publishEdges sends input-line edges to their publish topics.
func (a *Agent) publishEdges(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-a.edges:
			lc := a.cfg.GPIO.Lines[e.Line]
			payload, _ := json.Marshal(map[string]any{
				"agent": a.cfg.ID, "line": e.Line, "value": e.Value, "time": e.Time.UTC(),
			})
			a.publish(&paho.Publish{Topic: lc.Publish, Payload: payload, QoS: 1})
		}
	}
}

func (t TLSConfig) build() (*tls.Config, error) {
	cfg := &tls.Config{InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca %s: no certificates", t.CA)
		}
		cfg.RootCAs = pool
	}
	if t.Cert != "" {
		pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("tls cert: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
