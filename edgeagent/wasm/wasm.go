// Package wasm runs edge-agent functions as WebAssembly modules (WASI preview 1) in the
// agent's own process, with wazero (pure Go, no cgo). It implements container.Runtime, so
// the agent drives it like the podman runtime: one container.Job in, one container.Outcome out.
//
// A job names its module by content digest: Job.Image is "sha256:<64 hex>", the digest of
// a module in the runtime's Store (Put it first). A module is compiled once per process and
// its compiled code is cached on disk (Dir/compiled/<hex>), so an agent restart does not
// compile again. Every invocation gets a fresh instance of the compiled module, with its own
// memory, closed when it ends: nothing survives from one invocation to the next, as with a
// new container.
//
// Of a Job, Image (the digest), ID, Function, Env, Stdin, Timeout (DefaultTimeout when not
// set) and Memory are used; Command adds arguments; Code is refused (a module has no inline
// code); Warm and Prepare are ignored: every invocation gets a fresh instance anyway, and
// instantiating a compiled module is what a prepared container saves.
//
// What an instance gets: the invocation JSON on stdin, then end of file; args = the function
// name (then Job.Command, if any); environment = Job.Env plus DEVICELESS_FUNCTION and
// DEVICELESS_INVOCATION_ID; the real clocks, a cryptographic random source, sleeping. What it
// does not get: any file system (no preopened folders: every open fails), any socket (WASI
// preview 1 has no socket creation, and no listener is preopened), any host function besides
// WASI's (a module importing anything else is refused). stdout is kept up to OutputLimit
// (Outcome.Truncated past it), stderr's tail up to StderrLimit.
//
// Limits: the memory limit (Job.Memory, in whole 64 KiB pages) holds each instance's linear
// memory; a memory.grow past it fails in the module, and a run that then fails is reported
// OOMKilled. The deadline (Job.Timeout) closes the instance when it passes, wherever it is
// (wazero's WithCloseOnContextDone: compiled code checks at function calls and loop heads),
// and is reported TimedOut. A trap (unreachable, an out-of-bounds access, a stack overflow...)
// is exit code ExitTrap with the trap and the wasm stack trace at the end of stderr.
package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/deviceless/deviceless/edgeagent/container"
)

// Exit codes of outcomes that did not come from the module's own exit.
const (
	// ExitTrap is the exit code of a module that trapped (as wasmtime reports a trap: 128+SIGABRT).
	ExitTrap = 134
	// ExitKilled is the exit code of an instance closed at its deadline (as a killed container's).
	ExitKilled = 137
	// ExitNoStart is the exit code of an instance that could not start (its initial memory
	// is over the limit, or instantiation failed).
	ExitNoStart = 125
)

// Defaults of Config.
const (
	DefaultOutputLimit = 1 << 20
	DefaultStderrLimit = 4 << 10
	DefaultMemory      = 128 << 20
	DefaultTimeout     = 10 * time.Second
	DefaultLoaded      = 64
)

// Config configures a Runtime.
type Config struct {
	// Dir holds the module store (Dir/modules) and the compiled code cache (Dir/compiled),
	// e.g. the agent's state folder + "/wasm". Required. The compiled code is native code the
	// agent runs: Dir must be writable by the agent only (it is created 0700).
	Dir         string
	StoreLimit  int64 // total bytes of modules kept (default DefaultStoreLimit, 256 MiB)
	OutputLimit int   // stdout bytes kept (default 1 MiB)
	StderrLimit int   // stderr tail bytes kept (default 4 KiB)
	Memory      int64 // memory limit of a job that sets none (default 128 MiB)
	// MaxMemory caps every instance's memory, whatever its job says: it is wazero's
	// WithMemoryLimitPages, applied when a module is compiled (default 4 GiB, all a 32-bit
	// memory can address).
	MaxMemory int64
	Loaded    int          // compiled modules kept in memory, least recently used dropped first (default 64)
	Logger    *slog.Logger // default slog.Default()
}

// Runtime runs jobs as fresh instances of WebAssembly modules. It is safe for concurrent use.
type Runtime struct {
	cfg      Config
	store    *Store
	compiled string // folder of the compiled code caches, one per module
	log      *slog.Logger

	mu      sync.Mutex
	modules map[string]*module // loaded (or loading) modules by hex digest
	closed  bool
	active  sync.WaitGroup // jobs in Run
}

var _ container.Runtime = (*Runtime)(nil)

// module is a compiled module with its own wazero runtime (holding WASI and the module's
// compilation cache), so that dropping a module drops all of it.
type module struct {
	hex   string
	ready chan struct{} // closed when loading ended; err says how
	err   error

	cache    wazero.CompilationCache
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	load     time.Duration // reading, verifying and compiling (or loading compiled code)
	buffers  sync.Pool     // linear memories of finished instances, zeroed (see allocator)

	// guarded by Runtime.mu
	users   int
	used    time.Time
	dropped bool // out of Runtime.modules; closed when the last user leaves
}

// New validates cfg and opens the module store. Nothing is compiled until a job needs it.
func New(cfg Config) (*Runtime, error) {
	if cfg.Dir == "" {
		return nil, errors.New("wasm: Dir is required (the module store and compiled code live there)")
	}
	if cfg.OutputLimit == 0 {
		cfg.OutputLimit = DefaultOutputLimit
	}
	if cfg.StderrLimit == 0 {
		cfg.StderrLimit = DefaultStderrLimit
	}
	if cfg.Memory == 0 {
		cfg.Memory = DefaultMemory
	}
	if cfg.MaxMemory == 0 {
		cfg.MaxMemory = maxPages * PageSize
	}
	if cfg.Loaded == 0 {
		cfg.Loaded = DefaultLoaded
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.OutputLimit < 0 || cfg.StderrLimit < 0:
		return nil, errors.New("wasm: output limits must not be negative")
	case cfg.Memory < PageSize:
		return nil, fmt.Errorf("wasm: memory limit %d is under one page (%d bytes)", cfg.Memory, PageSize)
	case cfg.MaxMemory < PageSize || cfg.MaxMemory > maxPages*PageSize:
		return nil, fmt.Errorf("wasm: max memory %d is not within one page and 4 GiB", cfg.MaxMemory)
	case cfg.Loaded < 0:
		return nil, errors.New("wasm: Loaded must not be negative")
	}
	store, err := OpenStore(filepath.Join(cfg.Dir, "modules"), cfg.StoreLimit)
	if err != nil {
		return nil, err
	}
	compiled := filepath.Join(cfg.Dir, "compiled")
	if err := os.MkdirAll(compiled, 0o700); err != nil {
		return nil, fmt.Errorf("wasm: compiled code folder: %w", err)
	}
	return &Runtime{cfg: cfg, store: store, compiled: compiled, log: cfg.Logger, modules: map[string]*module{}}, nil
}

// Store is the runtime's module store: Put modules there, run them by digest.
func (r *Runtime) Store() *Store { return r.store }

// Ping reports whether the runtime can run jobs: it is open and its store's folder exists.
func (r *Runtime) Ping(context.Context) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return errors.New("wasm: runtime closed")
	}
	if _, err := os.Stat(r.store.Dir()); err != nil {
		return fmt.Errorf("wasm: module store: %w", err)
	}
	return nil
}

// Run runs job in a fresh instance of its module; see container.Runtime. Errors are a
// module that is not stored, not valid, or not a WASI command, and a cancelled ctx; a
// module that fails (exit code, trap, deadline, memory) is an Outcome.
func (r *Runtime) Run(ctx context.Context, job container.Job) (container.Outcome, error) {
	t0 := time.Now()
	if job.Code != "" {
		return container.Outcome{}, fmt.Errorf("wasm: %s: a module job has no inline code", job.Function)
	}
	h, err := ParseDigest(job.Image)
	if err != nil {
		return container.Outcome{}, err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return container.Outcome{}, errors.New("wasm: runtime closed")
	}
	r.active.Add(1)
	r.mu.Unlock()
	defer r.active.Done()

	m, cold, err := r.acquire(ctx, h)
	if err != nil {
		return container.Outcome{}, err
	}
	defer r.release(m)
	return r.run(ctx, m, job, t0, cold)
}

// acquire returns the loaded module h, loading it if needed (cold: this call loaded it).
func (r *Runtime) acquire(ctx context.Context, h string) (m *module, cold bool, err error) {
	r.mu.Lock()
	m = r.modules[h]
	if m == nil {
		m = &module{hex: h, ready: make(chan struct{}), users: 1, used: time.Now()}
		r.modules[h] = m
		r.dropIdleLocked()
		r.mu.Unlock()
		m.err = r.loadModule(m)
		close(m.ready)
		if m.err != nil {
			r.mu.Lock()
			if r.modules[h] == m {
				delete(r.modules, h)
			}
			m.users--
			r.mu.Unlock()
			return nil, false, m.err
		}
		return m, true, nil
	}
	m.users++
	r.mu.Unlock()
	select {
	case <-m.ready:
	case <-ctx.Done():
		r.release(m)
		return nil, false, ctx.Err()
	}
	if m.err != nil {
		r.release(m)
		return nil, false, m.err
	}
	return m, false, nil
}

// release ends a use of m; a dropped module is closed by its last user.
func (r *Runtime) release(m *module) {
	r.mu.Lock()
	m.users--
	m.used = time.Now()
	closeNow := m.dropped && m.users == 0
	r.mu.Unlock()
	if closeNow {
		m.close()
	}
}

// dropIdleLocked drops the least recently used loaded modules beyond cfg.Loaded.
func (r *Runtime) dropIdleLocked() {
	if len(r.modules) <= r.cfg.Loaded {
		return
	}
	ms := make([]*module, 0, len(r.modules))
	for _, m := range r.modules {
		select {
		case <-m.ready:
			ms = append(ms, m)
		default: // loading
		}
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].used.Before(ms[j].used) })
	for _, m := range ms {
		if len(r.modules) <= r.cfg.Loaded {
			return
		}
		delete(r.modules, m.hex)
		m.dropped = true
		if m.users == 0 && m.err == nil {
			go m.close()
		}
	}
}

func (m *module) close() {
	ctx := context.Background()
	if m.rt != nil {
		// Closes its compiled module and instances; one still running (Close gave up waiting)
		// ends with this exit code, which run tells from a deadline by runCtx.
		_ = m.rt.CloseWithExitCode(ctx, sys.ExitCodeContextCanceled)
	}
	if m.cache != nil {
		_ = m.cache.Close(ctx)
	}
}

// loadModule reads, verifies and compiles module m (using, or filling, its compiled code
// cache) in a wazero runtime of its own with WASI preview 1, and checks that it is a WASI
// command that imports nothing else.
func (r *Runtime) loadModule(m *module) (err error) {
	t0 := time.Now()
	d := DigestPrefix + m.hex
	b, err := r.store.Get(d)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %v", container.ErrImageNotFound, err)
	}
	if err != nil {
		return err
	}
	ctx := context.Background() // compiling is shared by every job waiting for it
	m.cache, err = wazero.NewCompilationCacheWithDir(filepath.Join(r.compiled, m.hex))
	if err != nil {
		return fmt.Errorf("wasm: compiled code cache of %s: %w", d, err)
	}
	m.rt = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCompilationCache(m.cache).
		WithCloseOnContextDone(true).
		WithMemoryLimitPages(pages(r.cfg.MaxMemory)))
	defer func() {
		if err != nil {
			m.close()
		}
	}()
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, m.rt); err != nil {
		return fmt.Errorf("wasm: WASI: %w", err)
	}
	m.compiled, err = m.rt.CompileModule(ctx, b)
	if err != nil {
		return fmt.Errorf("wasm: module %s does not compile: %w", d, err)
	}
	var foreign []string
	for _, f := range m.compiled.ImportedFunctions() {
		if mod, name, _ := f.Import(); mod != wasi_snapshot_preview1.ModuleName {
			foreign = append(foreign, mod+"."+name)
		}
	}
	for _, mem := range m.compiled.ImportedMemories() {
		mod, name, _ := mem.Import()
		foreign = append(foreign, mod+"."+name+" (memory)")
	}
	if len(foreign) > 0 {
		return fmt.Errorf("wasm: module %s imports %s: only WASI preview 1 (%s) is provided",
			d, strings.Join(foreign, ", "), wasi_snapshot_preview1.ModuleName)
	}
	if _, ok := m.compiled.ExportedFunctions()["_start"]; !ok {
		return fmt.Errorf("wasm: module %s exports no _start: a WASI command (a program with main) is needed", d)
	}
	m.load = time.Since(t0)
	// Compiling leaves megabytes of garbage (≈ 5 MB for the 21 KB c-fan) that would stay
	// resident until the scavenger returns it: on a small device, return it now, once per
	// module loaded.
	debug.FreeOSMemory()
	r.log.Debug("wasm module loaded", "module", short(d), "bytes", len(b), "took", m.load)
	return nil
}

// run instantiates m for job and runs its _start.
func (r *Runtime) run(ctx context.Context, m *module, job container.Job, t0 time.Time, cold bool) (container.Outcome, error) {
	limit := job.Memory
	if limit <= 0 {
		limit = r.cfg.Memory
	}
	limit = min(limit, r.cfg.MaxMemory)
	alloc := &allocator{limit: uint64(pages(limit)) * PageSize, buffers: &m.buffers}
	timeout := job.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	stdout := container.NewCapped(r.cfg.OutputLimit)
	stderr := container.NewTail(r.cfg.StderrLimit)
	mc := wazero.NewModuleConfig().
		WithName("").         // anonymous: any number of instances at once
		WithStartFunctions(). // _start is called below, to time instantiation and run apart
		WithArgs(append([]string{job.Function}, job.Command...)...).
		WithStdin(bytes.NewReader(job.Stdin)).
		WithStdout(stdout).
		WithStderr(stderr).
		WithSysWalltime().
		WithSysNanotime().
		WithNanosleep(sleeper(runCtx)).
		WithRandSource(rand.Reader)
	env := make(map[string]string, len(job.Env)+2)
	for k, v := range job.Env {
		env[k] = v
	}
	env["DEVICELESS_FUNCTION"] = job.Function
	env["DEVICELESS_INVOCATION_ID"] = job.ID
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		mc = mc.WithEnv(k, env[k])
	}

	out := container.Outcome{Cold: cold}
	finish := func() {
		out.Stdout, out.Truncated = stdout.Result()
		out.Stderr = stderr.String()
	}
	inst, err := m.rt.InstantiateModule(experimental.WithMemoryAllocator(runCtx, alloc), m.compiled, mc)
	started := time.Now()
	out.Start = started.Sub(t0)
	if err != nil {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		_, _ = fmt.Fprintf(stderr, "\nwasm: instantiating the module: %v\n", err)
		out.ExitCode = ExitNoStart
		finish()
		return out, nil
	}
	defer func() {
		_ = inst.Close(context.Background())
		alloc.recycle() // _start has returned: no code of this instance runs
	}()
	if alloc.mem != nil && alloc.mem.overAtStart {
		_, _ = fmt.Fprintf(stderr, "wasm: the module's initial memory (%d bytes) is over the memory limit of %d bytes\n",
			len(alloc.mem.buf), alloc.limit)
		out.ExitCode, out.OOMKilled = ExitNoStart, true
		finish()
		return out, nil
	}
	_, err = inst.ExportedFunction("_start").Call(runCtx)
	out.Run = time.Since(started)
	var exit *sys.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.ExitCode() != sys.ExitCodeDeadlineExceeded && exit.ExitCode() != sys.ExitCodeContextCanceled:
		out.ExitCode = int(exit.ExitCode())
	case errors.As(err, &exit): // closed: runCtx ended, or the runtime is closing
		finish()
		switch {
		case ctx.Err() != nil:
			return out, ctx.Err()
		case runCtx.Err() == nil:
			return out, fmt.Errorf("wasm: %s: stopped by the runtime closing", job.Function)
		}
		out.TimedOut, out.ExitCode = true, ExitKilled
	default:
		out.ExitCode = ExitTrap
		writeTrap(stderr, err)
	}
	if mem := alloc.mem; mem != nil && out.ExitCode != 0 && !out.TimedOut {
		// A run that fails after its memory hit the limit: the failure is for want of memory.
		out.OOMKilled = mem.refused || mem.peak >= alloc.limit
	}
	finish()
	r.log.Debug("wasm run", "function", job.Function, "id", job.ID, "cold", cold, "load", m.load,
		"start", out.Start, "run", out.Run, "exit", out.ExitCode, "timed_out", out.TimedOut, "oom", out.OOMKilled)
	return out, nil
}

// writeTrap ends stderr with the trap: the wasm stack trace, then a last line naming the
// trap, so that a report of stderr's last lines says what happened.
func writeTrap(stderr *container.Tail, err error) {
	msg := strings.TrimSpace(err.Error())
	first, rest, _ := strings.Cut(msg, "\n")
	if s := stderr.String(); s != "" && !strings.HasSuffix(s, "\n") {
		_, _ = stderr.Write([]byte{'\n'})
	}
	if rest != "" {
		_, _ = stderr.Write([]byte(rest + "\n"))
	}
	_, _ = stderr.Write([]byte("wasm trap: " + strings.TrimPrefix(first, "wasm error: ") + "\n"))
}

// sleeper is the instance's sleep. Compiled code notices the end of its context only when
// it runs, so a sleep that outlasts ctx ends it there: the sleep exits the instance as
// wazero does when it closes one on its context (the exit code tells which context error),
// the way WASI's proc_exit leaves a module, by panicking with a sys.ExitError.
func sleeper(ctx context.Context) sys.Nanosleep {
	return func(ns int64) {
		t := time.NewTimer(time.Duration(ns))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			code := sys.ExitCodeContextCanceled
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				code = sys.ExitCodeDeadlineExceeded
			}
			panic(sys.NewExitError(code))
		}
	}
}

// Sweep removes what a crash can leave behind: temporary files of the store and compiled
// code of modules no longer stored (evicted or removed) and not loaded.
func (r *Runtime) Sweep(context.Context) (int, error) {
	n, err := r.store.sweep()
	if err != nil {
		return n, err
	}
	dirs, err := os.ReadDir(r.compiled)
	if err != nil {
		return n, fmt.Errorf("wasm: compiled code folder: %w", err)
	}
	for _, d := range dirs {
		h := d.Name()
		r.mu.Lock()
		_, loaded := r.modules[h]
		r.mu.Unlock()
		if loaded || r.store.Has(DigestPrefix+h) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(r.compiled, h)); err != nil {
			return n, fmt.Errorf("wasm: compiled code of %s: %w", h, err)
		}
		n++
	}
	return n, nil
}

// Close waits for running jobs (or ctx: then they are closed where they are) and closes
// every loaded module.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	done := make(chan struct{})
	go func() { r.active.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("wasm: close: %w", ctx.Err())
	}
	r.mu.Lock()
	ms := make([]*module, 0, len(r.modules))
	for _, m := range r.modules {
		ms = append(ms, m)
	}
	clear(r.modules)
	r.mu.Unlock()
	for _, m := range ms {
		<-m.ready
		m.close()
	}
	return err
}

func short(d string) string {
	if len(d) > len(DigestPrefix)+12 {
		return d[:len(DigestPrefix)+12]
	}
	return d
}
