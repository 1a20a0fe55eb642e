package edgeagent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/deviceless/deviceless/edgeagent/wasm"
	"github.com/deviceless/deviceless/protocol"
)

// moduleFetcher gets the wasm modules the agent lacks from the engine over the broker
// (docs/design.md, "Modules"): a request on {prefix}/modules/{digest} with the response
// topic {prefix}/agents/{id}/modules and a correlation id; the engine answers with chunks
// of at most protocol.ModuleChunkSize bytes, each carrying "index/total", or one message
// with the reason it refuses. The assembled module is verified against its digest before
// it is stored. One fetch per digest at a time, whatever the number of invocations waiting
// for it; the store keeps it across restarts.
type moduleFetcher struct {
	a     *Agent
	store *wasm.Store

	mu     sync.Mutex
	byHex  map[string]*moduleFetch // in progress, by digest
	byCorr map[string]*moduleFetch // the same, by correlation id
}

// moduleFetch is one transfer in progress. Its fields below progress are written by
// receive (the MQTT client's goroutine) under moduleFetcher.mu, which signals progress
// after each; done is closed when the fetch ended (err says how).
type moduleFetch struct {
	digest   string
	corr     string
	done     chan struct{}
	err      error
	progress chan struct{} // buffered 1

	chunks  [][]byte // nil until the first chunk says how many
	got     int
	bytes   int
	size    int   // announced by the engine
	refused error // the engine's reason, or a malformed chunk's
}

func newModuleFetcher(a *Agent, store *wasm.Store) *moduleFetcher {
	return &moduleFetcher{a: a, store: store, byHex: map[string]*moduleFetch{}, byCorr: map[string]*moduleFetch{}}
}

// fetch makes sure the module with digest d is in the store, fetching it from the engine
// if needed, within the agent's wasm.fetch deadline (and ctx). Its errors say why the
// module cannot be had.
func (m *moduleFetcher) fetch(ctx context.Context, d string) error {
	if m.store.Has(d) {
		return nil
	}
	m.mu.Lock()
	f := m.byHex[d]
	leader := f == nil
	if leader {
		var corr [12]byte
		_, _ = rand.Read(corr[:])
		f = &moduleFetch{digest: d, corr: hex.EncodeToString(corr[:]), done: make(chan struct{}), progress: make(chan struct{}, 1)}
		m.byHex[d], m.byCorr[f.corr] = f, f
	}
	m.mu.Unlock()
	if !leader {
		select {
		case <-f.done:
			return f.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// The transfer is shared: it does not end with the leader's invocation.
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.a.cfg.Wasm.Fetch)
	f.err = m.transfer(tctx, f)
	cancel()
	m.mu.Lock()
	delete(m.byHex, d)
	delete(m.byCorr, f.corr)
	m.mu.Unlock()
	close(f.done)
	if f.err != nil {
		m.a.log.Warn("wasm module not fetched", "module", d, "err", f.err)
	}
	return f.err
}

// transfer requests f's module and waits for its chunks, then verifies and stores it.
func (m *moduleFetcher) transfer(ctx context.Context, f *moduleFetch) error {
	t0 := time.Now()
	m.a.publish(&paho.Publish{Topic: m.a.topics.Module(f.digest), QoS: 1, Properties: &paho.PublishProperties{
		ResponseTopic: m.a.topics.AgentModules(m.a.cfg.ID), CorrelationData: []byte(f.corr)}})
	for {
		m.mu.Lock()
		complete := f.chunks != nil && f.got == len(f.chunks)
		refused, got, total := f.refused, f.got, len(f.chunks)
		m.mu.Unlock()
		if refused != nil {
			return fmt.Errorf("module %s: %w", f.digest, refused)
		}
		if complete {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("module %s not received from the engine within %s (%d of %d chunks)",
				f.digest, m.a.cfg.Wasm.Fetch, got, total)
		case <-f.progress:
		}
	}
	m.mu.Lock()
	b := bytes.Join(f.chunks, nil)
	f.refused = errors.New("done") // later messages are dropped
	m.mu.Unlock()
	if got := protocol.ModuleDigest(b); got != f.digest {
		return fmt.Errorf("module %s refused: the %d bytes received hash to %s", f.digest, len(b), got)
	}
	if _, err := m.store.Put(b); err != nil {
		return fmt.Errorf("module %s: %w", f.digest, err)
	}
	m.a.log.Info("wasm module fetched from the engine", "module", f.digest, "bytes", len(b),
		"took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// receive takes one message on the agent's modules topic. It runs on the MQTT client's
// goroutine: it only records. A message for no fetch in progress (late, repeated, or not
// asked for) is dropped; a malformed one ends its fetch.
func (m *moduleFetcher) receive(p *paho.Publish) {
	if p.Properties == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.byCorr[string(p.Properties.CorrelationData)]
	if f == nil || f.refused != nil || (f.chunks != nil && f.got == len(f.chunks)) {
		return
	}
	defer func() {
		select {
		case f.progress <- struct{}{}:
		default:
		}
	}()
	var chunk, size, reason string
	for _, u := range p.Properties.User {
		switch u.Key {
		case protocol.ChunkProperty:
			chunk = u.Value
		case protocol.ModuleSizeProperty:
			size = u.Value
		case protocol.ModuleErrorProperty:
			reason = u.Value
		}
	}
	if reason != "" {
		f.refused = fmt.Errorf("the engine refused it: %s", truncate(reason, 400))
		return
	}
	i, n, err := protocol.ParseChunk(chunk)
	if err != nil {
		f.refused = fmt.Errorf("malformed transfer: %w", err)
		return
	}
	sz, err := strconv.Atoi(size)
	switch {
	case err != nil || sz < 1 || int64(sz) > m.limit():
		f.refused = fmt.Errorf("malformed transfer: module size %q is not within 1 and %d bytes", size, m.limit())
		return
	case len(p.Payload) > protocol.ModuleChunkSize:
		f.refused = fmt.Errorf("malformed transfer: chunk %d of %d bytes is over %d", i, len(p.Payload), protocol.ModuleChunkSize)
		return
	case f.chunks == nil:
		if n != (sz+protocol.ModuleChunkSize-1)/protocol.ModuleChunkSize {
			f.refused = fmt.Errorf("malformed transfer: %d chunks for %d bytes", n, sz)
			return
		}
		f.chunks, f.size = make([][]byte, n), sz
	case n != len(f.chunks) || sz != f.size:
		f.refused = fmt.Errorf("malformed transfer: chunk %s of a %d byte module after chunks of %d of %d bytes", chunk, sz, len(f.chunks), f.size)
		return
	}
	if f.chunks[i] != nil {
		return // a repeat (QoS 1 redelivery)
	}
	if f.bytes+len(p.Payload) > f.size {
		f.refused = fmt.Errorf("malformed transfer: more than the %d bytes announced", f.size)
		return
	}
	f.chunks[i] = bytes.Clone(p.Payload)
	f.got++
	f.bytes += len(p.Payload)
}

// limit is the largest module the agent takes: the store's limit, at most protocol's.
func (m *moduleFetcher) limit() int64 {
	return min(int64(m.a.cfg.Wasm.Store), protocol.MaxModuleSize)
}

// storeOwnModules puts the modules of the agent's own wasm functions (files, relative to
// the config file once LoadConfig resolved them) into the store and returns the functions
// with their modules' digests.
func storeOwnModules(store *wasm.Store, fns map[string]protocol.FunctionSpec) (map[string]protocol.FunctionSpec, error) {
	out := make(map[string]protocol.FunctionSpec, len(fns))
	var errs []error
	for name, f := range fns {
		if f.Runtime == protocol.RuntimeWasm && !protocol.IsModuleDigest(f.Module) {
			b, err := readModule(f.Module)
			if err == nil {
				f.Module, err = store.Put(b)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("functions.%s: %w", name, err))
			}
		}
		out[name] = f
	}
	return out, errors.Join(errs...)
}

// readModule reads a module file and checks that it is a WebAssembly binary.
func readModule(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("module: %w", err)
	}
	if st.Size() > protocol.MaxModuleSize {
		return nil, fmt.Errorf("module %s: %d bytes is larger than %d", path, st.Size(), protocol.MaxModuleSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("module: %w", err)
	}
	if err := protocol.CheckModule(b); err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	return b, nil
}

// resolveModules makes the module paths of the config's own functions relative to dir
// (the config file's folder).
func (c *Config) resolveModules(dir string) {
	for name, f := range c.Functions {
		if f.Runtime == protocol.RuntimeWasm && f.Module != "" && !protocol.IsModuleDigest(f.Module) && !filepath.IsAbs(f.Module) {
			f.Module = filepath.Join(dir, f.Module)
			c.Functions[name] = f
		}
	}
}
