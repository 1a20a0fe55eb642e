package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/deviceless/deviceless/protocol"
	"github.com/deviceless/deviceless/rules"
	"github.com/deviceless/deviceless/topic"
)

const maxRequestBody = 1 << 20

func (e *Engine) serveHTTP() (*http.Server, error) {
	if e.cfg.HTTP == "off" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", e.cfg.HTTP)
	if err != nil {
		return nil, fmt.Errorf("http: %w", err)
	}
	e.httpAddr.Store(ln.Addr().String())
	if e.cfg.API.Open {
		e.log.Warn("HTTP API OPEN: no authentication, every caller is admin (api.open; loopback only)", "http", ln.Addr().String())
	}
	g := newGuard(e.cfg.API, e.cfg.Broker.Users, ln.Addr().String(), func(reason string) {
		e.metrics.apiRefused.WithLabelValues(reason).Inc()
	})
	// Timeouts so that a slow or silent client cannot hold a connection (and a request
	// slot) for ever; the write timeout leaves room for an invocation's whole budget.
	srv := &http.Server{Handler: e.handler(g), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 10 * time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	e.feed.start()
	srv.RegisterOnShutdown(e.feed.stop) // ends the event streams, which never go idle
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("http server failed", "err", err)
		}
	}()
	return srv, nil
}

// handler is the engine's HTTP API; g decides who may call what (docs/security.md).
func (e *Engine) handler(g *guard) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", g.wrap(accessNone, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	mux.HandleFunc("GET /readyz", g.wrap(accessNone, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-e.ready:
			writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "agents_online": e.registry.online()})
		default:
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
		}
	}))
	mux.HandleFunc("GET /metrics", g.wrap(accessRead, promhttp.HandlerFor(e.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP))
	mux.HandleFunc("GET /api/v1/rules", g.wrap(accessRead, e.apiRules))
	mux.HandleFunc("GET /api/v1/agents", g.wrap(accessRead, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"agents": e.registry.list()})
	}))
	mux.HandleFunc("GET /api/v1/invocations", g.wrap(accessRead, func(w http.ResponseWriter, r *http.Request) {
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		writeJSON(w, http.StatusOK, map[string]any{"invocations": e.history.list(limit), "in_flight": e.dispatch.inFlight()})
	}))
	mux.HandleFunc("POST /api/v1/invoke/{function}", g.wrap(accessInvoke, e.apiInvoke))
	mux.HandleFunc("POST /api/v1/dryrun", g.wrap(accessRead, e.apiDryRun))
	e.functionRoutes(mux, g)
	e.consoleRoutes(mux, g) // the web console at /, GET /api/v1/events, GET /api/v1/deadletters
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

// RuleView is a rule as /api/v1/rules shows it.
type RuleView struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Position    string   `json:"position"`
	On          []string `json:"on"`
	For         string   `json:"for,omitempty"`
	Throttle    string   `json:"throttle,omitempty"`
	Matched     uint64   `json:"matched"`
	Fired       uint64   `json:"fired"`
	Throttled   uint64   `json:"throttled"`
	Errors      uint64   `json:"errors"`
	Keys        int      `json:"keys"`
	// A scheduled rule's schedule ("every 30s", "cron 0 6 * * * (Europe/Berlin)"), its next
	// run and the due time of its last run (absent until it ran).
	Schedule string     `json:"schedule,omitempty"`
	NextRun  *time.Time `json:"next_run,omitempty"`
	LastRun  *time.Time `json:"last_run,omitempty"`
	// The last runtime error ("in: message"), its event's receive time and topic; absent
	// until the rule fails. Kept across reloads that keep the rule's state.
	LastError      string     `json:"last_error,omitempty"`
	LastErrorAt    *time.Time `json:"last_error_at,omitempty"`
	LastErrorTopic string     `json:"last_error_topic,omitempty"`
}

func (e *Engine) apiRules(w http.ResponseWriter, r *http.Request) {
	set := e.ruleSet()
	out := struct {
		Files      []string      `json:"files"`
		Rules      []RuleView    `json:"rules"`
		Functions  []string      `json:"functions"`
		LastReload *reloadStatus `json:"last_reload,omitempty"`
	}{Files: set.Files(), Rules: []RuleView{}, Functions: []string{}, LastReload: e.rulesErr.Load()}
	for _, rl := range set.Rules {
		c := rl.Counters()
		v := RuleView{Name: rl.Name, Description: rl.Description, Position: rl.Pos.String(), On: rl.Filters,
			Matched: c.Matched.Load(), Fired: c.Fired.Load(), Throttled: c.Throttled.Load(), Errors: c.Errors.Load(), Keys: rl.Keys()}
		if rl.For > 0 {
			v.For = rl.For.String()
		}
		if rl.Throttle > 0 {
			v.Throttle = rl.Throttle.String()
		}
		if le := c.LastError(); le != nil {
			v.LastError, v.LastErrorAt, v.LastErrorTopic = le.Error(), &le.At, le.Topic
		}
		viewSchedule(rl, &v)
		out.Rules = append(out.Rules, v)
	}
	for name := range set.Functions {
		out.Functions = append(out.Functions, name)
	}
	slices.Sort(out.Functions)
	writeJSON(w, http.StatusOK, out)
}

func (e *Engine) apiInvoke(w http.ResponseWriter, r *http.Request) {
	function := r.PathValue("function")
	var req protocol.InvokeRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil || len(body) > maxRequestBody {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body larger than %d bytes", maxRequestBody))
		return
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("malformed request: %w", err))
			return
		}
	}
	// ?all=true: with a `pick: all` target, every agent's result ({"results": [...]}),
	// not only the first one's.
	all := false
	if v := r.URL.Query().Get("all"); v != "" {
		if all, err = strconv.ParseBool(v); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("all=%q: true or false", v))
			return
		}
	}
	// The dispatcher's goroutine calls reply: it appends and signals, never waits (a
	// request that gave up leaves results nobody reads, at most one per agent).
	var (
		mu      sync.Mutex
		results []protocol.Result
		arrived = make(chan struct{}, 1)
	)
	fn, n, err := e.invoke(callerOf(r), function, req, func(f *finished) {
		mu.Lock()
		results = append(results, f.Result)
		mu.Unlock()
		select {
		case arrived <- struct{}{}:
		default:
		}
	}, all)
	if err != nil {
		code := http.StatusBadRequest
		switch {
		case errors.Is(err, ErrUnknownFunction):
			code = http.StatusNotFound
		case errors.Is(err, ErrForbidden):
			code = http.StatusForbidden
		}
		writeError(w, code, err)
		return
	}
	// The dispatcher always answers (result or dead letter) within the attempts' budget.
	budget := time.Duration(e.cfg.Dispatch.Attempts)*(fn.Spec.Timeout.D()+e.cfg.Dispatch.StartGrace+time.Second) + time.Second
	ctx, cancel := context.WithTimeout(r.Context(), budget)
	defer cancel()
	for {
		mu.Lock()
		got := slices.Clone(results)
		mu.Unlock()
		switch {
		case !all && len(got) > 0:
			writeJSON(w, http.StatusOK, got[0])
			return
		case all && len(got) >= n:
			writeJSON(w, http.StatusOK, map[string]any{"results": got})
			return
		}
		select {
		case <-arrived:
		case <-ctx.Done():
			if !all {
				writeError(w, http.StatusGatewayTimeout, errors.New("no result in time; see /api/v1/invocations"))
				return
			}
			writeJSON(w, http.StatusGatewayTimeout, map[string]any{"error": fmt.Sprintf("%d of %d results in time; see /api/v1/invocations", len(got), n), "results": got})
			return
		}
	}
}

// DryRunRequest is an event for POST /api/v1/dryrun, or a scheduled run
// (docs/engine.md#dry-runs-of-schedules): `at` sets the clock, `schedule` names a rule.
type DryRunRequest struct {
	At       *time.Time      `json:"at"`
	Schedule string          `json:"schedule"`
	Topic    string          `json:"topic"`
	Payload  json.RawMessage `json:"payload"`
	Client   string          `json:"client"`
	QoS      byte            `json:"qos"`
	Retain   bool            `json:"retain"`
}

// ActionView is an evaluated action in JSON.
type ActionView struct {
	Kind     string           `json:"kind"`
	Function string           `json:"function,omitempty"`
	Target   *protocol.Target `json:"target,omitempty"`
	Args     map[string]any   `json:"args,omitempty"`
	Line     string           `json:"line,omitempty"`
	Value    any              `json:"value,omitempty"`
	For      string           `json:"for,omitempty"`
	Expire   string           `json:"expire,omitempty"` // actuations: how long they may take to reach the agent
	Topic    string           `json:"topic,omitempty"`
	Payload  any              `json:"payload,omitempty"`
	QoS      byte             `json:"qos,omitempty"`
	Retain   bool             `json:"retain,omitempty"`
}

// FiringView is a firing in JSON.
type FiringView struct {
	Rule string    `json:"rule"`
	Key  string    `json:"key"`
	At   time.Time `json:"at"` // the clock of the evaluation
	// Due is a scheduled run's due time (`schedule.at`); absent for an event.
	Due     *time.Time   `json:"due,omitempty"`
	Actions []ActionView `json:"actions"`
}

func viewActions(as []rules.Action) []ActionView {
	out := make([]ActionView, 0, len(as))
	for _, a := range as {
		v := ActionView{Kind: a.Kind.String(), Args: a.Args, Line: a.Line, Value: a.Value, Topic: a.Topic, Payload: a.Payload, QoS: a.QoS, Retain: a.Retain}
		if a.Function != nil {
			v.Function = a.Function.Name
		}
		if a.Kind != rules.Publish {
			t := a.Target
			v.Target = &t
		}
		if a.For > 0 {
			v.For = a.For.String()
		}
		if a.Kind == rules.Actuate {
			v.Expire = a.Expire.String()
		}
		out = append(out, v)
	}
	return out
}

// apiDryRun evaluates one event, or scheduled runs (dryRunSchedule), against a fresh copy
// of the running rules (no file is read): nothing is invoked, and the running rules' state
// is not touched (state starts empty, so `for`, windows and throttles see this event as
// the first of its key; schedules do not move).
func (e *Engine) apiDryRun(w http.ResponseWriter, r *http.Request) {
	var req DryRunRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("malformed request: %w", err))
		return
	}
	now := e.now()
	if req.At != nil {
		now = *req.At
	}
	set := e.ruleSet().Fresh()
	var firings []rules.Firing
	if req.Schedule != "" || (req.At != nil && req.Topic == "") {
		f, code, err := dryRunSchedule(set, req, now)
		if err != nil {
			writeError(w, code, err)
			return
		}
		firings = f
	} else {
		if err := topic.ValidateTopic(req.Topic); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("topic %q: %w", req.Topic, err))
			return
		}
		payload := []byte(req.Payload)
		var s string
		if json.Unmarshal(req.Payload, &s) == nil {
			payload = []byte(s) // a JSON string is the payload's text
		}
		firings = set.NewEvaluator().Eval(&rules.Event{Topic: req.Topic, Payload: payload, Client: req.Client, QoS: req.QoS, Retain: req.Retain, Time: now}, nil)
	}
	out := struct {
		Firings []FiringView `json:"firings"`
	}{Firings: []FiringView{}}
	for _, f := range firings {
		v := FiringView{Rule: f.Rule, Key: f.Key, At: f.Time, Actions: viewActions(f.Actions)}
		if f.Schedule != nil {
			v.Due = &f.Schedule.At
		}
		out.Firings = append(out.Firings, v)
	}
	writeJSON(w, http.StatusOK, out)
}
