// Package demo runs the whole Deviceless loop in one process: the engine with its
// embedded broker, an edge agent per greenhouse on podman with simulated GPIO, and
// simulated greenhouses whose climate reacts to the agents' actuators, held in their bands
// by the greenhouse example's control loops. It prints one line per closed loop and every
// few seconds each greenhouse against its band.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/edgeagent"
	"github.com/deviceless/deviceless/edgeagent/gpio"
	"github.com/deviceless/deviceless/engine"
	"github.com/deviceless/deviceless/examples"
	"github.com/deviceless/deviceless/internal/version"
)

// Config of a demo run. The zero value works.
type Config struct {
	Listen  string        // MQTT listener, default 127.0.0.1:1883
	HTTP    string        // HTTP API, default 127.0.0.1:8080
	Rules   []string      // rule files or folders; default the embedded greenhouse example
	Every   time.Duration // sensor period, default 1s; the simulation advances a second per period
	Summary time.Duration // summary period, default 10s
	Out     io.Writer     // loop lines and summaries; default stdout
	Log     *slog.Logger  // the components' logs; default warnings to stderr
}

// demoAgents are the greenhouses' edge agents the demo runs, each with the one actuator of
// its greenhouse (the ids and zones the example's rules target).
var demoAgents = []struct{ id, zone, line string }{
	{"gh1-edge", "gh1", "fan"},
	{"gh2-edge", "gh2", "heater"},
	{"gh3-edge", "gh3", "valve"},
}

// Run starts everything, blocks until ctx ends, then stops everything and removes the
// agents' containers.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:1883"
	}
	if cfg.HTTP == "" {
		cfg.HTTP = "127.0.0.1:8080"
	}
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	if cfg.Summary <= 0 {
		cfg.Summary = 10 * time.Second
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	socket := edgeagent.DefaultPodmanSocket()
	if err := checkPodman(socket); err != nil {
		return err
	}
	if len(cfg.Rules) == 0 {
		dir, err := os.MkdirTemp("", "deviceless-demo-rules-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := writeEmbedded(dir); err != nil {
			return err
		}
		cfg.Rules = []string{dir}
	}

	// Credentials for this run only.
	creds := map[string]string{"demo-sensors": secret(), "demo-watch": secret()}
	roles := map[string]broker.Role{"demo-sensors": broker.RoleDevice, "demo-watch": broker.RoleAdmin}
	for _, a := range demoAgents {
		creds[a.id], roles[a.id] = secret(), broker.RoleAgent
	}
	// The demo's API is open (no credentials to type) and therefore loopback only; the
	// engine refuses api.open anywhere else and logs a warning at start.
	ecfg := engine.Config{Rules: cfg.Rules, HTTP: cfg.HTTP, ShutdownGrace: 3 * time.Second, API: engine.APIConfig{Open: true}}
	ecfg.Broker.Listen = cfg.Listen
	for user, pw := range creds {
		h, err := broker.HashPassword(pw)
		if err != nil {
			return err
		}
		ecfg.Broker.Users = append(ecfg.Broker.Users, broker.User{Username: user, PasswordHash: h, Role: roles[user]})
	}
	eng, err := engine.New(ecfg, cfg.Log.With("component", "engine"))
	if err != nil {
		return err
	}
	parent := ctx
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := eng.Run(ctx); err != nil {
			errs <- fmt.Errorf("engine: %w", err)
			cancel()
		}
	}()
	select {
	case <-eng.Ready():
	case err := <-errs:
		wg.Wait()
		return err
	}
	fmt.Fprintf(cfg.Out, "console: http://%s/  (the web console: agents, rules, live loops)\n", eng.HTTPAddr())
	brokerURL := "mqtt://" + eng.BrokerAddr()

	// The watcher first: it sees the agents come online.
	w := newWatcher(cfg.Out)
	if err := w.connect(ctx, eng.BrokerAddr(), "demo-watch", creds["demo-watch"]); err != nil {
		cancel()
		wg.Wait()
		return err
	}

	// The agents stop before the engine, so they can still say goodbye on the broker and
	// remove their containers.
	agentCtx, stopAgents := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAgents()
	var agentWG sync.WaitGroup
	stopAll := func() {
		stopAgents()
		agentWG.Wait()
		cancel()
		wg.Wait()
	}
	lines := map[string]gpio.Lines{}
	var ids []string
	for _, a := range demoAgents {
		acfg := edgeagent.Config{
			ID: a.id, Broker: brokerURL, Password: creds[a.id],
			Labels:      map[string]string{"site": "greenhouse", "zone": a.zone},
			Concurrency: 2,
		}
		acfg.Podman.Socket = socket
		acfg.GPIO.Driver = "sim"
		acfg.GPIO.Lines = agentLines(a.line)
		agent, err := edgeagent.New(acfg, cfg.Log.With("component", "agent"))
		if err != nil {
			w.close()
			stopAll()
			return err
		}
		lines[a.id] = agent.Lines()
		ids = append(ids, a.id)
		agentWG.Add(1)
		go func() {
			defer agentWG.Done()
			if err := agent.Run(agentCtx); err != nil {
				errs <- fmt.Errorf("agent %s: %w", a.id, err)
				cancel()
			}
		}()
	}

	if err := w.waitAgents(ctx, ids...); err != nil {
		w.close()
		stopAll()
		return err
	}
	fmt.Fprintf(cfg.Out, "deviceless demo %s: engine with broker on %s, HTTP API on http://%s, agents %s (podman, simulated GPIO)\n",
		version.String(), eng.BrokerAddr(), eng.HTTPAddr(), strings.Join(ids, ", "))
	fmt.Fprintf(cfg.Out, "greenhouses, a reading from each every %v (a simulated second):\n  %s.\nCtrl-C stops.\n", cfg.Every, describeGreenhouses())
	fmt.Fprintf(cfg.Out, "try: curl -s http://%s/api/v1/invocations | head;  deviceless invoke fan-speed --http %s --target '{\"labels\":{\"zone\":\"gh1\"}}' --args '{\"greenhouse\":\"gh1\",\"avg\":33}'\n\n",
		eng.HTTPAddr(), eng.HTTPAddr())

	sim := newSimulation(lines, w)
	publish, disconnect, err := connectSensors(ctx, eng.BrokerAddr(), "demo-sensors", creds["demo-sensors"])
	if err != nil {
		w.close()
		stopAll()
		return fmt.Errorf("sensors: %w", err)
	}
	simCtx, stopSim := context.WithCancel(ctx)
	var simWG sync.WaitGroup
	simWG.Add(2)
	go func() {
		defer simWG.Done()
		defer disconnect()
		if err := sim.run(simCtx, publish, cfg.Every); err != nil && !errors.Is(err, context.Canceled) {
			errs <- fmt.Errorf("sensors: %w", err)
			cancel()
		}
	}()
	go func() {
		defer simWG.Done()
		w.summaries(simCtx, cfg.Summary, sim)
	}()

	select {
	case <-parent.Done():
	case <-ctx.Done(): // a component failed
	}
	fmt.Fprintln(cfg.Out, "\nstopping: sensors, agents (removing their containers), engine ...")
	stopSim()
	simWG.Wait()
	w.close()
	stopAll()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	fmt.Fprintln(cfg.Out, "stopped.")
	return errors.Join(all...)
}

func secret() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func writeEmbedded(dir string) error {
	return fs.WalkDir(examples.Greenhouse, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := examples.Greenhouse.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, filepath.Base(p)), data, 0o644)
	})
}

// checkPodman makes sure the podman service answers and the function images exist, and
// says exactly what to do when they do not.
func checkPodman(socket string) error {
	c := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		},
	}}
	const fix = "run `go tool task setup:demo` in the repository (it installs podman, runc and busybox-static with apt, starts a podman service and builds the images), " +
		"or by hand: apt-get install -y podman runc busybox-static; then start `podman system service --time=0 unix://%s` and build the images with scripts/images.sh"
	resp, err := c.Get("http://podman/_ping")
	if err != nil {
		if _, lookErr := osexec.LookPath("podman"); lookErr != nil {
			return fmt.Errorf("podman is not installed on this machine: "+fix, socket)
		}
		return fmt.Errorf("no podman service answers on %s (%v): "+fix, socket, err, socket)
	}
	resp.Body.Close()
	for _, img := range []string{"localhost/deviceless/sh", "localhost/deviceless/python3"} {
		resp, err := c.Get("http://podman/v4.0.0/libpod/images/" + img + "/exists")
		if err != nil {
			return fmt.Errorf("podman service on %s: %w", socket, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("image %s is missing: "+fix, img, socket)
		}
	}
	return nil
}
