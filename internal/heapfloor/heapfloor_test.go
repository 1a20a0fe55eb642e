package heapfloor

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
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

// TestRunCollectsLessOften runs the controller on the real runtime: the same garbage
// takes several times fewer GC cycles with a 64 MB floor than without it, the heap goal
// stays within the floor, and GOGC is restored when it stops.
func TestRunCollectsLessOften(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	without := cycles(t, churn)

	c, err := New(Config{Floor: 64 << 20, Interval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := c.Start(context.Background())
	deadline := time.Now().Add(5 * time.Second)
	for gogc() == 100 {
		if time.Now().After(deadline) {
			t.Fatal("GOGC still 100 after 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	with := cycles(t, churn)
	g := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(g)
	if goal := g[0].Value.Uint64(); goal > 64<<20*11/10 {
		t.Errorf("heap goal %d MB with a 64 MB floor: the floor is the most it may cost", goal>>20)
	}
	stop()
	if got := gogc(); got != 100 {
		t.Errorf("GOGC %d after the controller stopped, want 100 restored", got)
	}
	t.Logf("GC cycles for 256 MB of garbage: %d without the floor, %d with it", without, with)
	if with*4 > without {
		t.Errorf("%d GC cycles with a 64 MB floor, %d without: want at least 4× fewer", with, without)
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
	got := gogc()
	stop()
	if got != 150 {
		t.Errorf("GOGC %d with GOGC=150 in the environment, want 150 left alone", got)
	}
}
