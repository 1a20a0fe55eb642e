// Package podman runs edge-agent functions in ephemeral podman containers through the
// podman service API (github.com/containers/podman/v5/pkg/bindings). It is the only package
// of the project that imports the podman bindings.
//
// Each cold job gets one container: no network, read-only root, all capabilities dropped,
// no-new-privileges, memory and pids limits, rlimits, PATH set; the job's stdin is written to
// the attached stdin, stdout is read with a size cap and the tail of stderr kept. Attach
// returns when the container exits (podman 4.3's Wait polls every 250 ms, so it is never
// used); a timer kills the container at the deadline; the container is removed in the
// background after Run returns, so the caller replies first.
package podman

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containers/podman/v5/libpod/define"
	"github.com/containers/podman/v5/pkg/bindings"
	"github.com/containers/podman/v5/pkg/bindings/containers"
	"github.com/containers/podman/v5/pkg/bindings/images"
	"github.com/containers/podman/v5/pkg/specgen"
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
	OutputLimit int           // stdout bytes kept (default 1 MiB)
	StderrLimit int           // stderr tail bytes kept (default 4 KiB)
	Memory      int64         // memory limit when a job sets none (default 128 MiB)
	CodeDir     string        // host folder for inline code (default a temp folder)
	Pull        bool          // pull missing images from a registry
	Logger      *slog.Logger  // default slog.Default()
	KillGrace   time.Duration // how long to wait for a killed container's streams (default 5s)
	RemoveDelay time.Duration // how long a removal may wait for cold starts to finish (default 2s)
	// Prepare creates the next container of a job marked Prepare as soon as one is used, so
	// the next invocation only has to start it (see cold.go).
	Prepare bool
	// PreparedIdle removes a prepared container nobody used for this long (default 5m).
	PreparedIdle time.Duration
}

// Runtime runs jobs in podman containers. It is safe for concurrent use.
type Runtime struct {
	cfg    Config
	uri    string
	log    *slog.Logger
	base   context.Context // cancelled by Close; parent of warm runners' streams
	cancel context.CancelFunc

	mu       sync.Mutex
	conn     context.Context // bindings connection values, no cancellation
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
		cfg.CodeDir = filepath.Join(os.TempDir(), "deviceless-code-"+cfg.Agent)
	}
	if err := os.MkdirAll(cfg.CodeDir, 0o755); err != nil {
		return nil, fmt.Errorf("podman: code folder: %w", err)
	}
	// Functions may run as an unprivileged user: the code must be readable by it.
	if err := os.Chmod(cfg.CodeDir, 0o755); err != nil {
		return nil, fmt.Errorf("podman: code folder: %w", err)
	}
	base, cancel := context.WithCancel(context.Background())
	return &Runtime{
		cfg: cfg, uri: uri, log: cfg.Logger, base: base, cancel: cancel,
		active:   map[string]struct{}{},
		warm:     map[string][]*runner{},
		prepared: map[string]*prepared{},
	}, nil
}

// opCtx carries the cancellation of one operation and the values of the bindings connection.
type opCtx struct {
	context.Context
	conn context.Context
}

func (c opCtx) Value(k any) any {
	if v := c.Context.Value(k); v != nil {
		return v
	}
	return c.conn.Value(k)
}

// client returns ctx extended with the bindings connection, connecting on first use.
func (r *Runtime) client(ctx context.Context) (context.Context, error) {
	r.mu.Lock()
	conn := r.conn
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, errors.New("podman: runtime closed")
	}
	if conn == nil {
		c, err := bindings.NewConnection(ctx, r.uri)
		if err != nil {
			return nil, fmt.Errorf("podman service at %s: %w", r.uri, err)
		}
		conn = context.WithoutCancel(c)
		r.mu.Lock()
		r.conn = conn
		r.mu.Unlock()
	}
	return opCtx{Context: ctx, conn: conn}, nil
}

// Ping reports whether the podman service answers.
func (r *Runtime) Ping(ctx context.Context) error {
	c, err := r.client(ctx)
	if err != nil {
		return err
	}
	if _, err := images.Exists(c, "deviceless/ping-probe", nil); err != nil {
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

// attach is containers.Attach on a private copy of the connection: the bindings' Attach
// replaces the connection's HTTP transport with one bound to its own socket, which breaks
// (and races with) every other request sharing that connection.
func attach(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.Writer, ready chan bool) error {
	conn, err := bindings.GetClient(ctx)
	if err != nil {
		return err
	}
	own := *conn
	client := *conn.Client
	own.Client = &client
	return containers.Attach(swapConn{Context: ctx, from: conn, to: &own}, id, stdin, stdout, stderr, ready, nil)
}

// swapConn hands out a different bindings connection than its parent context holds.
type swapConn struct {
	context.Context
	from, to *bindings.Connection
}

func (c swapConn) Value(k any) any {
	v := c.Context.Value(k)
	if conn, ok := v.(*bindings.Connection); ok && conn == c.from {
		return c.to
	}
	return v
}

// exitState inspects a container whose streams have ended. The streams close a moment
// before podman records the exit, so a container still shown running is inspected again.
func (r *Runtime) exitState(id string) (*define.InspectContainerState, error) {
	ctx, cancel := r.detached(r.cfg.KillGrace)
	defer cancel()
	delay := 2 * time.Millisecond
	for {
		data, err := containers.Inspect(ctx, id, new(containers.InspectOptions).WithSize(false))
		if err != nil {
			return nil, fmt.Errorf("inspect: %w", err)
		}
		if data.State != nil && !data.State.Running && data.State.Status != "running" && data.State.Status != "stopping" {
			return data.State, nil
		}
		select {
		case <-ctx.Done():
			return nil, errors.New("container still running after its streams closed")
		case <-time.After(delay):
		}
		delay = min(2*delay, 100*time.Millisecond)
	}
}

// create creates the container for s, pulling or reporting a missing image.
func (r *Runtime) create(c context.Context, s *specgen.SpecGenerator) (string, error) {
	resp, err := containers.CreateWithSpec(c, s, nil)
	if err == nil {
		r.track(resp.ID)
		return resp.ID, nil
	}
	exists, xerr := images.Exists(c, s.Image, nil)
	if xerr != nil || exists {
		return "", fmt.Errorf("podman: create container for %s: %w", s.Image, err)
	}
	if !r.cfg.Pull {
		return "", fmt.Errorf("%w: %q is not present locally (pulling is off)", container.ErrImageNotFound, s.Image)
	}
	if _, perr := images.Pull(c, s.Image, new(images.PullOptions).WithQuiet(true)); perr != nil {
		return "", fmt.Errorf("%w: %q: pull: %v", container.ErrImageNotFound, s.Image, perr)
	}
	resp, err = containers.CreateWithSpec(c, s, nil)
	if err != nil {
		return "", fmt.Errorf("podman: create container for %s: %w", s.Image, err)
	}
	r.track(resp.ID)
	return resp.ID, nil
}

func ptr[T any](v T) *T { return &v }

// spec builds the locked-down container spec for job.
func (r *Runtime) spec(job container.Job, codeDir string) *specgen.SpecGenerator {
	s := specgen.NewSpecGenerator(job.Image, false)
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
	s.Stdin = ptr(true)
	s.NetNS = specgen.Namespace{NSMode: specgen.NoNetwork}
	s.ReadOnlyFilesystem = ptr(true)
	s.CapDrop = []string{"ALL"}
	s.NoNewPrivileges = ptr(true)
	s.User = r.cfg.User
	s.OCIRuntime = r.cfg.OCIRuntime
	s.Systemd = "false"
	// Output travels over attach; nothing is kept in container logs.
	s.LogConfiguration = &specgen.LogConfig{Driver: "none"}
	mem := job.Memory
	if mem <= 0 {
		mem = r.cfg.Memory
	}
	s.ResourceLimits = &spec.LinuxResources{
		Memory: &spec.LinuxMemory{Limit: ptr(mem), Swap: ptr(mem)},
		Pids:   &spec.LinuxPids{Limit: r.cfg.Pids},
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

// detached returns a context with the connection and a deadline, independent of callers.
func (r *Runtime) detached(d time.Duration) (context.Context, context.CancelFunc) {
	r.mu.Lock()
	conn := r.conn
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	if conn == nil {
		conn = context.Background()
	}
	return opCtx{Context: ctx, conn: conn}, cancel
}

func (r *Runtime) kill(id string) {
	ctx, cancel := r.detached(r.cfg.KillGrace)
	defer cancel()
	if err := containers.Kill(ctx, id, new(containers.KillOptions).WithSignal("KILL")); err != nil {
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
	ctx, cancel := r.detached(30 * time.Second)
	defer cancel()
	_, err := containers.Remove(ctx, id, new(containers.RemoveOptions).WithForce(true).WithVolumes(true).WithIgnore(true))
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
	list, err := containers.List(c, new(containers.ListOptions).WithAll(true).
		WithFilters(map[string][]string{"label": {LabelAgent + "=" + r.cfg.Agent}}))
	if err != nil {
		return 0, fmt.Errorf("podman: list containers: %w", err)
	}
	n := 0
	for _, ctr := range list {
		r.mu.Lock()
		_, busy := r.active[ctr.ID]
		r.mu.Unlock()
		if busy {
			continue
		}
		if _, err := containers.Remove(c, ctr.ID, new(containers.RemoveOptions).WithForce(true).WithVolumes(true).WithIgnore(true)); err != nil {
			return n, fmt.Errorf("podman: remove orphan %s: %w", short(ctr.ID), err)
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
