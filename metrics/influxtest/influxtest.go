// Package influxtest starts a real InfluxDB 1.8 server for tests: its own process on free
// 127.0.0.1 ports with a temporary data directory, stopped when the test ends.
//
// The influxd binary is built once by scripts/setup-influxdb.sh (part of `go tool task
// setup`) into ${XDG_CACHE_HOME:-$HOME/.cache}/deviceless/influxd-1.8.10/influxd; set
// DEVICELESS_INFLUXD to use another one. A missing binary fails the test, it never skips.
package influxtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvBinary names the environment variable that overrides the influxd path.
const EnvBinary = "DEVICELESS_INFLUXD"

// Binary returns the path of the influxd binary tests use.
func Binary() string {
	if p := os.Getenv(EnvBinary); p != "" {
		return p
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = filepath.Join(os.TempDir(), ".cache")
	}
	return filepath.Join(dir, "deviceless", "influxd-1.8.10", "influxd")
}

// Server is a running InfluxDB.
type Server struct {
	URL string // http://127.0.0.1:port, for metrics.Config.URL and queries

	t      testing.TB
	dir    string
	config string
	log    *os.File

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts an InfluxDB and returns when it answers /ping. The server stops when the
// test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("influxd not found at %s (%v): run `go tool task setup` (or bash scripts/setup-influxdb.sh) to build InfluxDB 1.8.10, or set %s", bin, err, EnvBinary)
	}
	dir := t.TempDir()
	httpPort, rpcPort := freePort(t), freePort(t)
	config := filepath.Join(dir, "influxdb.conf")
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = "127.0.0.1:%d"

[meta]
  dir = %q

[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:%d"
  log-enabled = false
  flux-enabled = true

[logging]
  level = "warn"
`, rpcPort, filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), httpPort)
	if err := os.WriteFile(config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "influxd.log"))
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		URL:    "http://127.0.0.1:" + strconv.Itoa(httpPort),
		t:      t,
		dir:    dir,
		config: config,
		log:    log,
	}
	t.Cleanup(func() {
		s.stop()
		log.Close()
	})
	s.Restart()
	return s
}

// Stop stops the server (data is kept; Restart brings it back on the same port).
func (s *Server) Stop() {
	s.t.Helper()
	s.stop()
}

func (s *Server) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // in case it is paused
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Pause freezes the server (SIGSTOP): it keeps its port, accepts connections and answers
// nothing, like a hung InfluxDB. Resume continues it.
func (s *Server) Pause() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP)
}

// Resume continues a paused server.
func (s *Server) Resume() {
	s.t.Helper()
	s.signal(syscall.SIGCONT)
}

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("influxtest: %v: server not running", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("influxtest: %v: %v", sig, err)
	}
}

// Restart starts the server again after Stop (or for the first time) and waits for /ping.
func (s *Server) Restart() {
	s.t.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		s.t.Fatal("influxtest: Restart while running")
	}
	cmd := exec.Command(Binary(), "run", "-config", s.config)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = s.log, s.log
	// The server dies with the test binary even if cleanups do not run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatalf("influxtest: start %s: %v", Binary(), err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/ping")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return
			}
		}
		select {
		case <-done:
			s.t.Fatalf("influxtest: influxd exited: %s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("influxtest: influxd did not answer /ping on %s within 60s: %s", s.URL, s.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.log.Name())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// CreateDatabase creates a database (InfluxDB 1.8 needs it before writes).
func (s *Server) CreateDatabase(name string) {
	s.t.Helper()
	if _, err := s.Exec("", "CREATE DATABASE "+quoteIdent(name)); err != nil {
		s.t.Fatal(err)
	}
}

// Series is one series of a query result.
type Series struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// Rows returns the series' rows as maps from column name to value (numbers are
// json.Number).
func (s Series) Rows() []map[string]any {
	rows := make([]map[string]any, len(s.Values))
	for i, v := range s.Values {
		r := make(map[string]any, len(s.Columns))
		for j, c := range s.Columns {
			if j < len(v) {
				r[c] = v[j]
			}
		}
		rows[i] = r
	}
	return rows
}

// Result is the result of one statement.
type Result struct {
	Series []Series `json:"series"`
	Err    string   `json:"error"`
}

// Query runs InfluxQL statements on db with GET /query (epoch=ns timestamps) and fails
// the test on a transport error or an error of any statement.
func (s *Server) Query(db, q string) []Result {
	s.t.Helper()
	res, err := s.query(http.MethodGet, db, q)
	if err != nil {
		s.t.Fatal(err)
	}
	return res
}

// Exec runs InfluxQL statements that change something (CREATE, DROP) with POST /query.
func (s *Server) Exec(db, q string) ([]Result, error) {
	return s.query(http.MethodPost, db, q)
}

func (s *Server) query(method, db, q string) ([]Result, error) {
	v := url.Values{"q": {q}, "epoch": {"ns"}}
	if db != "" {
		v.Set("db", db)
	}
	var req *http.Request
	var err error
	if method == http.MethodGet {
		req, err = http.NewRequest(method, s.URL+"/query?"+v.Encode(), nil)
	} else {
		req, err = http.NewRequest(method, s.URL+"/query", strings.NewReader(v.Encode()))
		if req != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("influxtest: query %q: %w", q, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("influxtest: query %q: %w", q, err)
	}
	var out struct {
		Results []Result `json:"results"`
		Err     string   `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("influxtest: query %q: status %d: %s", q, resp.StatusCode, body)
	}
	if out.Err != "" {
		return nil, fmt.Errorf("influxtest: query %q: %s", q, out.Err)
	}
	for _, r := range out.Results {
		if r.Err != "" {
			return nil, fmt.Errorf("influxtest: query %q: %s", q, r.Err)
		}
	}
	return out.Results, nil
}

func quoteIdent(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
