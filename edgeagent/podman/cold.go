package podman

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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

// idReader is the entrypoint of a prepared container: the invocation id is the first line
// of stdin (shells read pipes a byte at a time, so the rest is left to the function).
const idReader = `IFS= read -r DEVICELESS_INVOCATION_ID; export DEVICELESS_INVOCATION_ID; exec "$@"`

// prepared is a created and attached container that has not been started.
type prepared struct {
	key      string
	id       string
	codeDir  string
	wrapID   bool // reads the invocation id from its first stdin line
	stdin    *io.PipeWriter
	stdout   *capped
	stderr   *tail
	attached chan error    // Attach's result once the streams end
	ready    chan struct{} // closed when preparation finished; err tells how
	err      error
	idle     *time.Timer
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
	if wrapID {
		s.Entrypoint = []string{"/bin/sh", "-c", idReader, "deviceless"}
		s.Labels[LabelInvocation] = "prepared"
	} else {
		s.Env["DEVICELESS_INVOCATION_ID"] = job.ID
	}
	id, err := r.create(ctx, c, s)
	if err != nil {
		r.removeCode(codeDir)
		return nil, err
	}
	p := &prepared{key: k, id: id, codeDir: codeDir, wrapID: wrapID,
		stdout: &capped{limit: r.cfg.OutputLimit}, stderr: &tail{limit: r.cfg.StderrLimit},
		attached: make(chan error, 1), ready: make(chan struct{})}
	close(p.ready)
	pr, pw := io.Pipe()
	p.stdin = pw
	attachReady := make(chan bool, 1)
	// The streams outlive ctx so they drain after a kill; Close ends them.
	go func() {
		err := attach(r.base, c, id, pr, p.stdout, p.stderr, attachReady)
		pr.CloseWithError(net.ErrClosed) // unblocks a writer once the container is gone
		p.attached <- err
	}()
	select {
	case <-attachReady:
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
	if err := startContainer(ctx, c, p.id); err != nil {
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
	var attachErr error
	select {
	case attachErr = <-p.attached:
	case <-r.base.Done():
		attachErr = errors.New("runtime closed")
	}
	exited := time.Now()
	timer.Stop()
	stopOnCancel()

	out := container.Outcome{Cold: true, Start: started.Sub(t0), Run: exited.Sub(started), TimedOut: timedOut.Load()}
	out.Stdout, out.Truncated = p.stdout.result()
	out.Stderr = p.stderr.String()
	if attachErr != nil {
		r.kill(p.id)
	}
	state, err := r.exitState(p.id)
	if err != nil {
		if attachErr != nil {
			err = fmt.Errorf("%w (attach: %v)", err, attachErr)
		}
		return out, fmt.Errorf("podman: %s: %w", job.Function, err)
	}
	out.ExitCode = int(state.ExitCode)
	out.OOMKilled = state.OOMKilled || (out.ExitCode == 137 && !out.TimedOut)
	r.log.Debug("cold run", "function", job.Function, "prepared", p.wrapID, "start", out.Start, "run", out.Run,
		"inspect", time.Since(exited))
	if ctx.Err() != nil && !out.TimedOut {
		return out, ctx.Err()
	}
	return out, nil
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
		ctx, cancel := context.WithTimeout(r.base, 30*time.Second)
		p, err := r.prepareNow(ctx, job, k, true)
		cancel()
		r.starting.Add(-1)
		if err != nil {
			slot.err = err
		} else {
			slot.id, slot.codeDir, slot.wrapID, slot.stdin = p.id, p.codeDir, p.wrapID, p.stdin
			slot.stdout, slot.stderr, slot.attached = p.stdout, p.stderr, p.attached
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
