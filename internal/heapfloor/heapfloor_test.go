package heapfloor

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		floor, live, roots uint64
		base, want         int
	}{
		{16 * mb, 1 * mb, 0, 100, 400},       // Go's minimum heap, 4 MB × 4, is the floor
		{16 * mb, 4 * mb, 0, 100, 300},       // goal = 4 + 4×3 = 16 MB
		{16 * mb, 4 * mb, 4 * mb, 100, 150},  // the roots count in Go's goal
		{16 * mb, 8 * mb, 0, 100, 100},       // twice the live heap reaches the floor
		{16 * mb, 20 * mb, 0, 100, 100},      // above the floor: the process's GOGC
		{16 * mb, 1 * mb, 0, 2000, 2000},     // never below the process's own GOGC
		{16 * mb, 0, 0, 100, 400},            // nothing live yet
		{16 * mb, 16 * mb, 1 * mb, 100, 100}, // at the floor
	} {
		if got := Percent(c.floor, c.live, c.roots, c.base); got != c.want {
			t.Errorf("Percent(%d, %d, %d, %d) = %d, want %d", c.floor, c.live, c.roots, c.base, got, c.want)
		}
	}
}

func TestNewRefusesNoFloor(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New with Floor 0: no error")
	}
	if _, err := New(Config{Floor: 1, Interval: -time.Second}); err == nil {
		t.Fatal("New with a negative Interval: no error")
	}
}

// TestRunCollectsLessOften runs the controller on the real runtime: 256 MB of garbage
// takes at most a cycle per half of a 64 MB floor (Go's default: one per 4 MB); at every
// moment of the churn the heap goal is within the floor and a quarter, or Go's own goal
// for the live heap the runtime read (that is the most it costs); GOGC and the memory limit are
// restored when it stops.
func TestRunCollectsLessOften(t *testing.T) {
	const floor = 64 << 20
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	without := cycles(t, churn)

	stop := start(t, floor)
	waitFor(t, "GOGC raised", func() bool { return gogc() > 100 })
	worst := 0.0
	with := cycles(t, func() {
		for i := range 256 << 8 {
			sink = make([]byte, 4<<10)
			if i%64 == 0 {
				worst = max(worst, overBound(floor, goGoal))
			}
		}
		sink = nil
	})
	worst = max(worst, overBound(floor, goGoal))
	if worst > 1.3 {
		t.Errorf("heap goal %.2f× the larger of the 64 MB floor and Go's own goal during the churn: the floor and a quarter is the most it may cost", worst)
	}
	stop()
	if got := gogc(); got != 100 {
		t.Errorf("GOGC %d after the controller stopped, want 100 restored", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("memory limit %d after the controller stopped, want none restored", got)
	}
	t.Logf("GC cycles for 256 MB of garbage: %d without the floor, %d with it; goal at most %.2f× the bound", without, with, worst)
	// Go's default at this test's live heap is a cycle per 4 MB of garbage, 64 here; on a
	// loaded machine fewer, as its goals grow with the live heap the cycles read
	// (inflated by what was allocated while they marked). So the check is against the
	// floor: at most a cycle per half of it.
	if with > 256/(floor>>20/2) {
		t.Errorf("%d GC cycles for 256 MB of garbage with a 64 MB floor (%d without): want at most one per 32 MB", with, without)
	}
}

// overBound is the heap goal over the larger of floor and own(the live heap the last
// cycle read, its stacks and globals), from one cycle's figures.
func overBound(floor uint64, own func(live, roots uint64) uint64) float64 {
	s := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}, {Name: "/gc/cycles/total:gc-cycles"},
	}
	for {
		metrics.Read(s[:1])
		metrics.Read(s[1:])
		if s[0].Value.Uint64() != s[5].Value.Uint64() {
			continue // a cycle ended between the reads
		}
		b := max(floor, own(s[2].Value.Uint64(), s[3].Value.Uint64()+s[4].Value.Uint64()))
		return float64(s[1].Value.Uint64()) / float64(b)
	}
}

// goGoal is Go's own goal at GOGC=100: live + live + roots, at least 4 MB.
func goGoal(live, roots uint64) uint64 { return max(2*live+roots, 4<<20) }

// TestRunCapsTheGoalBetweenLooks: after one look the controller looks no more (an hour's
// interval); churn at a raised GOGC makes the runtime read a live heap inflated by what
// was allocated while it marked, and set goals from it. The memory limit keeps them
// within the floor and a quarter, or at the live heap read where that is larger (the
// runtime's own lower bound; Go's default would be twice it).
func TestRunCapsTheGoalBetweenLooks(t *testing.T) {
	const floor = 64 << 20
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	runtime.GC() // the one look sees this process's live heap, not an earlier test's
	c, err := New(Config{Floor: floor, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	stop := c.Start(context.Background())
	defer stop()
	waitFor(t, "GOGC raised", func() bool { return gogc() > 100 })
	if got := debug.SetMemoryLimit(-1); got == math.MaxInt64 || got > floor+floor {
		t.Fatalf("memory limit %d with a 64 MB floor, want the floor plus what the runtime holds outside the heap", got)
	}
	worst := 0.0
	for range 4 {
		for i := range 256 << 8 {
			sink = make([]byte, 4<<10)
			if i%64 == 0 {
				worst = max(worst, overBound(floor, func(live, _ uint64) uint64 { return live }))
			}
		}
	}
	sink = nil
	if worst > 1.3 {
		t.Errorf("heap goal %.2f× the larger of the 64 MB floor and the live heap between two looks, want 1.25× at most", worst)
	}
}

// TestRunStepsBackForALargeLiveHeap: with half the floor live, GOGC and the memory limit
// are the process's own again.
func TestRunStepsBackForALargeLiveHeap(t *testing.T) {
	const floor = 64 << 20
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	stop := start(t, floor)
	defer stop()
	waitFor(t, "GOGC raised", func() bool { return gogc() > 100 })
	kept := make([]byte, 40<<20)
	for i := range kept {
		kept[i] = 1 // paged in and live
	}
	runtime.GC()
	waitFor(t, "GOGC back at 100 and no memory limit with 40 MB live", func() bool {
		return gogc() == 100 && debug.SetMemoryLimit(-1) == math.MaxInt64
	})
	runtime.KeepAlive(kept)
}

// TestRunKeepsALowerLimit: a memory limit the process has (GOMEMLIMIT) is the most the
// controller sets, and it is there again when the controller stops.
func TestRunKeepsALowerLimit(t *testing.T) {
	const own = 32 << 20
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(own))
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	stop := start(t, 64<<20)
	waitFor(t, "GOGC raised", func() bool { return gogc() > 100 })
	if got := debug.SetMemoryLimit(-1); got != own {
		t.Errorf("memory limit %d while the controller runs, want the process's own %d", got, own)
	}
	stop()
	if got := debug.SetMemoryLimit(-1); got != own {
		t.Errorf("memory limit %d after the controller stopped, want the process's own %d", got, own)
	}
}

// start runs a controller with floor, looking every millisecond; the returned stop may
// be called more than once, and is called when the test ends.
func start(t *testing.T, floor uint64) (stop func()) {
	t.Helper()
	runtime.GC() // the first look sees this process's live heap, not an earlier test's
	c, err := New(Config{Floor: floor, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop = sync.OnceFunc(c.Start(context.Background()))
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after 5 s", what)
		}
	}
}

var sink []byte

// churn allocates 256 MB in 4 KB pieces, keeping none.
func churn() {
	for range 256 << 8 {
		sink = make([]byte, 4<<10)
	}
	sink = nil
}

func cycles(t *testing.T, f func()) uint64 {
	t.Helper()
	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	n := s[0].Value.Uint64()
	f()
	metrics.Read(s)
	return s[0].Value.Uint64() - n
}

func gogc() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return int(s[0].Value.Uint64())
}

// TestRunLeavesAnEnvironmentGOGC: with GOGC in the environment the controller sets
// nothing, however small the live heap.
func TestRunLeavesAnEnvironmentGOGC(t *testing.T) {
	t.Setenv("GOGC", "150")
	defer debug.SetGCPercent(debug.SetGCPercent(150))
	c, err := New(Config{Floor: 64 << 20, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := c.Start(context.Background())
	time.Sleep(50 * time.Millisecond) // fifty intervals
	got, limit := gogc(), debug.SetMemoryLimit(-1)
	stop()
	if got != 150 {
		t.Errorf("GOGC %d with GOGC=150 in the environment, want 150 left alone", got)
	}
	if limit != math.MaxInt64 {
		t.Errorf("memory limit %d with GOGC=150 in the environment, want none set", limit)
	}
}
