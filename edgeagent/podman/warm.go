package podman

import (
	"bufio"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	spec "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/deviceless/deviceless/edgeagent/container"
	"github.com/deviceless/deviceless/protocol"
)

// A warm container runs one long-lived runner process that serves one invocation at a time.
// Requests go on the attached stdin, `<stdin bytes> <invocation id>\n` and the function's
// stdin (the invocation JSON). Replies come on stdout, length-prefixed too so that nothing a
// function prints can be taken for framing:
//
//	DLR1 <exit code> <stdout bytes> <truncated 0|1> <stderr bytes>\n<stdout><stderr tail>
//
// with at most OutputLimit bytes of stdout and StderrLimit of stderr. Two runners speak it:
//
//   - python3 (runner.py, mounted read-only at runnerDir): a job whose command is
//     `python3 SCRIPT` keeps one interpreter and runs SCRIPT in it for every invocation, with
//     a fresh __main__ namespace and its own stdin/stdout/stderr; see docs/agent.md.
//   - any other command (shRunner): a shell loop that starts the command for each
//     invocation. For sh functions a persistent shell would save only the fork and exec of
//     busybox (≈ 1 ms); the container start is what warm mode saves.
//
// The runner's own stderr (a crash of the runner) is the container's stderr.

// shRunner is the runner of commands other than python3's. The function's stdin, stdout
// and stderr are files on /tmp (tmpfs): `head -c` reads exactly the request's stdin bytes
// (where the shell's read takes a byte per system call: ≈ 5 s for 1 MiB), and the sizes of
// stdout and stderr are known before the reply starts. Forks are what a call costs here: an
// empty stderr needs no wc or tail.
const shRunner = `o=$1 e=$2; shift 2
while IFS= read -r req; do
  n=${req%% *} id=${req#* }
  head -c "$n" >/tmp/.deviceless-in
  DEVICELESS_INVOCATION_ID=$id "$@" </tmp/.deviceless-in >/tmp/.deviceless-out 2>/tmp/.deviceless-err
  rc=$? t=0 m=0
  n=$(wc -c </tmp/.deviceless-out)
  if [ "$n" -gt "$o" ]; then n=$o t=1; fi
  if [ -s /tmp/.deviceless-err ]; then
    m=$(wc -c </tmp/.deviceless-err)
    if [ "$m" -gt "$e" ]; then m=$e; fi
  fi
  printf 'DLR1 %s %s %s %s\n' "$rc" "$n" "$t" "$m"
  if [ "$n" -gt 0 ]; then head -c "$n" /tmp/.deviceless-out; fi
  if [ "$m" -gt 0 ]; then tail -c "$m" /tmp/.deviceless-err; fi
done`

//go:embed runner.py
var pythonRunner []byte

// runnerDir is where the python3 runner is mounted in a warm container.
const runnerDir = "/.deviceless"

// pythonScript reports whether job runs a script with python3 (`python3 SCRIPT`,
// `/usr/bin/python3.11 SCRIPT`, ...) and returns the interpreter and the script.
func pythonScript(job container.Job) (interp, script string, ok bool) {
	if len(job.Command) != 2 || strings.HasPrefix(job.Command[1], "-") || job.Command[1] == "" {
		return "", "", false
	}
	name := path.Base(job.Command[0])
	v, isPy := strings.CutPrefix(name, "python3")
	if !isPy || (v != "" && (v[0] != '.' || strings.Trim(v[1:], "0123456789") != "" || len(v) == 1)) {
		return "", "", false
	}
	return job.Command[0], job.Command[1], true
}

// runner is one warm container.
type runner struct {
	rt      *Runtime
	id      string
	key     string
	stdin   *io.PipeWriter
	stdinR  *io.PipeReader
	stdout  *bufio.Reader
	stdoutW *io.PipeWriter
	stderr  *container.Tail
	exited  chan struct{} // closed when the attach stream ends
	detach  func()        // ends the attach stream
	codeDir string
	uses    int
	idle    *time.Timer
	once    sync.Once
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
	if strings.ContainsAny(job.ID, "\n\r\x00") {
		return container.Outcome{}, fmt.Errorf("podman: warm mode needs an invocation id without line breaks or NUL, not %q", job.ID)
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
		msg := fmt.Appendf(make([]byte, 0, len(job.ID)+len(job.Stdin)+24), "%d %s\n", len(job.Stdin), job.ID)
		msg = append(msg, job.Stdin...)
		if _, err := w.stdin.Write(msg); err != nil {
			replies <- reply{err: fmt.Errorf("write invocation: %w", err)}
			return
		}
		b, trunc, code, stderr, err := w.readReply(r.cfg.OutputLimit, r.cfg.StderrLimit)
		replies <- reply{b, trunc, code, stderr, err}
	}()

	timer := time.NewTimer(job.Timeout)
	defer timer.Stop()
	var rep reply
	replied := false
	select {
	case rep = <-replies:
		replied = true
	case <-timer.C:
		out.TimedOut = true
	case <-ctx.Done():
	}
	if rep.err == nil && !out.TimedOut && ctx.Err() == nil {
		out.Run = time.Since(started)
		out.Stdout, out.Truncated, out.ExitCode = rep.stdout, rep.truncated, rep.code
		// Within the container only the OOM killer sends SIGKILL to a function (as cold.go).
		out.OOMKilled = out.ExitCode == 137
		out.Stderr = rep.stderr + w.stderr.String()
		r.release(w, job.Warm)
		return out, nil
	}
	// Timed out, cancelled or the container died: this runner is done.
	r.kill(w.id)
	if !replied {
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
	}
	// The streams end once the container is gone; exitState needs it gone.
	select {
	case <-w.exited:
	case <-time.After(2 * r.cfg.KillGrace):
		w.detach()
		<-w.exited
	}
	out.Run = time.Since(started)
	out.Stderr = w.stderr.String()
	if errors.Is(rep.err, errFraming) {
		// Killed by us: its exit status says nothing about the function.
		w.retire()
		return out, fmt.Errorf("podman: warm runner for %s: %w (runner stderr %q)", job.Function, rep.err, out.Stderr)
	}
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

// errFraming reports a reply that breaks the framing: the runner is broken (or the function
// wrote to the runner's own channel), and is killed.
var errFraming = errors.New("reply breaks the runner's framing")

// maxHeader bounds a reply's header line ("DLR1" and four numbers).
const maxHeader = 80

// readReply reads one reply (see shRunner). A reply that does not parse, or that claims
// more than the limits, means the runner is broken: the caller kills it.
func (w *runner) readReply(outLimit, errLimit int) (stdout []byte, truncated bool, code int, stderr string, err error) {
	line, err := w.stdout.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, false, 0, "", fmt.Errorf("%w: header longer than %d bytes", errFraming, maxHeader)
		}
		return nil, false, 0, "", fmt.Errorf("read reply: %w", err)
	}
	if len(line) > maxHeader {
		return nil, false, 0, "", fmt.Errorf("%w: header longer than %d bytes", errFraming, maxHeader)
	}
	f := strings.Fields(string(line))
	num := func(s string, hi int) (int, bool) {
		n, err := strconv.Atoi(s)
		return n, err == nil && n >= 0 && n <= hi
	}
	var nOut, trunc, nErr int
	ok := len(f) == 5 && f[0] == "DLR1"
	if ok {
		var ok1, ok2, ok3, ok4 bool
		code, ok1 = num(f[1], 255)
		nOut, ok2 = num(f[2], outLimit)
		trunc, ok3 = num(f[3], 1)
		nErr, ok4 = num(f[4], errLimit)
		ok = ok1 && ok2 && ok3 && ok4
	}
	if !ok {
		return nil, false, 0, "", fmt.Errorf("%w: header %q", errFraming, line)
	}
	stdout = make([]byte, nOut)
	if _, err := io.ReadFull(w.stdout, stdout); err != nil {
		return nil, false, 0, "", fmt.Errorf("read reply stdout: %w", err)
	}
	tail := make([]byte, nErr)
	if _, err := io.ReadFull(w.stdout, tail); err != nil {
		return nil, false, 0, "", fmt.Errorf("read reply stderr: %w", err)
	}
	return stdout, trunc == 1, code, string(tail), nil
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
	w := &runner{rt: r, key: k, codeDir: codeDir,
		stderr: container.NewTail(r.cfg.StderrLimit), exited: make(chan struct{})}
	s := r.spec(job, codeDir)
	limits := []string{strconv.Itoa(r.cfg.OutputLimit), strconv.Itoa(r.cfg.StderrLimit)}
	if interp, script, ok := pythonScript(job); ok {
		s.Entrypoint = []string{interp, runnerDir + "/runner.py"}
		s.Command = append(limits, script)
		s.Mounts = append(s.Mounts, spec.Mount{
			Destination: runnerDir, Type: "bind", Source: r.runnerDir,
			Options: []string{"ro", "rbind", "nosuid", "nodev"},
		})
	} else {
		s.Entrypoint = append([]string{"/bin/sh", "-c", shRunner, "runner"}, limits...)
		s.Command = job.Command
	}
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
