// Package container defines the boundary between the edge agent and the container engine
// that runs functions: one Job in, one Outcome out. The podman implementation lives in
// edgeagent/podman, the only package that imports the podman bindings.
package container

import (
	"context"
	"errors"
	"time"

	"github.com/deviceless/deviceless/protocol"
)

// ErrImageNotFound reports that a job's image is not present locally and could not be pulled.
var ErrImageNotFound = errors.New("image not found")

// Job is one function invocation to run in a container.
type Job struct {
	ID       string            // invocation id; becomes a container label
	Function string            // function name; becomes a container label
	Image    string            // image to run
	Command  []string          // command; empty uses the image's
	Code     string            // inline code, mounted read-only at CodePath when non-empty
	Env      map[string]string // extra environment; PATH is always set
	Stdin    []byte            // written to the container's stdin, which is then closed
	Timeout  time.Duration     // run deadline, enforced by killing the container
	Memory   int64             // memory limit in bytes
	Warm     *protocol.Warm    // when set, reuse a long-lived runner for this function (defaults applied)
	Prepare  bool              // the image has /bin/sh: the next container may be created ahead of time
}

// CodePath is where a job's inline code is mounted inside the container.
const CodePath = "/code/function"

// Outcome is what a finished container produced.
type Outcome struct {
	Stdout    []byte // up to the runtime's output limit
	Truncated bool   // stdout exceeded the limit; the rest was discarded
	Stderr    string // the tail of stderr
	ExitCode  int
	TimedOut  bool          // killed at the deadline
	OOMKilled bool          // killed for exceeding its memory limit
	Cold      bool          // a new container was started for this job
	Start     time.Duration // creating and starting the container (zero when warm)
	Run       time.Duration // from start to exit (or to the reply when warm)
}

// Runtime runs jobs in containers.
type Runtime interface {
	// Run runs one job to completion. Errors are failures of the engine or the job's
	// definition (missing image, engine down); a function that fails is an Outcome.
	Run(ctx context.Context, job Job) (Outcome, error)
	// Ping reports whether the container engine answers.
	Ping(ctx context.Context) error
	// Sweep removes containers labelled as this agent's that no running job owns.
	Sweep(ctx context.Context) (removed int, err error)
	// Close stops warm runners and waits for pending removals.
	Close(ctx context.Context) error
}
