package wasm

import (
	"sync"

	"github.com/tetratelabs/wazero/experimental"
)

// PageSize is the size of a WebAssembly memory page.
const PageSize = 64 << 10

// maxPages is the most pages a 32-bit memory can have (4 GiB).
const maxPages = 1 << 16

// pages converts a memory limit in bytes to whole pages, within [1, maxPages].
func pages(bytes int64) uint32 {
	p := bytes / PageSize
	switch {
	case p < 1:
		return 1
	case p > maxPages:
		return maxPages
	}
	return uint32(p)
}

// limitedMemory backs one instance's linear memory and holds it to the invocation's limit.
// wazero refuses a memory.grow past the module's maximum itself (capped at the runtime's
// WithMemoryLimitPages); below that, Reallocate refuses a size over the invocation's limit,
// and remembers it: a run that fails after a refused grow is reported as killed for memory.
// An instance is used by one goroutine at a time (no shared memories: threads are off).
type limitedMemory struct {
	buf     []byte
	limit   uint64 // bytes
	refused bool   // a grow past limit was refused
	peak    uint64 // largest size reached
	// overAtStart: the module's initial memory is over limit (it must not run).
	overAtStart bool
}

// allocator hands out one limitedMemory per instance; its fields say what happened. The
// backing array comes from buffers when there is one (see recycle).
type allocator struct {
	limit   uint64
	buffers *sync.Pool // of *[]byte, all zero, len 0; nil: always allocate
	mem     *limitedMemory
}

var _ experimental.MemoryAllocator = (*allocator)(nil)

// Allocate implements experimental.MemoryAllocator. A module has at most one memory.
func (a *allocator) Allocate(_, _ uint64) experimental.LinearMemory {
	a.mem = &limitedMemory{limit: a.limit}
	if a.buffers != nil {
		if b, ok := a.buffers.Get().(*[]byte); ok {
			a.mem.buf = (*b)[:0]
		}
	}
	return a.mem
}

// recycle gives the instance's memory back to the pool, zeroed, for a later instance of the
// same module. Only once the instance's code has returned: wazero frees (Free) a memory
// when it closes an instance, which can happen while the code still runs (a deadline, a
// closing runtime), so Free never recycles.
func (a *allocator) recycle() {
	if a.buffers == nil || a.mem == nil || a.mem.buf == nil || a.mem.overAtStart {
		return
	}
	b := a.mem.buf
	a.mem.buf = nil
	clear(b) // the bytes past len are zero already
	b = b[:0]
	a.buffers.Put(&b)
}

// Reallocate implements experimental.LinearMemory: it returns the memory grown to size
// bytes (new bytes zero), or nil past the limit.
func (m *limitedMemory) Reallocate(size uint64) []byte {
	if size > m.limit {
		if len(m.buf) == 0 {
			// The module's initial memory is over the limit. wazero cannot take a refusal of
			// the first allocation (it panics), so the memory is made and the instance is
			// closed before it runs.
			m.overAtStart = true
		} else {
			m.refused = true
			return nil
		}
	}
	if size > uint64(cap(m.buf)) {
		// Grow the backing array geometrically (within the limit), as append would, so that a
		// module growing page by page does not copy its memory each time.
		c := max(size, min(2*uint64(cap(m.buf)), m.limit))
		if len(m.buf) == 0 {
			c = size // the initial memory
		}
		b := make([]byte, size, c)
		copy(b, m.buf)
		m.buf = b
	} else {
		// Memory never shrinks, so the bytes past len are still the zeros make gave them.
		m.buf = m.buf[:size]
	}
	m.peak = max(m.peak, size)
	return m.buf
}

// Free implements experimental.LinearMemory. The memory is left to the garbage collector
// (or to recycle, which knows when the instance's code is done with it).
func (m *limitedMemory) Free() {}
