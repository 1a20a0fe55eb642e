package rules

import (
	"errors"

	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func scheduleOf(t *testing.T, schedule string) *Schedule {
	t.Helper()
	set := compileSrc(t, "rules:\n  - name: s\n    schedule: "+schedule+"\n    do: [{publish: {topic: '\"x\"'}}]\n", Options{})
	return set.Rules[0].Schedule
}

// runs lists n runs after from, in the schedule's zone.
func runs(s *Schedule, from time.Time, n int) []string {
	var out []string
	for t := from; len(out) < n; {
		t = s.Next(t)
		out = append(out, t.Format("2006-01-02 15:04 MST"))
	}
	return out
}

// Europe/Berlin goes from CET (+01:00) to CEST (+02:00) at 02:00 on 2026-03-29 and back
// at 03:00 on 2026-10-25.
func TestNextAcrossDST(t *testing.T) {
	spring := time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC)
	autumn := time.Date(2026, 10, 24, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name, schedule string
		from           time.Time
		want           []string
	}{
		{"a daily time the jump skips runs at the jump", `{cron: "30 2 * * *", zone: Europe/Berlin}`, spring,
			[]string{"2026-03-29 03:00 CEST", "2026-03-30 02:30 CEST", "2026-03-31 02:30 CEST"}},
		{"the skipped time itself", `{cron: "0 2 * * *", zone: Europe/Berlin}`, spring,
			[]string{"2026-03-29 03:00 CEST", "2026-03-30 02:00 CEST"}},
		{"a daily time clocks going back repeat runs once", `{cron: "30 2 * * *", zone: Europe/Berlin}`, autumn,
			[]string{"2026-10-25 02:30 CEST", "2026-10-26 02:30 CET", "2026-10-27 02:30 CET"}},
		{"several times in the repeated hour run once each", `{cron: "*/20 2 * * *", zone: Europe/Berlin}`, autumn,
			[]string{"2026-10-25 02:00 CEST", "2026-10-25 02:20 CEST", "2026-10-25 02:40 CEST", "2026-10-26 02:00 CET"}},
		{"a time outside the change is not moved", `{cron: "0 6 * * *", zone: Europe/Berlin}`, spring,
			[]string{"2026-03-29 06:00 CEST", "2026-03-30 06:00 CEST"}},
		{"an hourly job follows real hours forward", `{cron: "0 * * * *", zone: Europe/Berlin}`, time.Date(2026, 3, 28, 23, 30, 0, 0, time.UTC),
			[]string{"2026-03-29 01:00 CET", "2026-03-29 03:00 CEST", "2026-03-29 04:00 CEST"}},
		{"an hourly job follows real hours back", `{cron: "0 * * * *", zone: Europe/Berlin}`, time.Date(2026, 10, 24, 22, 30, 0, 0, time.UTC),
			[]string{"2026-10-25 01:00 CEST", "2026-10-25 02:00 CEST", "2026-10-25 02:00 CET", "2026-10-25 03:00 CET"}},
		{"a yearly date skipped this year only", `{cron: "30 2 29 3 *", zone: Europe/Berlin}`, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
			[]string{"2026-03-29 03:00 CEST", "2027-03-29 02:30 CEST"}},
		{"UTC by default", `{cron: "@daily"}`, spring,
			[]string{"2026-03-29 00:00 UTC", "2026-03-30 00:00 UTC"}},
		{"America/New_York", `{cron: "30 2 * * *", zone: America/New_York}`, time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC),
			[]string{"2026-03-08 03:00 EDT", "2026-03-09 02:30 EDT"}},
		{"every counts real time from the epoch", `{every: 1h}`, time.Date(2026, 3, 29, 0, 20, 0, 0, time.UTC),
			[]string{"2026-03-29 01:00 UTC", "2026-03-29 02:00 UTC", "2026-03-29 03:00 UTC"}},
		{"every 11m from the epoch, not from the start", `{every: 11m}`, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
			[]string{"2026-01-01 00:05 UTC", "2026-01-01 00:16 UTC"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, runs(scheduleOf(t, tc.schedule), tc.from, len(tc.want))); diff != "" {
				t.Fatalf("runs after %s (-want +got):\n%s", tc.from, diff)
			}
		})
	}
}

func TestLatest(t *testing.T) {
	daily := scheduleOf(t, `{cron: "0 6 * * *", zone: Europe/Berlin}`)
	last := time.Date(2026, 3, 1, 5, 0, 0, 0, time.UTC) // 06:00 CET: the run of March 1
	for _, tc := range []struct {
		now  time.Time
		want string // "" for none
	}{
		{time.Date(2026, 3, 2, 4, 59, 0, 0, time.UTC), ""},
		{time.Date(2026, 3, 2, 5, 0, 0, 0, time.UTC), "2026-03-02 06:00 CET"},
		{time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC), "2026-03-02 06:00 CET"},
		{time.Date(2027, 8, 1, 0, 0, 0, 0, time.UTC), "2027-07-31 06:00 CEST"}, // a long downtime
	} {
		got, ok := daily.Latest(last, tc.now)
		if s := got.Format("2006-01-02 15:04 MST"); ok != (tc.want != "") || ok && s != tc.want {
			t.Errorf("Latest(%s, %s) = %s, %v; want %q", last, tc.now, s, ok, tc.want)
		}
	}
	every := scheduleOf(t, `{every: 30s}`)
	got, ok := every.Latest(time.Unix(100, 0), time.Unix(1000, 0))
	if !ok || !got.Equal(time.Unix(990, 0)) {
		t.Errorf("every 30s Latest = %s, %v; want 990 s", got, ok)
	}
	if _, ok := every.Latest(time.Unix(990, 0), time.Unix(1019, 0)); ok {
		t.Error("every 30s: nothing is due in (990 s, 1019 s]")
	}
}

// A bad schedule is refused at its position, with the cron parser's message.
func TestScheduleErrors(t *testing.T) {
	cases := []struct{ name, schedule, want string }{
		{"bad cron", `{cron: "0 25 * * *"}`, `r.yaml:3:22: rule "a": cron "0 25 * * *": end of range (25) above maximum (23): 25`},
		{"cron fields", "\n      cron: '0 6 * *'", `r.yaml:4:13: rule "a": cron "0 6 * *": expected exactly 5 fields, found 4: [0 6 * *]`},
		{"every 0", `{every: 0s}`, `r.yaml:3:23: rule "a": schedule every 0s: must be at least 1s`},
		{"every below 1s", "\n      every: 500ms", `r.yaml:4:14: rule "a": schedule every 500ms: must be at least 1s`},
		{"negative every", `{every: -5s}`, `r.yaml:3:23: negative duration "-5s"`},
		{"unknown zone", `{cron: "0 6 * * *", zone: Europe/Atlantis}`, `r.yaml:3:41: rule "a": zone "Europe/Atlantis": unknown time zone`},
		{"local zone", `{cron: "0 6 * * *", zone: Local}`, `r.yaml:3:41: rule "a": zone "Local": name the zone`},
		{"zone with every", `{every: 1m, zone: UTC}`, "r.yaml:3:33: rule \"a\": `zone` applies to `cron`"},
		{"neither", `{catch_up: true}`, "r.yaml:3:15: rule \"a\": schedule needs `every`"},
		{"both", `{every: 1m, cron: "* * * * *"}`, "r.yaml:3:15: rule \"a\": schedule takes `every` or `cron`, not both"},
		{"zone in the cron text", `{cron: "CRON_TZ=Europe/Berlin 0 6 * * *"}`, "r.yaml:3:22: rule \"a\": cron \"CRON_TZ=Europe/Berlin 0 6 * * *\": give the time zone as `zone:`"},
		{"@every", `{cron: "@every 1h"}`, "r.yaml:3:22: rule \"a\": cron \"@every 1h\": write an interval as `every:`"},
		{"never", `{cron: "0 0 30 2 *"}`, `r.yaml:3:22: rule "a": cron "0 0 30 2 *" never runs`},
		{"unknown key", `{every: 1m, at: 5}`, `r.yaml:3:27: unknown key "at" (keys: every, cron, zone, catch_up)`},
		{"not a mapping", `daily`, "r.yaml:3:15: schedule must be a mapping"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checkLoadError(t, "rules:\n  - name: a\n    schedule: "+c.schedule+"\n"+okAction, c.want)
		})
	}
	rules := []struct{ name, rule, want string }{
		{"on and schedule", "    on: x\n    schedule: {every: 1m}\n", "r.yaml:4:15: rule \"a\" takes `on` or `schedule`, not both"},
		{"for", "    schedule: {every: 1m}\n    for: 1m\n", "r.yaml:2:11: rule \"a\": `for` does not apply to a scheduled rule"},
		{"key", "    schedule: {every: 1m}\n    key: topic\n", "r.yaml:2:11: rule \"a\": `key` does not apply"},
		{"window", "    schedule: {every: 1m}\n    window: {count: 2, of: 1}\n", "r.yaml:2:11: rule \"a\": `window` does not apply"},
		{"throttle", "    schedule: {every: 1m}\n    throttle: 1m\n", "r.yaml:2:11: rule \"a\": `throttle` does not apply"},
		{"prev", "    schedule: {every: 1m}\n    if: prev == nil\n", "r.yaml:2:11: rule \"a\": `prev` does not apply"},
		{"neither on nor schedule", "", "r.yaml:2:11: rule \"a\" needs `on`: an MQTT topic filter or a list of them (or a `schedule`)"},
	}
	for _, c := range rules {
		t.Run(c.name, func(t *testing.T) {
			checkLoadError(t, "rules:\n  - name: a\n"+c.rule+okAction, c.want)
		})
	}
}

func checkLoadError(t *testing.T, src, want string) {
	t.Helper()
	dir := writeFiles(t, map[string]string{"r.yaml": src})
	_, err := Load([]string{dir}, Options{})
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("Load = %v; want Errors with %q", err, want)
	}
	for _, e := range es {
		if strings.HasPrefix(strings.TrimPrefix(e.Error(), dir+string(filepath.Separator)), want) {
			return
		}
	}
	t.Fatalf("got errors:\n%v\nwant one starting with %q", err, want)
}

const tickRules = `
functions:
  report: {runtime: sh, code: cat}
rules:
  - name: heartbeat
    schedule: {every: 30s}
    do:
      - publish: {topic: '"hb"', payload: '{"at": schedule.at.Unix(), "rule": schedule.rule, "topic": topic, "parts": len(topic_parts), "payload": payload, "now": now.Unix()}'}
  - name: morning
    schedule: {cron: "0 6 * * *", zone: Europe/Berlin, catch_up: true}
    if: int(schedule.at.Weekday()) != 6
    do:
      - invoke: report
        args: {hour: schedule.at.Hour(), catch_up: schedule.catch_up}
  - name: on-event
    on: s/+
    do: [{publish: {topic: '"ev"', payload: 'schedule.rule'}}]
`

func TestTickCatchUpAndRunSchedule(t *testing.T) {
	set := compileSrc(t, tickRules, Options{})
	e := set.NewEvaluator()
	start := time.Date(2026, 3, 2, 4, 59, 50, 0, time.UTC) // Monday 05:59:50 CET
	set.Arm(start)
	if got, want := set.NextRun(), start.Add(10*time.Second); !got.Equal(want) {
		t.Fatalf("NextRun = %s, want %s", got, want)
	}
	// Due at 05:00:00 UTC: heartbeat, and morning (06:00 CET) after it, in file order.
	fs := e.Tick(start.Add(10*time.Second), nil)
	if len(fs) != 2 || fs[0].Rule != "heartbeat" || fs[1].Rule != "morning" {
		t.Fatalf("firings %+v", fs)
	}
	due := start.Add(10 * time.Second).Unix()
	hb := fs[0].Actions[0].Payload.(map[string]any)
	if diff := cmp.Diff(map[string]any{"at": due, "rule": "heartbeat", "topic": "", "parts": 0, "payload": nil, "now": due}, hb); diff != "" {
		t.Errorf("a run's variables (-want +got):\n%s", diff)
	}
	if fs[0].Key != "" || fs[0].Schedule == nil || fs[0].Schedule.CatchUp {
		t.Errorf("firing %+v", fs[0])
	}
	if diff := cmp.Diff(map[string]any{"hour": 6, "catch_up": false}, fs[1].Actions[0].Args); diff != "" {
		t.Errorf("morning args (-want +got):\n%s", diff)
	}
	// Waking 95 s late runs the heartbeat once, as its latest due time.
	fs = e.Tick(start.Add(105*time.Second), nil)
	if len(fs) != 1 || fs[0].Schedule.At.Unix() != due+90 || fs[0].Time.Unix() != due+95 {
		t.Fatalf("late tick: %+v", fs)
	}
	if got := set.Rule("heartbeat").NextRun().Unix(); got != due+120 {
		t.Errorf("next run %d, want %d", got, due+120)
	}
	if c := set.Rule("heartbeat").Counters(); c.Matched.Load() != 2 || c.Fired.Load() != 2 {
		t.Errorf("heartbeat counters matched=%d fired=%d", c.Matched.Load(), c.Fired.Load())
	}
	// An event sees an empty schedule.
	if fs := e.Eval(ev("s/a", `1`, 0), nil); len(fs) != 1 || fs[0].Actions[0].Payload != "" {
		t.Errorf("event firings %+v", fs)
	}

	// A restart on Thursday 12:00 after a last run on Monday: morning catches up once, as
	// Thursday's 06:00; heartbeat has no catch_up.
	set = compileSrc(t, tickRules, Options{})
	e = set.NewEvaluator()
	restart := time.Date(2026, 3, 5, 11, 0, 0, 0, time.UTC)
	fs = e.CatchUp(map[string]time.Time{"morning": time.Date(2026, 3, 2, 5, 0, 0, 0, time.UTC), "heartbeat": time.Unix(0, 0)}, restart, nil)
	if len(fs) != 1 || fs[0].Rule != "morning" || !fs[0].Time.Equal(restart) ||
		fs[0].Schedule.At.Format(time.RFC3339) != "2026-03-05T06:00:00+01:00" || fs[0].Actions[0].Args["catch_up"] != true {
		t.Fatalf("catch-up firings %+v", fs)
	}
	if got := set.Rule("morning").LastRun().Format(time.RFC3339); got != "2026-03-05T06:00:00+01:00" {
		t.Errorf("morning's last run %s", got)
	}
	// Nothing missed: no catch-up.
	if fs := set.Fresh().NewEvaluator().CatchUp(map[string]time.Time{"morning": restart.Add(-time.Hour)}, restart, nil); len(fs) != 0 {
		t.Errorf("catch-up with nothing missed: %+v", fs)
	}

	// A dry run of a rule at a time: no clock moves.
	fs, err := e.RunSchedule("morning", time.Date(2026, 3, 7, 5, 0, 0, 0, time.UTC), nil)
	if err != nil || len(fs) != 0 { // a Saturday
		t.Errorf("RunSchedule on a Saturday = %+v, %v", fs, err)
	}
	if _, err := e.RunSchedule("on-event", restart, nil); err == nil {
		t.Error("RunSchedule of a rule without a schedule must fail")
	}
	if !set.Rule("morning").NextRun().IsZero() {
		t.Error("RunSchedule must not arm the rule")
	}
}

func TestAdoptKeepsAnUnchangedSchedule(t *testing.T) {
	src := func(every, catchUp string) string {
		return "rules:\n  - {name: a, schedule: {every: " + every + ", catch_up: " + catchUp + "}, do: [{publish: {topic: '\"x\"'}}]}\n" +
			"  - {name: b, schedule: {every: 1m}, do: [{publish: {topic: '\"x\"'}}]}\n"
	}
	start := time.Unix(1000, 0)
	old := compileSrc(t, src("1m", "false"), Options{})
	old.Arm(start)
	old.NewEvaluator().Tick(time.Unix(1020, 0), nil)
	for _, tc := range []struct {
		name, every, catchUp string
		want                 Diff
		next                 time.Time // of a after Adopt, before Arm
	}{
		{"unchanged", "1m", "false", Diff{Kept: []string{"a", "b"}}, time.Unix(1080, 0)},
		{"catch_up", "1m", "true", Diff{Changed: []string{"a"}, Kept: []string{"b"}}, time.Unix(1080, 0)},
		{"interval", "2m", "false", Diff{Reset: []string{"a"}, Kept: []string{"b"}}, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next := compileSrc(t, src(tc.every, tc.catchUp), Options{})
			d := next.Adopt(old)
			if diff := cmp.Diff(tc.want, d, cmpEmptyLists); diff != "" {
				t.Errorf("diff (-want +got):\n%s", diff)
			}
			if got := next.Rule("a").NextRun(); !got.Equal(tc.next) {
				t.Errorf("a's next run %s, want %s", got, tc.next)
			}
			next.Arm(time.Unix(1030, 0))
			if tc.next.IsZero() && !next.Rule("a").NextRun().Equal(time.Unix(1080, 0)) {
				t.Errorf("a reset schedule arms from the reload: next %s", next.Rule("a").NextRun())
			}
		})
	}
}

// Rule tests move the clock: schedules run at their due times between events, and a clock
// step (an entry without topic) runs those due until it.
func TestRuleTestAdvancesTime(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"r.yaml": tickRules,
		"r_test.yaml": `
start: 2026-03-02T05:58:50+01:00
tests:
  - name: heartbeats and the morning report
    events:
      - {at: 5s, topic: s/a}
      - {at: 70s}
    expect:
      - {at: 5s, rule: on-event}
      - {at: 10s, rule: heartbeat, key: ""}
      - {at: 40s, rule: heartbeat}
      - {at: 70s, rule: heartbeat}
      - at: 70s
        rule: morning
        actions: [{invoke: report, args: {hour: 6, catch_up: false}}]
  - name: a restart catches up once
    last_run: {morning: 2026-02-27T06:00:00+01:00}
    events: [{at: 9s}]
    expect:
      - at: 0s
        rule: morning
        catch_up: true
        actions: [{invoke: report, args: {hour: 6, catch_up: true}}]
  - name: wrong on purpose
    events: [{at: 20s}]
    expect: [{at: 11s, rule: heartbeat}]
`,
	})
	res, err := RunTestFile(filepath.Join(dir, "r_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("results %+v", res)
	}
	for _, r := range res[:2] {
		if !r.Passed() {
			t.Errorf("%s: %v\n%s", r.Name, r.Err, r.Diff)
		}
	}
	if want := "--- expected\n+++ got\n- at 11s: heartbeat\n+ at 10s: heartbeat\n"; res[2].Diff != want {
		t.Errorf("diff of a failing case:\n%s\nwant:\n%s", res[2].Diff, want)
	}
}

func TestRuleTestClockStepsAndLimits(t *testing.T) {
	for _, tc := range []struct{ name, test, want string }{
		{"payload without topic", "events: [{at: 1s, payload: 1}]", "an event without a topic is a clock step and takes only `at`"},
		{"bad last_run", "last_run: {heartbeat: yesterday}\n    events: []", `last_run of heartbeat "yesterday": expected RFC 3339 time`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTestFile("t_test.yaml", []byte("tests:\n  - name: x\n    "+tc.test+"\n    expect: []\n"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseTestFile = %v, want %q", err, tc.want)
			}
		})
	}
	dir := writeFiles(t, map[string]string{
		"r.yaml": "rules:\n  - {name: tick, schedule: {every: 1s}, if: 'false', do: [{publish: {topic: '\"x\"'}}]}\n" +
			"  - {name: on-event, on: s/+, do: [{publish: {topic: '\"x\"'}}]}\n",
		"r_test.yaml": "tests:\n  - {name: far, events: [{at: 100h}], expect: []}\n" +
			"  - {name: unknown, last_run: {on-event: 2026-01-01T00:00:00Z}, events: [], expect: []}\n",
	})
	res, err := RunTestFile(filepath.Join(dir, "r_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "more than 100000 scheduled runs") {
		t.Errorf("far: %v", res[0].Err)
	}
	if res[1].Err == nil || !strings.Contains(res[1].Err.Error(), `last_run: no scheduled rule "on-event"`) {
		t.Errorf("unknown: %v", res[1].Err)
	}
}

var cmpEmptyLists = cmp.Transformer("emptyLists", func(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
})
