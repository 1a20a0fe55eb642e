package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deviceless/deviceless/edgeagent/container"
	"github.com/deviceless/deviceless/protocol"
)

func newRuntime(t testing.TB, cfg Config) *Runtime {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return r
}

func put(t testing.TB, r *Runtime, module []byte) string {
	t.Helper()
	d, err := r.Store().Put(module)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// invocation is an invocation as the agent writes it on a function's stdin.
func invocation(t testing.TB, id string, args map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(protocol.Invocation{ID: id, Function: "echo", Args: args,
		Event: &protocol.Event{Topic: "greenhouse/gh1/climate", Payload: json.RawMessage(`{"celsius":31}`)}})
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func job(digest string, stdin []byte) container.Job {
	return container.Job{ID: "inv-1", Function: "echo", Image: digest, Stdin: stdin, Timeout: 2 * time.Minute, Memory: 64 << 20}
}

// goJob is a job running the Go test module (testdata/go/fn) in mode.
func goJob(t testing.TB, r *Runtime, mode string) container.Job {
	t.Helper()
	j := job(put(t, r, testModule(t, "go/fn")), nil)
	j.Function, j.Command = "fn-"+mode, []string{mode}
	return j
}

func mustRun(t testing.TB, r *Runtime, j container.Job) container.Outcome {
	t.Helper()
	out, err := r.Run(context.Background(), j)
	if err != nil {
		t.Fatalf("run %s: %v", j.Function, err)
	}
	return out
}

// TestContract runs the examples as the agent would: the invocation on stdin, one JSON value
// on stdout asking for an actuation, the environment of the function contract.
func TestContract(t *testing.T) {
	r := newRuntime(t, Config{})
	for _, name := range []string{"example/go-echo", "example/c-echo"} {
		t.Run(name, func(t *testing.T) {
			d := put(t, r, testModule(t, name))
			for i, wantCold := range []bool{true, false} {
				j := job(d, invocation(t, fmt.Sprintf("inv-%d", i), map[string]any{"greenhouse": "gh1"}))
				j.ID = fmt.Sprintf("inv-%d", i)
				j.Env = map[string]string{"LEVEL": "3", "DEVICELESS_FUNCTION": "spoofed"}
				out := mustRun(t, r, j)
				if out.ExitCode != 0 || out.TimedOut || out.OOMKilled || out.Truncated {
					t.Fatalf("outcome %+v, stderr %q", out, out.Stderr)
				}
				if out.Cold != wantCold {
					t.Errorf("run %d: cold %v, want %v", i, out.Cold, wantCold)
				}
				if out.Start <= 0 || out.Run <= 0 {
					t.Errorf("run %d: start %v, run %v", i, out.Start, out.Run)
				}
				var o protocol.Output
				if err := json.Unmarshal(out.Stdout, &o); err != nil {
					t.Fatalf("stdout %q: %v", out.Stdout, err)
				}
				want := protocol.Actuation{Line: "fan", Value: 1, For: protocol.Duration(30 * time.Second)}
				if len(o.Actuate) != 1 || o.Actuate[0] != want {
					t.Errorf("actuate %+v, want [%+v]", o.Actuate, want)
				}
				var res struct {
					Function string          `json:"function"`
					ID       string          `json:"id"`
					Echo     json.RawMessage `json:"echo"`
				}
				if err := json.Unmarshal(o.Result, &res); err != nil {
					t.Fatalf("result %s: %v", o.Result, err)
				}
				if res.Function != "echo" {
					t.Errorf("function %q: DEVICELESS_FUNCTION must be the job's", res.Function)
				}
				if strings.HasPrefix(name, "example/go") && res.ID != j.ID {
					t.Errorf("id %q, want %q (DEVICELESS_INVOCATION_ID)", res.ID, j.ID)
				}
				if !strings.Contains(string(res.Echo), `"gh1"`) {
					t.Errorf("echo %s lacks the args", res.Echo)
				}
				t.Logf("run %d: cold %v start %v run %v", i, out.Cold, out.Start, out.Run)
			}
		})
	}
}

func TestTrap(t *testing.T) {
	r := shared(t)
	t.Run("c unreachable", func(t *testing.T) {
		out := mustRun(t, r, job(put(t, r, testModule(t, "c/trap")), nil))
		if out.ExitCode != ExitTrap || out.OOMKilled || out.TimedOut {
			t.Fatalf("outcome %+v", out)
		}
		if !strings.HasPrefix(out.Stderr, "about to trap\n") {
			t.Errorf("stderr %q lost the module's own output", out.Stderr)
		}
		lines := strings.Split(strings.TrimSpace(out.Stderr), "\n")
		if last := lines[len(lines)-1]; last != "wasm trap: unreachable" {
			t.Errorf("last stderr line %q, want the trap", last)
		}
		if !strings.Contains(out.Stderr, "wasm stack trace:") {
			t.Errorf("stderr %q has no stack trace", out.Stderr)
		}
	})
	t.Run("hand-made unreachable", func(t *testing.T) {
		out := mustRun(t, r, job(put(t, r, wasmUnreachable), nil))
		if out.ExitCode != ExitTrap || !strings.HasSuffix(out.Stderr, "wasm trap: unreachable\n") {
			t.Fatalf("outcome %+v", out)
		}
	})
	t.Run("go panic", func(t *testing.T) {
		out := mustRun(t, r, goJob(t, r, "panic"))
		if out.ExitCode != 2 || out.OOMKilled || !strings.Contains(out.Stderr, "panic: boom") {
			t.Fatalf("outcome %+v", out)
		}
	})
}

func TestDeadline(t *testing.T) {
	r := shared(t)
	for _, name := range []string{"c/loop", "c/sleep"} {
		t.Run(name, func(t *testing.T) {
			j := job(put(t, r, testModule(t, name)), nil)
			j.Timeout = 300 * time.Millisecond
			t0 := time.Now()
			out := mustRun(t, r, j)
			took := time.Since(t0)
			if !out.TimedOut || out.ExitCode != ExitKilled || out.OOMKilled {
				t.Fatalf("outcome %+v", out)
			}
			// The deadline runs from before instantiation (it bounds the whole call), so
			// start + run reach it, run alone need not on a loaded machine.
			if out.Start+out.Run < j.Timeout || took > j.Timeout+2*time.Second {
				t.Errorf("start %v + run %v, took %v for a %v deadline", out.Start, out.Run, took, j.Timeout)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		j := job(put(t, r, testModule(t, "c/loop")), nil)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if _, err := r.Run(ctx, j); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want the caller's context error", err)
		}
	})
}

func TestOutOfMemory(t *testing.T) {
	r := shared(t)
	t.Run("c malloc fails", func(t *testing.T) {
		j := job(put(t, r, testModule(t, "c/grow")), nil)
		j.Memory = 16 << 20
		out := mustRun(t, r, j)
		if !out.OOMKilled || out.ExitCode != 3 || !strings.Contains(out.Stderr, "malloc failed") {
			t.Fatalf("outcome %+v", out)
		}
	})
	t.Run("c copes", func(t *testing.T) {
		j := job(put(t, r, testModule(t, "c/grow")), nil)
		j.Memory, j.Command = 16<<20, []string{"graceful"}
		out := mustRun(t, r, j)
		var got struct {
			Allocated int `json:"allocated_mib"`
		}
		if out.OOMKilled || out.ExitCode != 0 || json.Unmarshal(out.Stdout, &got) != nil {
			t.Fatalf("outcome %+v", out)
		}
		if got.Allocated < 10 || got.Allocated > 16 {
			t.Errorf("allocated %d MiB under a 16 MiB limit", got.Allocated)
		}
	})
	t.Run("go runtime", func(t *testing.T) {
		j := goJob(t, r, "grow")
		j.Memory = 32 << 20
		out := mustRun(t, r, j)
		// The runtime's "fatal error: out of memory" comes before a goroutine dump longer than
		// the stderr tail kept.
		if !out.OOMKilled || out.ExitCode != 2 || out.TimedOut {
			t.Fatalf("oom %v, exit %d, timed out %v, stderr %q", out.OOMKilled, out.ExitCode, out.TimedOut, out.Stderr)
		}
	})
	t.Run("initial memory over the limit", func(t *testing.T) {
		j := job(put(t, r, wasmBigMemory), nil)
		j.Memory = 16 << 20
		out := mustRun(t, r, j)
		if !out.OOMKilled || out.ExitCode != ExitNoStart || !strings.Contains(out.Stderr, "initial memory") {
			t.Fatalf("outcome %+v", out)
		}
		j.Memory = 128 << 20
		if out := mustRun(t, r, j); out.OOMKilled || out.ExitCode != 0 {
			t.Fatalf("with room: outcome %+v", out)
		}
	})
}

// TestNoHostAccess: a module gets no file system and no network, only errors.
func TestNoHostAccess(t *testing.T) {
	r := shared(t)
	t.Run("c", func(t *testing.T) {
		out := mustRun(t, r, job(put(t, r, testModule(t, "c/escape")), nil))
		checkAllFailed(t, out, 11)
	})
	t.Run("go", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		accepted := make(chan struct{}, 1)
		go func() {
			if c, err := l.Accept(); err == nil {
				c.Close()
				accepted <- struct{}{}
			}
		}()
		j := goJob(t, r, "escape")
		j.Env = map[string]string{"ADDR": l.Addr().String()}
		out := mustRun(t, r, j)
		checkAllFailed(t, out, 5)
		select {
		case <-accepted:
			t.Error("the module connected to the host")
		case <-time.After(100 * time.Millisecond):
		}
	})
	if files, _ := os.ReadDir("."); len(files) > 0 {
		for _, f := range files {
			if f.Name() == "passwd" || f.Name() == "x" {
				t.Errorf("a module wrote %s into the test's folder", f.Name())
			}
		}
	}
}

func checkAllFailed(t *testing.T, out container.Outcome, n int) {
	t.Helper()
	if out.ExitCode != 0 {
		t.Fatalf("outcome %+v", out)
	}
	var res map[string]string
	if err := json.Unmarshal(out.Stdout, &res); err != nil {
		t.Fatalf("stdout %q: %v", out.Stdout, err)
	}
	if len(res) != n {
		t.Errorf("%d attempts reported, want %d: %v", len(res), n, res)
	}
	for what, e := range res {
		if e == "ok" && !strings.HasPrefix(what, "in-process") {
			t.Errorf("%s worked", what)
		}
	}
	t.Logf("%v", res)
}

func TestStdoutCapped(t *testing.T) {
	r := shared(t) // OutputLimit: DefaultOutputLimit, 1 MiB
	out := mustRun(t, r, job(put(t, r, testModule(t, "c/bigout")), nil))
	if !out.Truncated || len(out.Stdout) != 1<<20 || out.ExitCode != 0 {
		t.Fatalf("truncated %v, %d bytes kept, exit %d", out.Truncated, len(out.Stdout), out.ExitCode)
	}
	if strings.Trim(string(out.Stdout), "x") != "" {
		t.Error("kept bytes are not the module's first ones")
	}
}

func TestTamperedModule(t *testing.T) {
	dir := t.TempDir()
	r := newRuntime(t, Config{Dir: dir})
	d := put(t, r, testModule(t, "c/counter"))
	path := filepath.Join(dir, "modules", strings.TrimPrefix(d, DigestPrefix)+".wasm")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = r.Run(context.Background(), job(d, nil))
	if !errors.Is(err, ErrTampered) || !strings.Contains(err.Error(), d) {
		t.Fatalf("err %v, want the module refused by digest", err)
	}
	t.Logf("%v", err)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tampered file kept: %v", err)
	}
	// Put again, it runs.
	put(t, r, testModule(t, "c/counter"))
	if out := mustRun(t, r, job(d, nil)); out.ExitCode != 0 {
		t.Fatalf("outcome %+v", out)
	}
}

// TestFreshInstances: concurrent invocations of one module share nothing; a global counter
// is 1 in each, and at most one invocation (the first, unless the module was loaded) is cold.
func TestFreshInstances(t *testing.T) {
	r := shared(t)
	for _, name := range []string{"c/counter", "go/fn"} {
		t.Run(name, func(t *testing.T) {
			d := put(t, r, testModule(t, name))
			const n = 40
			var wg sync.WaitGroup
			outs := make([]container.Outcome, n)
			errs := make([]error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					j := job(d, nil)
					j.ID, j.Command = fmt.Sprint("inv-", i), []string{"counter"}
					outs[i], errs[i] = r.Run(context.Background(), j)
				}()
			}
			wg.Wait()
			cold := 0
			for i, out := range outs {
				if errs[i] != nil {
					t.Fatal(errs[i])
				}
				if strings.TrimSpace(string(out.Stdout)) != `{"counter":1}` || out.ExitCode != 0 {
					t.Fatalf("run %d: stdout %q exit %d", i, out.Stdout, out.ExitCode)
				}
				if out.Cold {
					cold++
				}
			}
			if cold > 1 {
				t.Errorf("%d cold runs: the module was compiled more than once", cold)
			}
		})
	}
}

// TestMemoryIsFresh: an instance's memory starts as the module defines it, zero past its
// data, though the runtime reuses memories of finished instances.
func TestMemoryIsFresh(t *testing.T) {
	r := shared(t)
	d := put(t, r, testModule(t, "c/dirty"))
	var first [2]int // by mode: the args take room too
	for i := range 6 {
		j := job(d, nil)
		if i%2 == 0 {
			j.Command = []string{"dirty"}
		}
		out := mustRun(t, r, j)
		var got struct {
			Heap  int `json:"heap_nonzero"`
			Grown int `json:"grown_nonzero"`
			Bytes int `json:"heap_bytes"`
		}
		if err := json.Unmarshal(out.Stdout, &got); err != nil || out.ExitCode != 0 {
			t.Fatalf("run %d: %+v, %v", i, out, err)
		}
		// wasi-libc's start code allocates args and environment before main: those bytes are
		// the same in every run.
		if i < 2 {
			first[i%2] = got.Heap
		}
		if got.Heap != first[i%2] || got.Grown != 0 || got.Bytes == 0 {
			t.Fatalf("run %d: %d of %d heap bytes (%d in the first run) and %d grown bytes not zero",
				i, got.Heap, got.Bytes, first[i%2], got.Grown)
		}
	}
}

func TestRefusedJobs(t *testing.T) {
	r := shared(t)
	cases := []struct {
		name   string
		job    container.Job
		want   string
		target error
	}{
		{"not a digest", job("localhost/deviceless/sh", nil), "not a module digest", nil},
		{"not stored", job(Digest([]byte("nothing")), nil), "not in the module store", container.ErrImageNotFound},
		{"not wasm", job(put(t, r, []byte("#!/bin/sh\necho hi\n")), nil), "does not compile", nil},
		{"foreign import", job(put(t, r, wasmImportsEnv), nil), "imports env.foo", nil},
		{"no _start", job(put(t, r, wasmNoStart), nil), "exports no _start", nil},
		{"inline code", container.Job{Function: "f", Image: Digest(nil), Code: "x"}, "no inline code", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := r.Run(context.Background(), c.job)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
			if c.target != nil && !errors.Is(err, c.target) {
				t.Errorf("err %v does not wrap %v", err, c.target)
			}
		})
	}
}

// TestCompiledCache: a second process (runtime) on the same folder loads the compiled code
// the first one wrote instead of compiling again (the cache files are read, not rewritten);
// Sweep drops the compiled code of a module no longer stored, and stale temporary files.
func TestCompiledCache(t *testing.T) {
	dir := t.TempDir()
	b := testModule(t, "example/c-echo")
	h := strings.TrimPrefix(Digest(b), DigestPrefix)
	load := func() {
		r, err := New(Config{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close(context.Background())
		out := mustRun(t, r, job(put(t, r, b), invocation(t, "inv-1", nil)))
		if !out.Cold || out.ExitCode != 0 {
			t.Fatalf("outcome %+v", out)
		}
		t.Logf("cold start %v", out.Start)
	}
	files := func() map[string]os.FileInfo {
		m := map[string]os.FileInfo{}
		err := filepath.WalkDir(filepath.Join(dir, "compiled", h), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				m[p], err = d.Info()
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	load()
	before := files()
	if len(before) == 0 {
		t.Fatal("no compiled code cached")
	}
	load()
	after := files()
	for p, fi := range before {
		if a := after[p]; a == nil || !os.SameFile(a, fi) || !a.ModTime().Equal(fi.ModTime()) {
			t.Errorf("%s rewritten: the module was compiled again", p)
		}
	}
	if len(after) != len(before) {
		t.Errorf("%d compiled files, then %d", len(before), len(after))
	}

	r := newRuntime(t, Config{Dir: dir})
	if err := r.Store().Remove(Digest(b)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "modules", ".put-stale"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := r.Sweep(context.Background())
	if err != nil || n != 2 {
		t.Fatalf("swept %d, %v; want the compiled code and the temporary file", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "compiled", h)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("compiled code of a removed module kept: %v", err)
	}
}

func TestLoadedModulesBounded(t *testing.T) {
	r := newRuntime(t, Config{Loaded: 1})
	a, c := put(t, r, testModule(t, "c/counter")), put(t, r, testModule(t, "c/trap"))
	for i, d := range []string{a, c, a} {
		out := mustRun(t, r, job(d, nil))
		if !out.Cold {
			t.Errorf("run %d: warm, but only one module stays loaded", i)
		}
	}
	if out := mustRun(t, r, job(a, nil)); out.Cold {
		t.Error("the loaded module was compiled again")
	}
}

func TestClose(t *testing.T) {
	r, err := New(Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	d := put(t, r, testModule(t, "c/loop"))
	done := make(chan error, 1)
	go func() {
		j := job(d, nil)
		j.Timeout = time.Minute
		_, err := r.Run(context.Background(), j)
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := r.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("close: %v, want it to give up waiting", err)
	}
	select {
	case err := <-done: // the module was closed where it was
		if err == nil || !strings.Contains(err.Error(), "runtime closing") {
			t.Errorf("the cut-off invocation answered %v, want an error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a running module outlived Close")
	}
	if _, err := r.Run(context.Background(), job(d, nil)); err == nil {
		t.Error("ran after Close")
	}
	if err := r.Ping(context.Background()); err == nil {
		t.Error("ping after Close")
	}
}
