package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/deviceless/deviceless/metrics"
)

// Usage metering (docs/functions.md#usage): every finished invocation is counted by
// function, version, agent, rule and caller, per minute, with its status, its run time in
// whole milliseconds (rounded up), its GB-ms (memory limit × run time) and whether it
// started cold. The figures live in the engine's store (usage.jsonl), not in InfluxDB:
// InfluxDB is optional and its sink drops points when it is away, so it could not give
// exact totals; it gets a deviceless_usage point per invocation for dashboards.
// (usage.jsonl lies in the engine's state folder, beside functions.jsonl.)

// usageKey is one bucket: a minute (or, after two days, an hour: then Minute is the
// hour's first minute) and the dimensions.
type usageKey struct {
	Minute   int64  `json:"m"` // minutes since the Unix epoch
	Function string `json:"f"`
	Version  int    `json:"v,omitempty"` // 0: a rule file's function
	Agent    string `json:"a,omitempty"`
	Rule     string `json:"r,omitempty"`
	Caller   string `json:"c,omitempty"`
}

// usageCounts are a bucket's figures.
type usageCounts struct {
	ByStatus map[string]int64 `json:"n"`
	RunMS    int64            `json:"run_ms"`
	MiBMS    int64            `json:"mib_ms"` // memory limit in MiB (rounded up) × run_ms
	Cold     int64            `json:"cold,omitempty"`
}

func (c *usageCounts) add(o *usageCounts) {
	if c.ByStatus == nil {
		c.ByStatus = map[string]int64{}
	}
	for s, n := range o.ByStatus {
		c.ByStatus[s] += n
	}
	c.RunMS += o.RunMS
	c.MiBMS += o.MiBMS
	c.Cold += o.Cold
}

// usageLine is one line of usage.jsonl: a bucket's figures, or what was added to them
// since the last line for the bucket (the file is a log of additions, compacted at
// start and daily).
type usageLine struct {
	usageKey
	usageCounts
}

// usageRecord is one finished invocation as the meter counts it.
type usageRecord struct {
	Function string
	Version  int
	Agent    string
	Rule     string
	Caller   string
	Status   string
	RunMS    int64 // whole milliseconds, rounded up
	Memory   int64 // bytes
	Cold     bool
	At       time.Time
}

// mib is a memory limit in MiB, rounded up: GB-ms are counted in MiB-ms, integers that
// add up exactly (GB-ms = MiB-ms / 1024, also exact).
func mib(bytes int64) int64 { return (bytes + 1<<20 - 1) >> 20 }

// runMS is a run time in whole milliseconds, rounded up (as serverless platforms bill).
func runMS(ms float64) int64 {
	if ms <= 0 || math.IsNaN(ms) {
		return 0
	}
	return int64(math.Ceil(ms))
}

// usageMeter keeps the figures in memory and in the store.
type usageMeter struct {
	cfg FunctionsConfig
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	buckets map[usageKey]*usageCounts
	dirty   map[usageKey]*usageCounts // added since the last flush
	store   *appendLog                // nil: in memory
}

// minuteRollup is the age from which minute buckets are merged into hours.
const minuteRollup = 48 * time.Hour

func openUsage(dir string, cfg FunctionsConfig, log *slog.Logger, now func() time.Time) (*usageMeter, error) {
	u := &usageMeter{cfg: cfg, log: log, now: now, buckets: map[usageKey]*usageCounts{}, dirty: map[usageKey]*usageCounts{}}
	if dir == "" {
		return u, nil
	}
	store, lines, err := openAppendLog(filepath.Join(dir, "usage.jsonl"), log)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	for i, line := range lines {
		var l usageLine
		if err := json.Unmarshal(line, &l); err != nil {
			store.Close()
			return nil, fmt.Errorf("state: %s line %d: %w", store.path, i+1, err)
		}
		u.bucket(u.buckets, l.usageKey).add(&l.usageCounts)
	}
	u.store = store
	if err := u.compact(); err != nil {
		store.Close()
		return nil, fmt.Errorf("state: compacting %s: %w", store.path, err)
	}
	return u, nil
}

func (u *usageMeter) bucket(m map[usageKey]*usageCounts, k usageKey) *usageCounts {
	c := m[k]
	if c == nil {
		c = &usageCounts{ByStatus: map[string]int64{}}
		m[k] = c
	}
	return c
}

// record counts one finished invocation.
func (u *usageMeter) record(r usageRecord) {
	k := usageKey{Minute: r.At.Unix() / 60, Function: r.Function, Version: r.Version, Agent: r.Agent, Rule: r.Rule, Caller: r.Caller}
	add := usageCounts{ByStatus: map[string]int64{r.Status: 1}, RunMS: r.RunMS, MiBMS: mib(r.Memory) * r.RunMS}
	if r.Cold {
		add.Cold = 1
	}
	u.mu.Lock()
	u.bucket(u.buckets, k).add(&add)
	u.bucket(u.dirty, k).add(&add)
	u.mu.Unlock()
}

// flush appends what was counted since the last flush to the store.
func (u *usageMeter) flush() error {
	u.mu.Lock()
	if u.store == nil || len(u.dirty) == 0 {
		u.mu.Unlock()
		return nil
	}
	dirty := u.dirty
	u.dirty = map[usageKey]*usageCounts{}
	u.mu.Unlock()
	lines := make([][]byte, 0, len(dirty))
	for k, c := range dirty {
		b, _ := json.Marshal(usageLine{k, *c})
		lines = append(lines, b)
	}
	if err := u.store.Append(joinLines(lines)); err != nil {
		// Keep them for the next flush.
		u.mu.Lock()
		for k, c := range dirty {
			u.bucket(u.dirty, k).add(c)
		}
		u.mu.Unlock()
		return err
	}
	return nil
}

func joinLines(lines [][]byte) []byte {
	var n int
	for _, l := range lines {
		n += len(l) + 1
	}
	out := make([]byte, 0, n)
	for i, l := range lines {
		if i > 0 {
			out = append(out, '\n')
		}
		out = append(out, l...)
	}
	return out
}

// compact merges minute buckets older than two days into hours, drops what is older than
// the retention, and rewrites the store with one line per bucket.
func (u *usageMeter) compact() error {
	if err := u.flush(); err != nil {
		return err
	}
	nowMin := u.now().Unix() / 60
	rollup, oldest := nowMin-int64(minuteRollup/time.Minute), nowMin-int64(u.cfg.UsageRetention/time.Minute)
	u.mu.Lock()
	for k, c := range u.buckets {
		switch {
		case k.Minute < oldest:
			delete(u.buckets, k)
		case k.Minute < rollup && k.Minute%60 != 0:
			delete(u.buckets, k)
			h := k
			h.Minute -= k.Minute % 60
			u.bucket(u.buckets, h).add(c)
		}
	}
	if u.store == nil {
		u.mu.Unlock()
		return nil
	}
	lines := make([][]byte, 0, len(u.buckets))
	for k, c := range u.buckets {
		b, _ := json.Marshal(usageLine{k, *c})
		lines = append(lines, b)
	}
	// The rewrite holds everything counted so far.
	dirty := u.dirty
	u.dirty = map[usageKey]*usageCounts{}
	u.mu.Unlock()
	slices.SortFunc(lines, func(a, b []byte) int { return strings.Compare(string(a), string(b)) })
	if err := u.store.Rewrite(lines); err != nil {
		u.mu.Lock()
		for k, c := range dirty {
			u.bucket(u.dirty, k).add(c)
		}
		u.mu.Unlock()
		return err
	}
	return nil
}

// run flushes every UsageFlush and compacts daily until ctx ends, then flushes once more.
func (u *usageMeter) run(ctx context.Context) {
	flush := time.NewTicker(u.cfg.UsageFlush)
	defer flush.Stop()
	compact := time.NewTicker(24 * time.Hour)
	defer compact.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := u.flush(); err != nil {
				u.log.Error("usage figures not stored", "err", err)
			}
			return
		case <-flush.C:
			if err := u.flush(); err != nil {
				u.log.Error("usage figures not stored; trying again", "err", err)
			}
		case <-compact.C:
			if err := u.compact(); err != nil {
				u.log.Error("usage store not compacted", "err", err)
			}
		}
	}
}

func (u *usageMeter) close() {
	if u.store != nil {
		u.store.Close()
	}
}

// Usage dimensions for /api/v1/usage's `by`.
var usageDims = []string{"function", "version", "agent", "rule", "caller"}

// UsageRow is one row of /api/v1/usage: the figures of one combination of the grouped
// dimensions (the others are left out).
type UsageRow struct {
	Function    string           `json:"function,omitempty"`
	Version     int              `json:"version,omitempty"`
	Agent       string           `json:"agent,omitempty"`
	Rule        string           `json:"rule,omitempty"`
	Caller      string           `json:"caller,omitempty"`
	Invocations int64            `json:"invocations"`
	ByStatus    map[string]int64 `json:"by_status"`
	RunMS       int64            `json:"run_ms"`
	GBMS        float64          `json:"gb_ms"`
	ColdStarts  int64            `json:"cold_starts"`
}

func (r *UsageRow) add(c *usageCounts) {
	if r.ByStatus == nil {
		r.ByStatus = map[string]int64{}
	}
	for s, n := range c.ByStatus {
		r.ByStatus[s] += n
		r.Invocations += n
	}
	r.RunMS += c.RunMS
	r.GBMS += float64(c.MiBMS) / 1024
	r.ColdStarts += c.Cold
}

// query sums the buckets whose minute lies in [from, to) (from rounded down, to up, to
// the minute; hours older than two days count where they start) and whose function keep
// admits, grouped by the dimensions of by. It returns the rows, sorted, and their total.
func (u *usageMeter) query(from, to time.Time, by []string, keep func(function string) bool) ([]UsageRow, UsageRow) {
	fromMin, toMin := floorDiv(from.Unix(), 60), floorDiv(to.Unix(), 60)
	if to.Unix()%60 != 0 || to.Nanosecond() != 0 {
		toMin++ // the minute to falls in counts
	}
	type dims struct {
		function, agent, rule, caller string
		version                       int
	}
	group := map[dims]*UsageRow{}
	total := UsageRow{ByStatus: map[string]int64{}}
	u.mu.Lock()
	for k, c := range u.buckets {
		if k.Minute < fromMin || k.Minute >= toMin || !keep(k.Function) {
			continue
		}
		var g dims
		for _, d := range by {
			switch d {
			case "function":
				g.function = k.Function
			case "version":
				g.function, g.version = k.Function, k.Version
			case "agent":
				g.agent = k.Agent
			case "rule":
				g.rule = k.Rule
			case "caller":
				g.caller = k.Caller
			}
		}
		row := group[g]
		if row == nil {
			row = &UsageRow{Function: g.function, Version: g.version, Agent: g.agent, Rule: g.rule, Caller: g.caller}
			group[g] = row
		}
		row.add(c)
		total.add(c)
	}
	u.mu.Unlock()
	rows := make([]UsageRow, 0, len(group))
	for _, r := range group {
		rows = append(rows, *r)
	}
	slices.SortFunc(rows, func(a, b UsageRow) int {
		return strings.Compare(fmt.Sprintf("%s\x00%09d\x00%s\x00%s\x00%s", a.Function, a.Version, a.Agent, a.Rule, a.Caller),
			fmt.Sprintf("%s\x00%09d\x00%s\x00%s\x00%s", b.Function, b.Version, b.Agent, b.Rule, b.Caller))
	})
	return rows, total
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// usagePoint is the deviceless_usage point of one invocation.
func usagePoint(r usageRecord) metrics.Point {
	return metrics.Usage(metrics.UsageRecord{Function: r.Function, Version: r.Version, Agent: r.Agent, Rule: r.Rule,
		Caller: r.Caller, Status: r.Status, Cold: r.Cold, RunMS: r.RunMS, MiBMS: mib(r.Memory) * r.RunMS, Time: r.At})
}

// LogEntry is one finished invocation as `deviceless logs` shows it: on failure, Error
// holds the agent's message with the tail of the function's stderr.
type LogEntry struct {
	At       time.Time `json:"at"`
	ID       string    `json:"id"`
	Function string    `json:"function"` // the version's reference (name@N) for a deployed function
	Agent    string    `json:"agent,omitempty"`
	Rule     string    `json:"rule,omitempty"`
	Caller   string    `json:"caller,omitempty"`
	Status   string    `json:"status"`
	ExitCode int       `json:"exit_code"`
	Cold     bool      `json:"cold"`
	RunMS    float64   `json:"run_ms"`
	Error    string    `json:"error,omitempty"`
}

// functionLogs keeps the last n finished invocations of each function name (all its
// versions together), for at most maxLogFunctions names.
type functionLogs struct {
	mu sync.Mutex
	n  int
	by map[string]*logRing
}

const maxLogFunctions = 10000

type logRing struct {
	buf  []LogEntry
	next int
	full bool
}

func newFunctionLogs(n int) *functionLogs { return &functionLogs{n: n, by: map[string]*logRing{}} }

func (l *functionLogs) add(name string, e LogEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.by[name]
	if r == nil {
		if len(l.by) >= maxLogFunctions {
			for k := range maps.Keys(l.by) { // any one: a flood of names, not a real set
				delete(l.by, k)
				break
			}
		}
		r = &logRing{buf: make([]LogEntry, l.n)}
		l.by[name] = r
	}
	r.buf[r.next] = e
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

// list returns up to limit entries of name, newest first.
func (l *functionLogs) list(name string, limit int) []LogEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []LogEntry{}
	r := l.by[name]
	if r == nil {
		return out
	}
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	if limit <= 0 || limit > n {
		limit = n
	}
	for i := 1; i <= limit; i++ {
		out = append(out, r.buf[(r.next-i+len(r.buf))%len(r.buf)])
	}
	return out
}

func (l *functionLogs) drop(name string) {
	l.mu.Lock()
	delete(l.by, name)
	l.mu.Unlock()
}

// observe meters a finished invocation and keeps it in its function's log (a
// resultObserver, set up in New after the history).
func (f *functionRegistry) observe(fin *finished) {
	name, version, _ := splitRef(fin.Function)
	c := fin.Caller
	if c == "" && fin.Rule != "" {
		c = ruleCaller(fin.Rule).String()
	}
	r := usageRecord{Function: name, Version: version, Agent: fin.Agent, Rule: fin.Rule, Caller: c, Status: fin.Status,
		RunMS: runMS(fin.Timings.Run), Memory: fin.memory, Cold: fin.Cold, At: fin.Finished}
	f.usage.record(r)
	if _, off := f.sink.(metrics.Nop); !off {
		f.sink.Write(usagePoint(r))
	}
	f.logs.add(name, LogEntry{At: fin.Finished, ID: fin.ID, Function: fin.Function, Agent: fin.Agent, Rule: fin.Rule, Caller: c,
		Status: fin.Status, ExitCode: fin.ExitCode, Cold: fin.Cold, RunMS: fin.Timings.Run, Error: fin.Error})
}
