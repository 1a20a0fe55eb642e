package engine

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/deviceless/deviceless/protocol"
)

// The meter's figures survive a reopen exactly; minute buckets older than two days become
// hours, and buckets beyond the retention go, when the store is compacted.
func TestUsageMeterStoreAndCompaction(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2025, 6, 10, 12, 0, 30, 0, time.UTC)
	clock := func() time.Time { return now }
	cfg := FunctionsConfig{UsageRetention: 10 * 24 * time.Hour}
	log := slog.New(slog.DiscardHandler)
	u, err := openUsage(dir, cfg, log, clock)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(at time.Time, fn string, v int, status string, run float64, cold bool) {
		u.record(usageRecord{Function: fn, Version: v, Agent: "a1", Caller: "user:alice", Status: status, RunMS: runMS(run), Memory: 64 << 20, Cold: cold, At: at})
	}
	rec(now, "f", 1, protocol.StatusOK, 4.2, true)         // 5 ms, 320 MiB-ms
	rec(now, "f", 1, protocol.StatusError, 10, false)      // 10 ms
	rec(now.Add(-time.Minute), "f", 2, "ok", 0.001, false) // 1 ms
	rec(now.Add(-3*24*time.Hour-17*time.Minute), "f", 1, "ok", 2, false)
	rec(now.Add(-3*24*time.Hour-29*time.Minute), "f", 1, "ok", 3, false) // same hour as the one above
	rec(now.Add(-11*24*time.Hour), "f", 1, "ok", 100, false)             // beyond the retention after a compaction
	if err := u.flush(); err != nil {
		t.Fatal(err)
	}
	all := func(u *usageMeter, from time.Time) ([]UsageRow, UsageRow) {
		return u.query(from, now, []string{"version"}, func(string) bool { return true })
	}
	rows1, total1 := all(u, time.Unix(0, 0))
	if total1.Invocations != 6 || total1.RunMS != 5+10+1+2+3+100 || total1.GBMS != float64(64*(121))/1024 || total1.ColdStarts != 1 {
		t.Fatalf("total %+v", total1)
	}
	// The last minute only: the two invocations of now's minute and the one before it.
	if _, last := all(u, now.Add(-time.Minute)); last.Invocations != 3 || last.ByStatus["error"] != 1 {
		t.Fatalf("last minute %+v", last)
	}
	u.close()

	// Reopened (which compacts): the same figures, less what the retention drops.
	u2, err := openUsage(dir, cfg, log, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer u2.close()
	rows2, total2 := all(u2, time.Unix(0, 0))
	total1.Invocations, total1.RunMS, total1.GBMS = total1.Invocations-1, total1.RunMS-100, total1.GBMS-float64(64*100)/1024
	total1.ByStatus["ok"]--
	if diff := cmp.Diff(total1, total2); diff != "" {
		t.Errorf("total after reopening (-want +got):\n%s", diff)
	}
	if len(rows1) != 2 || len(rows2) != 2 {
		t.Errorf("rows %v, %v", rows1, rows2)
	}
	// The two old invocations share their hour now; the file has one line per bucket.
	data, err := os.ReadFile(filepath.Join(dir, "usage.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 3 {
		t.Errorf("compacted store has %d lines:\n%s", n, data)
	}
	if _, old := u2.query(now.Add(-3*24*time.Hour-60*time.Minute), now.Add(-3*24*time.Hour), []string{"function"}, func(string) bool { return true }); old.Invocations != 2 || old.RunMS != 5 {
		t.Errorf("the rolled-up hour: %+v", old)
	}
}

// A line cut off by a crash is dropped; the lines before it are kept.
func TestAppendLogCutsATornLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.jsonl")
	if err := os.WriteFile(p, []byte("{\"a\":1}\n{\"a\":2}\n{\"a\":"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, lines, err := openAppendLog(p, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 2 || string(lines[1]) != `{"a":2}` {
		t.Fatalf("lines %q", lines)
	}
	if err := l.Append([]byte(`{"a":3}`)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if data, _ := os.ReadFile(p); string(data) != "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n" {
		t.Errorf("file %q", data)
	}
}

func TestFunctionNames(t *testing.T) {
	for ref, want := range map[string]struct {
		name    string
		version int
		bad     bool
	}{
		"fan": {"fan", 0, false}, "alice.fan@3": {"alice.fan", 3, false}, "f@0": {"f", 0, true}, "f@": {"f", 0, true},
		"f@01": {"f", 0, true}, "f@x": {"f", 0, true},
	} {
		name, v, err := splitRef(ref)
		if name != want.name || v != want.version || (err != nil) != want.bad {
			t.Errorf("splitRef(%q) = %q, %d, %v", ref, name, v, err)
		}
	}
	for _, ok := range []string{"fan", "alice.fan-speed", "alice.fan.v2"} {
		if err := validFunctionName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a@1", "a/b", "alice.", "a..b", ".a", strings.Repeat("x", 129)} {
		if validFunctionName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if namespaceOf("alice.fan.v2") != "alice" || namespaceOf("fan") != "" {
		t.Error("namespaceOf")
	}
}
