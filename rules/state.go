package rules

import (
	"sync"
	"time"
)

// ruleState holds a rule's per-key state, at most max keys, least recently used evicted.
type ruleState struct {
	mu   sync.Mutex
	keys map[string]*keyState
	max  int
	// LRU list: head is the most recently used.
	head, tail *keyState
}

type keyState struct {
	key        string
	prev, next *keyState

	since    time.Time // when the condition became true (for `for`); zero when false
	lastFire time.Time // for `throttle`
	prevVal  any       // previous payload
	hasPrev  bool
	win      window
}

func newRuleState(max int) *ruleState {
	return &ruleState{keys: make(map[string]*keyState), max: max}
}

// get returns the state of key, creating it (and evicting the oldest key when full).
// It reports whether a key was evicted. Call with mu held.
func (s *ruleState) get(key string) (ks *keyState, evicted bool) {
	if ks = s.keys[key]; ks != nil {
		if s.head != ks {
			s.unlink(ks)
			s.pushFront(ks)
		}
		return ks, false
	}
	if len(s.keys) >= s.max {
		old := s.tail
		s.unlink(old)
		delete(s.keys, old.key)
		evicted = true
	}
	ks = &keyState{key: key}
	s.keys[key] = ks
	s.pushFront(ks)
	return ks, evicted
}

func (s *ruleState) unlink(ks *keyState) {
	if ks.prev != nil {
		ks.prev.next = ks.next
	} else {
		s.head = ks.next
	}
	if ks.next != nil {
		ks.next.prev = ks.prev
	} else {
		s.tail = ks.prev
	}
	ks.prev, ks.next = nil, nil
}

func (s *ruleState) pushFront(ks *keyState) {
	ks.next = s.head
	if s.head != nil {
		s.head.prev = ks
	}
	s.head = ks
	if s.tail == nil {
		s.tail = ks
	}
}

// window is a sliding window of samples, by time or by count. Samples leave in arrival
// order, so sum is kept incrementally and min/max with monotonic deques: every operation
// is O(1) amortised.
type window struct {
	samples ring[sample]
	mins    ring[sample] // increasing values: front is the minimum
	maxs    ring[sample] // decreasing values: front is the maximum
	sum     float64
	seq     uint64
}

type sample struct {
	t   time.Time
	v   float64
	seq uint64
}

// add appends v at time t, then drops samples older than over (when over > 0) and the
// oldest beyond max samples.
func (w *window) add(t time.Time, v float64, over time.Duration, max int) {
	w.seq++
	s := sample{t: t, v: v, seq: w.seq}
	w.samples.push(s)
	w.sum += v
	for w.mins.len() > 0 && w.mins.back().v >= v {
		w.mins.popBack()
	}
	w.mins.push(s)
	for w.maxs.len() > 0 && w.maxs.back().v <= v {
		w.maxs.popBack()
	}
	w.maxs.push(s)
	for w.samples.len() > max {
		w.drop()
	}
	if over > 0 {
		cutoff := t.Add(-over)
		for w.samples.len() > 1 && !w.samples.front().t.After(cutoff) {
			w.drop()
		}
	}
}

func (w *window) drop() {
	old := w.samples.popFront()
	if w.samples.len() == 0 {
		w.sum = 0 // reset float drift whenever the window empties
	} else {
		w.sum -= old.v
	}
	if w.mins.len() > 0 && w.mins.front().seq == old.seq {
		w.mins.popFront()
	}
	if w.maxs.len() > 0 && w.maxs.front().seq == old.seq {
		w.maxs.popFront()
	}
}

func (w *window) stats() Window {
	n := w.samples.len()
	if n == 0 {
		return Window{}
	}
	return Window{
		Avg:   w.sum / float64(n),
		Min:   w.mins.front().v,
		Max:   w.maxs.front().v,
		Sum:   w.sum,
		Count: n,
		Last:  w.samples.back().v,
	}
}

// ring is a growable FIFO/deque backed by a power-of-two circular buffer.
type ring[T any] struct {
	buf  []T
	head int
	n    int
}

func (r *ring[T]) len() int { return r.n }

func (r *ring[T]) push(v T) {
	if r.n == len(r.buf) {
		size := 2 * len(r.buf)
		if size == 0 {
			size = 4
		}
		nb := make([]T, size)
		for i := 0; i < r.n; i++ {
			nb[i] = r.buf[(r.head+i)&(len(r.buf)-1)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = v
	r.n++
}

func (r *ring[T]) front() T { return r.buf[r.head] }

func (r *ring[T]) back() T { return r.buf[(r.head+r.n-1)&(len(r.buf)-1)] }

func (r *ring[T]) popFront() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
	return v
}

func (r *ring[T]) popBack() T {
	var zero T
	i := (r.head + r.n - 1) & (len(r.buf) - 1)
	v := r.buf[i]
	r.buf[i] = zero
	r.n--
	return v
}
