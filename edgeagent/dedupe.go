package edgeagent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"

	"github.com/deviceless/deviceless/internal/atomicfile"
	"github.com/deviceless/deviceless/protocol"
)

// The agent's memory of the invocation and actuation ids it has seen, with the outcome it
// answered for each, so that an id delivered again — a QoS 1 redelivery, the engine
// evaluating an event again after its crash — is answered with the same outcome instead
// of being run or applied twice. It survives restarts: it lives in a file in the state
// folder, one JSON record a line, appended to and compacted.
//
//	{"id":"x","applying":true}   // x's actuations (or publishes) are about to be applied
//	{"id":"x","result":{...}}    // x finished with this result, as published
//
// An "applying" record is synced to disk before anything is applied, so an id whose
// application a crash interrupted is known after the restart: it is answered with an
// error and not applied again (at most once). A result record is synced when the id had
// such effects; otherwise a power cut may lose it, and the id runs again when delivered
// again (it had no effects). A torn last line (a crash while writing) is ignored.
//
// The memory is bounded: the last dedupeMaxIDs ids, and about dedupeMaxBytes of stored
// results — beyond that the oldest results lose their output (the id, status and error are
// kept). The file is rewritten from memory (to a temporary file, synced, renamed) at
// start and whenever it has grown to twice the memory.

const (
	dedupeFile     = "ids.jsonl"
	dedupeMaxIDs   = 4096
	dedupeMaxBytes = 16 << 20
)

// dedupe remembers results by id, and who waits for ids in flight.
type dedupe struct {
	mu       sync.Mutex
	max      int
	maxBytes int
	entries  map[string]*dedupeEntry
	order    []string // finished ids, oldest first
	bytes    int      // of the stored payloads

	// The file; nil f: in memory only.
	path      string
	agent     string
	f         *os.File
	records   int   // lines in the file
	fileBytes int64 // its size
	// written counts the records appended, synced those known to be on disk: appends
	// that must be durable wait in syncTo, where one fsync covers every record written
	// before it (a group commit: concurrent workers do not queue behind each other's
	// fsyncs while holding mu).
	written, synced uint64
	syncMu          sync.Mutex // one fsync at a time
	log             *slog.Logger
}

type dedupeEntry struct {
	done     bool
	applying bool   // its effects are being applied (recorded on disk)
	payload  []byte // the result as published
	trimmed  bool   // payload lost its output to the byte bound
	waiters  []replyTo
}

type dedupeRecord struct {
	ID       string          `json:"id"`
	Applying bool            `json:"applying,omitempty"`
	Result   json.RawMessage `json:"result,omitempty"`
}

// newDedupe is a memory of max ids kept in memory only.
func newDedupe(max int) *dedupe {
	return &dedupe{max: max, maxBytes: dedupeMaxBytes, entries: map[string]*dedupeEntry{}, log: slog.New(slog.DiscardHandler)}
}

// openDedupe loads the memory of agent from path (a missing file is an empty memory),
// rewrites the file compacted, and keeps it open for appending.
func openDedupe(path, agent string, max, maxBytes int, log *slog.Logger) (*dedupe, error) {
	d := &dedupe{max: max, maxBytes: maxBytes, entries: map[string]*dedupeEntry{}, path: path, agent: agent, log: log}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("ids seen: %w", err)
	default:
		err = d.load(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("ids seen: %s: %w", path, err)
		}
	}
	// Ids whose effects a crash interrupted: their outcome is that.
	for _, id := range sortedKeys(d.entries) {
		if e := d.entries[id]; !e.done {
			payload, _ := encodeJSON(protocol.Result{ID: id, Agent: agent, Status: protocol.StatusError,
				Error: "the agent restarted while applying it: not applied again (it may have been, in part)"})
			e.applying = false
			d.store(id, e, payload)
		}
	}
	if err := d.compact(); err != nil {
		return nil, fmt.Errorf("ids seen: %w", err)
	}
	return d, nil
}

// load reads the records of f.
func (d *dedupe) load(f io.Reader) error {
	r := bufio.NewReaderSize(f, 64<<10)
	bad := 0
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var rec dedupeRecord
			if json.Unmarshal(line, &rec) != nil || rec.ID == "" {
				bad++ // torn by a crash (the last line), or damaged
			} else if rec.Result != nil {
				e := d.entries[rec.ID]
				if e == nil {
					e = &dedupeEntry{}
					d.entries[rec.ID] = e
				}
				d.store(rec.ID, e, bytes.Clone(rec.Result))
			} else if rec.Applying && d.entries[rec.ID] == nil {
				d.entries[rec.ID] = &dedupeEntry{applying: true}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if bad > 0 {
		d.log.Warn("ids seen: records cut short or damaged were ignored", "file", d.path, "records", bad)
	}
	return nil
}

// join registers to as waiting for id. It returns seen false when id is new (the caller
// must run it and call complete); done and the stored payload when id has finished; and
// seen alone when id is in flight (to gets the answer when it finishes).
func (d *dedupe) join(id string, to replyTo) (payload []byte, seen, done bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.entries[id]
	switch {
	case !ok:
		d.entries[id] = &dedupeEntry{waiters: []replyTo{to}}
		return nil, false, false
	case e.done:
		return e.payload, true, true
	default:
		e.waiters = append(e.waiters, to)
		return nil, true, false
	}
}

// inFlight reports whether id is running or queued.
func (d *dedupe) inFlight(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.entries[id]
	return ok && !e.done
}

// applying records, on disk before it returns, that id's effects are about to be applied.
func (d *dedupe) applying(id string) {
	d.mu.Lock()
	e, ok := d.entries[id]
	if !ok || e.done || e.applying {
		d.mu.Unlock()
		return
	}
	e.applying = true
	gen := d.append(dedupeRecord{ID: id, Applying: true})
	d.mu.Unlock()
	d.syncTo(gen)
}

// complete returns who waits for id; with store it keeps its result's payload for
// repeats (on disk too), otherwise it forgets the id. An id whose effects were applied is
// always stored.
func (d *dedupe) complete(id string, payload []byte, store bool) []replyTo {
	var gen uint64
	defer func() { d.syncTo(gen) }() // after mu is released
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.entries[id]
	if !ok {
		return nil
	}
	waiters := e.waiters
	e.waiters = nil
	if !store && !e.applying {
		delete(d.entries, id)
		return waiters
	}
	if g := d.append(dedupeRecord{ID: id, Result: payload}); e.applying {
		gen = g
	}
	e.applying = false
	d.store(id, e, payload)
	if d.f != nil && (d.records > 2*d.max+16 || d.fileBytes > 2*int64(d.maxBytes)+1<<20) {
		if err := d.compact(); err != nil {
			d.log.Error("ids seen: compacting the file", "file", d.path, "err", err)
		}
	}
	return waiters
}

// store makes e a finished id with payload, the newest, and applies the bounds.
func (d *dedupe) store(id string, e *dedupeEntry, payload []byte) {
	if e.done {
		d.bytes -= len(e.payload)
		if i := indexOf(d.order, id); i >= 0 {
			d.order = append(d.order[:i], d.order[i+1:]...)
		}
	}
	e.done, e.payload, e.trimmed = true, payload, false
	d.bytes += len(payload)
	d.order = append(d.order, id)
	for len(d.order) > d.max {
		d.forget(d.order[0])
	}
	for i := 0; d.bytes > d.maxBytes && i < len(d.order); i++ {
		d.trim(d.entries[d.order[i]])
	}
	for d.bytes > d.maxBytes && len(d.order) > 1 {
		d.forget(d.order[0])
	}
}

func (d *dedupe) forget(id string) {
	if e := d.entries[id]; e != nil {
		d.bytes -= len(e.payload)
		delete(d.entries, id)
	}
	if i := indexOf(d.order, id); i >= 0 {
		d.order = append(d.order[:i], d.order[i+1:]...)
	}
}

// trim takes the output out of a stored result, which says so.
func (d *dedupe) trim(e *dedupeEntry) {
	if e.trimmed {
		return
	}
	e.trimmed = true
	var r protocol.Result
	if json.Unmarshal(e.payload, &r) != nil || r.Output == nil {
		return
	}
	note := fmt.Sprintf("the first answer's output (%d bytes) is no longer kept for repeats", len(r.Output))
	if r.Error != "" {
		note = r.Error + "; " + note
	}
	r.Output, r.Error = nil, note
	if b, err := encodeJSON(r); err == nil && len(b) < len(e.payload) {
		d.bytes += len(b) - len(e.payload)
		e.payload = b
	}
}

// append writes a record to the file (d.mu held) and returns its number, for syncTo
// (0: nothing to wait for).
func (d *dedupe) append(rec dedupeRecord) uint64 {
	if d.f == nil {
		return 0
	}
	line, err := encodeJSON(rec)
	if err == nil {
		line = append(line, '\n')
		_, err = d.f.Write(line)
		d.records++
		d.fileBytes += int64(len(line))
	}
	if err != nil {
		d.log.Error("ids seen: writing the file (an id may run or apply again after a restart)", "file", d.path, "id", rec.ID, "err", err)
		return 0
	}
	d.written++
	return d.written
}

// syncTo returns once record gen (from append; 0: none) is on disk (d.mu not held). An
// fsync covers every record written before it started, so callers arriving while one runs
// share the next.
func (d *dedupe) syncTo(gen uint64) {
	if gen == 0 {
		return
	}
	d.syncMu.Lock()
	defer d.syncMu.Unlock()
	d.mu.Lock()
	f, upTo := d.f, d.written
	if d.synced >= gen || f == nil {
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	err := f.Sync()
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case err == nil:
		d.synced = max(d.synced, upTo)
	case d.f != f:
		// Compacted meanwhile: the new file, synced before it replaced this one, has them.
	default:
		d.log.Error("ids seen: syncing the file (an id may run or apply again after a restart)", "file", d.path, "err", err)
	}
}

// compact rewrites the file from memory: finished ids oldest first, then those being
// applied.
func (d *dedupe) compact() error {
	if d.path == "" {
		return nil
	}
	records, size := 0, int64(0)
	err := atomicfile.Write(d.path, 0o600, func(w io.Writer) error {
		write := func(rec dedupeRecord) error {
			line, _ := encodeJSON(rec)
			n, err := w.Write(append(line, '\n'))
			records++
			size += int64(n)
			return err
		}
		for _, id := range d.order {
			if err := write(dedupeRecord{ID: id, Result: d.entries[id].payload}); err != nil {
				return err
			}
		}
		for _, id := range sortedKeys(d.entries) {
			if e := d.entries[id]; e.applying {
				if err := write(dedupeRecord{ID: id, Applying: true}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if d.f != nil {
		d.f.Close()
	}
	d.f, err = os.OpenFile(d.path, os.O_WRONLY|os.O_APPEND|syscall.O_NOFOLLOW, 0)
	if err != nil {
		d.f = nil
		return err
	}
	d.records, d.fileBytes = records, size
	d.synced = d.written // the new file holds every record, synced
	return nil
}

// close closes the file.
func (d *dedupe) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f != nil {
		d.f.Close()
		d.f = nil
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}
