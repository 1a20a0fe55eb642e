package podman

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/deviceless/deviceless/edgeagent/container"
)

// A cold invocation gets a container nobody used before. Creating it and having podman
// init it (runc create, which podman does when we attach) is most of the cost; starting
// it is ≈ 30 ms. For jobs marked Prepare (images with /bin/sh), as soon as a container of a
// function is used the next one is created and attached in the background, its stdin an
// open pipe: the next invocation of that function writes the invocation id and JSON into it
// and starts it. Each invocation still runs in its own fresh container; the number of
// containers created is the same, only earlier.

// preparedEntrypoint is the entrypoint of a prepared container. The invocation id is the
// first line of stdin (shells read pipes a byte at a time, so the rest is left to the
// function). When the function exits, a last stderr line reports its exit code and the
// container's OOM kill count (cgroup v2 memory.events or v1 memory.oom_control; "-" when
// neither is readable) after a per-container boundary, so that the agent does not have to
// ask podman (inspect) in the common case; see exitFromMarker.
const preparedEntrypoint = `b=$1; shift
IFS= read -r DEVICELESS_INVOCATION_ID; export DEVICELESS_INVOCATION_ID
"$@"; rc=$?
oom=-
for f in /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control; do
  if [ -r "$f" ]; then
    while read -r k v; do if [ "$k" = oom_kill ]; then oom=$v; fi; done <"$f"
    break
  fi
done
printf '\n%s %s %s\n' "$b" "$rc" "$oom" >&2
exit "$rc"`

// markerRoom is how much longer than StderrLimit the stderr tail of a prepared container
// is kept, for the exit marker.
const markerRoom = 128

// prepared is a created and attached container that has not been started.
type prepared struct {
	key      string
	id       string
	codeDir  string
	wrapID   bool   // reads the invocation id from its first stdin line, reports its exit
	boundary string // of the exit marker, with wrapID
	stdin    *io.PipeWriter
	stdout   *container.Capped
	stderr   *container.Tail
	attached chan error    // Attach's result once the streams end
	detach   func()        // ends the attach stream (a container the service no longer reports on)
	ready    chan struct{} // closed when preparation finished; err tells how
	err      error
	idle     *time.Timer
	create   time.Duration // how long the create call took
	attach   time.Duration // from created to attached (podman inits the container)
}

func (r *Runtime) runCold(ctx context.Context, job container.Job) (container.Outcome, error) {
	t0 := time.Now()
	r.starting.Add(1)
	startDone := sync.OnceFunc(func() { r.starting.Add(-1) })
	defer startDone()
	k := key(job)
	if job.Prepare && r.cfg.Prepare {
		defer r.prepareLater(job, k)
		if p := r.takePrepared(k); p != nil {
			select {
			case <-p.ready:
			case <-ctx.Done():
				go func() { <-p.ready; r.discard(p) }()
				return container.Outcome{}, ctx.Err()
			}
			if p.err == nil {
				out, err := r.runPrepared(ctx, p, job, t0, startDone)
				if err == nil || !errors.Is(err, errNotStarted) {
					return out, err
				}
				r.log.Debug("prepared container unusable; creating another", "function", job.Function, "err", err)
			}
		}
	}
	p, err := r.prepareNow(ctx, job, k, false)
	if err != nil {
		return container.Outcome{}, err
	}
	return r.runPrepared(ctx, p, job, t0, startDone)
}

var errNotStarted = errors.New("container did not start")

// prepareNow creates and attaches a container for job. With wrapID the invocation id is
// read from stdin; otherwise it is in the environment.
func (r *Runtime) prepareNow(ctx context.Context, job container.Job, k string, wrapID bool) (*prepared, error) {
	c, err := r.client(ctx)
	if err != nil {
		return nil, err
	}
	codeDir, err := r.writeCode(job)
	if err != nil {
		return nil, err
	}
	s := r.spec(job, codeDir)
	boundary, stderrLimit := "", r.cfg.StderrLimit
	if wrapID {
		boundary, stderrLimit = "--deviceless-exit-"+randomHex(12), stderrLimit+markerRoom
		s.Entrypoint = []string{"/bin/sh", "-c", preparedEntrypoint, "deviceless", boundary}
		s.Labels[LabelInvocation] = "prepared"
	} else {
		s.Env["DEVICELESS_INVOCATION_ID"] = job.ID
	}
	t0 := time.Now()
	id, err := r.create(ctx, c, s)
	if err != nil {
		r.removeCode(codeDir)
		return nil, err
	}
	created := time.Now()
	p := &prepared{key: k, id: id, codeDir: codeDir, wrapID: wrapID, boundary: boundary, create: created.Sub(t0),
		stdout: container.NewCapped(r.cfg.OutputLimit), stderr: container.NewTail(stderrLimit),
		attached: make(chan error, 1), ready: make(chan struct{})}
	close(p.ready)
	pr, pw := io.Pipe()
	p.stdin = pw
	attachReady := make(chan bool, 1)
	// The streams outlive ctx so they drain after a kill; Close or detach ends them.
	actx, detach := context.WithCancel(r.base)
	p.detach = detach
	go func() {
		err := attach(actx, c, id, pr, p.stdout, p.stderr, attachReady, r.cfg.APITimeout)
		detach()
		pr.CloseWithError(net.ErrClosed) // unblocks a writer once the container is gone
		p.attached <- err
	}()
	select {
	case <-attachReady:
		p.attach = time.Since(created)
		return p, nil
	case err := <-p.attached:
		r.discard(p)
		return nil, fmt.Errorf("podman: attach %s: %w", job.Function, err)
	case <-ctx.Done():
		r.discard(p)
		return nil, ctx.Err()
	}
}

// runPrepared feeds the invocation to p, starts it and waits for it to exit.
func (r *Runtime) runPrepared(ctx context.Context, p *prepared, job container.Job, t0 time.Time, startDone func()) (container.Outcome, error) {
	c, err := r.client(ctx)
	if err != nil {
		r.discard(p)
		return container.Outcome{}, err
	}
	defer r.removeLater(p.id, p.codeDir)
	select {
	case err := <-p.attached:
		// The streams of a waiting container ended (the service restarted?): its output
		// would be lost.
		_ = p.stdin.CloseWithError(net.ErrClosed)
		return container.Outcome{}, fmt.Errorf("podman: %s: %w: streams closed before start: %v", job.Function, errNotStarted, err)
	default:
	}
	go func() {
		if p.wrapID {
			if _, err := io.WriteString(p.stdin, job.ID+"\n"); err != nil {
				return
			}
		}
		_, _ = p.stdin.Write(job.Stdin)
		_ = p.stdin.Close()
	}()
	starting := time.Now()
	call, cancel := r.bounded(ctx)
	err = startContainer(call, c, p.id)
	cancel()
	if err != nil {
		_ = p.stdin.CloseWithError(err)
		return container.Outcome{}, fmt.Errorf("podman: start %s: %w: %w", job.Function, errNotStarted, err)
	}
	started := time.Now()
	startDone()

	var timedOut atomic.Bool
	timer := time.AfterFunc(job.Timeout, func() {
		timedOut.Store(true)
		r.kill(p.id)
	})
	stopOnCancel := context.AfterFunc(ctx, func() { r.kill(p.id) })
	attachErr := r.awaitStreams(ctx, p.attached, p.detach, job.Timeout)
	exited := time.Now()
	timer.Stop()
	stopOnCancel()

	out := container.Outcome{Cold: true, Start: started.Sub(t0), Run: exited.Sub(started), TimedOut: timedOut.Load()}
	out.Stdout, out.Truncated = p.stdout.Result()
	out.Stderr = p.stderr.String()
	if attachErr != nil {
		r.kill(p.id)
	}
	known := false // exit code and OOM verdict known without asking podman
	if p.wrapID {
		var m exitMarker
		if out.Stderr, m = exitFromMarker(out.Stderr, p.boundary, r.cfg.StderrLimit); m.found && attachErr == nil && m.oomKills == 0 {
			out.ExitCode, known = m.code, true
		}
	}
	if !known {
		state, err := r.exitState(p.id)
		if err != nil {
			if attachErr != nil {
				err = fmt.Errorf("%w (attach: %v)", err, attachErr)
			}
			return out, fmt.Errorf("podman: %s: %w", job.Function, err)
		}
		out.ExitCode = int(state.ExitCode)
		out.OOMKilled = state.OOMKilled
	}
	out.OOMKilled = out.OOMKilled || (out.ExitCode == 137 && !out.TimedOut)
	r.log.Debug("cold run", "function", job.Function, "prepared", p.wrapID, "create", p.create, "attach", p.attach,
		"wait", starting.Sub(t0), "start", started.Sub(starting), "run", out.Run, "inspected", !known,
		"exit", time.Since(exited))
	if ctx.Err() != nil && !out.TimedOut {
		return out, ctx.Err()
	}
	return out, nil
}

// awaitStreams waits for a started container's attach stream to end (attached). A
// container is killed at its deadline or when ctx ends; if its streams are still open
// 2×KillGrace after that, the service is not answering: detach ends them, and the
// container is given up on with an error.
func (r *Runtime) awaitStreams(ctx context.Context, attached <-chan error, detach func(), timeout time.Duration) error {
	limit := time.NewTimer(timeout + 2*r.cfg.KillGrace)
	defer limit.Stop()
	cancelled := ctx.Done()
	for {
		select {
		case err := <-attached:
			return err
		case <-r.base.Done():
			return errors.New("runtime closed")
		case <-cancelled:
			cancelled = nil
			limit.Reset(2 * r.cfg.KillGrace) // no stale expiry is received after Reset (Go ≥ 1.23)
		case <-limit.C:
			detach()
			return fmt.Errorf("container streams still open %s after it was killed: the podman service does not answer", 2*r.cfg.KillGrace)
		}
	}
}

// takePrepared hands out the prepared container for k, if any (it may still be preparing).
func (r *Runtime) takePrepared(k string) *prepared {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.prepared[k]
	if p == nil {
		return nil
	}
	delete(r.prepared, k)
	if p.idle != nil {
		p.idle.Stop()
	}
	return p
}

// maxPrepared bounds how many functions have a container waiting.
const maxPrepared = 16

// prepareLater prepares the next container for job's function in the background.
func (r *Runtime) prepareLater(job container.Job, k string) {
	r.mu.Lock()
	if r.closed || r.prepared[k] != nil || len(r.prepared) >= maxPrepared {
		r.mu.Unlock()
		return
	}
	slot := &prepared{key: k, ready: make(chan struct{})}
	r.prepared[k] = slot
	r.starting.Add(1)
	r.removals.Add(1)
	r.mu.Unlock()
	job.ID, job.Stdin = "", nil
	go func() {
		defer r.removals.Done()
		// Each call has its deadline (APITimeout, PullTimeout); Close ends the rest.
		p, err := r.prepareNow(r.base, job, k, true)
		r.starting.Add(-1)
		if err != nil {
			slot.err = err
		} else {
			slot.id, slot.codeDir, slot.wrapID, slot.boundary, slot.stdin = p.id, p.codeDir, p.wrapID, p.boundary, p.stdin
			slot.stdout, slot.stderr, slot.attached, slot.detach = p.stdout, p.stderr, p.attached, p.detach
			slot.create, slot.attach = p.create, p.attach
		}
		r.mu.Lock()
		if err == nil && r.prepared[k] == slot {
			slot.idle = time.AfterFunc(r.cfg.PreparedIdle, func() {
				if r.takePrepared(k) == slot {
					r.discard(slot)
				}
			})
		}
		r.mu.Unlock()
		close(slot.ready)
		if err != nil {
			r.log.Debug("preparing a container failed", "function", job.Function, "err", err)
			if r.takePrepared(k) == slot {
				return // nothing to remove
			}
		}
	}()
}

// discard removes a prepared container that will not run.
func (r *Runtime) discard(p *prepared) {
	if p.id == "" {
		return
	}
	_ = p.stdin.CloseWithError(net.ErrClosed) // quiets the bindings' stdin copier
	r.removeLater(p.id, p.codeDir)
}

// exitMarker is what the last stderr line of a prepared container reports.
type exitMarker struct {
	found    bool
	code     int
	oomKills int // -1: unknown
}

// exitFromMarker takes the exit marker (see preparedEntrypoint) off the end of a prepared
// container's stderr tail, and returns the function's own stderr tail (at most limit bytes)
// and the marker. Without a marker (the container was killed, or the wrapper died) stderr
// is returned as it is, cut to limit.
func exitFromMarker(stderr, boundary string, limit int) (string, exitMarker) {
	cut := func(s string) string {
		if len(s) > limit {
			return s[len(s)-limit:]
		}
		return s
	}
	if boundary == "" || !strings.HasSuffix(stderr, "\n") {
		return cut(stderr), exitMarker{}
	}
	start := strings.LastIndexByte(stderr[:len(stderr)-1], '\n') + 1
	f := strings.Fields(stderr[start : len(stderr)-1])
	if len(f) != 3 || f[0] != boundary || start == 0 {
		return cut(stderr), exitMarker{}
	}
	code, err := strconv.Atoi(f[1])
	if err != nil {
		return cut(stderr), exitMarker{}
	}
	m := exitMarker{found: true, code: code, oomKills: -1}
	if n, err := strconv.Atoi(f[2]); err == nil {
		m.oomKills = n
	}
	// The wrapper starts the marker on a line of its own.
	return cut(stderr[:start-1]), m
}
