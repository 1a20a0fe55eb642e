package procs

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestDecision(t *testing.T) {
	type step struct {
		cores float64
		want  int
	}
	for _, tt := range []struct {
		name  string
		start int
		steps []step
	}{
		{"idle stays at one", 1, []step{{0.01, 1}, {0.5, 1}, {0.69, 1}}},
		{"a busy core goes to max at once", 1, []step{{0.7, 4}}},
		{"busy at max stays", 4, []step{{3.9, 4}, {0.5, 4}}},
		{"calm for three intervals goes back to one", 4, []step{{0.1, 4}, {0.2, 4}, {0.3, 1}}},
		{"a busy interval restarts the calm count", 4, []step{{0.1, 4}, {0.1, 4}, {0.4, 4}, {0.1, 4}, {0.1, 4}, {0.1, 1}}},
		{"a burst after calm goes up again", 4, []step{{0.1, 4}, {0.1, 4}, {0.1, 1}, {0.9, 4}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var d decision
			cur := tt.start
			for i, s := range tt.steps {
				cur = d.next(cur, 4, 3, s.cores)
				if cur != s.want {
					t.Fatalf("step %d (%.2f cores): %d Ps, want %d", i, s.cores, cur, s.want)
				}
			}
		})
	}
}

func TestParseFlag(t *testing.T) {
	if auto, _, err := ParseFlag("auto"); !auto || err != nil {
		t.Errorf("auto: %v %v", auto, err)
	}
	if auto, n, err := ParseFlag("3"); auto || n != 3 || err != nil {
		t.Errorf("3: %v %d %v", auto, n, err)
	}
	for _, bad := range []string{"", "-1", "two", "1.5"} {
		if _, _, err := ParseFlag(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestNewRejectsNegatives(t *testing.T) {
	for _, cfg := range []Config{{Max: -1}, {Interval: -time.Second}, {Calm: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// TestRunFollowsTheLoad runs the controller on this process's real CPU time: it starts at
// one P, goes to Max while a goroutine burns a core, back to one once it stops, and
// restores GOMAXPROCS when its context ends.
func TestRunFollowsTheLoad(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Fatal("needs 2 CPUs")
	}
	before := runtime.GOMAXPROCS(0)
	c, err := New(Config{Max: 2, Interval: 20 * time.Millisecond, Calm: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitProcs(t, 1)

	var stop atomic.Bool
	burned := make(chan struct{})
	go func() {
		defer close(burned)
		for !stop.Load() {
		}
	}()
	waitProcs(t, 2)
	stop.Store(true)
	<-burned
	waitProcs(t, 1)

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("GOMAXPROCS %d after Run, want %d restored", got, before)
	}
}

func waitProcs(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.GOMAXPROCS(0) != want {
		if time.Now().After(deadline) {
			t.Fatalf("GOMAXPROCS stayed %d, want %d", runtime.GOMAXPROCS(0), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
