package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deviceless/deviceless/edgeagent"
	"github.com/deviceless/deviceless/internal/version"
	"github.com/deviceless/deviceless/protocol"
)

// syncBuffer is the demo's output, read while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// The demo closes real loops on three agents, each way: a direct actuation (frost → heater
// on, warm → heater off), a function on podman (dry soil → irrigate → valve open) and back
// (wet → valve closed), a python3 function (heat → fan-speed → fan on) and back (cool → fan
// off); the agents report the build's version; then it stops cleanly.
func TestDemoClosesLoops(t *testing.T) {
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	httpAddr := freeAddr(t)
	go func() {
		done <- Run(ctx, Config{Listen: freeAddr(t), HTTP: httpAddr, Every: 200 * time.Millisecond, Summary: time.Second,
			Out: out, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	want := []string{
		"gh2  direct actuation → heater=1", "gh2  heater 0 → 1 (GPIO line on gh2-edge)", "gh2  direct actuation → heater=0", "gh2  heater 1 → 0",
		"gh3  soil-dry         → irrigate on gh3-edge  cold ok", "gh3  valve 0 → 1", "gh3  direct actuation → valve=0", "gh3  valve 1 → 0",
		"gh1  greenhouse-hot   → fan-speed on gh1-edge", "gh1  fan 0 → 1", "gh1  direct actuation → fan=0", "gh1  fan 1 → 0",
		"alert on alerts/greenhouse/gh2: {\"alert\":\"frost\"", "-- ", "gh1 temperature", "band 24–30, fan",
	}
	deadline := time.After(120 * time.Second)
	for {
		missing := ""
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				missing = w
				break
			}
		}
		if missing == "" {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("demo stopped early: %v\n%s", err, out.String())
		case <-deadline:
			cancel()
			t.Fatalf("demo output lacks %q:\n%s", missing, out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	// The agents' status carries the version of this build (here "(devel)": go test builds
	// with -buildvcs=false and no tag; TestLinkerTag covers the tag).
	resp, err := http.Get("http://" + httpAddr + "/api/v1/agents")
	if err != nil {
		t.Fatal(err)
	}
	var agents struct{ Agents []protocol.Status }
	err = json.NewDecoder(resp.Body).Decode(&agents)
	resp.Body.Close()
	if err != nil || len(agents.Agents) != len(demoAgents) {
		t.Fatalf("agents %+v (%v), want %d", agents, err, len(demoAgents))
	}
	for _, a := range agents.Agents {
		if a.Version != version.String() || a.Version == "" {
			t.Errorf("agent %s reports version %q, want %q", a.Agent, a.Version, version.String())
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop")
	}
	if !strings.HasSuffix(out.String(), "stopped.\n") {
		t.Fatalf("output:\n%s", out.String())
	}
	// The first direct actuation's figure is its own loop, not the time since the previous
	// reading (one sensor period: 200 ms here, 1 s in the demo).
	if ms := firstFigure(t, out.String(), "direct actuation →", "event→actuation "); ms >= 100 {
		t.Errorf("first direct actuation took %.1f ms by the demo's figure, half a sensor period or more:\n%s", ms, out.String())
	}
	// Nothing left behind: no container of the demo's agent.
	socket := edgeagent.DefaultPodmanSocket()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	for _, a := range demoAgents {
		filter := url.QueryEscape(`{"label":["io.deviceless.agent=` + a.id + `"]}`)
		resp, err := c.Get("http://podman/v4.0.0/libpod/containers/json?all=true&filters=" + filter)
		if err != nil {
			t.Fatal(err)
		}
		var left []struct{ Names []string }
		err = json.NewDecoder(resp.Body).Decode(&left)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 0 {
			t.Fatalf("containers of %s left behind: %+v", a.id, left)
		}
	}
}

// firstFigure returns the "<figure> X ms" number of the first output line holding what.
func firstFigure(t *testing.T, out, what, figure string) float64 {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if !strings.Contains(l, what) {
			continue
		}
		_, rest, ok := strings.Cut(l, figure)
		if !ok {
			t.Fatalf("line %q has no %q figure", l, figure)
		}
		var ms float64
		if _, err := fmt.Sscanf(rest, "%f ms", &ms); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		return ms
	}
	t.Fatalf("no line with %q in:\n%s", what, out)
	return 0
}
