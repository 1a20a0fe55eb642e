package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	influxhttp "github.com/influxdata/influxdb-client-go/v2/api/http"
)

// Config is the `influx` block of the engine and agent configuration:
//
//	influx: {url: http://127.0.0.1:8086, token: "", org: "", bucket: deviceless}
//
// When the block is absent metrics are disabled (use Nop). Against InfluxDB 1.8 the token is
// "" or "user:password", the org "" and the bucket "database" or "database/retention-policy";
// the database must exist. The tuning keys are optional; zero means the default.
type Config struct {
	URL    string `yaml:"url"`    // http:// or https:// base URL of InfluxDB
	Token  string `yaml:"token"`  // API token (2.x) or "user:password" (1.8 with auth)
	Org    string `yaml:"org"`    // organization (2.x); "" for 1.8
	Bucket string `yaml:"bucket"` // bucket (2.x) or database[/retention-policy] (1.8)

	BatchSize        int           `yaml:"batch_size"`         // points per write request; default 1000
	FlushInterval    time.Duration `yaml:"flush_interval"`     // longest a point waits before it is sent; default 1s
	BufferLimit      int           `yaml:"buffer_limit"`       // points kept while InfluxDB is slow or down; default 50000
	Timeout          time.Duration `yaml:"timeout"`            // per write request, and for the final flush; default 5s
	RetryInterval    time.Duration `yaml:"retry_interval"`     // wait after the first failed write; doubles; default 1s
	MaxRetryInterval time.Duration `yaml:"max_retry_interval"` // longest wait between retries; default 30s
}

// Defaults of the optional Config keys.
const (
	DefaultBatchSize        = 1000
	DefaultFlushInterval    = time.Second
	DefaultBufferLimit      = 50_000
	DefaultTimeout          = 5 * time.Second
	DefaultRetryInterval    = time.Second
	DefaultMaxRetryInterval = 30 * time.Second
)

// withDefaults validates c and fills in the defaults of the optional keys.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		errs = append(errs, errors.New("url is required"))
	case err != nil:
		errs = append(errs, fmt.Errorf("url: %w", err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("url %q: scheme must be http or https", c.URL))
	case u.Host == "":
		errs = append(errs, fmt.Errorf("url %q: no host", c.URL))
	case u.RawQuery != "" || u.Fragment != "":
		errs = append(errs, fmt.Errorf("url %q: no query or fragment allowed", c.URL))
	}
	if c.Bucket == "" {
		errs = append(errs, errors.New("bucket is required (the database on InfluxDB 1.8)"))
	}
	def := func(name string, v *time.Duration, d time.Duration) {
		switch {
		case *v == 0:
			*v = d
		case *v < time.Millisecond:
			errs = append(errs, fmt.Errorf("%s %v: must be at least 1ms", name, *v))
		}
	}
	def("flush_interval", &c.FlushInterval, DefaultFlushInterval)
	def("timeout", &c.Timeout, DefaultTimeout)
	def("retry_interval", &c.RetryInterval, DefaultRetryInterval)
	def("max_retry_interval", &c.MaxRetryInterval, DefaultMaxRetryInterval)
	if c.MaxRetryInterval < c.RetryInterval {
		errs = append(errs, fmt.Errorf("max_retry_interval %v is below retry_interval %v", c.MaxRetryInterval, c.RetryInterval))
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.BufferLimit == 0 {
		c.BufferLimit = max(DefaultBufferLimit, c.BatchSize)
	}
	switch {
	case c.BatchSize < 0:
		errs = append(errs, fmt.Errorf("batch_size %d: must be positive", c.BatchSize))
	case c.BufferLimit < c.BatchSize:
		errs = append(errs, fmt.Errorf("buffer_limit %d: must be at least batch_size %d", c.BufferLimit, c.BatchSize))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("influx: %w", err)
	}
	return c, nil
}

// Stats are the sink's counters since it was created. Every point given to Write ends up
// in exactly one of Written, Dropped and Buffered.
type Stats struct {
	Written     uint64 // points InfluxDB accepted
	Dropped     uint64 // points lost: oldest evicted from a full buffer, rejected by InfluxDB, unencodable, or unsent at shutdown
	WriteErrors uint64 // failed write requests (each failed retry counts)
	Buffered    int    // points waiting to be sent
}

// Influx is the Sink that batches points to InfluxDB. Write puts a point in a bounded
// buffer and returns; Run sends the buffer in batches, retries failed requests with
// exponential backoff and, when the buffer is full, drops the oldest points. Create it with
// New and start Run; Write is safe for concurrent use before, during and after Run.
//
// It writes with the client's blocking WriteAPIBlocking from its own goroutine rather than
// with the client's non-blocking WriteAPI: WriteAPI's WritePoint blocks its caller while a
// request is in flight (unbuffered channels in front of a synchronous HTTP write), and its
// retry queue discards batches without telling (eviction when RetryBufferLimit is reached,
// MaxRetryTime expiry, MaxRetries; only logged), so its losses could not be counted.
type Influx struct {
	cfg     Config
	log     *slog.Logger
	client  influxdb2.Client
	api     api.WriteAPIBlocking
	wake    chan struct{} // a batch is ready
	started atomic.Bool

	mu       sync.Mutex
	ring     []Point // circular buffer; grows up to BufferLimit points
	head     int     // index of the oldest point
	n        int     // points in the buffer
	inflight int     // points taken by the request being sent
	closed   bool    // Run has finished: points are counted as dropped
	stats    Stats   // Written, Dropped, WriteErrors
}

// New validates cfg and returns an InfluxDB sink; nothing is sent until Run. logger may be nil.
func New(cfg Config, logger *slog.Logger) (*Influx, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts := influxdb2.DefaultOptions().
		SetHTTPRequestTimeout(uint((cfg.Timeout + time.Second - 1) / time.Second)).
		SetApplicationName("deviceless")
	client := influxdb2.NewClientWithOptions(cfg.URL, cfg.Token, opts)
	return &Influx{
		cfg:    cfg,
		log:    logger.With("component", "metrics", "influx", cfg.URL, "bucket", cfg.Bucket),
		client: client,
		api:    client.WriteAPIBlocking(cfg.Org, cfg.Bucket),
		ring:   make([]Point, min(cfg.BufferLimit, initialRing)),
		wake:   make(chan struct{}, 1),
	}, nil
}

// Write queues p for InfluxDB and returns at once. When the buffer is full the oldest
// queued point is dropped; after Run has returned, p itself is.
func (s *Influx) Write(p Point) {
	if p.Time.IsZero() {
		p.Time = time.Now()
	}
	s.mu.Lock()
	if s.closed {
		s.stats.Dropped++
		s.mu.Unlock()
		return
	}
	if s.n == len(s.ring) && len(s.ring) < s.cfg.BufferLimit {
		s.grow(s.n + 1)
	}
	size := len(s.ring)
	if s.n == size {
		s.ring[s.head] = Point{}
		s.head++
		if s.head == size {
			s.head = 0
		}
		s.n--
		s.stats.Dropped++
	}
	i := s.head + s.n
	if i >= size {
		i -= size
	}
	s.ring[i] = p
	s.n++
	ready := s.n == s.cfg.BatchSize
	s.mu.Unlock()
	if ready {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// initialRing is the buffer's first size; it doubles as needed up to BufferLimit, so an
// idle or healthy sink does not hold memory for a long outage.
const initialRing = 1024

// grow enlarges the ring to hold at least need points (at most BufferLimit), oldest first.
// The caller holds mu.
func (s *Influx) grow(need int) {
	size := min(max(2*len(s.ring), need), s.cfg.BufferLimit)
	ring := make([]Point, size)
	k := copy(ring, s.ring[s.head:min(s.head+s.n, len(s.ring))])
	copy(ring[k:], s.ring[:s.n-k])
	s.ring, s.head = ring, 0
}

// Stats returns the counters.
func (s *Influx) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Buffered = s.n + s.inflight
	return st
}

// take moves up to max of the oldest points from the buffer to dst; they are in flight
// until settle or putBack.
func (s *Influx) take(dst []Point, max int) []Point {
	s.mu.Lock()
	defer s.mu.Unlock()
	size := len(s.ring)
	for s.n > 0 && len(dst) < max {
		dst = append(dst, s.ring[s.head])
		s.ring[s.head] = Point{}
		s.head++
		if s.head == size {
			s.head = 0
		}
		s.n--
		s.inflight++
	}
	return dst
}

// settle accounts for a batch of taken points that InfluxDB accepted or rejected.
func (s *Influx) settle(taken, written, dropped int, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight -= taken
	s.stats.Written += uint64(written)
	s.stats.Dropped += uint64(dropped)
	if failed {
		s.stats.WriteErrors++
	}
}

// putBack returns a batch that could not be sent to the front of the buffer; failed counts
// a write error. Points that no longer fit are the oldest of all and are dropped.
func (s *Influx) putBack(batch []Point, failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight -= len(batch)
	if failed {
		s.stats.WriteErrors++
	}
	if free := len(s.ring) - s.n; free < len(batch) && len(s.ring) < s.cfg.BufferLimit {
		s.grow(s.n + len(batch))
	}
	size := len(s.ring)
	if lost := len(batch) - (size - s.n); lost > 0 {
		s.stats.Dropped += uint64(lost)
		batch = batch[lost:]
	}
	for i := len(batch) - 1; i >= 0; i-- {
		s.head--
		if s.head < 0 {
			s.head = size - 1
		}
		s.ring[s.head] = batch[i]
		s.n++
	}
}

// Run sends buffered points until ctx ends, then makes one last attempt, bounded by the
// configured timeout, to send what is left, counts what could not be sent as dropped and
// returns nil. Points written after Run returns are dropped. Run may be called once.
func (s *Influx) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("metrics: Run called twice")
	}
	defer s.client.Close()
	tick := time.NewTicker(s.cfg.FlushInterval)
	defer tick.Stop()
	w := &sender{s: s, batch: make([]Point, 0, s.cfg.BatchSize)}
	var backoff time.Duration
	for {
		select {
		case <-ctx.Done():
			s.shutdown(w)
			return nil
		case <-tick.C:
		case <-s.wake:
		}
		// Send everything buffered; a failure waits (backoff) and retries the oldest points.
		for ctx.Err() == nil {
			sent, retry := w.send(ctx)
			if !retry {
				backoff = 0
				if sent == 0 {
					break
				}
				continue
			}
			backoff = s.nextBackoff(backoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
}

// nextBackoff doubles the wait between retries up to MaxRetryInterval, with ±25% jitter
// so that many agents do not retry in step.
func (s *Influx) nextBackoff(prev time.Duration) time.Duration {
	d := s.cfg.RetryInterval
	if prev > 0 {
		d = min(2*prev, s.cfg.MaxRetryInterval)
	}
	jitter := time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return max(time.Millisecond, min(d+jitter, s.cfg.MaxRetryInterval))
}

// shutdown sends what is left within one timeout, then closes the buffer: what could not
// be sent, and every later point, is dropped.
func (s *Influx) shutdown(w *sender) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	for ctx.Err() == nil {
		sent, retry := w.send(ctx)
		if retry || sent == 0 {
			break
		}
	}
	s.mu.Lock()
	s.closed = true
	s.stats.Dropped += uint64(s.n)
	s.n, s.head = 0, 0
	s.ring = nil
	st := s.stats
	s.mu.Unlock()
	if st.Dropped > 0 {
		s.log.Warn("metrics sink stopped with losses", "written", st.Written, "dropped", st.Dropped, "write_errors", st.WriteErrors)
	}
}

// sender is Run's state: the batch being sent, its encoding, and whether InfluxDB is
// failing (one log line per outage).
type sender struct {
	s       *Influx
	batch   []Point
	buf     []byte
	failing bool
}

// partialDropped finds InfluxDB 1.x's count of rejected points in a partial write error.
var partialDropped = regexp.MustCompile(`dropped=(\d+)`)

// send sends one batch of the oldest buffered points. It returns how many points it took
// from the buffer, and retry=true when the request failed in a way worth retrying (network
// error, 429, 5xx): the points are then back at the front of the buffer.
func (w *sender) send(ctx context.Context) (taken int, retry bool) {
	s := w.s
	w.batch = s.take(w.batch[:0], s.cfg.BatchSize)
	if len(w.batch) == 0 {
		return 0, false
	}
	w.buf = w.buf[:0]
	lines := 0
	for i := range w.batch {
		var ok bool
		if w.buf, ok = appendLine(w.buf, &w.batch[i]); ok {
			lines++
		}
	}
	if invalid := len(w.batch) - lines; invalid > 0 {
		s.log.Warn("points without measurement or storable field dropped", "count", invalid)
	}
	if lines == 0 {
		s.settle(len(w.batch), 0, len(w.batch), false)
		return len(w.batch), false
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	err := s.api.WriteRecord(rctx, string(w.buf[:len(w.buf)-1]))
	cancel()
	if err == nil {
		s.settle(len(w.batch), lines, len(w.batch)-lines, false)
		if w.failing {
			w.failing = false
			st := s.Stats()
			s.log.Info("influxdb writes resumed", "written", st.Written, "dropped", st.Dropped, "buffered", st.Buffered)
		}
		return len(w.batch), false
	}
	var herr *influxhttp.Error
	status := 0
	if errors.As(err, &herr) {
		status = herr.StatusCode
	}
	if ctx.Err() != nil { // shutting down mid-request: not InfluxDB's failure
		s.putBack(w.batch, false)
		clear(w.batch)
		return len(w.batch), true
	}
	if status == 0 || status >= 429 {
		if !w.failing {
			w.failing = true
			s.log.Warn("influxdb write failed; buffering and retrying", "err", err, "status", status, "buffer_limit", s.cfg.BufferLimit)
		}
		s.putBack(w.batch, true)
		clear(w.batch)
		return len(w.batch), true
	}
	// Rejected (4xx): retrying cannot help. A partial write says how many points it dropped.
	rejected := lines
	if herr != nil {
		if m := partialDropped.FindStringSubmatch(herr.Message); m != nil {
			if d, perr := strconv.Atoi(m[1]); perr == nil && d <= lines {
				rejected = d
			}
		}
	}
	s.settle(len(w.batch), lines-rejected, len(w.batch)-lines+rejected, true)
	s.log.Warn("influxdb rejected points", "err", err, "status", status, "rejected", rejected)
	return len(w.batch), false
}
