package podman

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/deviceless/deviceless/edgeagent/container"
	"github.com/deviceless/deviceless/protocol"
)

// runnerScript is the long-lived process of a warm container. For each invocation it reads
// the invocation id and the invocation JSON (one line each) from the attached stdin, runs
// the function with the JSON on its stdin, and answers on stdout: the function's output, a
// line with a per-container boundary and the exit code, the tail of the function's stderr,
// and a boundary line ending the answer. (stderr travels on stdout because the two streams
// are not ordered with respect to each other.) No podman exec per call.
const runnerScript = `b=$1; shift
while IFS= read -r id && IFS= read -r line; do
  printf '%s\n' "$line" | DEVICELESS_INVOCATION_ID=$id "$@" 2>/tmp/.deviceless-stderr
  rc=$?
  printf '\n%s %s\n' "$b" "$rc"
  tail -c 4096 /tmp/.deviceless-stderr
  printf '\n%s end\n' "$b"
done`

// runner is one warm container.
type runner struct {
	rt       *Runtime
	id       string
	key      string
	boundary string
	stdin    *io.PipeWriter
	stdinR   *io.PipeReader
	stdout   *bufio.Reader
	stdoutW  *io.PipeWriter
	stderr   *container.Tail
	exited   chan struct{} // closed when the attach stream ends
	detach   func()        // ends the attach stream
	codeDir  string
	uses     int
	idle     *time.Timer
	once     sync.Once
}

// key identifies the runner a job can reuse: same function and same definition.
func key(job container.Job) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%q\x00%s\x00%d\x00", job.Function, job.Image, job.Command, job.Code, job.Memory)
	for _, k := range slices.Sorted(maps.Keys(job.Env)) {
		fmt.Fprintf(h, "%s=%s\x00", k, job.Env[k])
	}
	return job.Function + "/" + hex.EncodeToString(h.Sum(nil))[:16]
}

func (r *Runtime) runWarm(ctx context.Context, job container.Job) (container.Outcome, error) {
	if len(job.Command) == 0 {
		return container.Outcome{}, errors.New("podman: warm mode needs a command (or a runtime with code)")
	}
	if strings.ContainsAny(job.ID, "\n\r") || bytes.ContainsAny(bytes.TrimRight(job.Stdin, "\n"), "\n\r") {
		return container.Outcome{}, errors.New("podman: warm mode needs a one-line invocation")
	}
	t0 := time.Now()
	k := key(job)
	w := r.takeIdle(k)
	out := container.Outcome{}
	if w == nil {
		var err error
		w, err = r.startRunner(ctx, job, k)
		if err != nil {
			return container.Outcome{}, err
		}
		out.Cold = true
	}
	started := time.Now()
	out.Start = started.Sub(t0)
	w.uses++
	w.stderr.Reset()

	type reply struct {
		stdout    []byte
		truncated bool
		code      int
		stderr    string
		err       error
	}
	replies := make(chan reply, 1)
	go func() {
		msg := make([]byte, 0, len(job.ID)+len(job.Stdin)+2)
		msg = append(append(append(msg, job.ID...), '\n'), bytes.TrimRight(job.Stdin, "\n")...)
		msg = append(msg, '\n')
		if _, err := w.stdin.Write(msg); err != nil {
			replies <- reply{err: fmt.Errorf("write invocation: %w", err)}
			return
		}
		b, trunc, code, stderr, err := w.readReply(r.cfg.OutputLimit)
		replies <- reply{b, trunc, code, stderr, err}
	}()

	timer := time.NewTimer(job.Timeout)
	defer timer.Stop()
	var rep reply
	select {
	case rep = <-replies:
	case <-timer.C:
		out.TimedOut = true
	case <-ctx.Done():
	}
	if rep.err == nil && !out.TimedOut && ctx.Err() == nil {
		out.Run = time.Since(started)
		out.Stdout, out.Truncated, out.ExitCode = rep.stdout, rep.truncated, rep.code
		out.Stderr = rep.stderr + w.stderr.String()
		r.release(w, job.Warm)
		return out, nil
	}
	// Timed out, cancelled or the container died: this runner is done.
	r.kill(w.id)
	select {
	case <-replies: // the reader sees EOF once the stream ends
	case <-time.After(2 * r.cfg.KillGrace):
		// The service does not answer: end the stream ourselves.
		w.detach()
		<-replies
		if rep.err == nil {
			rep.err = fmt.Errorf("container streams still open %s after it was killed: the podman service does not answer", 2*r.cfg.KillGrace)
		}
	}
	out.Run = time.Since(started)
	out.Stderr = w.stderr.String()
	if state, err := r.exitState(w.id); err == nil {
		out.ExitCode = int(state.ExitCode)
		out.OOMKilled = state.OOMKilled || (out.ExitCode == 137 && !out.TimedOut && ctx.Err() == nil)
	}
	w.retire()
	if ctx.Err() != nil && !out.TimedOut {
		return out, ctx.Err()
	}
	if !out.TimedOut && !out.OOMKilled && out.ExitCode == 0 {
		return out, fmt.Errorf("podman: warm runner for %s: %w", job.Function, rep.err)
	}
	return out, nil
}

// readReply reads the function's output and stderr tail up to the closing boundary.
func (w *runner) readReply(limit int) (stdout []byte, truncated bool, code int, stderr string, err error) {
	stdout, truncated, rest, err := w.readSection(limit)
	if err != nil {
		return nil, false, 0, "", err
	}
	if code, err = strconv.Atoi(rest); err != nil {
		return nil, false, 0, "", fmt.Errorf("bad boundary line %q", rest)
	}
	tailBytes, _, rest, err := w.readSection(w.rt.cfg.StderrLimit)
	if err != nil {
		return nil, false, 0, "", err
	}
	if rest != "end" {
		return nil, false, 0, "", fmt.Errorf("bad closing boundary %q", rest)
	}
	return stdout, truncated, code, string(tailBytes), nil
}

// readSection reads lines up to one starting with the boundary; it returns what came
// before (at most limit bytes) and the rest of the boundary line.
func (w *runner) readSection(limit int) ([]byte, bool, string, error) {
	var out []byte
	truncated := false
	marker := []byte(w.boundary + " ")
	var line []byte
	for {
		chunk, err := w.stdout.ReadSlice('\n')
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(line) > len(marker)+16 { // cannot be the boundary: flush it
				out, truncated = appendCapped(out, line, limit, truncated)
				line = line[:0]
			}
			continue
		}
		if err != nil {
			return nil, false, "", fmt.Errorf("read output: %w", err)
		}
		if bytes.HasPrefix(line, marker) {
			// The runner prints a newline before the boundary.
			out = bytes.TrimSuffix(out, []byte("\n"))
			if len(out) > limit {
				out, truncated = out[:limit], true
			}
			return out, truncated, strings.TrimSpace(string(line[len(marker):])), nil
		}
		out, truncated = appendCapped(out, line, limit, truncated)
		line = line[:0]
	}
}

func appendCapped(out, p []byte, limit int, truncated bool) ([]byte, bool) {
	// Keep one byte of slack for the newline the runner adds before the boundary.
	room := limit + 1 - len(out)
	if room >= len(p) {
		return append(out, p...), truncated
	}
	if room > 0 {
		out = append(out, p[:room]...)
	}
	return out, true
}

func (r *Runtime) startRunner(ctx context.Context, job container.Job, k string) (*runner, error) {
	c, err := r.client(ctx)
	if err != nil {
		return nil, err
	}
	codeDir, err := r.writeCode(job)
	if err != nil {
		return nil, err
	}
	w := &runner{rt: r, key: k, boundary: "--deviceless-" + randomHex(12), codeDir: codeDir,
		stderr: container.NewTail(r.cfg.StderrLimit), exited: make(chan struct{})}
	s := r.spec(job, codeDir)
	s.Entrypoint = []string{"/bin/sh", "-c", runnerScript, "runner", w.boundary}
	s.Command = job.Command
	s.Labels[LabelInvocation] = "warm"
	id, err := r.create(ctx, c, s)
	if err != nil {
		r.removeCode(codeDir)
		return nil, err
	}
	w.id = id
	w.stdinR, w.stdin = io.Pipe()
	var stdoutR *io.PipeReader
	stdoutR, w.stdoutW = io.Pipe()
	w.stdout = bufio.NewReaderSize(stdoutR, 64<<10)

	ready := make(chan bool, 1)
	attached := make(chan error, 1)
	actx, detach := context.WithCancel(r.base)
	w.detach = detach
	go func() {
		err := attach(actx, c, id, w.stdinR, w.stdoutW, w.stderr, ready, r.cfg.APITimeout)
		detach()
		w.stdoutW.CloseWithError(fmt.Errorf("container exited: %w", errOrEOF(err)))
		w.stdinR.CloseWithError(net.ErrClosed) // quiets the bindings' stdin copier
		close(w.exited)
		attached <- err
	}()
	select {
	case <-ready:
	case err := <-attached:
		r.removeLater(id, codeDir)
		return nil, fmt.Errorf("podman: attach warm %s: %w", job.Function, err)
	}
	call, cancel := r.bounded(ctx)
	err = startContainer(call, c, id)
	cancel()
	if err != nil {
		w.retire()
		return nil, fmt.Errorf("podman: start warm %s: %w", job.Function, err)
	}
	r.log.Debug("warm runner started", "function", job.Function, "id", short(id))
	return w, nil
}

func errOrEOF(err error) error {
	if err == nil {
		return io.EOF
	}
	return err
}

func (r *Runtime) takeIdle(k string) *runner {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.warm[k]
	for len(list) > 0 {
		w := list[len(list)-1]
		list = list[:len(list)-1]
		r.warm[k] = list
		if w.idle != nil {
			w.idle.Stop()
		}
		select {
		case <-w.exited:
			go w.retire()
			continue
		default:
			return w
		}
	}
	return nil
}

// release puts w back in the pool, or retires it after its last use.
func (r *Runtime) release(w *runner, cfg *protocol.Warm) {
	if cfg.MaxUses > 0 && w.uses >= cfg.MaxUses {
		w.retire()
		return
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		w.retire()
		return
	}
	r.warm[w.key] = append(r.warm[w.key], w)
	if cfg.Idle > 0 {
		w.idle = time.AfterFunc(cfg.Idle.D(), func() { r.expire(w) })
	}
	r.mu.Unlock()
}

// expire retires w if it is still idle.
func (r *Runtime) expire(w *runner) {
	r.mu.Lock()
	list := r.warm[w.key]
	found := false
	for i, x := range list {
		if x == w {
			r.warm[w.key] = append(list[:i:i], list[i+1:]...)
			found = true
			break
		}
	}
	r.mu.Unlock()
	if found {
		r.log.Debug("warm runner idle, stopping", "id", short(w.id))
		w.retire()
	}
}

// retire ends the runner's input so it exits, and removes its container in the background.
func (w *runner) retire() {
	w.once.Do(func() {
		_ = w.stdin.Close()
		w.rt.removeLater(w.id, w.codeDir)
	})
}
