package engine

import (
	"sync"
	"time"

	"github.com/deviceless/deviceless/protocol"
)

// Record is a finished invocation as /api/v1/invocations lists it.
type Record struct {
	protocol.Result
	Attempts int       `json:"attempts"`
	Finished time.Time `json:"finished_at"`
	// Caller is who invoked it: user:alice, token:ci, rule:hot-greenhouse, ... (caller.go).
	Caller string `json:"caller,omitempty"`
}

// history keeps the last N finished invocations in a ring.
type history struct {
	mu   sync.Mutex
	buf  []Record
	next int
	full bool
}

func newHistory(n int) *history { return &history{buf: make([]Record, n)} }

// observe keeps a finished invocation.
func (h *history) observe(f *finished) { h.add(f.Record) }

func (h *history) add(r Record) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf[h.next] = r
	h.next = (h.next + 1) % len(h.buf)
	if h.next == 0 {
		h.full = true
	}
}

// list returns up to limit records, newest first.
func (h *history) list(limit int) []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := h.next
	if h.full {
		n = len(h.buf)
	}
	if limit <= 0 || limit > n {
		limit = n
	}
	out := make([]Record, 0, limit)
	for i := 1; i <= limit; i++ {
		out = append(out, h.buf[(h.next-i+len(h.buf))%len(h.buf)])
	}
	return out
}
