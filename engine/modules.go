package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/deviceless/deviceless/broker"
	"github.com/deviceless/deviceless/internal/atomicfile"
	"github.com/deviceless/deviceless/protocol"
)

// moduleFiles keeps the modules of deployed wasm functions, content-addressed: in
// {state}/modules/<hex>.wasm (written once, temp file and rename), or in memory without a
// state folder. Modules are never removed while the engine runs: an old version may still
// be invoked by name@N.
type moduleFiles struct {
	dir string // "": in memory

	mu  sync.Mutex
	mem map[string][]byte // by digest, without dir
}

func openModuleFiles(dir string) (*moduleFiles, error) {
	m := &moduleFiles{mem: map[string][]byte{}}
	if dir != "" {
		m.dir = filepath.Join(dir, "modules")
		if err := os.MkdirAll(m.dir, 0o700); err != nil {
			return nil, fmt.Errorf("state: modules: %w", err)
		}
	}
	return m, nil
}

func (m *moduleFiles) path(d string) string {
	return filepath.Join(m.dir, strings.TrimPrefix(d, protocol.ModuleDigestPrefix)+".wasm")
}

// put stores b and returns its digest.
func (m *moduleFiles) put(b []byte) (string, error) {
	d := protocol.ModuleDigest(b)
	if m.dir == "" {
		m.mu.Lock()
		m.mem[d] = b
		m.mu.Unlock()
		return d, nil
	}
	if m.has(d) {
		return d, nil
	}
	if err := atomicfile.WriteBytes(m.path(d), 0o600, b); err != nil {
		return "", fmt.Errorf("module %s: %w", d, err)
	}
	return d, nil
}

func (m *moduleFiles) has(d string) bool {
	if m.dir == "" {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.mem[d] != nil
	}
	_, err := os.Stat(m.path(d))
	return err == nil
}

// get returns the module with digest d, verified; fs.ErrNotExist when there is none.
func (m *moduleFiles) get(d string) ([]byte, error) {
	if !protocol.IsModuleDigest(d) {
		return nil, fs.ErrNotExist
	}
	if m.dir == "" {
		m.mu.Lock()
		defer m.mu.Unlock()
		if b := m.mem[d]; b != nil {
			return b, nil
		}
		return nil, fs.ErrNotExist
	}
	b, err := os.ReadFile(m.path(d))
	if err != nil {
		return nil, err
	}
	if got := protocol.ModuleDigest(b); got != d {
		return nil, fmt.Errorf("module file %s hashes to %s: changed on disk, deploy the function again", m.path(d), got)
	}
	return b, nil
}

// module returns the module with digest d: a rule file's wasm function's (loaded with the
// rules), else a deployed one's.
func (e *Engine) module(d string) ([]byte, error) {
	for _, fn := range e.ruleSet().Functions {
		if fn.Module != nil && fn.Spec.Module == d {
			return fn.Module, nil
		}
	}
	return e.functions.modules.get(d)
}

// moduleRequests is a transport that takes agents' module requests ({prefix}/modules/+):
// the embedded broker. With an external broker agents get no modules from the engine
// (docs/agent.md).
type moduleRequests interface {
	ModuleRequests() controlSource
}

// moduleRepeat is how soon an agent may ask for the same module again: an agent asks
// once per digest (its invocations share the transfer) and again only after a failed one,
// which takes its wasm.fetch deadline; an agent asking in a loop would have the engine read
// and send the module (up to 32 MiB) at every request.
const moduleRepeat = 5 * time.Second

// serveModules answers module requests until ctx ends (docs/design.md, "Modules").
func (e *Engine) serveModules(ctx context.Context, src controlSource) {
	served := map[string]time.Time{} // agent and digest → last transfer
	for {
		reqs, err := src.NextBatch(ctx)
		if err != nil {
			return
		}
		for _, r := range reqs {
			e.serveModule(r, served)
		}
	}
}

// serveModule answers one request: the module in chunks of protocol.ModuleChunkSize on
// the requesting agent's modules topic, each with its index/total and the module's size,
// or one message with the reason it is refused. Only an agent's own modules topic is
// answered; anything else is dropped and logged.
func (e *Engine) serveModule(r broker.Event, served map[string]time.Time) {
	route, _ := e.topics.Parse(r.Topic)
	to, _ := e.topics.Parse(r.ResponseTopic)
	log := e.log.With("module", route.Digest, "agent", r.Username)
	if to.Kind != protocol.AgentModules || to.Agent != r.Username || r.Username == "" {
		log.Warn("module request dropped: its response topic is not the requester's modules topic",
			"response_topic", r.ResponseTopic, "want", e.topics.AgentModules(r.Username))
		return
	}
	refuse := func(reason string) {
		log.Warn("module request refused", "reason", reason)
		_ = e.t.Publish(broker.Message{Topic: r.ResponseTopic, QoS: 1, CorrelationData: r.CorrelationData,
			UserProperties: []broker.UserProperty{{Key: protocol.ModuleErrorProperty, Value: reason}}})
	}
	if route.Kind != protocol.Module {
		refuse(fmt.Sprintf("%s is not a module request: want %s", r.Topic, e.topics.Module(protocol.ModuleDigestPrefix+"<64 hex digits>")))
		return
	}
	key, now := r.Username+" "+route.Digest, time.Now()
	if at, ok := served[key]; ok && now.Sub(at) < moduleRepeat {
		refuse(fmt.Sprintf("asked again %s after the last transfer: one per %s", now.Sub(at).Round(time.Millisecond), moduleRepeat))
		return
	}
	if len(served) >= 4096 {
		for k, at := range served {
			if now.Sub(at) >= moduleRepeat {
				delete(served, k)
			}
		}
	}
	b, err := e.module(route.Digest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		refuse("the engine has no module " + route.Digest + " (no loaded rule file's or deployed function's)")
		return
	case err != nil:
		refuse(err.Error())
		return
	}
	served[key] = now
	n := (len(b) + protocol.ModuleChunkSize - 1) / protocol.ModuleChunkSize
	size := strconv.Itoa(len(b))
	for i := range n {
		chunk := b[i*protocol.ModuleChunkSize : min(len(b), (i+1)*protocol.ModuleChunkSize)]
		if err := e.t.Publish(broker.Message{Topic: r.ResponseTopic, Payload: chunk, QoS: 1, CorrelationData: r.CorrelationData,
			UserProperties: []broker.UserProperty{
				{Key: protocol.ChunkProperty, Value: strconv.Itoa(i) + "/" + strconv.Itoa(n)},
				{Key: protocol.ModuleSizeProperty, Value: size},
			}}); err != nil {
			log.Warn("module chunk not sent", "chunk", i, "err", err)
			return
		}
	}
	log.Debug("module sent", "bytes", len(b), "chunks", n)
}
