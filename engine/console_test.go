package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/protocol"
)

// sseFrame is one server-sent event.
type sseFrame struct {
	event string
	data  string
}

// sseStream reads frames from an open GET /api/v1/events.
type sseStream struct {
	resp   *http.Response
	frames chan sseFrame
	err    chan error
	stash  []sseFrame // read, not yet asked for
}

func openStream(t *testing.T, url string, header map[string]string) *sseStream {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	s := &sseStream{resp: resp, frames: make(chan sseFrame, 1000), err: make(chan error, 1)}
	t.Cleanup(func() { resp.Body.Close() })
	go func() {
		r := bufio.NewReader(resp.Body)
		var f sseFrame
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				s.err <- err
				close(s.frames)
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case line == "":
				if f.event != "" || f.data != "" {
					s.frames <- f
				}
				f = sseFrame{}
			case strings.HasPrefix(line, "event: "):
				f.event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				f.data = strings.TrimPrefix(line, "data: ")
			}
		}
	}()
	return s
}

// next decodes the next frame of kind event into v; frames of other kinds are kept for
// later calls, except stats frames, which come every second.
func (s *sseStream) next(t *testing.T, event string, v any) {
	t.Helper()
	decode := func(f sseFrame) {
		if err := json.Unmarshal([]byte(f.data), v); err != nil {
			t.Fatalf("%s frame %q: %v", event, f.data, err)
		}
	}
	for i, f := range s.stash {
		if f.event == event {
			s.stash = append(s.stash[:i], s.stash[i+1:]...)
			decode(f)
			return
		}
	}
	timeout := time.After(deadline)
	for {
		select {
		case f, ok := <-s.frames:
			if !ok {
				t.Fatalf("stream ended waiting for %q: %v", event, <-s.err)
			}
			if f.event == event {
				decode(f)
				return
			}
			if f.event != "stats" {
				s.stash = append(s.stash, f)
			}
		case <-timeout:
			t.Fatalf("no %q frame", event)
		}
	}
}

// The console is served without credentials, with headers that keep it to its own origin;
// every API call it makes needs credentials like the rest of the API.
func TestConsolePageAndAccess(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, echoRules)
	e := startEngine(t, testConfig(t, dir))
	base := "http://" + e.HTTPAddr()
	_, port, _ := net.SplitHostPort(e.HTTPAddr())

	get := func(path string, header map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		for k, v := range header {
			if k == "Host" {
				req.Host = v
			} else {
				req.Header.Set(k, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, body := get("/", nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "/console/console.js") {
		t.Fatalf("GET /: %s %q %.200s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", resp.Header)
	}
	resp, _ = get("/console/console.js", nil)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || etag == "" {
		t.Fatalf("console.js: %s %q etag %q", resp.Status, resp.Header.Get("Content-Type"), etag)
	}
	if resp, _ := get("/console/console.js", map[string]string{"If-None-Match": etag}); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match: %s", resp.Status)
	}
	for path, want := range map[string]int{"/console/nosuch.js": 404, "/console/../engine.go": 404, "/nosuch": 404} {
		if resp, _ := get(path, nil); resp.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", path, resp.Status, want)
		}
	}
	// DNS rebinding: the page and the stream are refused under a foreign name.
	for _, path := range []string{"/", "/api/v1/events"} {
		if resp, _ := get(path, map[string]string{"Host": "evil.example.com:" + port, "Authorization": "Bearer " + testToken}); resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("GET %s with a foreign Host: %s", path, resp.Status)
		}
	}
	// The stream and the dead letters need credentials, and a role that reads.
	for _, path := range []string{"/api/v1/events", "/api/v1/deadletters"} {
		if resp, _ := get(path, nil); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("anonymous GET %s: %s", path, resp.Status)
		}
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.SetBasicAuth("dev", "pw-dev")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("device GET %s: %s", path, resp.Status)
		}
	}
	// A page of another origin may not hold a stream (it could not read it anyway): another
	// site, or another server on this machine.
	for _, origin := range []string{"http://evil.example.com", "http://localhost:1", "http://127.0.0.1", "null"} {
		if resp, _ := get("/api/v1/events", map[string]string{"Origin": origin, "Authorization": "Bearer " + testToken}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("stream from origin %s: %s", origin, resp.Status)
		}
	}
	s := openStream(t, base+"/api/v1/events", map[string]string{"Origin": base})
	var st liveStats
	s.next(t, "stats", &st)
	if st.At.IsZero() {
		t.Errorf("stats %+v", st)
	}
	var dl struct {
		DeadLetters []json.RawMessage `json:"dead_letters"`
	}
	if code := getJSON(t, base+"/api/v1/deadletters", &dl); code != 200 || dl.DeadLetters == nil {
		t.Errorf("deadletters: %d %+v", code, dl)
	}
}

// One event closes a loop: the stream shows the loop with the engine's and the agent's
// stages, the rule's direct actuation and the counters; a stream opened later first gets
// them again. A dead letter shows in the stream and in /api/v1/deadletters.
func TestConsoleStreamShowsLoops(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, echoRules)
	e := startEngine(t, testConfig(t, dir))
	base := "http://" + e.HTTPAddr()
	startAgent(t, e.BrokerAddr(), "a1", map[string]string{"zone": "north"}, func(protocol.Invocation) *protocol.Result {
		time.Sleep(20 * time.Millisecond)
		return &protocol.Result{Status: protocol.StatusOK, Output: json.RawMessage(`{"echo":true}`), Cold: true,
			Timings: protocol.Timings{Queue: 1, Start: 2, Run: 3, Total: 6}}
	})
	waitAgents(t, e, 1)
	s := openStream(t, base+"/api/v1/events", nil)
	var st liveStats
	s.next(t, "stats", &st) // the stream is subscribed

	mosquittoPub(t, e.BrokerAddr(), "-t", "sensors/gh1/t", "-m", `{"c": 35}`, "-q", "1")
	var loop LoopView
	s.next(t, "loop", &loop)
	if loop.Rule != "hot" || loop.Function != "echo" || loop.Agent != "a1" || loop.Status != "ok" || !loop.Cold || loop.Topic != "sensors/gh1/t" ||
		string(loop.Output) != `{"echo":true}` || loop.ReceivedAt == nil || loop.Attempts != 1 {
		t.Fatalf("loop %+v", loop)
	}
	ms := loop.Ms
	if ms.Engine == nil || ms.Network == nil || ms.Total == nil || ms.Queue != 1 || ms.Start != 2 || ms.Run != 3 || ms.Agent != 6 {
		t.Fatalf("timings %+v", ms)
	}
	// The agent took at least 20 ms; the loop's total is the event's receipt to the
	// result's: engine + network + the agent's own total.
	if *ms.Total < 20 || *ms.Engine < 0 || *ms.Network < 0 || *ms.Total+0.01 < *ms.Engine+*ms.Network+ms.Agent {
		t.Fatalf("timings do not add up: engine %v network %v agent %v total %v", *ms.Engine, *ms.Network, ms.Agent, *ms.Total)
	}
	var act ActuationView
	s.next(t, "actuation", &act)
	if act.Agent != "a1" || act.Line != "fan" || act.Value != 1 || act.For != "30s" || act.At.IsZero() {
		t.Fatalf("actuation %+v", act)
	}
	eventually(t, "stats with the event", func() bool {
		s.next(t, "stats", &st)
		return st.Events >= 1 && st.Fired >= 1 && st.Results >= 1 && st.AgentsOnline == 1
	})

	// A later stream gets the recent actuation and loop, in their order, before anything
	// else (the actuation was sent when the event was evaluated, before the result).
	late := openStream(t, base+"/api/v1/events", nil)
	if f := <-late.frames; f.event != "actuation" || !strings.Contains(f.data, `"line":"fan"`) {
		t.Fatalf("first frame of a later stream: %+v", f)
	}
	if f := <-late.frames; f.event != "loop" || !strings.Contains(f.data, `"rule":"hot"`) {
		t.Fatalf("second frame of a later stream: %+v", f)
	}

	// ?backlog=false: nothing from before, the next frame is the next stats.
	fresh := openStream(t, base+"/api/v1/events?backlog=false", nil)
	if f := <-fresh.frames; f.event != "stats" {
		t.Fatalf("first frame of a stream without backlog: %+v", f)
	}
	var refused struct{ Error string }
	if code := getJSON(t, base+"/api/v1/events?backlog=maybe", &refused); code != http.StatusBadRequest || !strings.Contains(refused.Error, "true or false") {
		t.Fatalf("backlog=maybe: %d %q, want 400", code, refused.Error)
	}

	// No agent in the south: dead-lettered at once.
	writeRules(t, dir, strings.ReplaceAll(echoRules, "zone: north}}\n        args", "zone: south}}\n        args"))
	eventually(t, "reload", func() bool { r := e.rulesErr.Load(); return r != nil && r.Diff != nil })
	mosquittoPub(t, e.BrokerAddr(), "-t", "sensors/gh2/t", "-m", `{"c": 40}`, "-q", "1")
	var dl DeadLetter
	s.next(t, "deadletter", &dl)
	if dl.Invocation.Function != "echo" || !strings.Contains(dl.Reason, "no online agent") {
		t.Fatalf("dead letter %+v", dl)
	}
	s.next(t, "loop", &loop)
	if loop.Status != protocol.StatusError || loop.Topic != "sensors/gh2/t" {
		t.Fatalf("dead-lettered loop %+v", loop)
	}
	var list struct {
		DeadLetters []DeadLetter `json:"dead_letters"`
	}
	getJSON(t, base+"/api/v1/deadletters", &list)
	if len(list.DeadLetters) != 1 || list.DeadLetters[0].Invocation.ID != dl.Invocation.ID {
		t.Fatalf("deadletters %+v", list)
	}
}

// Streams have their own bound: sixteen open streams do not use up api.max_concurrent,
// the seventeenth is refused, and the rest of the API answers.
func TestConsoleStreamsBounded(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, echoRules)
	cfg := testConfig(t, dir)
	cfg.API.MaxConcurrent = 2
	e := startEngine(t, cfg)
	base := "http://" + e.HTTPAddr()
	for range maxStreams {
		openStream(t, base+"/api/v1/events", nil)
	}
	resp := apiDo(t, http.MethodGet, base+"/api/v1/events", "")
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("stream %d: %s", maxStreams+1, resp.Status)
	}
	for range 3 {
		var rl struct{ Rules []RuleView }
		if code := getJSON(t, base+"/api/v1/rules", &rl); code != 200 {
			t.Fatalf("rules with %d streams open: %d", maxStreams, code)
		}
	}
}

// A stream lives longer than the server's read and write timeouts (the engine's are 30 s
// and 10 min) and ends, cleanly, when the engine stops.
func TestConsoleStreamOutlivesTimeoutsAndEndsAtShutdown(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, echoRules)
	cfg := testConfig(t, dir)
	e, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			<-done
		}
	})
	<-e.Ready()
	// The engine's own handler, with short timeouts.
	srv := httptest.NewUnstartedServer(nil)
	srv.Config.Handler = e.handler(newGuard(cfg.API, cfg.Broker.Users, srv.Listener.Addr().String(), nil))
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond
	srv.Start()
	defer srv.Close()
	s := openStream(t, srv.URL+"/api/v1/events", nil)
	var st liveStats
	for range 3 { // three stats frames: more than a second, five timeouts
		s.next(t, "stats", &st)
	}

	s2 := openStream(t, "http://"+e.HTTPAddr()+"/api/v1/events", nil)
	s2.next(t, "stats", &st)
	cancel()
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(deadline):
		t.Fatal("engine did not stop")
	}
	end := time.After(deadline)
	for open := true; open; {
		select {
		case _, open = <-s2.frames:
		case <-end:
			t.Fatal("stream still open after the engine stopped")
		}
	}
	if err := <-s2.err; !errors.Is(err, io.EOF) {
		t.Fatalf("stream ended with %v, want a clean end", err)
	}
}

// The taps never wait: a full feed loses items (counted), and a stream that does not read
// is dropped instead of holding up the others.
func TestFeedNeverBlocks(t *testing.T) {
	published := 0
	f := &feed{topics: protocol.Topics{}, next: func(broker.Message) error { published++; return nil }, now: time.Now,
		clients: map[*streamClient]struct{}{}, drops: prometheus.NewCounter(prometheus.CounterOpts{Name: "d"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "o"})}
	f.in = make(chan feedItem, 2)
	f.running.Store(true) // no goroutine reads: the channel fills
	inv := broker.Message{Topic: "deviceless/agents/a1/invoke", Payload: []byte(`{"id":"x","attempt":1}`), ResponseTopic: "r", CorrelationData: []byte("x")}
	for range 5 {
		if err := f.publish(inv); err != nil {
			t.Fatal(err)
		}
	}
	f.observe(&finished{})
	if published != 5 || f.lost.Load() != 4 {
		t.Fatalf("published %d, lost %d", published, f.lost.Load())
	}
	// Rule publications and invoke replies are not the feed's.
	f.in = make(chan feedItem, 10)
	_ = f.publish(broker.Message{Topic: "alerts/x"})
	_ = f.publish(broker.Message{Topic: "reply/here", CorrelationData: []byte("c")})
	if len(f.in) != 0 {
		t.Fatalf("%d items for messages that are not the feed's", len(f.in))
	}

	slow, _, _ := f.subscribe()
	fast, _, _ := f.subscribe()
	for i := range streamBuffer + 10 {
		f.broadcast("loop", map[string]int{"n": i}, true)
		select {
		case <-fast.frames:
		default:
			t.Fatal("the reading stream missed a frame")
		}
	}
	select {
	case <-slow.gone:
	default:
		t.Fatal("the stream that does not read was not dropped")
	}
	select {
	case <-fast.gone:
		t.Fatal("the reading stream was dropped")
	default:
	}
	if len(f.recent) != recentFrames {
		t.Fatalf("%d recent frames kept", len(f.recent))
	}
}
