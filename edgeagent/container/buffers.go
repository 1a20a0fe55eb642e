package container

import (
	"sync"
)

// Capped keeps the first limit bytes written to it and drops the rest, so a function that
// prints megabytes never blocks its runtime and never costs more than limit bytes of
// memory. Both runtimes keep a function's stdout in one.
type Capped struct {
	mu        sync.Mutex
	buf       []byte
	limit     int
	truncated bool
}

// NewCapped keeps up to limit bytes.
func NewCapped(limit int) *Capped { return &Capped{limit: limit} }

func (c *Capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	room := c.limit - len(c.buf)
	if room >= len(p) {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	if room > 0 {
		c.buf = append(c.buf, p[:room]...)
	}
	c.truncated = true
	return len(p), nil
}

// Result is what was kept, and whether more was written.
func (c *Capped) Result() ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf, c.truncated
}

// Tail keeps the last limit bytes written to it (a function's stderr).
type Tail struct {
	mu    sync.Mutex
	buf   []byte
	limit int
}

// NewTail keeps the last limit bytes.
func NewTail(limit int) *Tail { return &Tail{limit: limit} }

func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(p) >= t.limit {
		t.buf = append(t.buf[:0], p[len(p)-t.limit:]...)
		return len(p), nil
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.limit; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// Reset forgets what was written.
func (t *Tail) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = t.buf[:0]
}
