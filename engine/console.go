package engine

// The web console (docs/console.md): a page served at / from files embedded in the binary
// (engine/console), and the live stream it reads, GET /api/v1/events (server-sent events):
// closed loops as their results come back, with per-stage timings; the engine's direct
// actuations; dead letters; and once a second the engine's counters.
//
// The feed is fed by taps that never block: the publish function the dispatcher and the
// engine's actions use (invocations, actuations, dead letters) and a result observer hand
// items to one goroutine over a bounded channel, dropping them when it is full. That
// goroutine decodes, encodes each frame once and fans it out to the streams; a stream that
// cannot take a frame is dropped (its client reconnects). With no HTTP server, or before
// it listens, the taps cost one atomic load.

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/protocol"
)

//go:embed console
var consoleFiles embed.FS

// Bounds of the live stream.
const (
	// maxStreams bounds open event streams; they hold no slot of api.max_concurrent.
	maxStreams = 16
	// streamBuffer is how many frames a stream may be behind before it is dropped.
	streamBuffer = 256
	// feedBuffer is how many items the taps may be ahead of the feed before it loses some.
	feedBuffer = 1024
	// recentFrames are replayed to a new stream: the last loops and actuations.
	recentFrames = 50
	// keptDeadLetters are listed by /api/v1/deadletters.
	keptDeadLetters = 100
	// maxTracked bounds invocations in flight whose dispatch the feed remembers.
	maxTracked = 4096
	// maxOutput is the longest function output a loop frame carries as it is.
	maxOutput = 1024
	// streamWriteTimeout bounds one write to a stream's connection.
	streamWriteTimeout = 10 * time.Second
	// statsEvery is the period of the stats frame.
	statsEvery = time.Second
)

// feed is the source of the live stream.
type feed struct {
	topics protocol.Topics
	next   func(broker.Message) error // the publish function the taps wrap
	stats  func() liveStats           // the counters of the stats frame (engine-wide)
	now    func() time.Time

	running atomic.Bool // between start and stop
	in      chan feedItem
	quit    chan struct{}
	done    chan struct{}
	lost    atomic.Uint64      // items the taps could not hand over
	drops   prometheus.Counter // streams dropped for being slow
	open    prometheus.Gauge   // streams open

	mu      sync.Mutex
	clients map[*streamClient]struct{}
	recent  [][]byte          // frames for a new stream, oldest first
	dead    []json.RawMessage // dead letters as published, oldest first
	stopped bool

	// Owned by the feed's goroutine.
	tracked       map[string]dispatched // invocation id → its first dispatch
	results, dlts uint64
}

type feedKind uint8

const (
	itemInvocation feedKind = iota + 1 // the dispatcher sent an invocation
	itemActuation                      // the engine sent an actuation
	itemDeadLetter                     // the dispatcher dead-lettered an invocation
	itemFinished                       // an invocation finished (observer)
)

type feedItem struct {
	kind    feedKind
	at      time.Time
	topic   string
	payload []byte // the published bytes; never changed after publishing
	rec     Record // itemFinished
}

// dispatched is what the feed remembers of an invocation until its result.
type dispatched struct {
	sent       time.Time // published to the agent (sent), or dead-lettered
	sent1      bool      // sent is the first attempt's publication
	topic      string    // the event's topic ("" for an external invoke)
	receivedAt time.Time // when the engine received the event
}

// liveStats are the cumulative counts the stats frame carries; the page derives rates.
type liveStats struct {
	At           time.Time `json:"at"`
	Events       int64     `json:"events"`  // received by the rules
	Matched      int64     `json:"matched"` // matched by at least one rule
	Fired        int64     `json:"fired"`   // rule firings
	Results      uint64    `json:"results"` // finished invocations seen by the feed
	DeadLetters  uint64    `json:"dead_letters"`
	InFlight     int       `json:"in_flight"`
	AgentsOnline int       `json:"agents_online"`
	Lost         uint64    `json:"lost"` // items the feed lost because it was behind
}

// LoopView is a finished invocation as the stream's "loop" frame shows it.
type LoopView struct {
	ID         string          `json:"id"`
	Rule       string          `json:"rule,omitempty"`
	Function   string          `json:"function"`
	Agent      string          `json:"agent,omitempty"`
	Status     string          `json:"status"`
	Error      string          `json:"error,omitempty"`
	Cold       bool            `json:"cold"`
	Attempts   int             `json:"attempts"`
	Output     json.RawMessage `json:"output,omitempty"`
	Topic      string          `json:"topic,omitempty"`
	ReceivedAt *time.Time      `json:"received_at,omitempty"`
	FinishedAt time.Time       `json:"finished_at"`
	Ms         LoopTimings     `json:"ms"`
}

// LoopTimings are a loop's stages in milliseconds. Engine, Network and Total are measured
// by the engine (absent when it did not see the dispatch: an invocation sent before the
// stream started); Queue, Start, Run and Agent are the agent's.
type LoopTimings struct {
	Engine  *float64 `json:"engine,omitempty"`  // event received → invocation published
	Queue   float64  `json:"queue"`             // waiting on the agent
	Start   float64  `json:"start"`             // container or runner start
	Run     float64  `json:"run"`               // the function
	Agent   float64  `json:"agent"`             // the agent's total
	Network *float64 `json:"network,omitempty"` // published → result back, less the agent's total
	Total   *float64 `json:"total,omitempty"`   // event received (or published) → result back
}

// ActuationView is an actuation the engine sent (a rule's `actuate`), as the stream's
// "actuation" frame shows it. Actuations a function asks for are the agent's: they show
// in its status' line values.
type ActuationView struct {
	ID    string    `json:"id,omitempty"`
	At    time.Time `json:"at"`
	Agent string    `json:"agent"`
	Line  string    `json:"line"`
	Value int       `json:"value"`
	For   string    `json:"for,omitempty"`
}

// newFeed makes the engine's feed; it taps publish and reads the engine's counters.
func (e *Engine) newFeed(publish func(broker.Message) error) *feed {
	f := &feed{
		topics: e.topics, next: publish, now: time.Now, clients: map[*streamClient]struct{}{},
		drops: prometheus.NewCounter(prometheus.CounterOpts{Name: "deviceless_console_streams_dropped_total",
			Help: "Event streams (GET /api/v1/events) closed because their client did not keep up."}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{Name: "deviceless_console_streams",
			Help: "Event streams (GET /api/v1/events) open."}),
	}
	f.stats = func() liveStats {
		c := e.metrics.eventCounts()
		return liveStats{Events: c.Received, Matched: c.Matched, Fired: c.Fired,
			InFlight: e.dispatch.inFlight(), AgentsOnline: e.registry.online()}
	}
	lost := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "deviceless_console_feed_lost_total",
		Help: "Items (invocations, results, actuations, dead letters) the console's live feed lost because it was behind."},
		func() float64 { return float64(f.lost.Load()) })
	e.metrics.reg.MustRegister(lost, f.drops, f.open)
	return f
}

// publish is the tap: it publishes m, then hands invocations, actuations and dead letters
// to the feed without waiting.
func (f *feed) publish(m broker.Message) error {
	err := f.next(m)
	if err != nil || !f.running.Load() {
		return err
	}
	var kind feedKind
	switch {
	case m.ResponseTopic != "" && m.CorrelationData != nil:
		kind = itemInvocation
	case m.Topic == f.topics.DeadLetter():
		kind = itemDeadLetter
	case strings.HasSuffix(m.Topic, "/actuate"):
		kind = itemActuation
	default:
		return nil
	}
	f.push(feedItem{kind: kind, at: f.now(), topic: m.Topic, payload: m.Payload})
	return nil
}

// observe is the feed's result observer.
func (f *feed) observe(fin *finished) {
	if f.running.Load() {
		f.push(feedItem{kind: itemFinished, rec: fin.Record})
	}
}

func (f *feed) push(it feedItem) {
	select {
	case f.in <- it:
	default:
		f.lost.Add(1)
	}
}

// start runs the feed until stop.
func (f *feed) start() {
	f.in = make(chan feedItem, feedBuffer)
	f.quit, f.done = make(chan struct{}), make(chan struct{})
	f.tracked = map[string]dispatched{}
	f.running.Store(true)
	go f.run()
}

// stop ends the feed and every stream (their handlers return: the HTTP server's Shutdown
// need not wait for them).
func (f *feed) stop() {
	if !f.running.CompareAndSwap(true, false) {
		return
	}
	close(f.quit)
	<-f.done
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	for c := range f.clients {
		f.dropLocked(c)
	}
}

func (f *feed) run() {
	defer close(f.done)
	tick := time.NewTicker(statsEvery)
	defer tick.Stop()
	for {
		select {
		case <-f.quit:
			return
		case it := <-f.in:
			f.handle(&it)
		case <-tick.C:
			st := f.stats()
			st.At, st.Results, st.DeadLetters = f.now(), f.results, f.dlts
			st.Lost = f.lost.Load()
			f.broadcast("stats", st, false)
		}
	}
}

func (f *feed) handle(it *feedItem) {
	switch it.kind {
	case itemInvocation:
		var inv invocationHead
		if json.Unmarshal(it.payload, &inv) == nil && inv.Attempt == 1 { // a retry keeps its first dispatch
			f.track(&inv, it.at, true)
		}
	case itemFinished:
		f.results++
		f.broadcast("loop", f.loop(&it.rec), true)
	case itemActuation:
		var a protocol.Actuation
		if json.Unmarshal(it.payload, &a) != nil {
			return
		}
		r, _ := f.topics.Parse(it.topic)
		if r.Kind != protocol.AgentActuate {
			return
		}
		v := ActuationView{ID: a.ID, At: it.at, Agent: r.Agent, Line: a.Line, Value: a.Value}
		if a.For > 0 {
			v.For = a.For.D().String()
		}
		f.broadcast("actuation", v, true)
	case itemDeadLetter:
		f.dlts++
		var dl struct {
			Invocation invocationHead `json:"invocation"`
		}
		if json.Unmarshal(it.payload, &dl) != nil {
			return
		}
		// An action's dead letter has no invocation.
		if _, ok := f.tracked[dl.Invocation.ID]; !ok && dl.Invocation.ID != "" { // never sent, or sent before the feed started
			f.track(&dl.Invocation, it.at, false)
		}
		f.mu.Lock()
		f.dead = appendBounded(f.dead, json.RawMessage(it.payload), keptDeadLetters)
		f.mu.Unlock()
		f.broadcast("deadletter", json.RawMessage(it.payload), false)
	}
}

// invocationHead is the part of an invocation the feed reads (not the event's payload).
type invocationHead struct {
	ID      string `json:"id"`
	Attempt int    `json:"attempt"`
	Event   *struct {
		Topic      string    `json:"topic"`
		ReceivedAt time.Time `json:"received_at"`
	} `json:"event"`
}

// track remembers an invocation until its result.
func (f *feed) track(inv *invocationHead, at time.Time, sent bool) {
	if len(f.tracked) >= maxTracked {
		f.forgetOld(at)
		if len(f.tracked) >= maxTracked {
			return
		}
	}
	d := dispatched{sent: at, sent1: sent}
	if inv.Event != nil {
		d.topic, d.receivedAt = inv.Event.Topic, inv.Event.ReceivedAt
	}
	f.tracked[inv.ID] = d
}

// forgetOld drops remembered dispatches older than any invocation's budget could be; they
// lost their result to a full feed.
func (f *feed) forgetOld(now time.Time) {
	for id, d := range f.tracked {
		if now.Sub(d.sent) > 10*time.Minute {
			delete(f.tracked, id)
		}
	}
}

func (f *feed) loop(rec *Record) LoopView {
	r := &rec.Result
	v := LoopView{ID: r.ID, Rule: r.Rule, Function: r.Function, Agent: r.Agent, Status: r.Status, Error: r.Error,
		Cold: r.Cold, Attempts: rec.Attempts, FinishedAt: rec.Finished,
		Ms: LoopTimings{Queue: r.Timings.Queue, Start: r.Timings.Start, Run: r.Timings.Run, Agent: r.Timings.Total}}
	if len(r.Output) <= maxOutput {
		v.Output = r.Output
	} else {
		v.Output, _ = json.Marshal(fmt.Sprintf("(%d bytes of output)", len(r.Output)))
	}
	d, ok := f.tracked[r.ID]
	if !ok {
		return v
	}
	delete(f.tracked, r.ID)
	ms := func(d time.Duration) *float64 {
		x := float64(d.Microseconds()) / 1000
		return &x
	}
	v.Topic = d.topic
	v.Ms.Total = ms(rec.Finished.Sub(d.sent))
	if !d.receivedAt.IsZero() {
		at := d.receivedAt
		v.ReceivedAt = &at
		v.Ms.Total = ms(rec.Finished.Sub(d.receivedAt))
		if d.sent1 {
			v.Ms.Engine = ms(d.sent.Sub(d.receivedAt))
		}
	}
	// One attempt: the time from publishing it to its result, less the agent's own.
	// A retried invocation's round trips are not one agent's answer to one dispatch.
	if d.sent1 && rec.Attempts == 1 {
		v.Ms.Network = ms(max(0, rec.Finished.Sub(d.sent)-time.Duration(r.Timings.Total*float64(time.Millisecond))))
	}
	return v
}

// broadcast encodes one frame and hands it to every stream; keep makes it part of what a
// new stream is sent first.
func (f *feed) broadcast(event string, v any, keep bool) {
	data, err := json.Marshal(v)
	if err != nil {
		return
	}
	frame := make([]byte, 0, len(event)+len(data)+16)
	frame = append(append(append(append(append(frame, "event: "...), event...), "\ndata: "...), data...), "\n\n"...)
	f.mu.Lock()
	defer f.mu.Unlock()
	if keep {
		f.recent = appendBounded(f.recent, frame, recentFrames)
	}
	for c := range f.clients {
		select {
		case c.frames <- frame:
		default:
			f.drops.Inc()
			f.dropLocked(c)
		}
	}
}

func appendBounded[T any](s []T, v T, n int) []T {
	if len(s) >= n {
		s = append(s[:0:0], s[len(s)-n+1:]...)
	}
	return append(s, v)
}

// streamClient is one open stream.
type streamClient struct {
	frames chan []byte
	gone   chan struct{} // closed when the feed drops it (slow, or the engine stops)
}

// subscribe adds a stream; it returns the frames to send first. ok is false once the feed
// stopped.
func (f *feed) subscribe() (c *streamClient, backlog [][]byte, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped || !f.running.Load() {
		return nil, nil, false
	}
	c = &streamClient{frames: make(chan []byte, streamBuffer), gone: make(chan struct{})}
	f.clients[c] = struct{}{}
	f.open.Inc()
	return c, append([][]byte(nil), f.recent...), true
}

func (f *feed) unsubscribe(c *streamClient) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropLocked(c)
}

func (f *feed) dropLocked(c *streamClient) {
	if _, ok := f.clients[c]; ok {
		delete(f.clients, c)
		close(c.gone)
		f.open.Dec()
	}
}

func (f *feed) deadLetters() []json.RawMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]json.RawMessage, 0, len(f.dead))
	for i := len(f.dead) - 1; i >= 0; i-- {
		out = append(out, f.dead[i])
	}
	return out
}

// apiEvents serves GET /api/v1/events: the feed as server-sent events. Frames: "loop"
// (LoopView), "actuation" (ActuationView), "deadletter" (as published), "stats"
// (liveStats, every second). A new stream first gets the last loops and actuations.
func (e *Engine) apiEvents(g *guard) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// The guard checked Host and credentials. A page of another origin gets no CORS
		// grant, so it cannot read the stream anyway; refusing it outright keeps it from
		// holding one of the few stream slots.
		if o := r.Header.Get("Origin"); o != "" && !g.sameSite(o, r.Host) {
			writeError(w, http.StatusForbidden, fmt.Errorf("origin %q may not open the event stream", o))
			return
		}
		// ?backlog=false: only what happens from now on, not the recent frames a new
		// stream starts with (a client that reacts to each result once, the Node-RED nodes).
		backlog := true
		if v := r.URL.Query().Get("backlog"); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				writeError(w, http.StatusBadRequest, fmt.Errorf("backlog=%q: true or false", v))
				return
			}
			backlog = b
		}
		e.stream(w, r, backlog)
	}
}

// sameSite reports whether a request's Origin is the API itself: the request's Host, or a
// name listed in api.allowed_hosts (a proxy that rewrites Host).
func (g *guard) sameSite(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	h := strings.ToLower(u.Host)
	if h == strings.ToLower(host) || g.hosts[h] {
		return true
	}
	name, _, err := net.SplitHostPort(h)
	return err == nil && g.hosts[name]
}

func (e *Engine) stream(w http.ResponseWriter, r *http.Request, replay bool) {
	c, backlog, ok := e.feed.subscribe()
	if !replay {
		backlog = nil
	}
	if !ok {
		writeError(w, http.StatusServiceUnavailable, errors.New("engine stopping"))
		return
	}
	defer e.feed.unsubscribe(c)
	// The server's write timeout would cut the stream: each write has its own deadline.
	// (The read timeout does not apply once the request is read.)
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	write := func(frames ...[]byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		for _, b := range frames {
			if _, err := w.Write(b); err != nil {
				return false
			}
		}
		return rc.Flush() == nil
	}
	if !write(append([][]byte{[]byte("retry: 2000\n: deviceless event stream\n\n")}, backlog...)...) {
		return
	}
	for {
		select {
		case b := <-c.frames:
			if !write(b) {
				return
			}
		case <-c.gone:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func (e *Engine) apiDeadLetters(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": e.feed.deadLetters()})
}

// consoleAssets are the embedded console files with their ETags.
type consoleAssets struct {
	files map[string]consoleFile
}

type consoleFile struct {
	body  []byte
	etag  string
	ctype string
}

func loadConsole() (*consoleAssets, error) {
	a := &consoleAssets{files: map[string]consoleFile{}}
	err := fs.WalkDir(consoleFiles, "console", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := consoleFiles.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		a.files[strings.TrimPrefix(p, "console/")] = consoleFile{body: b, etag: strconv.Quote(hex.EncodeToString(sum[:8])), ctype: ctype}
		return nil
	})
	return a, err
}

// consoleCSP allows the page its own files and API only: no inline script, no other
// origin, no framing (a page of another site cannot overlay it).
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

// serve answers a console file; "" is the page.
func (a *consoleAssets) serve(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		file := name
		if file == "" {
			file = r.PathValue("file")
		}
		f, ok := a.files[file]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", f.ctype)
		h.Set("ETag", f.etag)
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", consoleCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Header.Get("If-None-Match") == f.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write(f.body)
	}
}

// consoleRoutes registers the console's page, its files, the event stream and the dead
// letters on mux.
func (e *Engine) consoleRoutes(mux *http.ServeMux, g *guard) {
	assets, err := loadConsole()
	if err != nil {
		panic(fmt.Sprintf("engine: embedded console: %v", err)) // the build embeds them
	}
	mux.HandleFunc("GET /{$}", g.wrap(accessNone, assets.serve("index.html")))
	mux.HandleFunc("GET /console/{file}", g.wrap(accessNone, assets.serve("")))
	mux.HandleFunc("GET /api/v1/events", g.wrapSlots(make(chan struct{}, maxStreams), accessRead, e.apiEvents(g)))
	mux.HandleFunc("GET /api/v1/deadletters", g.wrap(accessRead, e.apiDeadLetters))
}
