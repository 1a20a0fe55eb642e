package podman

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deviceless/deviceless/edgeagent/container"
	"github.com/deviceless/deviceless/protocol"
)

func frame(fd byte, data string) []byte {
	h := make([]byte, 8, 8+len(data))
	h[0] = fd
	binary.BigEndian.PutUint32(h[4:], uint32(len(data)))
	return append(h, data...)
}

func TestDemux(t *testing.T) {
	big := strings.Repeat("x", 100<<10) // larger than the copy buffer
	var in bytes.Buffer
	in.Write(frame(1, "out1 "))
	in.Write(frame(2, "err1"))
	in.Write(frame(0, "out2 "))
	in.Write(frame(1, big))
	var stdout, stderr bytes.Buffer
	if err := demux(&in, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != "out1 out2 "+big || stderr.String() != "err1" {
		t.Fatalf("stdout %d bytes, stderr %q", stdout.Len(), stderr.String())
	}

	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"service error", frame(3, "container gone"), "container gone"},
		{"unknown stream", frame(7, "?"), "unknown stream 7"},
		{"short frame", frame(1, "abc")[:9], io.ErrUnexpectedEOF.Error()},
	} {
		err := demux(bytes.NewReader(tc.in), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

// fakeService answers the libpod calls of an image that is missing until pulled.
type fakeService struct {
	mu      sync.Mutex
	pulled  bool
	pullErr string
	calls   []string
}

func (f *fakeService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if i := strings.Index(path, "/libpod/"); i >= 0 {
		path = path[i+len("/libpod"):]
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r.Method+" "+path)
	switch {
	case path == "/_ping":
		w.Header().Set("Libpod-API-Version", "4.3.1")
		_, _ = io.WriteString(w, "OK")
	case path == "/containers/create" && !f.pulled:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"cause":"image not known","message":"localhost/x: image not known","response":404}`)
	case path == "/containers/create":
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"Id":"c0ffee","Warnings":[]}`)
	case strings.HasSuffix(path, "/exists"):
		w.WriteHeader(http.StatusNotFound)
	case path == "/images/pull":
		if r.URL.Query().Get("reference") != "localhost/x" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, `{"stream":"Trying to pull localhost/x...\n"}`+"\n")
		if f.pullErr != "" {
			_, _ = io.WriteString(w, `{"error":"`+f.pullErr+`"}`+"\n")
			return
		}
		f.pulled = true
		_, _ = io.WriteString(w, `{"images":["1234"],"id":"1234"}`+"\n")
	default:
		http.NotFound(w, r)
	}
}

func startFake(t *testing.T, f *fakeService) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "podman.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestCreatePullsMissingImage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		pull    bool
		pullErr string
		want    error // nil: created
	}{
		{"pull off", false, "", container.ErrImageNotFound},
		{"pull fails", true, "unauthorized", container.ErrImageNotFound},
		{"pulled", true, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeService{pullErr: tc.pullErr}
			rt, err := New(Config{Socket: startFake(t, f), Agent: "a", CodeDir: t.TempDir(), Pull: tc.pull,
				Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			t.Cleanup(func() { _ = rt.Close(ctx) })
			c, err := rt.client(ctx)
			if err != nil {
				t.Fatal(err)
			}
			id, err := rt.create(ctx, c, rt.spec(container.Job{Function: "f", Image: "localhost/x"}, ""))
			if tc.want != nil {
				if !errors.Is(err, tc.want) || (tc.pullErr != "" && !strings.Contains(err.Error(), tc.pullErr)) {
					t.Fatalf("err %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil || id != "c0ffee" {
				t.Fatalf("create: %q, %v (calls %v)", id, err, f.calls)
			}
		})
	}
}

// hungService accepts connections and answers the calls hang does not name like a healthy
// service with one container, c0ffee, whose attach stream never ends; the calls hang names
// get no answer at all (until the test ends).
type hungService struct {
	hang func(method, path string) bool
	mu   sync.Mutex
	seen []string
	done chan struct{}
}

func (h *hungService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if i := strings.Index(path, "/libpod/"); i >= 0 {
		path = path[i+len("/libpod"):]
	}
	h.mu.Lock()
	h.seen = append(h.seen, r.Method+" "+path)
	h.mu.Unlock()
	if h.hang(r.Method, path) {
		select {
		case <-r.Context().Done():
		case <-h.done:
		}
		return
	}
	switch {
	case path == "/_ping":
		w.Header().Set("Libpod-API-Version", "4.3.1")
		_, _ = io.WriteString(w, "OK")
	case path == "/containers/create":
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"Id":"c0ffee","Warnings":[]}`)
	case strings.HasSuffix(path, "/attach"):
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = buf.WriteString("HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
		_ = buf.Flush()
		go func() { _, _ = io.Copy(io.Discard, conn) }() // stdin
		<-h.done                                         // the container never exits
	case strings.HasSuffix(path, "/start"), strings.HasSuffix(path, "/kill"):
		w.WriteHeader(http.StatusNoContent)
	case strings.HasSuffix(path, "/json") && strings.HasPrefix(path, "/containers/c0ffee"):
		_, _ = io.WriteString(w, `{"State":{"Status":"running","Running":true}}`)
	case r.Method == http.MethodDelete:
		_, _ = io.WriteString(w, `[]`)
	case path == "/containers/json":
		_, _ = io.WriteString(w, `[]`)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// A podman service that stops answering must not hold an invocation (and the agent's
// worker) forever: every API call has a deadline, and a container whose streams do not end
// after it was killed is given up on.
func TestHungServiceBoundsEveryCall(t *testing.T) {
	const bound = 10 * time.Second // api timeout 300ms, kill grace 300ms, timeout 300ms; a loaded machine
	for _, tc := range []struct {
		name string
		hang func(method, path string) bool
	}{
		{"everything", func(string, string) bool { return true }},
		{"create", func(_, p string) bool { return p == "/containers/create" }},
		{"attach handshake", func(_, p string) bool { return strings.HasSuffix(p, "/attach") }},
		{"start", func(_, p string) bool { return strings.HasSuffix(p, "/start") }},
		{"kill and inspect", func(_, p string) bool {
			return strings.HasSuffix(p, "/kill") || strings.HasSuffix(p, "/json") && strings.HasPrefix(p, "/containers/c0ffee")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := &hungService{hang: tc.hang, done: make(chan struct{})}
			sock := filepath.Join(t.TempDir(), "podman.sock")
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: h}
			go func() { _ = srv.Serve(l) }()
			t.Cleanup(func() { close(h.done); srv.Close() })
			for _, mode := range []string{"cold", "prepared", "warm"} {
				prepare := mode == "prepared"
				rt, err := New(Config{Socket: sock, Agent: "a", CodeDir: t.TempDir(), Logger: slog.New(slog.DiscardHandler),
					APITimeout: 300 * time.Millisecond, KillGrace: 300 * time.Millisecond, Prepare: prepare})
				if err != nil {
					t.Fatal(err)
				}
				job := container.Job{ID: "i", Function: "f", Image: "localhost/x", Command: []string{"sh", "-c", "true"},
					Timeout: 300 * time.Millisecond, Prepare: prepare}
				if mode == "warm" {
					job.Warm = &protocol.Warm{}
				}
				for i := range 2 { // the second with a prepared container, when on
					t0 := time.Now()
					done := make(chan error, 1)
					go func() { _, err := rt.Run(context.Background(), job); done <- err }()
					select {
					case err := <-done:
						if err == nil && !(mode == "warm" && tc.name == "kill and inspect") {
							t.Errorf("%s run %d: no error from a hung service", mode, i)
						}
						t.Logf("%s run %d: %v after %s", mode, i, err, time.Since(t0).Round(time.Millisecond))
					case <-time.After(bound):
						h.mu.Lock()
						t.Fatalf("%s run %d: Run still waiting after %s (calls %v)", mode, i, bound, h.seen)
						h.mu.Unlock()
					}
				}
				for _, call := range []func(context.Context) error{rt.Ping, func(ctx context.Context) error { _, err := rt.Sweep(ctx); return err }} {
					done := make(chan error, 1)
					go func() { done <- call(context.Background()) }()
					select {
					case <-done:
					case <-time.After(bound):
						t.Fatalf("Ping or Sweep still waiting after %s", bound)
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), bound)
				_ = rt.Close(ctx)
				cancel()
			}
		})
	}
}
