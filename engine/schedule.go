package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/deviceless/deviceless/internal/atomicfile"
	"github.com/deviceless/deviceless/rules"
)

// Scheduled rules (docs/rules.md#schedules) run on the engine's clock: the scheduler
// waits for the running set's next run, ticks the set, and hands each firing to the same
// act path as an event's firings. Scheduled rules keep no per-key state, so their runs
// need not go through the event loop's goroutine.

// scheduler runs the scheduled rules of the running set. It does not see the engine: it
// gets the running set, where firings go, a clock and the store of last runs.
type scheduler struct {
	rules func() *rules.Set
	fire  func(*rules.Firing)
	now   func() time.Time
	log   *slog.Logger
	runs  *lastRuns // nil: no engine state, so catch_up has no memory
	wake  chan struct{}
}

func newScheduler(set func() *rules.Set, fire func(*rules.Firing), now func() time.Time, log *slog.Logger, state string) *scheduler {
	s := &scheduler{rules: set, fire: fire, now: now, log: log, wake: make(chan struct{}, 1)}
	if state != "" {
		s.runs = &lastRuns{path: filepath.Join(state, schedulesFile)}
	}
	return s
}

// reloaded tells the scheduler that the running set changed.
func (s *scheduler) reloaded() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run catches up the runs missed while the engine was down, then runs the schedules
// until ctx ends.
func (s *scheduler) run(ctx context.Context) {
	set := s.rules()
	ev := set.NewEvaluator()
	var firings []rules.Firing
	last, err := s.runs.load()
	if err != nil {
		s.log.Error("last runs of scheduled rules not read: nothing is caught up", "err", err)
	}
	if s.runs == nil {
		for _, r := range set.Rules {
			if r.Schedule != nil && r.Schedule.CatchUp {
				s.log.Warn("catch_up has no memory of past runs without engine state (set `state` or broker.store)", "rule", r.Name)
			}
		}
	}
	now := s.now()
	firings = ev.CatchUp(last, now, firings[:0])
	for i := range firings {
		s.log.Info("scheduled rule catches up a missed run", "rule", firings[i].Rule, "due", firings[i].Schedule.At)
		s.fire(&firings[i])
	}
	set.Arm(now)
	s.save(set)

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		if cur := s.rules(); cur != set {
			set, ev = cur, cur.NewEvaluator()
			set.Arm(s.now())
		}
		var due <-chan time.Time
		if next := set.NextRun(); !next.IsZero() {
			timer.Reset(next.Sub(s.now()))
			due = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
			timer.Stop()
			continue
		case <-due:
		}
		firings = ev.Tick(s.now(), firings[:0])
		for i := range firings {
			s.fire(&firings[i])
		}
		s.save(set)
	}
}

// save stores the last runs of the rules with catch_up, after their actions were handed
// on: a crash in between runs them again at the next start (with the same action ids).
func (s *scheduler) save(set *rules.Set) {
	if s.runs == nil {
		return
	}
	if err := s.runs.save(set); err != nil {
		s.log.Error("last runs of scheduled rules not stored: a restart may run them again or miss them", "err", err)
	}
}

// schedulesFile, in the engine's state folder, holds the last run of each scheduled rule
// with catch_up (docs/engine.md#schedules).
const schedulesFile = "schedules.json"

// lastRuns is the schedules file: rule name → due time of its last run.
type lastRuns struct {
	path  string
	saved map[string]lastRun
}

type lastRun struct {
	LastRun  time.Time `json:"last_run"`
	Schedule string    `json:"schedule"` // for people reading the file
}

type lastRunsFile struct {
	Rules map[string]lastRun `json:"rules"`
}

// load reads the file; a missing file is no last runs.
func (l *lastRuns) load() (map[string]time.Time, error) {
	out := map[string]time.Time{}
	if l == nil {
		return out, nil
	}
	l.saved = map[string]lastRun{}
	b, err := os.ReadFile(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	var f lastRunsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return out, fmt.Errorf("%s: %w", l.path, err)
	}
	for name, r := range f.Rules {
		out[name], l.saved[name] = r.LastRun, r
	}
	return out, nil
}

// save writes the last runs of the set's rules with catch_up when they changed; rules
// that are gone, or have no catch_up any more, are forgotten. The file is replaced
// atomically.
func (l *lastRuns) save(set *rules.Set) error {
	next := map[string]lastRun{}
	for _, r := range set.Rules {
		if r.Schedule == nil || !r.Schedule.CatchUp {
			continue
		}
		run := lastRun{LastRun: r.LastRun(), Schedule: r.Schedule.String()}
		if run.LastRun.IsZero() {
			prev, ok := l.saved[r.Name]
			if !ok {
				continue
			}
			run.LastRun = prev.LastRun
		}
		next[r.Name] = run
	}
	if equalRuns(next, l.saved) {
		return nil
	}
	b, err := json.MarshalIndent(lastRunsFile{Rules: next}, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(l.path, append(b, '\n')); err != nil {
		return err
	}
	l.saved = next
	return nil
}

func equalRuns(a, b map[string]lastRun) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || !x.LastRun.Equal(y.LastRun) || x.Schedule != y.Schedule {
			return false
		}
	}
	return true
}

// writeFileAtomic replaces path with data, making its folder first.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, 0o600, data)
}

// actScheduled carries out a scheduled run's firing. Its invocations and actuations are
// named after the rule and the due time, so a run made again after a crash (before its
// last run was stored) is recognised by the agents as a repeat.
func (e *Engine) actScheduled(f *rules.Firing) {
	acts := eventActions{ids: actionIDs{base: "schedule-" + f.Rule + "-" + strconv.FormatInt(f.Schedule.At.UnixMilli(), 10)}}
	e.act(f, &acts)
}

// dryRunSchedule is POST /api/v1/dryrun without an event, on set (a fresh copy of the
// running rules), the clock at now (the request's `at`, else the engine's clock):
// `{"schedule": "rule"}` runs that rule as at its next run after now, or as at `at` when
// given; `{"at": T}` alone runs the rules due at exactly T. It returns the HTTP status of
// an error.
func dryRunSchedule(set *rules.Set, req DryRunRequest, now time.Time) ([]rules.Firing, int, error) {
	if req.Topic != "" || len(req.Payload) > 0 || req.Client != "" {
		return nil, http.StatusBadRequest, errors.New("a dry run takes an event (topic, payload, ...) or a schedule, not both")
	}
	ev := set.NewEvaluator()
	if req.Schedule == "" {
		set.Arm(now.Add(-time.Nanosecond))
		return ev.Tick(now, nil), 0, nil
	}
	r := set.Rule(req.Schedule)
	if r == nil || r.Schedule == nil {
		return nil, http.StatusNotFound, fmt.Errorf("no scheduled rule %q", req.Schedule)
	}
	at := now
	if req.At == nil {
		at = r.Schedule.Next(now)
	}
	firings, err := ev.RunSchedule(req.Schedule, at, nil)
	return firings, http.StatusBadRequest, err
}

// viewSchedule adds a scheduled rule's schedule, next and last run to its API view.
func viewSchedule(r *rules.Rule, v *RuleView) {
	if v.On == nil {
		v.On = []string{}
	}
	if r.Schedule == nil {
		return
	}
	v.Schedule = r.Schedule.String()
	if t := r.NextRun(); !t.IsZero() {
		v.NextRun = &t
	}
	if t := r.LastRun(); !t.IsZero() {
		v.LastRun = &t
	}
}
