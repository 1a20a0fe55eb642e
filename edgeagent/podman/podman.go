// Package podman runs edge-agent functions in ephemeral podman containers through the
// podman service's libpod REST API. It is the only package of the project that imports the
// podman bindings, and it uses only their connection (github.com/containers/podman/v5/pkg/bindings):
// the few calls it makes are in api.go.
//
// Each cold job gets one container: no network, read-only root, all capabilities dropped,
// no-new-privileges, memory and pids limits, rlimits, PATH set; the job's stdin is written to
// the attached stdin, stdout is read with a size cap and the tail of stderr kept. Attach
// returns when the container exits (podman 4.3's Wait polls every 250 ms, so it is never
// used); a timer kills the container at the deadline; the container is removed in the
// background after Run returns, so the caller replies first. A job with a warm policy runs in
// a long-lived runner container instead (warm.go; for python3 one interpreter, runner.py).
package podman

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containers/podman/v5/pkg/bindings"
	spec "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/deviceless/deviceless/edgeagent/container"
)

// Labels set on every container this package creates.
const (
	LabelAgent      = "io.deviceless.agent"
	LabelFunction   = "io.deviceless.function"
	LabelInvocation = "io.deviceless.invocation"
)

// DefaultPath is the PATH every container gets (API containers have none by default).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Config configures a Runtime.
type Config struct {
	Socket      string        // unix socket path or unix:// URI of the podman service
	OCIRuntime  string        // OCI runtime name ("runc"); empty uses the service's default
	Agent       string        // agent id, stored in the LabelAgent label
	User        string        // user the function runs as; empty uses the image's
	Pids        int64         // pids limit per container (default 64)
	CPUs        float64       // CPUs a container may use, as a CFS quota per 100ms period (0: no limit)
	OutputLimit int           // stdout bytes kept (default 1 MiB)
	StderrLimit int           // stderr tail bytes kept (default 4 KiB)
	Memory      int64         // memory limit when a job sets none (default 128 MiB)
	CodeDir     string        // host folder for inline code, in a private one (default a new temp folder)
	Pull        bool          // pull missing images from a registry
	Logger      *slog.Logger  // default slog.Default()
	KillGrace   time.Duration // how long to wait for a killed container's streams (default 5s)
	APITimeout  time.Duration // deadline of every API call but pulls (default 30s)
	PullTimeout time.Duration // deadline of an image pull (default 10m)
	RemoveDelay time.Duration // how long a removal may wait for cold starts to finish (default 2s)
	// Prepare creates the next container of a job marked Prepare as soon as one is used, so
	// the next invocation only has to start it (see cold.go).
	Prepare bool
	// PreparedIdle removes a prepared container nobody used for this long (default 5m).
	PreparedIdle time.Duration
}

// Runtime runs jobs in podman containers. It is safe for concurrent use.
type Runtime struct {
	cfg       Config
	uri       string
	log       *slog.Logger
	runnerDir string          // host folder holding the python3 warm runner (warm.go)
	base      context.Context // cancelled by Close; parent of warm runners' streams
	cancel    context.CancelFunc

	mu       sync.Mutex
	conn     *bindings.Connection // nil until the first successful connection
	active   map[string]struct{}
	warm     map[string][]*runner // idle warm runners by job key
	prepared map[string]*prepared // created, attached, not started containers by job key
	closed   bool
	removals sync.WaitGroup
	starting atomic.Int64 // cold starts in progress
}

var _ container.Runtime = (*Runtime)(nil)

// New validates cfg and returns a Runtime. It does not contact the service: the first Run or
// Ping does, and a service that goes away and comes back is used again.
func New(cfg Config) (*Runtime, error) {
	if cfg.Socket == "" {
		return nil, errors.New("podman: socket is required")
	}
	uri := cfg.Socket
	if !strings.Contains(uri, "://") {
		if !filepath.IsAbs(uri) {
			abs, err := filepath.Abs(uri)
			if err != nil {
				return nil, fmt.Errorf("podman: socket %q: %w", uri, err)
			}
			uri = abs
		}
		uri = "unix://" + uri
	}
	if !strings.HasPrefix(uri, "unix://") && !strings.HasPrefix(uri, "tcp://") && !strings.HasPrefix(uri, "ssh://") {
		return nil, fmt.Errorf("podman: socket %q: want a path or a unix://, tcp:// or ssh:// URI", cfg.Socket)
	}
	if cfg.Agent == "" {
		return nil, errors.New("podman: agent id is required (containers are labelled with it)")
	}
	if cfg.Pids == 0 {
		cfg.Pids = 64
	}
	if cfg.OutputLimit == 0 {
		cfg.OutputLimit = 1 << 20
	}
	if cfg.StderrLimit == 0 {
		cfg.StderrLimit = 4 << 10
	}
	if cfg.Memory == 0 {
		cfg.Memory = 128 << 20
	}
	if cfg.KillGrace == 0 {
		cfg.KillGrace = 5 * time.Second
	}
	if cfg.APITimeout == 0 {
		cfg.APITimeout = 30 * time.Second
	}
	if cfg.PullTimeout == 0 {
		cfg.PullTimeout = 10 * time.Minute
	}
	if cfg.PreparedIdle == 0 {
		cfg.PreparedIdle = 5 * time.Minute
	}
	if cfg.RemoveDelay == 0 {
		cfg.RemoveDelay = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CodeDir == "" {
		// A fresh folder, not a predictable name under the shared $TMPDIR.
		dir, err := os.MkdirTemp("", "deviceless-code-")
		if err != nil {
			return nil, fmt.Errorf("podman: code folder: %w", err)
		}
		cfg.CodeDir = dir
	} else if err := os.MkdirAll(cfg.CodeDir, 0o755); err != nil {
		return nil, fmt.Errorf("podman: code folder: %w", err)
	}
	// Functions may run as an unprivileged user: the code must be readable by it.
	if err := os.Chmod(cfg.CodeDir, 0o755); err != nil {
		return nil, fmt.Errorf("podman: code folder: %w", err)
	}
	runnerDir, err := writeRunner(cfg.CodeDir)
	if err != nil {
		return nil, err
	}
	base, cancel := context.WithCancel(context.Background())
	return &Runtime{
		cfg: cfg, uri: uri, log: cfg.Logger, base: base, cancel: cancel, runnerDir: runnerDir,
		active:   map[string]struct{}{},
		warm:     map[string][]*runner{},
		prepared: map[string]*prepared{},
	}, nil
}

// client returns the connection to the service, connecting on first use.
func (r *Runtime) client(ctx context.Context) (*bindings.Connection, error) {
	r.mu.Lock()
	conn := r.conn
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, errors.New("podman: runtime closed")
	}
	if conn != nil {
		return conn, nil
	}
	cctx, cancel := r.bounded(ctx)
	defer cancel()
	c, err := bindings.NewConnection(cctx, r.uri)
	if err != nil {
		return nil, fmt.Errorf("podman service at %s: %w", r.uri, err)
	}
	if conn, err = bindings.GetClient(c); err != nil {
		return nil, err
	}
	if t, ok := conn.Client.Transport.(*http.Transport); ok {
		// Keep a connection per concurrent request (the default keeps 2).
		t.MaxIdleConnsPerHost = 16
	}
	r.mu.Lock()
	if r.conn == nil {
		r.conn = conn
	}
	conn = r.conn
	r.mu.Unlock()
	return conn, nil
}

// bounded is ctx with the deadline of one API call (APITimeout) added.
func (r *Runtime) bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.cfg.APITimeout)
}

// Ping reports whether the podman service answers.
func (r *Runtime) Ping(ctx context.Context) error {
	c, err := r.client(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := r.bounded(ctx)
	defer cancel()
	if _, err := imageExists(ctx, c, "deviceless/ping-probe"); err != nil {
		return fmt.Errorf("podman service at %s: %w", r.uri, err)
	}
	return nil
}

// Run runs job; see container.Runtime.
func (r *Runtime) Run(ctx context.Context, job container.Job) (container.Outcome, error) {
	if job.Image == "" {
		return container.Outcome{}, errors.New("podman: job has no image")
	}
	if job.Warm != nil {
		return r.runWarm(ctx, job)
	}
	return r.runCold(ctx, job)
}

// exitState inspects a container whose streams have ended. The streams close a moment
// before podman records the exit, so a container still shown running is inspected again.
func (r *Runtime) exitState(id string) (containerState, error) {
	c, ctx, cancel, err := r.detached(r.cfg.KillGrace)
	if err != nil {
		return containerState{}, err
	}
	defer cancel()
	delay := 2 * time.Millisecond
	for {
		state, err := inspectState(ctx, c, id)
		if err != nil {
			return containerState{}, fmt.Errorf("inspect: %w", err)
		}
		if !state.Running && state.Status != "running" && state.Status != "stopping" {
			return state, nil
		}
		select {
		case <-ctx.Done():
			return containerState{}, errors.New("container still running after its streams closed")
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// create creates the container for s, pulling or reporting a missing image.
func (r *Runtime) create(ctx context.Context, c *bindings.Connection, s *createSpec) (string, error) {
	call, cancel := r.bounded(ctx)
	id, err := createContainer(call, c, s)
	cancel()
	if err == nil {
		r.track(id)
		return id, nil
	}
	call, cancel = r.bounded(ctx)
	exists, xerr := imageExists(call, c, s.Image)
	cancel()
	if xerr != nil || exists {
		return "", fmt.Errorf("podman: create container for %s: %w", s.Image, err)
	}
	if !r.cfg.Pull {
		return "", fmt.Errorf("%w: %q is not present locally (pulling is off)", container.ErrImageNotFound, s.Image)
	}
	pull, cancel := context.WithTimeout(ctx, r.cfg.PullTimeout)
	perr := pullImage(pull, c, s.Image)
	cancel()
	if perr != nil {
		return "", fmt.Errorf("%w: %q: pull: %v", container.ErrImageNotFound, s.Image, perr)
	}
	call, cancel = r.bounded(ctx)
	id, err = createContainer(call, c, s)
	cancel()
	if err != nil {
		return "", fmt.Errorf("podman: create container for %s: %w", s.Image, err)
	}
	r.track(id)
	return id, nil
}

func ptr[T any](v T) *T { return &v }

// cpuPeriod is the CFS period of a container's CPU quota, in microseconds (the kernel's
// default, 100ms).
const cpuPeriod = 100000

// spec builds the locked-down container spec for job.
func (r *Runtime) spec(job container.Job, codeDir string) *createSpec {
	s := &createSpec{Image: job.Image}
	s.Name = "deviceless-" + r.cfg.Agent + "-" + sanitize(job.Function) + "-" + randomHex(4)
	s.Labels = map[string]string{
		LabelAgent:      r.cfg.Agent,
		LabelFunction:   job.Function,
		LabelInvocation: job.ID,
	}
	s.Command = job.Command
	s.Env = map[string]string{"PATH": DefaultPath, "HOME": "/tmp", "DEVICELESS_FUNCTION": job.Function}
	for k, v := range job.Env {
		s.Env[k] = v
	}
	s.Stdin = true
	s.NetNS = namespace{NSMode: "none"}
	s.ReadOnlyFilesystem = true
	s.CapDrop = []string{"ALL"}
	s.NoNewPrivileges = true
	s.User = r.cfg.User
	s.OCIRuntime = r.cfg.OCIRuntime
	s.Systemd = "false"
	// Output travels over attach; nothing is kept in container logs.
	s.LogConfiguration = &logConfig{Driver: "none"}
	mem := job.Memory
	if mem <= 0 {
		mem = r.cfg.Memory
	}
	s.ResourceLimits = &spec.LinuxResources{
		Memory: &spec.LinuxMemory{Limit: ptr(mem), Swap: ptr(mem)},
		Pids:   &spec.LinuxPids{Limit: r.cfg.Pids},
	}
	if r.cfg.CPUs > 0 {
		s.ResourceLimits.CPU = &spec.LinuxCPU{Period: ptr(uint64(cpuPeriod)), Quota: ptr(int64(r.cfg.CPUs * cpuPeriod))}
	}
	s.Rlimits = []spec.POSIXRlimit{
		{Type: "nofile", Soft: 1024, Hard: 1024},
		{Type: "nproc", Soft: 1024, Hard: 1024},
		{Type: "core", Soft: 0, Hard: 0},
	}
	// Writable scratch space; the root stays read-only.
	s.Mounts = []spec.Mount{{
		Destination: "/tmp",
		Type:        "tmpfs",
		Source:      "tmpfs",
		Options:     []string{"rw", "nosuid", "nodev", "size=16m", "mode=1777", "notmpcopyup"},
	}}
	if codeDir != "" {
		s.Mounts = append(s.Mounts, spec.Mount{
			Destination: filepath.Dir(container.CodePath),
			Type:        "bind",
			Source:      codeDir,
			Options:     []string{"ro", "rbind", "nosuid", "nodev"},
		})
	}
	return s
}

// writeRunner writes the python3 warm runner into dir/runner, which warm python3 containers
// mount read-only. (MkdirTemp's names for code folders end in -NNN: no clash.) It is
// replaced by a rename, so a container starting meanwhile sees the old file or the new one.
func writeRunner(codeDir string) (string, error) {
	dir := filepath.Join(codeDir, "runner")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("podman: runner folder: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("podman: runner folder: %w", err)
	}
	f, err := os.CreateTemp(dir, ".runner-")
	if err != nil {
		return "", fmt.Errorf("podman: runner: %w", err)
	}
	_, err = f.Write(pythonRunner)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, "runner.py"))
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("podman: runner: %w", err)
	}
	return dir, nil
}

// writeCode writes a job's inline code into a fresh folder that the container mounts.
func (r *Runtime) writeCode(job container.Job) (string, error) {
	if job.Code == "" {
		return "", nil
	}
	dir, err := os.MkdirTemp(r.cfg.CodeDir, sanitize(job.Function)+"-")
	if err != nil {
		return "", fmt.Errorf("podman: code for %s: %w", job.Function, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("podman: code for %s: %w", job.Function, err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(container.CodePath)), []byte(job.Code), 0o644); err != nil {
		return "", fmt.Errorf("podman: code for %s: %w", job.Function, err)
	}
	return dir, nil
}

func (r *Runtime) removeCode(dir string) {
	if dir == "" {
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		r.log.Warn("removing function code", "dir", dir, "err", err)
	}
}

func (r *Runtime) track(id string) {
	r.mu.Lock()
	r.active[id] = struct{}{}
	r.mu.Unlock()
}

func (r *Runtime) isClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closed
}

// detached returns the connection and a context with a deadline, independent of callers.
func (r *Runtime) detached(d time.Duration) (*bindings.Connection, context.Context, context.CancelFunc, error) {
	r.mu.Lock()
	conn := r.conn
	r.mu.Unlock()
	if conn == nil {
		return nil, nil, nil, errors.New("podman: not connected")
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	return conn, ctx, cancel, nil
}

func (r *Runtime) kill(id string) {
	c, ctx, cancel, err := r.detached(r.cfg.KillGrace)
	if err == nil {
		defer cancel()
		err = killContainer(ctx, c, id)
	}
	if err != nil {
		r.log.Debug("kill container", "id", short(id), "err", err)
	}
}

// removeLater removes a finished container in the background; Close waits for it. The
// removal waits (up to RemoveDelay) for a moment when no cold start is in progress: removing
// costs the service as much work as starting, and the next invocation should not pay for it.
func (r *Runtime) removeLater(id, codeDir string) {
	r.removals.Add(1)
	go func() {
		defer r.removals.Done()
		deadline := time.Now().Add(r.cfg.RemoveDelay)
		for r.starting.Load() > 0 && time.Now().Before(deadline) && !r.isClosed() {
			time.Sleep(10 * time.Millisecond)
		}
		r.remove(id)
		r.removeCode(codeDir)
	}()
}

func (r *Runtime) remove(id string) {
	t0 := time.Now()
	c, ctx, cancel, err := r.detached(r.cfg.APITimeout)
	if err == nil {
		defer cancel()
		err = removeContainer(ctx, c, id)
	}
	r.log.Debug("removed container", "id", short(id), "took", time.Since(t0))
	if err != nil {
		// The sweep gets it later.
		r.log.Warn("removing container", "id", short(id), "err", err)
	}
	r.mu.Lock()
	delete(r.active, id)
	r.mu.Unlock()
}

// Sweep removes containers labelled with this agent's id that no job owns: leftovers of a
// crash or of a service that went away mid-invocation.
func (r *Runtime) Sweep(ctx context.Context) (int, error) {
	c, err := r.client(ctx)
	if err != nil {
		return 0, err
	}
	call, cancel := r.bounded(ctx)
	ids, err := listByLabel(call, c, LabelAgent+"="+r.cfg.Agent)
	cancel()
	if err != nil {
		return 0, fmt.Errorf("podman: list containers: %w", err)
	}
	n := 0
	for _, id := range ids {
		r.mu.Lock()
		_, busy := r.active[id]
		r.mu.Unlock()
		if busy {
			continue
		}
		call, cancel := r.bounded(ctx)
		err := removeContainer(call, c, id)
		cancel()
		if err != nil {
			return n, fmt.Errorf("podman: remove orphan %s: %w", short(id), err)
		}
		n++
	}
	return n, nil
}

// Close stops warm runners and waits for pending removals (or ctx).
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	var idle []*runner
	for _, rs := range r.warm {
		idle = append(idle, rs...)
	}
	r.warm = map[string][]*runner{}
	var unused []*prepared
	for _, p := range r.prepared {
		unused = append(unused, p)
	}
	clear(r.prepared)
	r.mu.Unlock()
	for _, w := range idle {
		w.retire()
	}
	for _, p := range unused {
		<-p.ready
		r.discard(p)
	}
	done := make(chan struct{})
	go func() { r.removals.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		r.cancel()
		return fmt.Errorf("podman: close: %w", ctx.Err())
	}
	r.cancel()
	return nil
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) > 40 {
		b = b[:40]
	}
	if len(b) == 0 {
		return "fn"
	}
	return string(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
