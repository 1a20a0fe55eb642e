package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/rules"
)

// tick is one scheduled run as a real MQTT subscriber received it.
type tick struct {
	At      int64 `json:"at"` // the due time, Unix ms
	CatchUp bool  `json:"catch_up"`
	recv    time.Time
}

const tickRule = `
rules:
  - name: tick
    schedule: {every: 1s%s}
    do:
      - publish: {topic: '"sched/tick"', payload: '{"at": schedule.at.UnixMilli(), "catch_up": schedule.catch_up}', qos: 1}
`

// ticker is a subscriber of sched/tick with a persistent session (it gets what was
// published while it was away, across an engine restart on the same broker store).
type ticker struct {
	mu    sync.Mutex
	ticks []tick
	c     *paho.Client
}

func subscribeTicks(t *testing.T, addr, clientID string) *ticker {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, deadline)
	if err != nil {
		t.Fatal(err)
	}
	tk := &ticker{}
	tk.c = paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			recv := time.Now()
			var x tick
			if err := json.Unmarshal(pr.Packet.Payload, &x); err != nil {
				t.Errorf("tick %q: %v", pr.Packet.Payload, err)
			}
			x.recv = recv
			tk.mu.Lock()
			tk.ticks = append(tk.ticks, x)
			tk.mu.Unlock()
			return true, nil
		}},
	})
	expiry := uint32(3600)
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if _, err := tk.c.Connect(ctx, &paho.Connect{ClientID: clientID, KeepAlive: 30, CleanStart: false,
		Username: "ops", UsernameFlag: true, Password: []byte("pw-ops"), PasswordFlag: true,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}}); err != nil {
		t.Fatalf("connect %s: %v", clientID, err)
	}
	if _, err := tk.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "sched/tick", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tk.c.Disconnect(&paho.Disconnect{}) })
	return tk
}

func (tk *ticker) got() []tick {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return append([]tick(nil), tk.ticks...)
}

func (tk *ticker) wait(t *testing.T, n int) []tick {
	t.Helper()
	eventually(t, fmt.Sprintf("%d ticks", n), func() bool { return len(tk.got()) >= n })
	return tk.got()
}

// An `every: 1s` rule runs on the whole seconds of the real clock: over 10 s, each run as
// a subscriber receives it is within 200 ms of its place in the ideal schedule, none is
// missed and none comes twice.
func TestScheduleEverySecondOnTheRealClock(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, fmt.Sprintf(tickRule, ""))
	e := startEngine(t, testConfig(t, dir))
	tk := subscribeTicks(t, e.BrokerAddr(), "ticks")
	ticks := tk.wait(t, 11)[:11]
	first := ticks[0].At
	if first%1000 != 0 {
		t.Fatalf("first run due at %d ms: not a whole second", first)
	}
	var worst time.Duration
	for i, x := range ticks {
		ideal := time.UnixMilli(first + int64(i)*1000)
		if x.At != ideal.UnixMilli() || x.CatchUp {
			t.Fatalf("run %d: due %d, catch_up %v; want due %d (runs %+v)", i, x.At, x.CatchUp, ideal.UnixMilli(), ticks)
		}
		drift := x.recv.Sub(ideal)
		if drift.Abs() > worst.Abs() {
			worst = drift
		}
		if drift.Abs() > 200*time.Millisecond {
			t.Errorf("run %d due %s received %s: drift %s beyond ±200ms", i, ideal.Format("15:04:05.000"), x.recv.Format("15:04:05.000"), drift)
		}
	}
	t.Logf("11 runs over 10 s, worst drift %s (subscriber's receive time against the whole second)", worst)
	var rl struct{ Rules []RuleView }
	getJSON(t, "http://"+e.HTTPAddr()+"/api/v1/rules", &rl)
	if len(rl.Rules) != 1 || rl.Rules[0].Fired < 11 || rl.Rules[0].Matched != rl.Rules[0].Fired {
		t.Errorf("rules API %+v", rl.Rules)
	}
}

// With catch_up, runs missed while the engine was stopped run once when it starts again
// on the same state: as the latest missed due time, then the schedule goes on.
func TestScheduleCatchUpAfterRestart(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	writeRules(t, dir, fmt.Sprintf(tickRule, ", catch_up: true"))
	cfg := testConfig(t, dir)
	cfg.Broker.Store = filepath.Join(data, "broker")

	e1, stop1 := runEngine(t, cfg)
	tk := subscribeTicks(t, e1.BrokerAddr(), "ticks")
	before := tk.wait(t, 2)
	stop1()
	stopped := time.Now()
	stored := readLastRuns(t, filepath.Join(data, "broker-engine", schedulesFile))
	if stored.IsZero() || stored.UnixMilli() < before[1].At {
		t.Fatalf("stored last run %s; the engine ran at %d", stored, before[1].At)
	}

	// Down across two due times.
	time.Sleep(2500*time.Millisecond - time.Since(stopped))
	e2, _ := runEngine(t, cfg)
	started := time.Now()
	tk = subscribeTicks(t, e2.BrokerAddr(), "ticks") // the same session: what was published meanwhile comes
	time.Sleep(3 * time.Second)
	var catchUps, normal []tick
	for _, x := range tk.got() {
		switch {
		case x.At <= stored.UnixMilli(): // published by the first engine, delivered now
		case x.CatchUp:
			catchUps = append(catchUps, x)
		default:
			normal = append(normal, x)
		}
	}
	if len(catchUps) != 1 {
		t.Fatalf("catch-up runs %+v, want exactly one (all: %+v)", catchUps, tk.got())
	}
	c := catchUps[0]
	if c.At%1000 != 0 || c.At <= stored.UnixMilli()+1000 || c.At > started.UnixMilli() {
		t.Errorf("catch-up due %d: want the latest whole second missed, after %d + 1 s and at most %d", c.At, stored.UnixMilli(), started.UnixMilli())
	}
	if len(normal) < 2 {
		t.Fatalf("after the catch-up %+v, want the schedule going on", normal)
	}
	for i, x := range normal {
		if want := c.At + int64(i+1)*1000; x.At != want {
			t.Errorf("run %d after the catch-up due %d, want %d (runs %+v)", i, x.At, want, normal)
		}
	}
	t.Logf("stopped after the run due %s, restarted %s: one catch-up as %s, then %d runs",
		time.UnixMilli(stored.UnixMilli()).Format("15:04:05.000"), started.Format("15:04:05.000"), time.UnixMilli(c.At).Format("15:04:05"), len(normal))
}

// runEngine starts an engine that the test may stop before its end (it stops at the end
// anyway); with -v it logs to stderr.
func runEngine(t *testing.T, cfg Config) (*running, func()) {
	t.Helper()
	var logs io.Writer = io.Discard
	if testing.Verbose() {
		logs = os.Stderr
	}
	e, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Engine: e, done: make(chan error, 1)}
	go func() { r.done <- e.Run(ctx) }()
	select {
	case <-e.Ready():
	case err := <-r.done:
		t.Fatalf("engine stopped: %v", err)
	case <-time.After(deadline):
		t.Fatal("engine not ready")
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-r.done:
				if err != nil {
					t.Errorf("engine Run: %v", err)
				}
			case <-time.After(deadline):
				t.Error("engine did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

func readLastRuns(t *testing.T, path string) time.Time {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f lastRunsFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return f.Rules["tick"].LastRun
}

func TestLastRunsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "engine", schedulesFile)
	compile := func(src string) *rules.Set {
		t.Helper()
		def, err := rules.Parse("r.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		set, err := rules.Compile([]*rules.FileDef{def}, rules.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return set
	}
	const src = `
rules:
  - {name: a, schedule: {every: 1m, catch_up: true}, do: [{publish: {topic: '"x"'}}]}
  - {name: b, schedule: {every: 1m}, do: [{publish: {topic: '"x"'}}]}
  - {name: c, schedule: {cron: "0 6 * * *", zone: Europe/Berlin, catch_up: true}, do: [{publish: {topic: '"x"'}}]}
`
	l := &lastRuns{path: path}
	if last, err := l.load(); err != nil || len(last) != 0 {
		t.Fatalf("no file: %v, %v", last, err)
	}
	set := compile(src)
	set.Arm(time.Unix(0, 0))
	set.NewEvaluator().Tick(time.Unix(60, 0), nil) // a and b run; c does not
	if err := l.save(set); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if want := `{
  "rules": {
    "a": {
      "last_run": "1970-01-01T00:01:00Z",
      "schedule": "every 1m0s"
    }
  }
}
`; string(b) != want {
		t.Fatalf("file:\n%s\nwant:\n%s", b, want)
	}
	st, _ := os.Stat(path)
	before := st.ModTime()
	time.Sleep(10 * time.Millisecond)
	if err := l.save(set); err != nil { // unchanged: not written again
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); !st.ModTime().Equal(before) {
		t.Error("an unchanged file was written again")
	}

	// A restart reads it back; a rule without a run of its own keeps the stored one, and a
	// rule that is gone is forgotten.
	l2 := &lastRuns{path: path}
	last, err := l2.load()
	if err != nil || !last["a"].Equal(time.Unix(60, 0)) {
		t.Fatalf("load = %v, %v", last, err)
	}
	if err := l2.save(compile(src)); err != nil {
		t.Fatal(err)
	}
	if last, _ := (&lastRuns{path: path}).load(); !last["a"].Equal(time.Unix(60, 0)) {
		t.Errorf("a rule that has not run since the restart lost its stored run: %v", last)
	}
	if err := l2.save(compile(strings.Replace(src, "name: a,", "name: renamed,", 1))); err != nil {
		t.Fatal(err)
	}
	if last, _ := (&lastRuns{path: path}).load(); len(last) != 0 {
		t.Errorf("after the rule was renamed: %v, want nothing", last)
	}

	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (&lastRuns{path: path}).load(); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a corrupt file: %v", err)
	}
}

const dryRunRules = `
functions:
  report: {runtime: sh, code: cat}
rules:
  - name: morning
    schedule: {cron: "0 6 * * *", zone: Europe/Berlin}
    do: [{invoke: report, args: {due: 'schedule.at.Format("2006-01-02 15:04")', now: now.Unix()}}]
  - name: half-minute
    schedule: {every: 30s}
    do: [{publish: {topic: '"sched/half"', payload: 'schedule.at.Unix()'}}]
  - name: on-event
    on: in/+
    do: [{publish: {topic: '"out"', payload: 'now.Unix()'}}]
`

// POST /api/v1/dryrun with a schedule or a time instead of an event.
func TestDryRunSchedules(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, dryRunRules)
	e := startEngine(t, testConfig(t, dir))
	url := "http://" + e.HTTPAddr() + "/api/v1/dryrun"
	type firing struct {
		Rule    string
		Key     string
		At      time.Time
		Due     *time.Time
		Actions []ActionView
	}
	dry := func(body string, wantCode int) []firing {
		t.Helper()
		var out struct {
			Firings []firing
			Error   string
		}
		if code := postJSON(t, url, body, &out); code != wantCode {
			t.Fatalf("POST %s: HTTP %d (%s), want %d", body, code, out.Error, wantCode)
		}
		return out.Firings
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")

	// The next run of a rule: its next 06:00 in Berlin after now.
	before := time.Now()
	fs := dry(`{"schedule": "morning"}`, 200)
	if len(fs) != 1 || fs[0].Due == nil || !fs[0].Due.After(before) || fs[0].Due.Sub(before) > 25*time.Hour ||
		fs[0].Due.In(berlin).Hour() != 6 || !fs[0].At.Equal(*fs[0].Due) {
		t.Fatalf("next run of morning: %+v", fs)
	}
	// A rule as at a given time.
	fs = dry(`{"schedule": "morning", "at": "2026-03-29T06:00:00+02:00"}`, 200)
	if len(fs) != 1 || fs[0].Key != "" || fs[0].Actions[0].Function != "report" ||
		fs[0].Actions[0].Args["due"] != "2026-03-29 06:00" || fs[0].Actions[0].Args["now"] != float64(1774756800) {
		t.Fatalf("morning at a time: %+v", fs)
	}
	// What runs at a time: both at 04:00 UTC (06:00 in Berlin), only the half minute at 04:00:30.
	if fs := dry(`{"at": "2026-03-29T04:00:00Z"}`, 200); len(fs) != 2 || fs[0].Rule != "morning" || fs[1].Rule != "half-minute" {
		t.Fatalf("runs at 04:00: %+v", fs)
	}
	if fs := dry(`{"at": "2026-03-29T04:00:30Z"}`, 200); len(fs) != 1 || fs[0].Rule != "half-minute" || fs[0].Actions[0].Payload != float64(1774756830) {
		t.Fatalf("runs at 04:00:30: %+v", fs)
	}
	if fs := dry(`{"at": "2026-03-29T04:00:10Z"}`, 200); len(fs) != 0 {
		t.Fatalf("runs at 04:00:10: %+v", fs)
	}
	// An event at a time.
	if fs := dry(`{"topic": "in/a", "at": "2026-03-29T04:00:10Z"}`, 200); len(fs) != 1 || fs[0].Due != nil || fs[0].Actions[0].Payload != float64(1774756810) {
		t.Fatalf("event at a time: %+v", fs)
	}
	dry(`{"schedule": "nope"}`, 404)
	dry(`{"schedule": "on-event"}`, 404)
	dry(`{"schedule": "morning", "topic": "in/a"}`, 400)

	// The dry runs moved no schedule; the rules API shows them.
	var rl struct{ Rules []RuleView }
	getJSON(t, "http://"+e.HTTPAddr()+"/api/v1/rules", &rl)
	byName := map[string]RuleView{}
	for _, r := range rl.Rules {
		byName[r.Name] = r
	}
	m, h := byName["morning"], byName["half-minute"]
	if m.Schedule != "cron 0 6 * * * (Europe/Berlin)" || m.NextRun == nil || m.NextRun.In(berlin).Hour() != 6 || m.LastRun != nil || m.Fired != 0 || m.On == nil {
		t.Errorf("morning in the rules API: %+v", m)
	}
	if h.Schedule != "every 30s" || h.NextRun == nil || h.NextRun.Unix()%30 != 0 || h.NextRun.Sub(time.Now()) > 30*time.Second {
		t.Errorf("half-minute in the rules API: %+v", h)
	}
	if o := byName["on-event"]; o.Schedule != "" || o.NextRun != nil {
		t.Errorf("on-event in the rules API: %+v", o)
	}
}

// A reload keeps an unchanged schedule's next run and resets a changed one.
func TestReloadKeepsUnchangedSchedules(t *testing.T) {
	dir := t.TempDir()
	writeRules(t, dir, dryRunRules)
	e := startEngine(t, testConfig(t, dir))
	url := "http://" + e.HTTPAddr() + "/api/v1/rules"
	next := func() map[string]*time.Time {
		var rl struct {
			Rules      []RuleView
			LastReload *reloadStatus `json:"last_reload"`
		}
		getJSON(t, url, &rl)
		out := map[string]*time.Time{}
		for _, r := range rl.Rules {
			out[r.Name] = r.NextRun
		}
		return out
	}
	before := next()
	writeRules(t, dir, strings.Replace(dryRunRules, `"0 6 * * *"`, `"0 7 * * *"`, 1))
	var d *rules.Diff
	eventually(t, "reload", func() bool {
		var rl struct {
			LastReload *reloadStatus `json:"last_reload"`
		}
		getJSON(t, url, &rl)
		if rl.LastReload != nil {
			d = rl.LastReload.Diff
		}
		return d != nil && len(d.Reset) == 1
	})
	if d.Reset[0] != "morning" || len(d.Kept) != 2 {
		t.Fatalf("diff %+v, want morning reset, the others kept", d)
	}
	after := next()
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if after["morning"] == nil || after["morning"].In(berlin).Hour() != 7 {
		t.Errorf("morning after the reload runs next at %v, want 07:00 in Berlin", after["morning"])
	}
	// half-minute kept its next run, unless it ran meanwhile (then it moved on by 30 s).
	if h0, h1 := before["half-minute"], after["half-minute"]; h1 == nil || !(h1.Equal(*h0) || h1.Equal(h0.Add(30*time.Second))) {
		t.Errorf("half-minute's next run %v before the reload, %v after", h0, h1)
	}
}
