package rules

import (
	"fmt"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // zones load the same on a device without /usr/share/zoneinfo

	"github.com/robfig/cron/v3"
)

// Scheduled rules run on a clock instead of on events (docs/rules.md#schedules). The
// cron syntax is robfig/cron's standard parser (five fields and @daily-style
// descriptors); the times it gives are adjusted for daylight saving time the way Vixie
// cron does (see Schedule.Next).

// MinEvery is the shortest interval a schedule may have.
const MinEvery = time.Second

// Schedule is when a scheduled rule runs: every fixed interval, counted from the Unix
// epoch, or at the times of a cron expression in a time zone.
type Schedule struct {
	Every   time.Duration
	Cron    string
	Zone    *time.Location // cron only; UTC unless `zone` names one
	CatchUp bool

	spec *cron.SpecSchedule
}

func (s *Schedule) String() string {
	if s.Every > 0 {
		return "every " + s.Every.String()
	}
	return "cron " + s.Cron + " (" + s.Zone.String() + ")"
}

// cronParser reads the standard five fields (minute, hour, day of month, month, day of
// week) and descriptors such as @daily.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// schedule checks and compiles a rule's `schedule`, reporting problems at their position.
func (c *compiler) schedule(rule string, d *ScheduleDef) *Schedule {
	s := &Schedule{Every: d.Every.D(), Cron: strings.TrimSpace(d.Cron.Value), Zone: time.UTC, CatchUp: d.CatchUp}
	everyPos := d.EveryPos
	if everyPos.Line == 0 {
		everyPos = d.Pos
	}
	switch {
	case d.EveryPos.Line == 0 && d.Cron.Value == "":
		c.errf(d.Pos, "rule %q: schedule needs `every` (a duration such as 30s) or `cron` (such as \"0 6 * * *\")", rule)
		return nil
	case d.EveryPos.Line != 0 && d.Cron.Value != "":
		c.errf(d.Pos, "rule %q: schedule takes `every` or `cron`, not both", rule)
		return nil
	case d.EveryPos.Line != 0:
		if s.Every < MinEvery {
			c.errf(everyPos, "rule %q: schedule every %s: must be at least %s", rule, s.Every, MinEvery)
			return nil
		}
		if d.Zone.Value != "" {
			c.errf(d.Zone.Pos, "rule %q: `zone` applies to `cron`; `every` counts from the Unix epoch whatever the zone", rule)
			return nil
		}
		return s
	}
	ok := true
	if z := d.Zone.Value; z != "" {
		loc, err := loadZone(z)
		if err != nil {
			c.errf(d.Zone.Pos, "rule %q: zone %q: %v", rule, z, err)
			ok = false
		} else {
			s.Zone = loc
		}
	}
	if strings.HasPrefix(s.Cron, "TZ=") || strings.HasPrefix(s.Cron, "CRON_TZ=") {
		c.errf(d.Cron.Pos, "rule %q: cron %q: give the time zone as `zone:` (an IANA name such as Europe/Berlin)", rule, s.Cron)
		return nil
	}
	if strings.HasPrefix(s.Cron, "@every") {
		c.errf(d.Cron.Pos, "rule %q: cron %q: write an interval as `every:` (such as every: 30s)", rule, s.Cron)
		return nil
	}
	parsed, err := cronParser.Parse(s.Cron)
	if err != nil {
		c.errf(d.Cron.Pos, "rule %q: cron %q: %v", rule, s.Cron, err)
		return nil
	}
	spec, isSpec := parsed.(*cron.SpecSchedule)
	if !isSpec || !ok {
		if !isSpec {
			c.errf(d.Cron.Pos, "rule %q: cron %q: not a cron expression", rule, s.Cron)
		}
		return nil
	}
	spec.Location = s.Zone
	s.spec = spec
	if s.spec.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		c.errf(d.Cron.Pos, "rule %q: cron %q never runs (no such date within five years)", rule, s.Cron)
		return nil
	}
	return s
}

// loadZone loads an IANA time zone. "Local" is refused: a rule would then run at other
// times on the engine than in `rules test` on another machine.
func loadZone(name string) (*time.Location, error) {
	if name == "Local" {
		return nil, fmt.Errorf("name the zone (such as Europe/Berlin): the engine machine's own zone would make rule tests depend on the machine")
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone: use an IANA name such as Europe/Berlin, America/New_York or UTC")
	}
	return loc, nil
}

// Next returns the schedule's first run strictly after t.
//
// `every` runs at the multiples of its interval since 1970-01-01T00:00:00Z, so `every:
// 1h` runs on the hour (UTC) and a restart does not shift the runs. A cron expression runs
// at the wall-clock times it names in its zone, with daylight saving time handled as
// Vixie cron does when the hour field is not `*`: a time that clocks going forward skip
// runs at the moment they jump (a 02:30 job runs at 03:00), and a time that clocks going
// back repeat runs once, the first time. With `*` as the hour, runs follow real time
// (an hourly job runs every real hour, twice at 02:00 when clocks go back).
func (s *Schedule) Next(t time.Time) time.Time {
	if s.Every > 0 {
		d := int64(s.Every)
		ns := t.UnixNano()
		k := ns / d
		if ns < 0 && ns%d != 0 {
			k-- // floor for times before the epoch
		}
		return time.Unix(0, (k+1)*d).UTC()
	}
	for i := 0; i < 1000; i++ { // a repeated time is skipped: a few times an hour at most
		n := s.spec.Next(t)
		if n.IsZero() {
			return n
		}
		n = n.In(s.Zone)
		if s.spec.Hour&starBit != 0 {
			return n
		}
		if j, ok := s.jumpedOver(t, n); ok {
			return j
		}
		if !repeated(n) {
			return n
		}
		t = n
	}
	return time.Time{}
}

// starBit is how robfig/cron marks a field written as `*`.
const starBit = 1 << 63

// jumpedOver reports the earliest moment in (after, n] at which clocks went forward over a
// wall-clock time the schedule names: the run it skipped is due then.
func (s *Schedule) jumpedOver(after, n time.Time) (time.Time, bool) {
	at := after.In(s.Zone)
	for i := 0; i < 100; i++ {
		_, end := at.ZoneBounds()
		if end.IsZero() || end.After(n) {
			return time.Time{}, false
		}
		_, before := end.Add(-time.Nanosecond).Zone()
		_, since := end.Zone()
		if since > before && end.After(after) {
			// The wall-clock times [end, end+gap) in the old offset never happened.
			fixed := *s.spec
			fixed.Location = time.FixedZone("", before)
			if m := fixed.Next(end.Add(-time.Second)); !m.IsZero() && m.Before(end.Add(time.Duration(since-before)*time.Second)) {
				return end.In(s.Zone), true
			}
		}
		at = end
	}
	return time.Time{}, false
}

// repeated reports whether t's wall-clock time already happened once, before clocks went
// back.
func repeated(t time.Time) bool {
	start, _ := t.ZoneBounds()
	if start.IsZero() {
		return false
	}
	_, before := start.Add(-time.Nanosecond).Zone()
	_, since := t.Zone()
	return before > since && t.Sub(start) < time.Duration(before-since)*time.Second
}

// Latest returns the schedule's last run in (after, now], if there is one: the run that
// stands for all of them when several were missed.
func (s *Schedule) Latest(after, now time.Time) (time.Time, bool) {
	first := s.Next(after)
	if first.IsZero() || first.After(now) {
		return time.Time{}, false
	}
	if s.Every > 0 {
		d := int64(s.Every)
		ns := now.UnixNano()
		k := ns / d
		if ns < 0 && ns%d != 0 {
			k--
		}
		return time.Unix(0, k*d).UTC(), true
	}
	// Look back from now over a window that doubles until it holds a run, then walk
	// forward: a few calls of Next whatever the downtime.
	for w := time.Minute; ; w *= 2 {
		from := now.Add(-w)
		if w > 1000*24*time.Hour || !from.After(after) {
			from = after // t is first then
		}
		t := s.Next(from)
		if t.IsZero() || t.After(now) {
			continue
		}
		for {
			n := s.Next(t)
			if n.IsZero() || n.After(now) {
				return t, true
			}
			t = n
		}
	}
}

// schedState is a scheduled rule's clock: its next run, and the last run it evaluated.
// A reload that keeps the rule's schedule carries it over (Set.Adopt).
type schedState struct {
	mu   sync.Mutex
	next time.Time // zero until armed
	last time.Time
}

// NextRun is the rule's next run (zero: not scheduled, or not armed yet).
func (r *Rule) NextRun() time.Time {
	if r.sched == nil {
		return time.Time{}
	}
	r.sched.mu.Lock()
	defer r.sched.mu.Unlock()
	return r.sched.next
}

// LastRun is the due time of the rule's last run (zero: none known).
func (r *Rule) LastRun() time.Time {
	if r.sched == nil {
		return time.Time{}
	}
	r.sched.mu.Lock()
	defer r.sched.mu.Unlock()
	return r.sched.last
}

// Arm sets the next run of every scheduled rule that has none, to its first run after
// now. Rules carried over by a reload keep theirs. Call it when a set starts running.
func (s *Set) Arm(now time.Time) {
	for _, r := range s.Rules {
		if r.sched == nil {
			continue
		}
		r.sched.mu.Lock()
		if r.sched.next.IsZero() {
			r.sched.next = r.Schedule.Next(now)
		}
		r.sched.mu.Unlock()
	}
}

// NextRun is the earliest next run of the set's armed scheduled rules (zero: none).
func (s *Set) NextRun() time.Time {
	var next time.Time
	for _, r := range s.Rules {
		if t := r.NextRun(); !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

// Tick runs the scheduled rules whose next run is due at now, in file order, and appends
// their firings. A rule whose next run passed more than once (the engine woke late) runs
// once, as its latest due time. Each rule's next run moves past now.
func (e *Evaluator) Tick(now time.Time, dst []Firing) []Firing {
	for _, r := range e.set.Rules {
		if r.sched == nil {
			continue
		}
		r.sched.mu.Lock()
		next := r.sched.next
		if next.IsZero() || next.After(now) {
			r.sched.mu.Unlock()
			continue
		}
		at, _ := r.Schedule.Latest(next.Add(-time.Nanosecond), now)
		r.sched.last, r.sched.next = at, r.Schedule.Next(at)
		r.sched.mu.Unlock()
		if f, ok := e.runSchedule(r, ScheduleRun{Rule: r.Name, At: at}, now); ok {
			dst = append(dst, f)
		}
	}
	return dst
}

// CatchUp starts a set from the last runs known before a restart (rule name → due time
// of its last run): each rule takes its last run, and a rule with `catch_up: true` whose
// schedule was due since then runs once now, as its latest missed due time, with
// schedule.catch_up true. Call it once, before Arm.
func (e *Evaluator) CatchUp(last map[string]time.Time, now time.Time, dst []Firing) []Firing {
	for _, r := range e.set.Rules {
		l, known := last[r.Name]
		if r.sched == nil || !known || l.IsZero() {
			continue
		}
		r.sched.mu.Lock()
		r.sched.last = l
		at, missed := r.Schedule.Latest(l, now)
		if missed && r.Schedule.CatchUp {
			r.sched.last = at
		}
		r.sched.mu.Unlock()
		if !missed || !r.Schedule.CatchUp {
			continue
		}
		if f, ok := e.runSchedule(r, ScheduleRun{Rule: r.Name, At: at, CatchUp: true}, now); ok {
			dst = append(dst, f)
		}
	}
	return dst
}

// RunSchedule evaluates the scheduled rule name as if it were due at at (a dry run): its
// clock is not moved.
func (e *Evaluator) RunSchedule(name string, at time.Time, dst []Firing) ([]Firing, error) {
	r := e.set.Rule(name)
	if r == nil || r.Schedule == nil {
		return dst, fmt.Errorf("no scheduled rule %q", name)
	}
	if f, ok := e.runSchedule(r, ScheduleRun{Rule: name, At: at}, at); ok {
		dst = append(dst, f)
	}
	return dst, nil
}

// runSchedule evaluates one run of a scheduled rule: no topic, no payload (see
// docs/rules.md#schedules), the run in `schedule`.
func (e *Evaluator) runSchedule(r *Rule, run ScheduleRun, now time.Time) (Firing, bool) {
	r.counters.Matched.Add(1)
	e.env = Env{Now: now, Schedule: run, Fetch: fetchMember}
	if p := e.set.agents.Load(); p != nil {
		e.env.Agents = *p
	}
	f, ok := e.evalRule(r, now)
	if ok {
		f.Schedule = &run
	}
	return f, ok
}
