package metrics_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/deviceless/deviceless/metrics"
	"github.com/deviceless/deviceless/metrics/influxtest"
)

// outcome is what became of a write request, as far as InfluxDB and the sink are concerned.
type outcome int

const (
	answered outcome = iota // InfluxDB accepted it and the sink got the answer: written
	refused                 // InfluxDB was not listening: nothing stored
	unknown                 // the sink had no answer in time (or the connection broke): InfluxDB may have stored it, or may still when it resumes
)

func (o outcome) String() string { return [...]string{"answered", "refused", "unknown"}[o] }

// request is one write request the sink sent: its points (as "measurement,tags timestamp")
// and its outcome.
type request struct {
	points  []string
	queues  []int64 // each point's field queue (-1 without)
	outcome outcome
}

// recorder is an HTTP proxy between the sink and InfluxDB that records each write
// request's points and outcome, so that the test knows of every point whether the sink saw
// InfluxDB accept it. It forwards InfluxDB's answer only if it comes within answerWithin,
// well inside the sink's own timeout, so an answer it forwards is one the sink reads; a
// later answer is held back and the sink times out, as against a hung server.
type recorder struct {
	upstream     string
	answerWithin time.Duration
	client       *http.Client

	mu   sync.Mutex
	reqs []request
	hold int // answers to hold back although they came in time
}

// holdAnswers makes the proxy hold back the next n answers of InfluxDB: the sink times out
// on requests InfluxDB stored, as against a server too slow to answer in time.
func (r *recorder) holdAnswers(n int) {
	r.mu.Lock()
	r.hold = n
	r.mu.Unlock()
}

func (r *recorder) held() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hold > 0 {
		r.hold--
		return true
	}
	return false
}

func newRecorder(t *testing.T, upstream string, answerWithin time.Duration) (*recorder, string) {
	tr := &http.Transport{}
	r := &recorder{upstream: upstream, answerWithin: answerWithin, client: &http.Client{Transport: tr}}
	srv := httptest.NewServer(r)
	t.Cleanup(func() { srv.Close(); tr.CloseIdleConnections() })
	return r, srv.URL
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	var points []string
	var queues []int64
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			points = append(points, f[0]+" "+f[2])
			q := int64(-1)
			for _, kv := range strings.Split(f[1], ",") {
				if v, ok := strings.CutPrefix(kv, "queue="); ok {
					q, _ = strconv.ParseInt(strings.TrimSuffix(v, "i"), 10, 64)
				}
			}
			queues = append(queues, q)
		}
	}
	record := func(o outcome) {
		r.mu.Lock()
		r.reqs = append(r.reqs, request{points: points, queues: queues, outcome: o})
		r.mu.Unlock()
	}
	up, _ := http.NewRequestWithContext(req.Context(), req.Method, r.upstream+req.URL.RequestURI(), bytes.NewReader(body))
	up.Header = req.Header.Clone()
	type answer struct {
		status int
		header http.Header
		body   []byte
		err    error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := r.client.Do(up)
		if err != nil {
			done <- answer{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- answer{status: resp.StatusCode, header: resp.Header, body: b, err: err}
	}()
	late := time.NewTimer(r.answerWithin)
	defer late.Stop()
	select {
	case a := <-done:
		switch {
		case errors.Is(a.err, syscall.ECONNREFUSED):
			record(refused)
			http.Error(w, a.err.Error(), http.StatusBadGateway)
		case a.err != nil || a.status/100 != 2:
			record(unknown)
			http.Error(w, fmt.Sprintf("upstream: %v %d %s", a.err, a.status, a.body), http.StatusBadGateway)
		case r.held():
			<-req.Context().Done() // the sink times out
			record(unknown)
		default:
			record(answered)
			for k, v := range a.header {
				w.Header()[k] = v
			}
			w.WriteHeader(a.status)
			_, _ = w.Write(a.body)
		}
	case <-late.C:
		<-req.Context().Done() // the sink times out
		record(unknown)
	case <-req.Context().Done():
		record(unknown)
	}
}

// since returns the requests from the n-th on.
func (r *recorder) since(n int) []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs[n:]...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// sendOrder checks that the sink sent oldest first: each writer's points (field queue
// counts them) go out in the order they were written, and a failed request's points that
// are still buffered go out again before any newer point of the same writer. Points of
// the writers whose tag does not start with one of prefixes are left out.
func sendOrder(reqs []request, prefixes ...string) error {
	writer := func(p string) (string, bool) {
		w := strings.TrimPrefix(strings.Fields(p)[0], "deviceless_agent,agent=")
		for _, pre := range prefixes {
			if strings.HasPrefix(w, pre) {
				return w, true
			}
		}
		return "", false
	}
	newest := map[string]int64{} // writer → newest point sent so far
	sentAt := map[string]int64{} // point → its writer's newest when it was last sent
	for k, r := range reqs {
		for i, p := range r.points {
			w, ok := writer(p)
			if !ok {
				continue
			}
			q := r.queues[i]
			if at, again := sentAt[p]; again {
				if newest[w] != at {
					return fmt.Errorf("request %d: point %s (%s #%d) sent again after newer points up to #%d", k, p, w, q, newest[w])
				}
				continue
			}
			if n, seen := newest[w]; seen && q <= n {
				return fmt.Errorf("request %d: point %s (%s #%d) sent after #%d", k, p, w, q, n)
			}
		}
		for i, p := range r.points {
			if w, ok := writer(p); ok {
				if n, seen := newest[w]; !seen || r.queues[i] > n {
					newest[w] = r.queues[i]
				}
			}
		}
		for _, p := range r.points {
			if w, ok := writer(p); ok {
				sentAt[p] = newest[w]
			}
		}
	}
	return nil
}

// TestInfluxOutage stops InfluxDB (connection refused), then freezes it (a hung server that
// accepts connections and never answers): in both cases 100,000 writes from 4 goroutines
// complete while it is unavailable, the oldest points are dropped and counted, and when it
// is back the buffered (newest) points and new ones are written.
//
// A proxy records every write request and whether the sink got InfluxDB's answer, and the
// test checks each point against it. Allowed, and nothing else:
//   - a point whose acceptance the sink saw is in InfluxDB, was accepted in exactly one
//     request (never sent again), and is counted once in Written;
//   - a point InfluxDB holds although the sink never saw it accepted was in a request whose
//     outcome the sink could not know (it timed out, or the connection broke): InfluxDB
//     stored it late, and the sink, which evicted it, counts it as dropped;
//   - the points InfluxDB accepted from the outage are exactly those buffered when it came
//     back: each writer's newest, without gaps;
//   - oldest first: each writer's points were sent in order, and a failed request's points
//     again before newer ones (sendOrder).
func TestInfluxOutage(t *testing.T) {
	const (
		bufferLimit = 10_000
		batchSize   = 500
		outage      = 100_000
		writers     = 4
	)
	srv := influxtest.Start(t)
	srv.CreateDatabase("outage")
	// The sink waits 2 s for an answer; the proxy passes on only answers within 500 ms.
	rec, proxyURL := newRecorder(t, srv.URL, 500*time.Millisecond)
	sink, _ := startSink(t, srv, "outage", func(c *metrics.Config) {
		c.URL = proxyURL
		c.BufferLimit = bufferLimit
		c.BatchSize = batchSize
		c.Timeout = 2 * time.Second
	})

	base := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	seq := 0 // points given to the sink so far; each gets its own timestamp
	// write gives n points from 4 goroutines; writer w tags its points agent-w and counts
	// them in field queue (0, 1, 2, ... per writer).
	write := func(agent string, n int) {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				tag := fmt.Sprintf("%s-%d", agent, w)
				for i := range n / writers {
					p := metrics.Agent(tag, metrics.AgentStats{CPU: 1, Queue: i})
					p.Time = base.Add(time.Duration(seq+i*writers+w) * time.Microsecond)
					sink.Write(p)
				}
			})
		}
		wg.Wait()
		seq += n
	}
	// stored returns InfluxDB's points of the writers tagged agent-*: point → queue.
	stored := func(agents ...string) map[string]int64 {
		res := srv.Query("outage", `SELECT queue FROM deviceless_agent WHERE agent =~ /^(`+strings.Join(agents, "|")+`)-/ GROUP BY agent`)
		out := map[string]int64{}
		for _, s := range res[0].Series {
			for _, v := range s.Values {
				q, _ := v[1].(json.Number).Int64()
				out[fmt.Sprintf("deviceless_agent,agent=%s %v", s.Tags["agent"], v[0])] = q
			}
		}
		return out
	}
	accounted := func() {
		t.Helper()
		st := sink.Stats()
		if st.Written+st.Dropped+uint64(st.Buffered) != uint64(seq) {
			t.Fatalf("%+v: written+dropped+buffered != %d points given", st, seq)
		}
	}

	write("before", 1000)
	waitFor(t, "first points written", func() bool { return sink.Stats().Written == 1000 })
	if n := len(stored("before")); n != 1000 {
		t.Fatalf("InfluxDB holds %d of the first 1000 points", n)
	}

	for _, phase := range []struct {
		name     string
		down, up func()
		slow     int // answers held back after up
	}{
		// Stopped, then restarted and slow at first: the first request after the restart
		// times out although InfluxDB stored it (as on a busy machine).
		{"stopped", srv.Stop, srv.Restart, 1},
		{"hung", srv.Pause, srv.Resume, 0},
	} {
		t.Run(phase.name, func(t *testing.T) {
			during, after := "outage-"+phase.name, "after-"+phase.name
			before, firstReq := sink.Stats(), rec.count()
			phase.down()
			write(during, outage)
			// Every write returned while InfluxDB was unavailable; the buffer is full and
			// kept the newest. A batch in flight is out of the buffer, which fills up behind
			// it: when its request fails, what no longer fits is dropped.
			waitFor(t, "a failed write request", func() bool { return sink.Stats().WriteErrors > before.WriteErrors })
			st := sink.Stats()
			accounted()
			if st.Written != before.Written || st.Buffered < bufferLimit || st.Buffered > bufferLimit+batchSize {
				t.Fatalf("while InfluxDB was %s: %+v -> %+v; want nothing written, %d buffered (%d with a batch in flight)", phase.name, before, st, bufferLimit, bufferLimit+batchSize)
			}
			t.Logf("while %s: %+v", phase.name, st)

			rec.holdAnswers(phase.slow)
			phase.up()
			waitFor(t, "buffer drained", func() bool { return sink.Stats().Buffered == 0 })
			write(after, 1000)
			waitFor(t, "new points written", func() bool { return sink.Stats().Buffered == 0 && len(stored(after)) == 1000 })
			accounted()
			st = sink.Stats()
			t.Logf("after %s: %+v", phase.name, st)

			// What the proxy saw: per point, the requests that were answered; per outcome,
			// the requests.
			reqs := rec.since(firstReq)
			accepted, uncertain := map[string]int{}, map[string]bool{}
			byOutcome := map[outcome]int{}
			for _, r := range reqs {
				byOutcome[r.outcome]++
				for _, p := range r.points {
					switch r.outcome {
					case answered:
						accepted[p]++
					case unknown:
						uncertain[p] = true
					}
				}
			}
			db := stored(during, after)

			var twice, lost, unexplained, late []string
			for p, n := range accepted {
				if n > 1 {
					twice = append(twice, p)
				}
				if _, ok := db[p]; !ok {
					lost = append(lost, p)
				}
			}
			for p := range db {
				switch {
				case accepted[p] > 0:
				case uncertain[p]:
					late = append(late, p)
				default:
					unexplained = append(unexplained, p)
				}
			}
			for what, ps := range map[string][]string{
				"accepted in more than one request (sent again after InfluxDB had accepted them)": twice,
				"accepted by InfluxDB but missing from it":                                        lost,
				"in InfluxDB but never in a request that was answered or timed out":               unexplained,
			} {
				if len(ps) > 0 {
					sort.Strings(ps)
					t.Errorf("%d points %s, e.g. %v", len(ps), what, ps[:min(3, len(ps))])
				}
			}
			if err := sendOrder(reqs, during+"-", after+"-"); err != nil {
				t.Errorf("not oldest first: %v", err)
			}

			// The sink counts exactly what it saw accepted, and each failed request once.
			if got, want := st.Written-before.Written, uint64(len(accepted)); got != want {
				t.Errorf("the sink counts %d points written, InfluxDB accepted %d in answered requests", got, want)
			}
			if got, want := st.WriteErrors-before.WriteErrors, uint64(len(reqs)-byOutcome[answered]); got != want {
				t.Errorf("the sink counts %d failed requests, the proxy saw %d (%v)", got, want, byOutcome)
			}
			if byOutcome[unknown] < phase.slow {
				t.Errorf("requests %v: want at least %d timed out after InfluxDB was back", byOutcome, phase.slow)
			}
			// Stored late: the sink evicted them after their request failed, so they are
			// among the points it counts as dropped.
			if len(late) > 0 && st.Dropped-before.Dropped < uint64(len(late)) {
				t.Errorf("%d points stored late, but only %d dropped", len(late), st.Dropped-before.Dropped)
			}

			// Accepted from the outage: the 10,000 buffered when InfluxDB came back, each
			// writer's newest without gaps (the newest 10,000 in the order they arrived);
			// and every new point.
			type run struct{ n, lo, hi int64 }
			runs := map[string]run{}
			newPoints := 0
			for p := range accepted {
				agent := strings.TrimPrefix(strings.Fields(p)[0], "deviceless_agent,agent=")
				if strings.HasPrefix(agent, after+"-") {
					newPoints++
					continue
				}
				q := db[p]
				r, ok := runs[agent]
				if !ok {
					r = run{lo: q, hi: q}
				}
				r.n++
				r.lo, r.hi = min(r.lo, q), max(r.hi, q)
				runs[agent] = r
			}
			kept := int64(0)
			for w := range writers {
				agent := fmt.Sprintf("%s-%d", during, w)
				r := runs[agent]
				kept += r.n
				// A writer's newest may be none: the buffer keeps the newest in the order
				// the 4 writers' points arrived.
				if r.n > 0 && (r.hi != outage/writers-1 || r.hi-r.lo+1 != r.n) {
					t.Errorf("writer %s: %d points accepted, queue %d..%d; want its newest, %d..%d", agent, r.n, r.lo, r.hi, outage/writers-r.n, outage/writers-1)
				}
			}
			if kept != bufferLimit || newPoints != 1000 {
				t.Errorf("accepted %d outage points and %d new ones; want the %d buffered and all 1000", kept, newPoints, bufferLimit)
			}
			if got, want := st.Dropped-before.Dropped, uint64(outage-kept); got != want {
				t.Errorf("dropped %d of the outage points, want the %d not accepted", got, want)
			}
			t.Logf("requests %v; %d outage points accepted, %d stored late from requests the sink gave up on", byOutcome, kept, len(late))
		})
	}
	if n := len(stored("before")); n != 1000 {
		t.Fatalf("InfluxDB holds %d of the first 1000 points at the end", n)
	}
}
